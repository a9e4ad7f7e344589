package dnscheck

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	hubZone = "acme.example.net."
	target  = "k7x2.acme.example.net."
	chName  = "_acme-challenge.example.org."
	cnameOK = chName + " 300 IN CNAME " + target
)

// zoneLines is the zone example.org with nameservers ns1 and ns2 (and
// any extra names given), at documentation addresses 192.0.2.x.
func zoneLines(apex string, nsNames ...string) []string {
	lines := []string{apex + " 3600 IN SOA ns1." + apex + " hostmaster." + apex + " 1 7200 3600 1209600 300"}
	for i, n := range nsNames {
		lines = append(lines,
			apex+" 3600 IN NS "+n+"."+apex,
			n+"."+apex+" 3600 IN A 192.0.2."+string(rune('1'+i)))
	}
	return lines
}

// fixture is a fake recursive resolver and authoritative servers, one
// per nameserver of the zone, mapped by address through Config.Addrs.
type fixture struct {
	rec  *zoneServer
	auth []*zoneServer
	cfg  Config
}

// newFixture serves zone apex with one authoritative server per entry of
// records (its records at the challenge name, beside the zone's own).
// The recursive resolver knows the zone and sees records[0].
func newFixture(tb testing.TB, apex string, records ...[]string) *fixture {
	tb.Helper()
	var names []string
	for i := range records {
		names = append(names, "ns"+string(rune('1'+i)))
	}
	base := zoneLines(apex, names...)
	f := &fixture{cfg: Config{Addrs: map[string]string{}, Timeout: 2 * time.Second}}
	for i, recs := range records {
		a := startServer(tb, &zoneServer{zones: []string{apex, hubZone}})
		a.set(tb, append(slices.Clone(base), recs...)...)
		f.auth = append(f.auth, a)
		f.cfg.Addrs["192.0.2."+string(rune('1'+i))] = a.Addr
	}
	f.rec = startServer(tb, &zoneServer{zones: []string{apex}, recursive: true})
	f.rec.set(tb, append(slices.Clone(base), records[0]...)...)
	f.cfg.Recursive = []string{f.rec.Addr}
	return f
}

