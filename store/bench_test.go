package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchAdd adds a unique value; 16 values per name stay below the cap.
func benchAdd(b *testing.B, db *DB, seq *atomic.Int64) {
	b.Helper()
	i := seq.Add(1)
	_, err := db.AddValue(context.Background(), AddRequest{
		Name: fmt.Sprintf("b%d.example.org.", i/16), Value: fmt.Sprintf("v%d", i), TTL: 60, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.Error(err)
	}
}

func reportWrites(b *testing.B) {
	b.Helper()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkAddValueParallel: acknowledged writes through b.RunParallel
// (GOMAXPROCS × 8 goroutines: 16 on 2 cores) to a real file.
func BenchmarkAddValueParallel(b *testing.B) {
	for _, mode := range []string{"NORMAL", "FULL"} {
		b.Run("sync="+mode, func(b *testing.B) {
			db := openTest(b, func(c *Config) { c.Synchronous = mode })
			var seq atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchAdd(b, db, &seq)
				}
			})
			reportWrites(b)
		})
	}
}

// BenchmarkAddValueClients: the same with exactly 1, 4 and 16 clients.
func BenchmarkAddValueClients(b *testing.B) {
	for _, mode := range []string{"NORMAL", "FULL"} {
		for _, clients := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("sync=%s/clients=%d", mode, clients), func(b *testing.B) {
				db := openTest(b, func(c *Config) { c.Synchronous = mode })
				var seq, left atomic.Int64
				left.Store(int64(b.N))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							benchAdd(b, db, &seq)
						}
					})
				}
				wg.Wait()
				reportWrites(b)
			})
		}
	}
}
