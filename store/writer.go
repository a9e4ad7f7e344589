package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

// writeReq is one queued write. fn runs on the writer goroutine inside its
// own savepoint; results other than the serial travel in fn's closure.
type writeReq struct {
	ctx  context.Context
	op   string // for error messages: "add value", ...
	fn   func(w *wtx) error
	done chan writeRes // buffered: the writer never blocks on a caller that left
}

type writeRes struct {
	serial int64
	err    error
}

// wtx is what a write request sees: the batch transaction, the serial its
// zone changes will carry, and the batch's clock.
type wtx struct {
	ctx     context.Context
	tx      *sql.Tx
	db      *DB
	serial  int64 // serial the batch commits if it changes the zone
	now     time.Time
	changes []zone.Change
	bound   map[string]*sql.Stmt // hot statements bound to tx so far
}

// change records a zone change; the writer journals it and bumps the serial.
func (w *wtx) change(op zone.Op, name, value string, ttl uint32) {
	w.changes = append(w.changes, zone.Change{Serial: w.serial, Op: op, Name: name, Value: value, TTL: ttl})
}

// Statements run by (nearly) every write; Open prepares them once on the
// writer's connection, since preparing costs about as much as running.
const (
	qReadSerial   = `SELECT serial FROM zone_state WHERE id = 1`
	qWriteSerial  = `UPDATE zone_state SET serial = ? WHERE id = 1`
	qSavepoint    = `SAVEPOINT req`
	qRelease      = `RELEASE req`
	qRollbackTo   = `ROLLBACK TO req`
	qJournal      = `INSERT INTO zone_journal (serial, op, name, value, ttl, at) VALUES (?, ?, ?, ?, ?, ?)`
	qRefreshValue = `UPDATE txt_values SET ttl = ?, expires_at = ? WHERE name = ? AND value = ?`
	qCountName    = `SELECT count(*) FROM txt_values WHERE name = ?`
	qInsertValue  = `INSERT INTO txt_values (name, value, ttl, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`
	qDeleteValue  = `DELETE FROM txt_values WHERE name = ? AND value = ?`
	qCountCreator = `SELECT count(*) FROM txt_values WHERE created_by = ?`
	// max() keeps a later touch written by another process.
	qTouchToken      = `UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE client_id = ?`
	qTouchDelegation = `UPDATE delegations SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?`
	qTouchACMEDNS    = `UPDATE acme_dns_accounts SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE username = ?`
)

var hotQueries = []string{qReadSerial, qWriteSerial, qSavepoint, qRelease, qRollbackTo, qJournal,
	qRefreshValue, qCountName, qInsertValue, qDeleteValue, qCountCreator, qInsertAudit, qTouchToken, qTouchDelegation, qTouchACMEDNS}

// prepareHot prepares hotQueries; it runs before the writer starts, while
// the single write connection is free (preparing on the pool inside a
// transaction would wait for that connection forever).
func (db *DB) prepareHot(ctx context.Context) error {
	db.stmts = make(map[string]*sql.Stmt, len(hotQueries))
	for _, q := range hotQueries {
		st, err := db.w.PrepareContext(ctx, q) //nolint:sqlclosecheck // cached for the connection's life; DB.Close closes db.stmts
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		db.stmts[q] = st
	}
	return nil
}

// stmt returns query bound to the transaction, prepared if it is hot; a
// batch binds each hot statement once. The returned statement needs no
// Close: database/sql closes transaction-bound statements when the
// transaction commits or rolls back, and the cached statement it derives
// from lives until DB.Close.
func (w *wtx) stmt(query string) *sql.Stmt {
	if st, ok := w.bound[query]; ok {
		return st
	}
	st, ok := w.db.stmts[query]
	if !ok {
		return nil
	}
	if w.bound == nil {
		w.bound = make(map[string]*sql.Stmt, len(w.db.stmts))
	}
	b := w.tx.StmtContext(w.ctx, st)
	w.bound[query] = b
	return b
}

func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	if st := w.stmt(query); st != nil { //nolint:sqlclosecheck // tx-bound: closed when the transaction ends (see stmt)
		return st.ExecContext(w.ctx, args...)
	}
	return w.tx.ExecContext(w.ctx, query, args...)
}

func (w *wtx) queryRow(query string, args ...any) *sql.Row {
	if st := w.stmt(query); st != nil { //nolint:sqlclosecheck // tx-bound: closed when the transaction ends (see stmt)
		return st.QueryRowContext(w.ctx, args...)
	}
	return w.tx.QueryRowContext(w.ctx, query, args...)
}

func (w *wtx) query(query string, args ...any) (*sql.Rows, error) {
	if st := w.stmt(query); st != nil { //nolint:sqlclosecheck // tx-bound: closed when the transaction ends (see stmt)
		return st.QueryContext(w.ctx, args...)
	}
	return w.tx.QueryContext(w.ctx, query, args...)
}

// write queues fn for the writer and waits until its batch committed. It
// returns the zone serial after the commit (the batch's new serial if any
// request in it changed the zone). If ctx ends while the request
// is still queued it is skipped; if it ends later the write may still
// commit, and the caller gets ctx's error.
func (db *DB) write(ctx context.Context, op string, fn func(w *wtx) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: %s: %w", op, err)
	}
	r := &writeReq{ctx: ctx, op: op, fn: fn, done: make(chan writeRes, 1)}
	if err := db.enqueue(ctx, r); err != nil {
		return 0, fmt.Errorf("store: %s: %w", op, err)
	}
	select {
	case res := <-r.done:
		return res.serial, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("store: %s: outcome unknown: %w", op, ctx.Err())
	}
}