func (f *fixture) client(tb testing.TB) *Client {
	tb.Helper()
	c, err := New(f.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestCheckDelegationStates(t *testing.T) {
	t.Parallel()
	txt := chName + " 300 IN TXT \"leftover-token\""
	tests := []struct {
		name    string
		servers [][]string // records at the challenge name, per nameserver
		state   State
		detail  []string // substrings of Detail
		other   bool     // nameserver 1 reports Other records
	}{
		{name: "ok", servers: [][]string{{cnameOK}, {cnameOK}}, state: StateOK,
			detail: []string{"Every nameserver of example.org."}},
		{name: "ok with the target's TXT in the answer", state: StateOK,
			servers: [][]string{
				{cnameOK, target + " 60 IN TXT \"value\""},
				{cnameOK, target + " 60 IN TXT \"value\""},
			}},
		{name: "missing", servers: [][]string{{}, {}}, state: StateMissing,
			detail: []string{`add "_acme-challenge.example.org. CNAME k7x2.acme.example.net."`}},
		{name: "missing, other names exist", state: StateMissing,
			servers: [][]string{{"www.example.org. 300 IN A 192.0.2.80"}, {"www.example.org. 300 IN A 192.0.2.80"}}},
		{name: "wrong target", state: StateWrongTarget,
			servers: [][]string{{chName + " 300 IN CNAME old.acme.example.com."}, {chName + " 300 IN CNAME Old.ACME.example.com."}},
			detail:  []string{"CNAME to old.acme.example.com.", `change it to "_acme-challenge.example.org. CNAME k7x2.acme.example.net."`}},
		{name: "conflict: TXT instead of the CNAME", servers: [][]string{{txt}, {txt}}, state: StateConflict, other: true,
			detail: []string{"instead of a CNAME", "leftover-token"}},
		{name: "conflict: TXT beside the CNAME", servers: [][]string{{cnameOK, txt}, {cnameOK, txt}}, state: StateConflict, other: true,
			detail: []string{"beside its CNAME", "leftover-token", "keep only"}},
		{name: "conflict: TXT beside the CNAME, one nameserver", servers: [][]string{{cnameOK, txt}}, state: StateConflict, other: true},
		{name: "inconsistent: one ok, one missing", servers: [][]string{{cnameOK}, {}}, state: StateInconsistent,
			detail: []string{"disagree", "ns1.example.org. (", "CNAME " + target, "ns2.example.org. (", "no CNAME"}},
		{name: "inconsistent beats conflict: TXT beside the CNAME on one of two", servers: [][]string{{cnameOK, txt}, {cnameOK}},
			state: StateInconsistent, other: true, detail: []string{"leftover-token"}},
		{name: "inconsistent: different targets", state: StateInconsistent,
			servers: [][]string{{cnameOK}, {chName + " 300 IN CNAME old.acme.example.com."}},
			detail:  []string{"old.acme.example.com."}},
		{name: "TTLs differ: still consistent", state: StateOK,
			servers: [][]string{{cnameOK}, {chName + " 3600 IN CNAME " + target}}},
		{name: "TTLs of the records beside differ: still consistent", state: StateConflict, other: true,
			servers: [][]string{{cnameOK, txt}, {cnameOK, strings.Replace(txt, " 300 ", " 60 ", 1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "example.org.", tc.servers...)
			// The upper-case expected target proves targets compare case-insensitively.
			res := f.client(t).CheckDelegation(t.Context(), "Example.ORG.", "K7X2.acme.example.net")
			if res.State != tc.state {
				t.Fatalf("state %q, want %q; detail: %s; evidence %+v", res.State, tc.state, res.Detail, res.Nameservers)
			}
			for _, s := range tc.detail {
				if !strings.Contains(res.Detail, s) {
					t.Errorf("detail %q lacks %q", res.Detail, s)
				}
			}
			if res.Domain != "example.org" || res.Name != chName || res.Expected != target || res.Zone != "example.org." {
				t.Errorf("domain %q name %q expected %q zone %q", res.Domain, res.Name, res.Expected, res.Zone)
			}
			if len(res.Nameservers) != len(tc.servers) {
				t.Fatalf("%d nameserver answers, want %d: %+v", len(res.Nameservers), len(tc.servers), res.Nameservers)
			}
			for i, ns := range res.Nameservers {
				if ns.Err != "" || ns.Addr != f.auth[i].Addr || (ns.Rcode != "NOERROR" && ns.Rcode != "NXDOMAIN") {
					t.Errorf("nameserver %d: %+v, want an answer from %s", i, ns, f.auth[i].Addr)
				}
			}
			if got := len(res.Nameservers[0].Other) > 0; got != tc.other {
				t.Errorf("nameserver 1 other records %q, want some: %v", res.Nameservers[0].Other, tc.other)
			}
			if res.Recursive.Err != "" || res.Recursive.CNAME != res.Nameservers[0].CNAME || res.Recursive.Addr != f.rec.Addr {
				t.Errorf("recursive %+v, want the CNAME %q", res.Recursive, res.Nameservers[0].CNAME)
			}
			if res.CheckedAt.IsZero() {
				t.Error("CheckedAt not set")
			}
		})
	}
}

func TestCheckDelegationNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, apex, domain, wantDomain string
		noGlue, noSOA                  bool
	}{
		{name: "deep name, zone found from the SOA of a negative answer", apex: "example.org.",
			domain: "A.B.Example.Org.", wantDomain: "a.b.example.org"},
		{name: "deep name, nameservers resolved without glue", apex: "example.org.",
			domain: "a.b.example.org", wantDomain: "a.b.example.org", noGlue: true},
		{name: "deep name, walked up to the NS RRset (no SOA in negative answers)", apex: "example.org.",
			domain: "a.b.example.org", wantDomain: "a.b.example.org", noSOA: true},
		{name: "IDN in Unicode, wildcard", apex: "xn--bcher-kva.example.",
			domain: "*.Bücher.example", wantDomain: "xn--bcher-kva.example"},
		{name: "IDN in A-labels", apex: "xn--bcher-kva.example.",
			domain: "XN--BCHER-KVA.example.", wantDomain: "xn--bcher-kva.example"},
		{name: "deep IDN", apex: "xn--bcher-kva.example.",
			domain: "shop.bücher.example", wantDomain: "shop.xn--bcher-kva.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "_acme-challenge." + tc.wantDomain + "."
			rec := name + " 300 IN CNAME " + target
			f := newFixture(t, tc.apex, []string{rec}, []string{rec})
			f.rec.with(func(z *zoneServer) { z.noGlue, z.noSOA = tc.noGlue, tc.noSOA })
			res := f.client(t).CheckDelegation(t.Context(), tc.domain, target)
			if res.State != StateOK || res.Domain != tc.wantDomain || res.Name != name || res.Zone != tc.apex {
				t.Fatalf("got %q for %q (name %q, zone %q): %s; evidence %+v", res.State, res.Domain, res.Name, res.Zone, res.Detail, res.Nameservers)
			}
			if len(res.Nameservers) != 2 || res.Nameservers[1].Server != "ns2."+tc.apex {
				t.Errorf("nameservers %+v", res.Nameservers)
			}
		})
	}
}

