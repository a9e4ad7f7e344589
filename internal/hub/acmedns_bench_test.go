package hub

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// BenchmarkUpdateACMEDNS: acme-dns /update calls as the API makes them but
// without HTTP, over a real file with synchronous FULL, with 1, 4 and 16
// clients each on its own account (domainless, so the config comes from
// acme-dns-config). Each client cycles through 16 values, so the label
// stays under the per-name cap; a repeated value is a refresh, which costs
// the same write.
func BenchmarkUpdateACMEDNS(b *testing.B) {
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ts := newTestService(b, "*.example.org", func(c *store.Config) { c.Synchronous = "FULL" },
				func(c *Config) { c.ACMEDNSConfig = "test" })
			ctx := context.Background()
			g := Grant{Principal: Principal{ID: ts.principal.ID, Name: ts.principal.Name}, Assignments: []Assignment{{Role: RoleChallengeConsumer}}}
			src := netip.MustParseAddr("192.0.2.1")
			accounts := make([]ACMEDNSAccount, clients)
			for c := range accounts {
				a, err := ts.svc.RegisterACMEDNS(ctx, g, ACMEDNSRegistration{})
				if err != nil {
					b.Fatal(err)
				}
				accounts[c] = a
			}
			update := func(a ACMEDNSAccount, value string) error {
				_, err := ts.svc.UpdateACMEDNS(ctx, ACMEDNSUpdate{Username: a.Username, Password: a.Password, Subdomain: a.Subdomain, TXT: value, Source: src})
				return err
			}
			for _, a := range accounts {
				if err := update(a, "warm-up"); err != nil {
					b.Fatal(err)
				}
			}
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for c, a := range accounts {
				wg.Go(func() {
					for i := 0; left.Add(-1) >= 0; i++ {
						if err := update(a, fmt.Sprintf("value-%d-%d", c, i%16)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}

// BenchmarkACMEDNSPasswordCheck compares the cost of checking an acme-dns
// password: acmehub's keyed hash (HMAC-SHA256; the password is 240 random
// bits, so a slow hash adds nothing) against what acme-dns itself does on
// every /update, bcrypt at its default cost 10. The bcrypt figure is the
// reference: it alone caps acme-dns near 1/op-time updates per second per
// core.
func BenchmarkACMEDNSPasswordCheck(b *testing.B) {
	key, err := secret.GenerateKey("k1")
	if err != nil {
		b.Fatal(err)
	}
	kr, err := secret.NewKeyring(key)
	if err != nil {
		b.Fatal(err)
	}
	const username, password = "6f9619ff-8b86-4d11-b42d-00c04fc964ff", "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0n"
	b.Run("acmehub-keyed-hash", func(b *testing.B) {
		hash := kr.HashSecret(acmeDNSHashInput(username, password))
		for b.Loop() {
			if !kr.VerifySecret(acmeDNSHashInput(username, password), hash) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("acme-dns-bcrypt-cost10", func(b *testing.B) {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
				b.Fatal("no match")
			}
		}
	})
}
