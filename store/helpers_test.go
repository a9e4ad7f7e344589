package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

func TestMain(m *testing.M) {
	// The SIGKILL test re-runs this binary as the writer it kills.
	if os.Getenv("ACMEHUB_STORE_CHILD") == "1" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// openTest opens a fresh database file in t.TempDir(); edit adjusts the config.
func openTest(tb testing.TB, edit func(*Config)) *DB {
	tb.Helper()
	cfg := Config{Path: filepath.Join(tb.TempDir(), "hub.db")}
	if edit != nil {
		edit(&cfg)
	}
	db, err := Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

// future is an expiry far enough ahead that no test's sweep reaches it.
var future = time.Now().Add(time.Hour)

func add(tb testing.TB, db *DB, name, value string) int64 {
	tb.Helper()
	s, err := db.AddValue(context.Background(), AddRequest{Name: name, Value: value, TTL: 60, ExpiresAt: future, CreatedBy: "test"})
	if err != nil {
		tb.Fatalf("add %s %s: %v", name, value, err)
	}
	return s
}

func serialOf(tb testing.TB, db *DB) int64 {
	tb.Helper()
	s, err := db.Serial(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func values(tb testing.TB, db *DB, name string) []string {
	tb.Helper()
	recs, err := db.ListValues(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	var vs []string
	for _, r := range recs {
		vs = append(vs, r.Value)
	}
	return vs
}

func mustIntegrity(tb testing.TB, db *DB) {
	tb.Helper()
	if err := integrityCheck(context.Background(), db.r); err != nil {
		tb.Fatal(err)
	}
}

// journal returns every journal row in order.
func journal(tb testing.TB, db *DB) []zone.Change {
	tb.Helper()
	rows, err := db.r.Query(`SELECT serial, op, name, value, ttl FROM zone_journal ORDER BY serial, id`)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []zone.Change
	for rows.Next() {
		var c zone.Change
		var op, ttl int64
		if err := rows.Scan(&c.Serial, &op, &c.Name, &c.Value, &ttl); err != nil {
			tb.Fatal(err)
		}
		if c.Op, err = opFromDB(op); err != nil {
			tb.Fatal(err)
		}
		if c.TTL, err = ttlFromDB(ttl); err != nil {
			tb.Fatal(err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// apply replays changes onto a snapshot, the way the DNS view does.
func apply(snap zone.Snapshot, changes []zone.Change) (zone.Snapshot, error) {
	vals := map[[2]string]uint32{}
	for _, v := range snap.Values {
		vals[[2]string{v.Name, v.Value}] = v.TTL
	}
	names := map[string]bool{}
	for _, n := range snap.Names {
		names[n] = true
	}
	for _, c := range changes {
		if c.Serial != snap.Serial && c.Serial != snap.Serial+1 {
			return snap, fmt.Errorf("change of serial %d after %d", c.Serial, snap.Serial)
		}
		snap.Serial = c.Serial
		switch c.Op {
		case zone.OpAddValue:
			vals[[2]string{c.Name, c.Value}] = c.TTL
		case zone.OpRemoveValue:
			delete(vals, [2]string{c.Name, c.Value})
		case zone.OpAddName:
			names[c.Name] = true
		case zone.OpRemoveName:
			delete(names, c.Name)
		default:
			return snap, errors.New("unknown op")
		}
	}
	snap.Values, snap.Names = nil, nil
	for k, ttl := range vals {
		snap.Values = append(snap.Values, zone.Value{Name: k[0], Value: k[1], TTL: ttl})
	}
	for n := range names {
		snap.Names = append(snap.Names, n)
	}
	sortSnapshot(&snap)
	return snap, nil
}
