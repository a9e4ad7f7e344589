package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Meta keys written by Backup into the copy and by Restore into the
// restored database.
const (
	MetaBackupTakenAt   = "backup_taken_at"   // unix ms, set in the backup file
	MetaBackupSerial    = "backup_serial"     // zone counter in the backup file
	MetaRestoredAt      = "restored_at"       // unix ms of the last restore
	MetaRestoredSerial  = "restored_serial"   // counter the last restore set
	MetaRestoredFromAge = "restored_from_age" // age of the backup then, seconds
)

// Serial jump applied by Restore (see Restore).
const (
	restoreMinJump     = 65536
	restorePerSecond   = 1000
	restoreMaxJump     = 1 << 30
	restoreUnknownJump = 1 << 24 // the backup's age is unknown
)

// Backup writes a consistent copy of the database to dstPath with VACUUM
// INTO, online: writes go on meanwhile and are not in the copy. It refuses
// to overwrite an existing file. The copy is self-contained (no -wal),
// synced to disk, and records when it was taken (MetaBackupTakenAt), which
// Restore uses to move the serial forward.
func (db *DB) Backup(ctx context.Context, dstPath string) (err error) {
	// Creating the file exclusively reserves the name atomically; VACUUM
	// INTO accepts an existing empty file.
	f, err := os.OpenFile(dstPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // dstPath is the backup destination the operator names; O_EXCL never overwrites
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dstPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: backup to %s: %w", dstPath, err)
	}
	defer func() {
		if err != nil {
			removeDBFiles(dstPath)
		}
	}()
	// Taken before the copy starts: an early time only makes Restore's
	// serial jump larger, never too small.
	takenAt := time.Now()
	// The read pool is query_only, which VACUUM INTO refuses; a connection
	// of its own keeps the writer free meanwhile.
	src, err := sql.Open("sqlite", dsn(db.cfg, ""))
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dstPath, err)
	}
	_, err = src.ExecContext(ctx, `VACUUM INTO ?`, dstPath)
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dstPath, err)
	}

	bdb, err := openPlain(dstPath)
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dstPath, err)
	}
	err = func() error {
		var serial int64
		if err := bdb.QueryRowContext(ctx, `SELECT serial FROM zone_state WHERE id = 1`).Scan(&serial); err != nil {
			return fmt.Errorf("read serial: %w", err)
		}
		_, err := bdb.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			MetaBackupTakenAt, strconv.FormatInt(takenAt.UnixMilli(), 10),
			MetaBackupSerial, strconv.FormatInt(serial, 10))
		if err != nil {
			return fmt.Errorf("record backup time: %w", err)
		}
		return nil
	}()
	if cerr := bdb.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = syncFileAndDir(dstPath)
	}
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dstPath, err)
	}
	return nil
}

// openPlain opens a database file that no server uses (a backup, a
// restore's staging copy) in rollback-journal mode, so that it stays one
// self-contained file, with every write synced.
func openPlain(path string) (*sql.DB, error) {
	d, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(DELETE)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	d.SetMaxOpenConns(1)
	return d, nil
}

// RestoreOptions tunes Restore.
type RestoreOptions struct {
	// MinSerial is a zone counter known to have been published (for example
	// read from a secondary's SOA); the restored counter ends up above it.
	MinSerial int64
	// KeepReplaced keeps the database being replaced as
	// dbPath+".replaced-<UTC time>" (a hard link, or a copy).
	KeepReplaced bool
	// Now is the current time; zero means time.Now().
	Now time.Time
	// Logger receives what Restore decided; default discard.
	Logger *slog.Logger
}

