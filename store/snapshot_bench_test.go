//go:build unix

package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

const (
	benchNames  = 100_000
	benchOrigin = "acme.example.net."
)

// benchZoneName is shaped like an acme-dns subdomain (a uuid label), the
// same as the load test's names.
func benchZoneName(i int) string {
	return fmt.Sprintf("%08x-1b2c-4d5e-8f90-%012x.%s", i, uint64(i)*2654435761%(1<<48), benchOrigin)
}

// benchZoneValue is shaped like an ACME DNS-01 digest (43 bytes of base64url).
func benchZoneValue(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// openPopulated opens a database file in tb.TempDir() holding n names with
// perName values each (plus n/100 value-less names), inserted directly in one
// transaction and in random order, so that row order is not name order (as
// with real, random ACME names).
func openPopulated(tb testing.TB, n, perName int) *DB {
	tb.Helper()
	db := openTest(tb, nil)
	ctx := context.Background()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO txt_values (name, value, ttl, created_at, expires_at) VALUES (?, ?, 60, 1, 9e15)`)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = ins.Close() }()
	// Round j adds value j to every name, as renewals over time would: a
	// name's values are far apart in table order.
	r := rand.New(rand.NewPCG(1, 2))
	for j := range perName {
		for _, i := range r.Perm(n) {
			if _, err := ins.ExecContext(ctx, benchZoneName(i), benchZoneValue(i*perName+j)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for i := range n / 100 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO zone_names (name, created_at) VALUES (?, 1)`, "label-"+benchZoneName(i)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE zone_state SET serial = serial + 1 WHERE id = 1`); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	return db
}

// reopen closes db and opens its file again, so that a benchmark starts
// with a cold SQLite page cache, like `acmehub serve` does.
func reopen(tb testing.TB, db *DB) *DB {
	tb.Helper()
	path := db.cfg.Path
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	db, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// cpuTime is the CPU time (user and system) the process has used so far:
// on a busy machine it varies far less than ns/op.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLoop runs op in b.Loop and reports allocations and cpu-ns/op.
func benchLoop(b *testing.B, op func()) {
	b.Helper()
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		c0 := cpuTime(b)
		op()
		cpu += cpuTime(b) - c0
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkSnapshot100k reads the whole zone of 100,000 names (one value
// each) with Snapshot.
func BenchmarkSnapshot100k(b *testing.B) {
	db := reopen(b, openPopulated(b, benchNames, 1))
	benchLoop(b, func() {
		s, err := db.Snapshot(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Values) != benchNames {
			b.Fatalf("%d values", len(s.Values))
		}
	})
}

// BenchmarkLoadView100k is what `acmehub serve` does at start-up: load the
// zone of 100,000 names (1 or 2 values each, plus 1,000 value-less names)
// into a fresh view through a Follower, which streams the store's rows
// into the view. The snapshot variant loads db.Snapshot with View.Reset
// instead. heap-B/name is the heap the loaded view keeps.
func BenchmarkLoadView100k(b *testing.B) {
	for _, perName := range []int{1, 2} {
		db := reopen(b, openPopulated(b, benchNames, perName))
		for _, path := range []string{"stream", "snapshot"} {
			b.Run(fmt.Sprintf("values=%d/%s", perName, path), func(b *testing.B) {
				var v *zone.View
				benchLoop(b, func() {
					v = zone.NewView(benchOrigin)
					if path == "stream" {
						if err := zone.NewFollower(db, v, nil, 0).CatchUp(b.Context(), 0); err != nil {
							b.Fatal(err)
						}
					} else {
						s, err := db.Snapshot(b.Context())
						if err != nil {
							b.Fatal(err)
						}
						v.Reset(s)
					}
					if v.Len() != benchNames+benchNames/100 {
						b.Fatalf("%d names", v.Len())
					}
				})
				var m runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m)
				with := m.HeapAlloc
				runtime.KeepAlive(v)
				v = nil
				runtime.GC()
				runtime.ReadMemStats(&m)
				b.ReportMetric(float64(with-m.HeapAlloc)/float64(benchNames), "heap-B/name")
			})
		}
	}
}
