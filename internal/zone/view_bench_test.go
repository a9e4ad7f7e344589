//go:build unix

package zone

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

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

// BenchmarkReset100k loads a snapshot of 100,000 names (one ACME-sized
// value each) into a fresh view: sorted as Snapshot delivers it, and
// shuffled.
func BenchmarkReset100k(b *testing.B) {
	sorted := populate(100_000)
	shuffled := populate(100_000)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled.Values), func(i, j int) {
		shuffled.Values[i], shuffled.Values[j] = shuffled.Values[j], shuffled.Values[i]
	})
	for _, tc := range []struct {
		name string
		snap Snapshot
	}{{"sorted", sorted}, {"shuffled", shuffled}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var cpu time.Duration
			for b.Loop() {
				c0 := cpuTime(b)
				v := NewView(testOrigin)
				v.Reset(tc.snap)
				cpu += cpuTime(b) - c0
				if v.Len() != 100_000 {
					b.Fatalf("%d names", v.Len())
				}
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
