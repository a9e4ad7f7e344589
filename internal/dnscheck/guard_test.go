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
		{"0.0.0.0", `"this network"`}, {"0.1.2.3", `"this network"`}, {"10.1.2.3", "private"},
		{"100.64.0.1", "shared"}, {"100.127.255.254", "shared"}, {"127.0.0.1", "loopback"}, {"127.1.2.3", "loopback"},
		{"169.254.169.254", "link-local"}, {"172.16.0.1", "private"}, {"172.31.255.255", "private"},
		{"192.0.0.8", "IETF protocol assignment"}, {"192.0.2.1", "documentation"}, {"192.168.0.1", "private"},
		{"198.18.0.1", "benchmarking"}, {"198.19.255.255", "benchmarking"}, {"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"}, {"224.0.0.251", "multicast"}, {"239.1.2.3", "multicast"},
		{"240.0.0.1", "reserved"}, {"255.255.255.255", "reserved"},
		{"::", "unspecified"}, {"::1", "loopback"}, {"::ffff:127.0.0.1", "loopback"}, {"::ffff:10.0.0.1", "private"},
		{"64:ff9b::a00:1", "NAT64"}, {"64:ff9b:1::1", "NAT64"}, {"100::1", "discard-only"},
		{"2001:db8::1", "documentation"}, {"2002:a00:1::1", "6to4"}, {"fd00::1", "private"}, {"fc00::1", "private"},
		{"fe80::1", "link-local"}, {"fec0::1", "site-local"}, {"ff02::1", "multicast"},
		// Public: just outside the ranges.
		{"8.8.8.8", ""}, {"1.1.1.1", ""}, {"100.63.255.255", ""}, {"100.128.0.0", ""}, {"172.32.0.1", ""},
		{"192.0.1.1", ""}, {"198.20.0.1", ""}, {"223.255.255.255", ""}, {"::ffff:8.8.8.8", ""},
		{"2001:4860:4860::8888", ""}, {"64:ff9b:2::1", ""}, {"100:0:0:1::1", ""},
	} {
		got := privateReason(netip.MustParseAddr(tc.addr))
		if tc.kind == "" && got != "" || tc.kind != "" && !strings.Contains(got, " a "+tc.kind) {
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
