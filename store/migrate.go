package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one numbered schema step, migrations/NNNN_description.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations holds every step in order; version i+1 is at index i.
var migrations = mustLoadMigrations(migrationFS)

// mustLoadMigrations panics on a malformed set: it is compiled in, so a
// mistake shows up in every test run rather than on a user's machine.
func mustLoadMigrations(fsys fs.FS) []migration {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	sort.Strings(files)
	var ms []migration
	for i, f := range files {
		base := path.Base(f)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v != i+1 {
			panic(fmt.Sprintf("store: migration %s: want name %04d_description.sql", f, i+1))
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			panic(err)
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(b)})
	}
	return ms
}

// LatestSchema is the schema version this binary migrates databases to.
func LatestSchema() int { return len(migrations) }

// schemaVersion returns the highest applied migration, 0 for a new database.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var n int
	err := q.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v int
	err = q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate applies the migrations ms up to version target, each in its own
// transaction together with its schema_migrations row, so a crash leaves
// the database at a whole version. Another process migrating at the same
// time is serialised by BEGIN IMMEDIATE and the re-check inside it.
//
// Foreign keys are on while a migration runs (the connection's DSN sets
// them, and PRAGMA foreign_keys is a no-op inside a transaction). A step
// may therefore rebuild a table (create new, copy, drop old, rename) only
// if no other table refers to it, as 0002 does with api_tokens: dropping
// a referenced table cascades into its children or fails. Rebuilding a
// referenced table (principals, managed_challenges) needs a step run with
// foreign keys off outside its transaction, followed by
// PRAGMA foreign_key_check before COMMIT; migrate does not support that
// yet. Prefer ALTER TABLE ADD/RENAME/DROP COLUMN where it suffices.
func migrate(ctx context.Context, db *sql.DB, ms []migration, target int) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db, ms, target)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, if any is due, and reports
// whether the database is at target.
func migrateOne(ctx context.Context, db *sql.DB, ms []migration, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > len(ms) {
		return false, fmt.Errorf("migrate: database at version %d, binary knows up to %d: %w", cur, len(ms), ErrSchemaTooNew)
	}
	if cur >= target {
		return true, tx.Rollback()
	}
	m := ms[cur]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migrate: apply %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return false, fmt.Errorf("migrate: record %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate: commit %s: %w", m.name, err)
	}
	return false, nil
}
