package hub

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/acmehub/acmehub/store"
)

// BenchmarkPresentCleanup: authenticated present + clean-up pairs, as the
// API runs them but without HTTP, over a real file with synchronous FULL,
// with 1, 4 and 16 clients each on its own domain (the delegations exist
// before the timer starts). For where the time goes: -cpuprofile.
func BenchmarkPresentCleanup(b *testing.B) {
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ts := newTestService(b, "*.example.org", func(c *store.Config) { c.Synchronous = "FULL" }, nil)
			svc, tok := ts.svc, ts.tok
			src := netip.MustParseAddr("192.0.2.1")
			ctx := context.Background()
			pair := func(domain, value string) error {
				g, err := svc.Authenticate(ctx, tok, src)
				if err != nil {
					return err
				}
				if _, err := svc.Present(ctx, g, PresentRequest{Identifier: domain, Value: value, Source: src}); err != nil {
					return err
				}
				if g, err = svc.Authenticate(ctx, tok, src); err != nil {
					return err
				}
				_, err = svc.Cleanup(ctx, g, domain, value, src)
				return err
			}
			for c := range clients {
				if err := pair(fmt.Sprintf("c%d.example.org", c), "warm-up"); err != nil {
					b.Fatal(err)
				}
			}
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					domain := fmt.Sprintf("c%d.example.org", c)
					for i := 0; left.Add(-1) >= 0; i++ {
						if err := pair(domain, fmt.Sprintf("value-%d-%d", c, i)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}