// Restore replaces the database at dbPath with the backup at backupPath.
// No process may have dbPath open: Open holds a shared lock on
// dbPath+".lock", and Restore fails with ErrLocked if it cannot take it
// exclusively within 2 s.
//
// It verifies a copy of the backup (PRAGMA integrity_check, a schema this
// binary knows), moves the zone serial forward, empties the journal so
// every follower and secondary reloads the whole zone (ChangesSince returns
// zone.ErrGap for any serial before the restore), bumps every generation
// counter, and then puts the copy in place atomically: written and synced
// as a temporary file, stale -wal/-shm of the old database removed, renamed
// over dbPath, directory synced. The backup file itself is not modified.
//
// The serial rule: the new counter is
//
//	max(backup counter, counter of the replaced database if readable, MinSerial) + jump
//	jump = min(max(65536, 1000 × seconds since the backup was taken), 2^30)
//
// (2^24 when the backup's age is unknown). The jump covers up to 1000
// serials a second published after the backup when the replaced database is
// lost; the cap keeps the step below 2^31, so RFC 1982 comparison still
// sees the new SOA serial as newer than what secondaries hold.
func Restore(ctx context.Context, backupPath, dbPath string, opts RestoreOptions) (err error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wrap := func(err error) error {
		return fmt.Errorf("store: restore %s from %s: %w", dbPath, backupPath, err)
	}
	if backupPath == "" || dbPath == "" {
		return wrap(fmt.Errorf("%w: both paths are required", ErrInvalid))
	}
	bi, err := os.Stat(backupPath)
	if err != nil {
		return wrap(err)
	}
	if di, err := os.Stat(dbPath); err == nil && os.SameFile(bi, di) {
		return wrap(fmt.Errorf("%w: the backup is the database itself", ErrInvalid))
	}
	lock, err := waitExclusive(ctx, dbPath+".lock")
	if err != nil {
		return wrap(err)
	}
	defer func() { _ = lock.unlock() }()

	tmp := dbPath + ".restore-tmp"
	removeDBFiles(tmp)
	defer func() {
		if err != nil {
			removeDBFiles(tmp)
		}
	}()
	if err := copyFile(backupPath, tmp); err != nil {
		return wrap(fmt.Errorf("copy backup: %w", err))
	}

	tdb, err := openPlain(tmp)
	if err != nil {
		return wrap(err)
	}
	defer func() {
		if tdb != nil {
			_ = tdb.Close()
		}
	}()
	b, err := inspect(ctx, tdb, true)
	if err != nil {
		return wrap(fmt.Errorf("backup: %w", err))
	}

	// The replaced database: its counter and generations are the best
	// record of what was published and cached.
	var cur dbState
	if _, serr := os.Stat(dbPath); serr == nil {
		cur, err = readReplaced(ctx, dbPath)
		if err != nil {
			log.Warn("store: restore: the database being replaced is unreadable; relying on the backup's age", "err", err)
			cur = dbState{}
		}
	}

	jump := int64(restoreUnknownJump)
	age := time.Duration(-1)
	if b.takenAt != 0 {
		age = max(opts.Now.Sub(time.UnixMilli(b.takenAt)), 0)
		jump = min(max(restoreMinJump, int64(age/time.Second)*restorePerSecond), restoreMaxJump)
	}
	newSerial := max(b.serial, cur.serial, opts.MinSerial) + jump

	if err := finishRestore(ctx, tdb, newSerial, b, cur, opts.Now, age); err != nil {
		return wrap(err)
	}
	if err := tdb.Close(); err != nil {
		return wrap(err)
	}
	tdb = nil
	if err := syncFileAndDir(tmp); err != nil {
		return wrap(err)
	}

	if opts.KeepReplaced {
		if _, serr := os.Stat(dbPath); serr == nil {
			keep := dbPath + ".replaced-" + opts.Now.UTC().Format("20060102T150405Z")
			if err := os.Link(dbPath, keep); err != nil {
				if err := copyFile(dbPath, keep); err != nil {
					return wrap(fmt.Errorf("keep replaced database: %w", err))
				}
			}
		}
	}
	// The old WAL must go first: applied to the restored file it would
	// corrupt it. readReplaced checkpointed it into the old file already.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return wrap(err)
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return wrap(err)
	}
	if err := syncDir(filepath.Dir(dbPath)); err != nil {
		return wrap(err)
	}
	log.Info("store: restored database",
		"backup_serial", b.serial, "replaced_serial", cur.serial, "min_serial", opts.MinSerial,
		"new_serial", newSerial, "backup_age", age.Seconds())
	return nil
}

// restoreLockWait is how long Restore waits for other processes to let go
// of the database (a server that is just shutting down) before ErrLocked.
const restoreLockWait = 2 * time.Second

