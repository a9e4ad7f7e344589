package dnscheck

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPrivateReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, kind string }{
		{"127.0.0.1", "loopback"}, {"::1", "loopback"}, {"10.1.2.3", "private"}, {"192.168.0.1", "private"},
		{"172.16.0.1", "private"}, {"fd00::1", "private"}, {"169.254.1.1", "link-local"}, {"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"}, {"::", "unspecified"}, {"224.0.0.251", "link-local"}, {"239.1.2.3", "multicast"},
		{"192.0.2.1", ""}, {"2001:db8::1", ""}, {"8.8.8.8", ""},
	} {
		got := privateReason(netip.MustParseAddr(tc.addr))
		if tc.kind == "" && got != "" || tc.kind != "" && !strings.Contains(got, " a "+tc.kind+" address") {
			t.Errorf("%s: %q, want kind %q", tc.addr, got, tc.kind)
		}
	}
}

// A domain's nameserver at a loopback or private address that Addrs does
// not map is not asked unless AllowPrivate; mapped addresses always are.
func TestCheckDelegationPrivateAddresses(t *testing.T) {
	t.Parallel()
	newF := func(t *testing.T) *fixture {
		t.Helper()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		// ns2's glue becomes a loopback address nobody maps.
		lines := append(zoneLines("example.org.", "ns1"), "example.org. 3600 IN NS ns2.example.org.",
			"ns2.example.org. 3600 IN A 127.0.0.1", cnameOK)
		f.rec.set(t, lines...)
		f.cfg.Timeout = 300 * time.Millisecond
		return f
	}
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		f := newF(t)
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || len(res.Nameservers) != 2 {
			t.Fatalf("%q: %s; %+v", res.State, res.Detail, res.Nameservers)
		}
		ns2 := res.Nameservers[1]
		if ns2.Addr != "127.0.0.1:53" || !strings.Contains(ns2.Err, "not asked: 127.0.0.1 is a loopback address") || ns2.Rcode != "" {
			t.Errorf("ns2 %+v", ns2)
		}
		if !strings.Contains(res.Detail, "not asked") {
			t.Errorf("detail %q does not say why", res.Detail)
		}
		if res.Nameservers[0].Err != "" {
			t.Errorf("ns1 (mapped) %+v", res.Nameservers[0])
		}
	})
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		f := newF(t)
		f.cfg.AllowPrivate = true
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		// Asked at 127.0.0.1:53, where no test server listens: any error
		// but the guard's.
		if ns2 := res.Nameservers[1]; strings.Contains(ns2.Err, "not asked") {
			t.Errorf("ns2 not asked with AllowPrivate: %+v", ns2)
		}
	})
	t.Run("mapped loopback is asked", func(t *testing.T) {
		t.Parallel()
		f := newF(t)
		f.cfg.Addrs["127.0.0.1"] = f.auth[1].Addr
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateOK {
			t.Fatalf("%q: %s; %+v", res.State, res.Detail, res.Nameservers)
		}
	})
}