// A nameserver mapped by name is asked at that address without resolving
// its name (the recursive resolver knows no address for it here).
func TestCheckDelegationAddrsByName(t *testing.T) {
	t.Parallel()
	auth := startServer(t, &zoneServer{zones: []string{"example.org."}})
	auth.set(t, append(zoneLines("example.org.", "ns1"), cnameOK)...)
	rec := startServer(t, &zoneServer{zones: []string{"example.org."}, recursive: true})
	rec.set(t, "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5",
		"example.org. 3600 IN NS NS1.Example.org.", cnameOK)
	c, err := New(Config{Recursive: []string{rec.Addr}, Addrs: map[string]string{"ns1.example.org": auth.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	res := c.CheckDelegation(t.Context(), "example.org", target)
	if res.State != StateOK || len(res.Nameservers) != 1 || res.Nameservers[0].Addr != auth.Addr {
		t.Fatalf("%q: %s; %+v", res.State, res.Detail, res.Nameservers)
	}
}

func TestCheckDelegationUnreachable(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	t.Run("closed port and silent servers, all at once", func(t *testing.T) {
		t.Parallel()
		recs := []string{cnameOK}
		f := newFixture(t, "example.org.", recs, recs, recs, recs, recs, recs)
		f.cfg.Timeout = timeout
		closed := closedAddr(t)
		f.cfg.Addrs["192.0.2.2"] = closed
		for _, a := range f.auth[2:] {
			a.with(func(z *zoneServer) { z.silent = true })
		}
		start := time.Now()
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		elapsed := time.Since(start)
		// Asked one after another, the four silent servers would take at
		// least 4 timeouts; at once they take one.
		if elapsed > 5*timeout/2 {
			t.Errorf("check took %v with a %v timeout: servers not asked at once", elapsed, timeout)
		}
		if res.State != StateUnreachable {
			t.Fatalf("state %q: %s", res.State, res.Detail)
		}
		for _, s := range []string{"ns2.example.org. (" + closed + "): connection refused",
			"ns3.example.org. (" + f.auth[2].Addr + "): no answer within 300ms", "ns6.example.org."} {
			if !strings.Contains(res.Detail, s) {
				t.Errorf("detail %q lacks %q", res.Detail, s)
			}
		}
		if strings.Contains(res.Detail, "ns1.example.org.") {
			t.Errorf("detail %q names the server that answered", res.Detail)
		}
		if res.Nameservers[0].Err != "" || res.Nameservers[0].CNAME != target {
			t.Errorf("ns1 %+v", res.Nameservers[0])
		}
	})
	t.Run("REFUSED", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		f.auth[1].with(func(z *zoneServer) { z.rcode = dns.RcodeRefused })
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if ns := res.Nameservers[1]; res.State != StateUnreachable || ns.Rcode != "REFUSED" || !strings.Contains(ns.Err, "answered REFUSED") {
			t.Fatalf("%q: %s; %+v", res.State, res.Detail, ns)
		}
	})
	t.Run("SERVFAIL beats missing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{}, []string{})
		f.auth[0].with(func(z *zoneServer) { z.rcode = dns.RcodeServerFailure })
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || !strings.Contains(res.Detail, "answered SERVFAIL") {
			t.Fatalf("%q: %s", res.State, res.Detail)
		}
	})
	t.Run("lame: no AA", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		f.auth[1].with(func(z *zoneServer) { z.recursive = true })
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || !strings.Contains(res.Nameservers[1].Err, "AA flag") {
			t.Fatalf("%q: %s", res.State, res.Detail)
		}
	})
	t.Run("nameserver without address", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		f.rec.set(t, "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5",
			"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.org.",
			"ns1.example.org. 3600 IN A 192.0.2.1", cnameOK)
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || !strings.Contains(res.Detail, "ns2.example.org.: resolve ns2.example.org.: no A or AAAA record") {
			t.Fatalf("%q: %s", res.State, res.Detail)
		}
	})
	t.Run("recursive resolver down: zone not found", func(t *testing.T) {
		t.Parallel()
		c, err := New(Config{Recursive: []string{closedAddr(t)}, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		res := c.CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || res.Zone != "" || !res.ResolverDown || !strings.Contains(res.Detail, "Recursive resolver unreachable") ||
			!strings.Contains(res.Recursive.Err, "connection refused") {
			t.Fatalf("%q zone %q down %v: %s; recursive %+v", res.State, res.Zone, res.ResolverDown, res.Detail, res.Recursive)
		}
	})
	t.Run("recursive resolver answers SERVFAIL: the domain's state", func(t *testing.T) {
		t.Parallel()
		rec := startServer(t, &zoneServer{recursive: true, rcode: dns.RcodeServerFailure})
		c, err := New(Config{Recursive: []string{rec.Addr}, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		res := c.CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || res.ResolverDown || !strings.Contains(res.Detail, "could not be found") {
			t.Fatalf("%q down %v: %s", res.State, res.ResolverDown, res.Detail)
		}
	})
	t.Run("ctx ends the check", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		f.cfg.Timeout = time.Minute
		f.auth[1].with(func(z *zoneServer) { z.silent = true })
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		res := f.client(t).CheckDelegation(ctx, "example.org", target)
		if elapsed := time.Since(start); elapsed > 20*time.Second {
			t.Errorf("check took %v after ctx ended", elapsed)
		}
		if res.State != StateUnreachable || !strings.Contains(res.Nameservers[1].Err, "check ended") {
			t.Fatalf("%q: %s", res.State, res.Detail)
		}
	})
}

func TestCheckDelegationRecursive(t *testing.T) {
	t.Parallel()
	t.Run("asked in order until one answers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK})
		refusing := startServer(t, &zoneServer{rcode: dns.RcodeRefused})
		f.cfg.Recursive = []string{refusing.Addr, f.rec.Addr}
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateOK || res.Recursive.Addr != f.rec.Addr || refusing.queries.Load() == 0 {
			t.Fatalf("%q: %s; recursive %+v", res.State, res.Detail, res.Recursive)
		}
	})
	t.Run("stale cache is reported, state from the nameservers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		f.rec.set(t, append(zoneLines("example.org.", "ns1", "ns2"), chName+" 300 IN CNAME old.acme.example.com.")...)
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateOK || res.Recursive.CNAME != "old.acme.example.com." || !strings.Contains(res.Detail, "cached") {
			t.Fatalf("%q: %s; recursive %+v", res.State, res.Detail, res.Recursive)
		}
	})
}