func waitExclusive(ctx context.Context, path string) (*fileLock, error) {
	deadline := time.Now().Add(restoreLockWait)
	for {
		l, err := lockExclusive(path)
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dbState is what Restore reads from the backup and the replaced database.
type dbState struct {
	serial      int64
	takenAt     int64 // MetaBackupTakenAt, 0 if absent
	generations map[string]int64
}

// inspect reads a database's counter and generations; with verify it also
// insists on integrity and a schema this binary knows.
func inspect(ctx context.Context, d *sql.DB, verify bool) (dbState, error) {
	s := dbState{generations: map[string]int64{}}
	if verify {
		if err := integrityCheck(ctx, d); err != nil {
			return s, err
		}
		v, err := schemaVersion(ctx, d)
		if err != nil {
			return s, fmt.Errorf("schema version: %w", err)
		}
		if v == 0 {
			return s, fmt.Errorf("%w: not an acmehub database (no migrations)", ErrInvalid)
		}
		if v > len(migrations) {
			return s, fmt.Errorf("schema version %d, binary knows up to %d: %w", v, len(migrations), ErrSchemaTooNew)
		}
	}
	if err := d.QueryRowContext(ctx, `SELECT serial FROM zone_state WHERE id = 1`).Scan(&s.serial); err != nil {
		return s, fmt.Errorf("read serial: %w", err)
	}
	var taken string
	err := d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, MetaBackupTakenAt).Scan(&taken)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return s, fmt.Errorf("read backup time: %w", err)
	default:
		if s.takenAt, err = strconv.ParseInt(taken, 10, 64); err != nil {
			return s, fmt.Errorf("read backup time %q: %w", taken, err)
		}
	}
	rows, err := d.QueryContext(ctx, `SELECT name, gen FROM generations`)
	if err != nil {
		return s, fmt.Errorf("read generations: %w", err)
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	for rows.Next() {
		var n string
		var g int64
		if err := rows.Scan(&n, &g); err != nil {
			return s, fmt.Errorf("read generations: %w", err)
		}
		s.generations[n] = g
	}
	return s, rows.Err()
}

// integrityCheck runs PRAGMA integrity_check, which answers one row "ok"
// or rows describing the damage.
func integrityCheck(ctx context.Context, d *sql.DB) error {
	rows, err := d.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check failed: %v", problems)
	}
	return nil
}

// readReplaced reads the database about to be replaced and checkpoints its
// WAL, so nothing of it lives only in the -wal file Restore then removes.
func readReplaced(ctx context.Context, path string) (dbState, error) {
	d, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return dbState{}, err
	}
	d.SetMaxOpenConns(1)
	s, err := inspect(ctx, d, false)
	if err == nil {
		_, err = d.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return s, err
}

// finishRestore rewrites the staged copy: serial forward, journal emptied,
// generations moved past both databases', backup keys replaced by a note of
// the restore.
func finishRestore(ctx context.Context, d *sql.DB, serial int64, b, cur dbState, now time.Time, age time.Duration) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `UPDATE zone_state SET serial = ? WHERE id = 1`, serial); err != nil {
		return fmt.Errorf("set serial: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM zone_journal`); err != nil {
		return fmt.Errorf("empty journal: %w", err)
	}
	gens := map[string]int64{GenTokens: 0}
	for n, g := range b.generations {
		gens[n] = max(gens[n], g)
	}
	for n, g := range cur.generations {
		gens[n] = max(gens[n], g)
	}
	for n, g := range gens {
		if _, err := tx.ExecContext(ctx, `INSERT INTO generations (name, gen) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET gen = excluded.gen`, n, g+1); err != nil {
			return fmt.Errorf("set generation %q: %w", n, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key IN (?, ?)`, MetaBackupTakenAt, MetaBackupSerial); err != nil {
		return fmt.Errorf("clear backup keys: %w", err)
	}
	ageS := "unknown"
	if age >= 0 {
		ageS = strconv.FormatInt(int64(age/time.Second), 10)
	}
	for k, v := range map[string]string{
		MetaRestoredAt:      strconv.FormatInt(now.UnixMilli(), 10),
		MetaRestoredSerial:  strconv.FormatInt(serial, 10),
		MetaRestoredFromAge: ageS,
	} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
			return fmt.Errorf("record restore: %w", err)
		}
	}
	return tx.Commit()
}

// removeDBFiles removes a database file and its companions, ignoring absence.
// path is a database path the operator named (a backup destination, or the
// staging file next to the database being restored).
func removeDBFiles(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(path + suffix) //nolint:gosec // path is operator-named (see above), not untrusted input
	}
}

// copyFile copies src to a new file dst and syncs it. Both are paths the
// operator named for Restore: the backup, the database, or files next to it.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src) //nolint:gosec // operator-named backup or database path
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read-only

	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // operator-named path next to the database; O_EXCL never overwrites
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Sync()
}

// syncFileAndDir makes a file and its directory entry durable.
func syncFileAndDir(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0) //nolint:gosec // path is the restore staging file next to the operator-named database
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir syncs a directory so renames and creations in it survive power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // dir holds the operator-named database
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // read-only handle; the Sync error is what matters
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
