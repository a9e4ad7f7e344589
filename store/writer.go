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
)

var hotQueries = []string{qReadSerial, qWriteSerial, qSavepoint, qRelease, qRollbackTo, qJournal,
	qRefreshValue, qCountName, qInsertValue, qDeleteValue, qInsertAudit}

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

// stmt returns query bound to the transaction, prepared if it is hot. The
// returned statement needs no Close: database/sql closes transaction-bound
// statements when the transaction commits or rolls back, and the cached
// statement it derives from lives until DB.Close.
func (w *wtx) stmt(query string) *sql.Stmt {
	if st, ok := w.db.stmts[query]; ok {
		return w.tx.StmtContext(w.ctx, st)
	}
	return nil
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

// writer is the single goroutine that writes. It takes everything queued
// (up to maxBatch) and commits it as one transaction.
func (db *DB) writer() {
	defer close(db.done)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		r, ok := <-db.queue
		if !ok {
			db.finalFlush()
			return
		}
		batch = append(batch[:0], r)
		open := true
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-db.queue:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		db.runBatch(batch)
		clear(batch) // let finished requests be collected
		if !open {
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
	db.runBatch([]*writeReq{r})
	if res := <-r.done; res.err != nil {
		db.cfg.Logger.Warn("store: flush touches on close", "err", res.err)
	}
}

// runBatch commits the requests in one transaction. Each runs in its own
// savepoint: a failing one is rolled back alone and gets its own error.
// Every request is answered only after COMMIT returned.
func (db *DB) runBatch(batch []*writeReq) {
	// The transaction must not die with one caller's context.
	ctx := context.Background()
	errs := make([]error, len(batch))
	ran := false
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = fmt.Errorf("store: %s: skipped: %w", r.op, err)
		} else {
			ran = true
		}
	}
	if !ran {
		for i, r := range batch {
			r.done <- writeRes{err: errs[i]}
		}
		return
	}

	serial, changes, err := db.runTx(ctx, batch, errs)
	if err != nil {
		for i, r := range batch {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("store: %s: %w", r.op, err)
			}
		}
	}
	if err == nil && len(changes) > 0 && db.cfg.OnCommit != nil {
		db.cfg.OnCommit(changes)
	}
	for i, r := range batch {
		if errs[i] != nil {
			r.done <- writeRes{err: errs[i]}
		} else {
			r.done <- writeRes{serial: serial}
		}
	}
}

// runTx runs the batch's transaction. errs holds, per request, the error it
// got (nil = applied); a returned error means nothing was committed.
func (db *DB) runTx(ctx context.Context, batch []*writeReq, errs []error) (serial int64, changes []zone.Change, err error) {
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
	for i, r := range batch {
		if errs[i] != nil {
			continue
		}
		// Checked again: the request may have waited behind earlier ones.
		if err := r.ctx.Err(); err != nil {
			errs[i] = fmt.Errorf("store: %s: skipped: %w", r.op, err)
			continue
		}
		if _, err := w.exec(qSavepoint); err != nil {
			return 0, nil, fmt.Errorf("savepoint: %w", err)
		}
		mark := len(w.changes)
		if ferr := r.fn(w); ferr != nil {
			errs[i] = ferr
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
