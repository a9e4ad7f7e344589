package dnscheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// unreachableDial makes every dial to an IPv6 address fail as on an
// IPv4-only host (ENETUNREACH); others dial for real.
func unreachableDial(c *Client) {
	next := c.dial
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "[") {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
		}
		return next(ctx, network, addr)
	}
}

// v6Fixture is the fixture with AAAA glue 2001:db8::N beside the A glue of
// the given nameservers (mapped, so the guard lets them through).
func v6Fixture(t *testing.T, v6 ...int) *fixture {
	t.Helper()
	f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
	lines := append(zoneLines("example.org.", "ns1", "ns2"), cnameOK)
	for _, i := range v6 {
		a := fmt.Sprintf("2001:db8::%d", i)
		lines = append(lines, fmt.Sprintf("ns%d.example.org. 3600 IN AAAA %s", i, a))
		f.cfg.Addrs[a] = "[" + a + "]:53"
	}
	f.rec.set(t, lines...)
	return f
}

// On an IPv4-only host a nameserver's IPv6 address is skipped, not an
// error; a nameserver is reachable when one of its addresses answers.
func TestCheckDelegationSkipsUnreachableFamilies(t *testing.T) {
	t.Parallel()
	t.Run("IPv6 beside IPv4: ok", func(t *testing.T) {
		t.Parallel()
		c := v6Fixture(t, 1, 2).client(t)
		unreachableDial(c)
		res := c.CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateOK || len(res.Nameservers) != 4 {
			t.Fatalf("%q: %s; %+v", res.State, res.Detail, res.Nameservers)
		}
		skipped := 0
		for _, ns := range res.Nameservers {
			if strings.HasPrefix(ns.Addr, "[2001:db8::") {
				skipped++
				if ns.Err != "" || !strings.Contains(ns.Skipped, "network unreachable") {
					t.Errorf("IPv6 address %+v, want skipped", ns)
				}
			}
		}
		if skipped != 2 {
			t.Errorf("%d skipped, want 2: %+v", skipped, res.Nameservers)
		}
	})
	t.Run("a nameserver with every address skipped is unreachable", func(t *testing.T) {
		t.Parallel()
		f := v6Fixture(t, 2)
		// ns2 has only its IPv6 address.
		f.rec.set(t, "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5",
			"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.org.",
			"ns1.example.org. 3600 IN A 192.0.2.1", "ns2.example.org. 3600 IN AAAA 2001:db8::2", cnameOK)
		c := f.client(t)
		unreachableDial(c)
		res := c.CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateUnreachable || !strings.Contains(res.Detail, "ns2.example.org.: every address skipped") {
			t.Fatalf("%q: %s", res.State, res.Detail)
		}
	})
	t.Run("one address down, another of the same nameserver answers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
		f.rec.set(t, append(zoneLines("example.org.", "ns1", "ns2"), "ns2.example.org. 3600 IN A 192.0.2.9", cnameOK)...)
		f.cfg.Addrs["192.0.2.9"] = closedAddr(t)
		res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
		if res.State != StateOK || len(res.Nameservers) != 3 || res.Nameservers[2].Err == "" {
			t.Fatalf("%q: %s; %+v", res.State, res.Detail, res.Nameservers)
		}
	})
}

func TestCheckPropagationSkipsUnreachableFamilies(t *testing.T) {
	t.Parallel()
	a, b, servers, c := hubPair(t, 2*time.Second)
	unreachableDial(c)
	serve(t, a, 10, `"v"`)
	serve(t, b, 10, `"v"`)
	servers[1].Addrs = append(servers[1].Addrs, netip.MustParseAddr("2001:db8::53"))
	res := c.CheckPropagation(t.Context(), hubZone, servers, valueName, "v", 10)
	if !res.Everywhere || len(res.Servers) != 3 || res.Servers[2].Skipped == "" || res.Servers[2].Err != "" {
		t.Fatalf("a skipped address blocks Everywhere: %+v", res)
	}
	// ns2 with only its IPv6 address: not everywhere, and it says why.
	servers[1].Addrs = servers[1].Addrs[1:]
	res = c.CheckPropagation(t.Context(), hubZone, servers, valueName, "v", 10)
	if res.Everywhere || len(res.Servers) != 2 || !strings.Contains(res.Servers[1].Err, "every address of ns2."+hubZone+" skipped") {
		t.Fatalf("a nameserver with every address skipped counts as serving: %+v", res)
	}
}

