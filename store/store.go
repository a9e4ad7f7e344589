// Package store persists the hub's state in SQLite (modernc.org/sqlite, pure
// Go): the zone (TXT value sets, delegation names, serial and change journal),
// generation counters of other cached tables, meta settings, and the access
// model: principals, role assignments, API tokens, managed challenge
// configs, delegations and the audit log. The store holds no policy: it
// validates shapes and persists; the service decides who may do what.
//
// The database runs in WAL mode with one writer: every write goes through a
// single goroutine that commits whatever is queued as one transaction (one
// serial bump; requests queued while it runs join it), each request inside
// its own SAVEPOINT so one failing request does not fail the others. A
// write is acknowledged only after COMMIT returned, so it is as durable as
// Config.Synchronous says. Reads use a separate pool and never block on
// the writer; the hot ones are prepared once.
//
// *DB implements zone.Source: Serial, Snapshot and ChangesSince feed the DNS
// server's in-memory view; Config.OnCommit pushes this process's changes to
// it immediately.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/acmehub/acmehub/internal/zone"

	// The pure-Go SQLite driver, registered as "sqlite".
	_ "modernc.org/sqlite"
)

// Errors returned by the store; match them with errors.Is.
var (
	// ErrNotFound: the token, meta key or other row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the row already exists (duplicate token client id,
	// principal or config name, delegation label, role assignment).
	ErrConflict = errors.New("already exists")
	// ErrTooManyValues: a name (or creator) already holds the most values allowed.
	ErrTooManyValues = errors.New("too many values")
	// ErrInvalid: the input was refused (by validation or a schema CHECK)
	// and nothing was stored.
	ErrInvalid = errors.New("invalid input")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("store closed")
	// ErrSchemaTooNew: the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrLocked: Restore or LockExclusive found the database open in
	// another process.
	ErrLocked = errors.New("database is in use")
)

// The DNS view's follower reads the zone through this interface.
var _ zone.Source = (*DB)(nil)

// maxBatch caps the requests committed in one transaction, so one commit
// (and the OnCommit call) stays short under a flood of writes.
const maxBatch = 256

// DB is an open store. It is safe for concurrent use.
type DB struct {
	cfg   Config
	w     *sql.DB              // exactly one connection, used only by the writer goroutine (and Open's migrations)
	stmts map[string]*sql.Stmt // hot statements prepared on w; used by the writer only
	r     *sql.DB              // read pool
	reads map[string]*sql.Stmt // hot queries prepared on r (see hotReads)
	lock  *fileLock

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *writeReq
	done   chan struct{} // closed when the writer goroutine has exited

	touchMu           sync.Mutex
	touches           map[string]time.Time // pending TouchToken updates
	delegationTouches map[int64]time.Time  // pending TouchDelegation updates
	acmeDNSTouches    map[string]time.Time // pending TouchACMEDNSAccount updates
	touchPending      bool                 // a flush request is queued
}

// Open opens (creating if needed) and migrates the database at cfg.Path and
// starts its writer goroutine. Close releases it.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	lock, err := openLock(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	db := &DB{
		cfg:               cfg,
		lock:              lock,
		queue:             make(chan *writeReq, 4*maxBatch),
		done:              make(chan struct{}),
		touches:           make(map[string]time.Time),
		delegationTouches: make(map[int64]time.Time),
		acmeDNSTouches:    make(map[string]time.Time),
	}
	fail := func(err error) (*DB, error) {
		db.closeStmts()
		if db.r != nil {
			_ = db.r.Close()
		}
		if db.w != nil {
			_ = db.w.Close()
		}
		_ = lock.unlock()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}

	// The writer's connection takes the write lock at BEGIN, so a batch
	// never fails half-way with SQLITE_BUSY on lock upgrade. It keeps its
	// statement journal (the pages each request's savepoint may have to
	// roll back) in memory: in a temporary file it costs system calls for
	// every page a batch touches, and it is never needed after a crash.
	db.w, err = sql.Open("sqlite", dsn(cfg, "&_txlock=immediate&_pragma=temp_store(MEMORY)"))
	if err != nil {
		return fail(err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	if err := db.checkPragmas(ctx, db.w); err != nil {
		return fail(err)
	}
	if err := migrate(ctx, db.w, migrations, len(migrations)); err != nil {
		return fail(err)
	}
	if err := db.prepareHot(ctx); err != nil {
		return fail(err)
	}

	db.r, err = sql.Open("sqlite", dsn(cfg, "&_pragma=query_only(1)"))
	if err != nil {
		return fail(err)
	}
	db.r.SetMaxOpenConns(cfg.ReadConns)
	db.r.SetMaxIdleConns(cfg.ReadConns)
	if err := db.checkPragmas(ctx, db.r); err != nil {
		return fail(err)
	}
	if err := db.prepareReads(ctx); err != nil {
		return fail(err)
	}

	go db.writer()
	return db, nil
}

// dsn builds the driver's connection string: every pooled connection gets
// the same pragmas when the driver opens it.
func dsn(cfg Config, extra string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+cfg.Synchronous+")")
	return cfg.Path + "?" + q.Encode() + extra
}

// checkPragmas verifies that the DSN took effect: a silently ignored pragma
// would weaken durability without anyone noticing.
func (db *DB) checkPragmas(ctx context.Context, pool *sql.DB) error {
	var mode string
	var fk, sync int
	if err := pool.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("check journal mode: %w", err)
	}
	if err := pool.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	if err := pool.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("check synchronous: %w", err)
	}
	wantSync := map[string]int{"NORMAL": 1, "FULL": 2}[db.cfg.Synchronous]
	if mode != "wal" || fk != 1 || sync != wantSync {
		return fmt.Errorf("pragmas not applied: journal_mode=%s foreign_keys=%d synchronous=%d", mode, fk, sync)
	}
	return nil
}

// Close waits for queued writes to finish, flushes pending token touches
// and closes the database. Writes after Close fail with ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	close(db.queue)
	db.mu.Unlock()
	<-db.done

	db.closeStmts()
	errR := db.r.Close()
	// A clean close checkpoints the WAL into the main file.
	errW := db.w.Close()
	errL := db.lock.unlock()
	if err := errors.Join(errR, errW, errL); err != nil {
		return fmt.Errorf("store: close %s: %w", db.cfg.Path, err)
	}
	return nil
}

// closeStmts closes the prepared statements of both pools.
func (db *DB) closeStmts() {
	for _, st := range db.stmts {
		_ = st.Close()
	}
	for _, st := range db.reads {
		_ = st.Close()
	}
}

// ttlFromDB converts a TTL read from the database. The store only writes
// uint32 TTLs (txt_values even keeps them within 0..2^31-1), so a value
// outside the uint32 range means a damaged or foreign database: reported
// rather than silently wrapped.
func ttlFromDB(v int64) (uint32, error) {
	if v < 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("stored TTL %d out of range 0..%d", v, uint32(math.MaxUint32))
	}
	return uint32(v), nil
}

// opFromDB converts a journal op read from the database, which the schema
// keeps within the known ops.
func opFromDB(v int64) (zone.Op, error) {
	if v < int64(zone.OpAddValue) || v > int64(zone.OpRemoveName) {
		return 0, fmt.Errorf("stored journal op %d unknown", v)
	}
	return zone.Op(v), nil
}

// fromMilli reads a stored Unix time in milliseconds; 0 reads as the zero
// time.
func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// nullMilli stores an optional time as NULL when zero.
func nullMilli(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromNullMilli is the inverse of nullMilli.
func fromNullMilli(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64).UTC()
}
