package acmetest

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge/dns01"
)

// TestIssueThroughNativeAPI issues a real certificate for example.test and
// *.example.test from Pebble with lego, the DNS-01 values published through
// acmehub's native challenge API by a consumer whose token and managed
// challenge config allow *.example.test, and answered by acmehub's DNS
// server through the domain's _acme-challenge CNAME. A consumer restricted
// to other domains is refused with 403 and the order fails.
func TestIssueThroughNativeAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: end-to-end issuance skipped in -short mode")
	}
	start := time.Now()
	d := startDelegated(t, "shop")
	hub, native, target, res, pebble := d.hub, d.native, d.target, d.res, d.pebble

	// After each Present, ask the hub's DNS server what the delegation's
	// name holds: the second Present must leave both values there at once.
	provider := &recordingProvider{NativeProvider: native, look: func() []string {
		return txtAt(t, hub.DNSAddr, target)
	}}
	issueStart := time.Now()
	cert, err := ObtainCertificate(t, pebble, res.Addr(), provider, "example.test", "*.example.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("issued in %v (%v in all)", time.Since(issueStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	presented, seen := provider.results()
	if len(presented) != 2 || presented[0] == presented[1] {
		t.Fatalf("values presented: %q, want two different ones", presented)
	}
	if len(seen) != 2 || !slices.Equal(seen[0], presented[:1]) || !slices.Equal(seen[1], slices.Sorted(slices.Values(presented))) {
		t.Errorf("TXT values at %s after each Present: %q, want %q then both of %q", target, seen, presented[:1], presented)
	}
	if got := txtAt(t, hub.DNSAddr, target); len(got) != 0 {
		t.Errorf("values left at %s after clean-up: %q", target, got)
	}
	leaf, intermediates := parseChain(t, cert.Certificate)
	if got, want := slices.Sorted(slices.Values(leaf.DNSNames)), []string{"*.example.test", "example.test"}; !slices.Equal(got, want) {
		t.Errorf("SANs %q, want %q", got, want)
	}
	for _, name := range []string{"example.test", "www.example.test"} {
		if _, err := leaf.Verify(x509.VerifyOptions{
			DNSName: name, Roots: pebble.Roots(t), Intermediates: intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("verify the chain for %s against Pebble's root: %v", name, err)
		}
	}

	// A consumer whose scope does not reach example.test: the hub answers
	// 403 to Present (although a config for example.test exists) and lego
	// gives up without anything published.
	otherTok := hub.Consumer(t, "other", "*.example.net")
	otherAPI, err := NewNativeProvider(NativeProviderConfig{BaseURL: hub.APIURL, Token: otherTok.String()})
	if err != nil {
		t.Fatal(err)
	}
	refused := &recordingProvider{NativeProvider: otherAPI, look: func() []string { return txtAt(t, hub.DNSAddr, target) }}
	_, err = ObtainCertificate(t, pebble, res.Addr(), refused, "example.test")
	if err == nil {
		t.Fatal("issued a certificate for example.test to a consumer restricted to *.example.net")
	}
	t.Logf("out of scope: %v", err)
	var apiErr *APIError
	if errs := refused.failures(); len(errs) != 1 || !errors.As(errs[0], &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.Code != "forbidden" {
		t.Errorf("Present errors %v, want one 403 forbidden", errs)
	}
	if got := txtAt(t, hub.DNSAddr, target); len(got) != 0 {
		t.Errorf("values at %s after the refused order: %q", target, got)
	}
}

// delegationTarget presents a throwaway value for domain through the API,
// removes it, and returns the delegation's name the hub answered.
func delegationTarget(t *testing.T, p *NativeProvider, domain string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	const setup = "acmetest-delegation-setup"
	ch, err := p.Publish(ctx, PresentRequest{Identifier: domain, Value: setup})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Domain != domain || ch.RecordName != "_acme-challenge."+domain+"." || ch.Status != "published" {
		t.Fatalf("present %s: unexpected challenge %+v", domain, ch)
	}
	if n, err := p.Remove(ctx, domain, setup); err != nil || n != 1 {
		t.Fatalf("clean up the setup value: removed %d, %v", n, err)
	}
	return ch.CNAMETarget
}

// recordingProvider records, after each successful Present, the value
// lego expects and what look returns, and the error of each failed Present.
type recordingProvider struct {
	*NativeProvider
	look func() []string

	mu     sync.Mutex
	values []string
	seen   [][]string
	errs   []error
}

func (r *recordingProvider) Present(domain, token, keyAuth string) error {
	err := r.NativeProvider.Present(domain, token, keyAuth)
	var got []string
	if err == nil {
		got = r.look()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return err
	}
	r.values = append(r.values, dns01.GetChallengeInfo(domain, keyAuth).Value)
	r.seen = append(r.seen, got)
	return nil
}

func (r *recordingProvider) results() (values []string, seen [][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.values), slices.Clone(r.seen)
}

func (r *recordingProvider) failures() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

func TestNativeProviderConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  NativeProviderConfig
		want string // substring of the error; "" for none
	}{
		{name: "ok", cfg: NativeProviderConfig{BaseURL: "http://127.0.0.1:1", Token: "t"}},
		{name: "no url", cfg: NativeProviderConfig{Token: "t"}, want: "base url"},
		{name: "ftp url", cfg: NativeProviderConfig{BaseURL: "ftp://127.0.0.1", Token: "t"}, want: "base url"},
		{name: "no token", cfg: NativeProviderConfig{BaseURL: "http://127.0.0.1:1"}, want: "token"},
		{name: "negative timeout", cfg: NativeProviderConfig{BaseURL: "http://127.0.0.1:1", Token: "t", RequestTimeout: -1}, want: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewNativeProvider(tc.cfg)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