// A domain's owner cannot make one check query more than maxNSNames
// nameservers, maxAddrsPerNS addresses each and maxTargets in all.
func TestCheckDelegationBoundsTargets(t *testing.T) {
	t.Parallel()
	rec := startServer(t, &zoneServer{zones: []string{"example.org."}, recursive: true})
	lines := []string{"example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5"}
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("example.org. 3600 IN NS ns%d.example.org.", i))
		for j := range 6 {
			lines = append(lines, fmt.Sprintf("ns%d.example.org. 3600 IN A 1.0.%d.%d", i, i, j))
		}
	}
	rec.set(t, lines...)
	c, err := New(Config{Recursive: []string{rec.Addr}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		dialed = map[string]bool{}
	)
	next := c.dial
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == rec.Addr {
			return next(ctx, network, addr)
		}
		mu.Lock()
		dialed[addr] = true
		mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	res := c.CheckDelegation(t.Context(), "example.org", target)
	if len(dialed) != maxTargets {
		t.Errorf("%d addresses asked, want %d", len(dialed), maxTargets)
	}
	names := map[string]int{}
	notAsked := 0
	for _, ns := range res.Nameservers {
		names[ns.Server]++
		if strings.Contains(ns.Err, "not asked: more than 32 nameserver addresses in all") {
			notAsked++
		}
	}
	if notAsked != maxNSNames*maxAddrsPerNS-maxTargets {
		t.Errorf("%d entries say the total bound, want %d", notAsked, maxNSNames*maxAddrsPerNS-maxTargets)
	}
	// 13 nameservers and one entry for the rest; 4 addresses each and
	// one entry for the rest.
	if len(names) != maxNSNames+1 || names["(more nameservers)"] != 1 || names["ns0.example.org."] != maxAddrsPerNS+1 {
		t.Errorf("entries per nameserver %v", names)
	}
	if res.State != StateUnreachable {
		t.Errorf("state %q", res.State)
	}
}

// All checks of a client share one bound on queries in flight.
func TestCheckDelegationSharesInFlightBound(t *testing.T) {
	t.Parallel()
	recs := []string{cnameOK}
	f := newFixture(t, "example.org.", recs, recs, recs, recs, recs, recs)
	c := f.client(t)
	c.lim = newLimiter(2, queryRate, queryBurst)
	var (
		mu         sync.Mutex
		open, peak int
	)
	next := c.dial
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		open++
		peak = max(peak, open)
		mu.Unlock()
		done := func() { mu.Lock(); open--; mu.Unlock() }
		if u, ok := conn.(*net.UDPConn); ok { // miekg/dns reads a PacketConn as UDP
			return &countedUDP{UDPConn: u, done: done}, nil
		}
		return &countedConn{Conn: conn, done: done}, nil
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if res := c.CheckDelegation(t.Context(), "example.org", target); res.State != StateOK {
				t.Errorf("%q: %s", res.State, res.Detail)
			}
		})
	}
	wg.Wait()
	if peak > 2 {
		t.Errorf("%d queries in flight at once, bound 2", peak)
	}
	if peak == 0 {
		t.Error("no query counted")
	}
}

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

type countedUDP struct {
	*net.UDPConn
	once sync.Once
	done func()
}

func (c *countedUDP) Close() error {
	c.once.Do(c.done)
	return c.UDPConn.Close()
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	t.Run("token bucket", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(10, 10, 3) // one token per 100 ms, bursts of 3
		now := time.Unix(1000, 0)
		l.now = func() time.Time { return now }
		for i := range 3 {
			if d := l.reserve(); d > 0 {
				t.Fatalf("burst query %d waits %v", i, d)
			}
		}
		if d := l.reserve(); d != 100*time.Millisecond {
			t.Fatalf("4th query waits %v, want 100ms", d)
		}
		if d := l.reserve(); d != 200*time.Millisecond {
			t.Fatalf("5th query waits %v, want 200ms", d)
		}
		now = now.Add(time.Hour) // refilled, but no more than the burst
		for range 3 {
			if d := l.reserve(); d > 0 {
				t.Fatalf("after a pause waits %v", d)
			}
		}
		if d := l.reserve(); d <= 0 {
			t.Fatal("burst exceeded after a pause")
		}
	})
	t.Run("semaphore", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(2, 1000, 1000)
		r1, err := l.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := l.acquire(ctx); err == nil {
			t.Fatal("a third query got a slot of two")
		}
		r1()
		if _, err := l.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// CheckedAt is the start of the check: before any query was sent.
func TestCheckDelegationStampsStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "example.org.", []string{cnameOK}, []string{cnameOK})
	c := f.client(t)
	var (
		mu    sync.Mutex
		first time.Time
	)
	next := c.dial
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		return next(ctx, network, addr)
	}
	res := c.CheckDelegation(t.Context(), "example.org", target)
	if res.State != StateOK || first.IsZero() || res.CheckedAt.After(first) {
		t.Fatalf("%q: CheckedAt %v, first query %v", res.State, res.CheckedAt, first)
	}
}

// _acme-challenge delegated away by NS is a conflict, not unreachable.
func TestCheckDelegationReferral(t *testing.T) {
	t.Parallel()
	ns := chName + " 300 IN NS ns.other.example."
	f := newFixture(t, "example.org.", []string{ns}, []string{ns})
	res := f.client(t).CheckDelegation(t.Context(), "example.org", target)
	if res.State != StateConflict || !strings.Contains(res.Detail, "delegated by NS to ns.other.example.; replace with the CNAME") {
		t.Fatalf("%q: %s; %+v", res.State, res.Detail, res.Nameservers)
	}
	if got := res.Nameservers[0].Delegated; len(got) != 1 || got[0] != "ns.other.example." {
		t.Errorf("evidence %+v", res.Nameservers[0])
	}
	// One server delegating, the other with the CNAME: they disagree.
	f = newFixture(t, "example.org.", []string{ns}, []string{cnameOK})
	if res := f.client(t).CheckDelegation(t.Context(), "example.org", target); res.State != StateInconsistent ||
		!strings.Contains(res.Detail, "a delegation by NS to ns.other.example.") {
		t.Fatalf("%q: %s", res.State, res.Detail)
	}
}
