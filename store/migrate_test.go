package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// openRaw opens a database file with the store's pragmas but without
// migrating it, to build databases at old schema versions.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	cfg := Config{Path: path}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	d, err := sql.Open("sqlite", dsn(cfg, ""))
	if err != nil {
		t.Fatal(err)
	}
	d.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// buildAt creates a database at schema version v, loading after each step i
// the rows of testdata/seed/NNNN.sql (if present) that version i can hold.
func buildAt(t *testing.T, path string, v int) *sql.DB {
	t.Helper()
	d := openRaw(t, path)
	for i := 1; i <= v; i++ {
		if err := migrate(t.Context(), d, migrations, i); err != nil {
			t.Fatalf("migrate to %d: %v", i, err)
		}
		seed, err := os.ReadFile(filepath.Join("testdata", "seed", fmt.Sprintf("%04d.sql", i)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(string(seed)); err != nil {
			t.Fatalf("seed %04d: %v", i, err)
		}
	}
	return d
}

// schemaOf lists the schema objects, to compare migrated and fresh databases.
func schemaOf(t *testing.T, q interface {
	Query(string, ...any) (*sql.Rows, error)
}) []string {
	t.Helper()
	rows, err := q.Query(`SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_schema
		WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rowCounts counts the rows of every table.
func rowCounts(t *testing.T, d *sql.DB) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, tb := range tableNames(t, d) {
		var n int
		if err := d.QueryRow(`SELECT count(*) FROM "` + tb + `"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[tb] = n
	}
	return counts
}

// tableNames lists the tables; its rows are closed before rowCounts
// queries them one by one.
func tableNames(t *testing.T, d *sql.DB) []string {
	t.Helper()
	rows, err := d.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return tables
}

func TestMigrationsFromEveryVersion(t *testing.T) {
	t.Parallel()
	fresh := openTest(t, nil)
	want := schemaOf(t, fresh.r)
	if v, err := schemaVersion(t.Context(), fresh.r); err != nil || v != LatestSchema() {
		t.Fatalf("fresh database at version %d (%v), want %d", v, err, LatestSchema())
	}
	for from := 0; from < LatestSchema(); from++ {
		t.Run(fmt.Sprintf("from_%04d", from), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "old.db")
			old := buildAt(t, path, from)
			before := rowCounts(t, old)
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := Open(t.Context(), Config{Path: path})
			if err != nil {
				t.Fatalf("open version %d: %v", from, err)
			}
			defer func() {
				if err := db.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			if got := schemaOf(t, db.r); !reflect.DeepEqual(got, want) {
				t.Fatalf("schema after migrating from %d:\n%v\nwant\n%v", from, got, want)
			}
			// Rows of tables that existed before survive.
			after := rowCounts(t, db.r)
			for tb, n := range before {
				if tb != "schema_migrations" && after[tb] < n {
					t.Errorf("table %s: %d rows before, %d after", tb, n, after[tb])
				}
			}
			mustIntegrity(t, db)
			var fkProblems int
			if err := db.r.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fkProblems); err != nil || fkProblems != 0 {
				t.Fatalf("foreign key check: %d %v", fkProblems, err)
			}
			// The migrated database works.
			if _, err := db.Snapshot(t.Context()); err != nil {
				t.Fatal(err)
			}
			add(t, db, "after-migration.example.org.", "v")
		})
	}
}

func TestMigrationsRecorded(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	rows, err := db.r.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	i := 0
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		if v != migrations[i].version || name != migrations[i].name {
			t.Errorf("row %d: %d %s", i, v, name)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != LatestSchema() {
		t.Fatalf("%d migrations recorded, want %d", i, LatestSchema())
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new.db")
	d := buildAt(t, path, LatestSchema())
	if _, err := d.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`, LatestSchema()+1); err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	if _, err := Open(context.Background(), Config{Path: path}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestFailedMigrationLeavesWholeVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.db")
	d := openRaw(t, path)
	// A broken step after a valid one: the valid one must stay applied and
	// nothing of the broken one may remain.
	broken := []migration{migrations[0], {version: 2, name: "0002_broken", sql: `CREATE TABLE half (x INTEGER); SELECT no_such_function();`}}
	if err := migrate(t.Context(), d, broken, 2); err == nil {
		t.Fatal("broken migration succeeded")
	}
	if v, _ := schemaVersion(t.Context(), d); v != 1 {
		t.Fatalf("version %d after a failed step, want 1", v)
	}
	var n int
	if err := d.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("half-applied migration left table: %d %v", n, err)
	}
}