func TestCheckDelegationInvalid(t *testing.T) {
	t.Parallel()
	rec := startServer(t, &zoneServer{recursive: true})
	c, err := New(Config{Recursive: []string{rec.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ domain, target string }{
		{"exa mple.org", target}, {"192.0.2.1", target}, {"*", target}, {"", target},
		{"example.org", ""}, {"example.org", "a..b"},
	} {
		res := c.CheckDelegation(t.Context(), tc.domain, tc.target)
		if res.State != StateInvalid || res.Detail == "" {
			t.Errorf("%q -> %q: %q %q", tc.domain, tc.target, res.State, res.Detail)
		}
	}
	if n := rec.queries.Load(); n != 0 {
		t.Errorf("%d queries for invalid input", n)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Recursive: []string{"127.0.0.1"}},
		{Recursive: []string{"127.0.0.1:0"}},
		{Recursive: []string{"127.0.0.1:53"}, Addrs: map[string]string{"ns1.example.org": "127.0.0.1"}},
		{Recursive: []string{"127.0.0.1:53"}, Timeout: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	c, err := New(Config{Recursive: []string{"[::1]:53"}, Addrs: map[string]string{"NS1.Example.ORG": "127.0.0.1:1", "::ffff:192.0.2.1": "127.0.0.1:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.addrs["ns1.example.org."] != "127.0.0.1:1" || c.addrs["192.0.2.1"] != "127.0.0.1:2" || c.timeout != defaultTimeout {
		t.Errorf("addrs %v timeout %v", c.addrs, c.timeout)
	}
}

// BenchmarkCheckDelegation is one full check against two nameservers on
// loopback: the walk, the recursive view and four authoritative queries.
func BenchmarkCheckDelegation(b *testing.B) {
	f := newFixture(b, "example.org.", []string{cnameOK}, []string{cnameOK})
	c := f.client(b)
	for b.Loop() {
		if res := c.CheckDelegation(b.Context(), "a.b.example.org", target); res.State != StateMissing {
			b.Fatalf("%q: %s", res.State, res.Detail)
		}
	}
}