// enqueue hands r to the writer; the read lock keeps Close from closing the
// queue under a send.
func (db *DB) enqueue(ctx context.Context, r *writeReq) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	select {
	case db.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// batch is the requests one transaction commits, and what each got.
type batch struct {
	reqs   []*writeReq
	errs   []error // per request; nil: applied (so far)
	closed bool    // the queue was found closed: nothing more will come
}

// add appends r to the batch.
func (b *batch) add(r *writeReq) {
	b.reqs, b.errs = append(b.reqs, r), append(b.errs, nil)
}

// fill takes what is queued, without waiting, up to maxBatch requests.
func (db *DB) fill(b *batch) {
	for !b.closed && len(b.reqs) < maxBatch {
		select {
		case r, ok := <-db.queue:
			if !ok {
				b.closed = true
				return
			}
			b.add(r)
		default:
			return
		}
	}
}

// writer is the single goroutine that writes. It takes everything queued
// (up to maxBatch) and commits it as one transaction; requests queued
// while that transaction runs join it until it commits (see runTx).
func (db *DB) writer() {
	defer close(db.done)
	b := &batch{reqs: make([]*writeReq, 0, maxBatch), errs: make([]error, 0, maxBatch)}
	for {
		r, ok := <-db.queue
		if !ok {
			db.finalFlush()
			return
		}
		b.reqs, b.errs = b.reqs[:0], b.errs[:0]
		b.add(r)
		db.fill(b)
		db.runBatch(b)
		clear(b.reqs) // let finished requests and their errors be collected
		clear(b.errs)
		if b.closed {
			db.finalFlush()
			return
		}
	}
}

// finalFlush writes pending token and delegation touches on Close.
func (db *DB) finalFlush() {
	if db.pendingTouches() == 0 {
		return
	}
	r := &writeReq{ctx: context.Background(), op: "flush touches", fn: db.flushTouches, done: make(chan writeRes, 1)}
	b := &batch{closed: true} // the queue is closed: take nothing from it
	b.add(r)
	db.runBatch(b)
	if res := <-r.done; res.err != nil {
		db.cfg.Logger.Warn("store: flush touches on close", "err", res.err)
	}
}

// runBatch commits the requests in one transaction. Each runs in its own
// savepoint: a failing one is rolled back alone and gets its own error.
// Every request is answered only after COMMIT returned.
func (db *DB) runBatch(b *batch) {
	// The transaction must not die with one caller's context.
	ctx := context.Background()
	ran := false
	for i, r := range b.reqs {
		if err := r.ctx.Err(); err != nil {
			b.errs[i] = fmt.Errorf("store: %s: skipped: %w", r.op, err)
		} else {
			ran = true
		}
	}
	if !ran {
		for i, r := range b.reqs {
			r.done <- writeRes{err: b.errs[i]}
		}
		return
	}

	serial, changes, err := db.runTx(ctx, b)
	if err != nil {
		for i, r := range b.reqs {
			if b.errs[i] == nil {
				b.errs[i] = fmt.Errorf("store: %s: %w", r.op, err)
			}
		}
	}
	if err == nil && len(changes) > 0 && db.cfg.OnCommit != nil {
		db.cfg.OnCommit(changes)
	}
	for i, r := range b.reqs {
		if b.errs[i] != nil {
			r.done <- writeRes{err: b.errs[i]}
		} else {
			r.done <- writeRes{serial: serial}
		}
	}
}

// runTx runs the batch's transaction. b.errs holds, per request, the error
// it got (nil = applied); a returned error means nothing was committed.
//
// Requests queued while the batch's requests run join the batch (up to
// maxBatch) before it commits: they share its commit instead of waiting for
// it and then paying for their own.
func (db *DB) runTx(ctx context.Context, b *batch) (serial int64, changes []zone.Change, err error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	w := &wtx{ctx: ctx, tx: tx, db: db, now: time.Now()}
	var cur int64
	if err := w.queryRow(qReadSerial).Scan(&cur); err != nil {
		return 0, nil, fmt.Errorf("read serial: %w", err)
	}
	w.serial = cur + 1
	for i := 0; i < len(b.reqs); i++ {
		if i == len(b.reqs)-1 {
			db.fill(b)
		}
		r := b.reqs[i]
		if b.errs[i] != nil {
			continue
		}
		// Checked again: the request may have waited behind earlier ones.
		if err := r.ctx.Err(); err != nil {
			b.errs[i] = fmt.Errorf("store: %s: skipped: %w", r.op, err)
			continue
		}
		if _, err := w.exec(qSavepoint); err != nil {
			return 0, nil, fmt.Errorf("savepoint: %w", err)
		}
		mark := len(w.changes)
		if ferr := r.fn(w); ferr != nil {
			b.errs[i] = ferr
			w.changes = w.changes[:mark]
			if _, err := w.exec(qRollbackTo); err != nil {
				return 0, nil, errors.Join(fmt.Errorf("rollback to savepoint: %w", err), ferr)
			}
		}
		if _, err := w.exec(qRelease); err != nil {
			return 0, nil, fmt.Errorf("release savepoint: %w", err)
		}
	}
	serial = cur
	if len(w.changes) > 0 {
		serial = w.serial
		if _, err := w.exec(qWriteSerial, serial); err != nil {
			return 0, nil, fmt.Errorf("bump serial: %w", err)
		}
		ms := w.now.UnixMilli()
		for _, c := range w.changes {
			if _, err := w.exec(qJournal, c.Serial, int64(c.Op), c.Name, c.Value, int64(c.TTL), ms); err != nil {
				return 0, nil, fmt.Errorf("write journal: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, fmt.Errorf("commit: %w", err)
	}
	return serial, w.changes, nil
}
