package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const valueName = "k7x2.acme.example.net."

// hubServer is a nameserver of the hub zone serving one serial and a set
// of TXT records at valueName, each given as its strings.
func hubServer(t *testing.T) *zoneServer {
	t.Helper()
	return startServer(t, &zoneServer{zones: []string{hubZone}})
}

// serve sets the server's serial and TXT records at valueName.
func serve(t *testing.T, z *zoneServer, serial uint32, txts ...string) {
	t.Helper()
	lines := []string{
		fmt.Sprintf("%s 3600 IN SOA ns1.%s hostmaster.%s %d 7200 3600 1209600 60", hubZone, hubZone, hubZone, serial),
		hubZone + " 3600 IN NS ns1." + hubZone,
		hubZone + " 3600 IN NS ns2." + hubZone,
	}
	for _, txt := range txts {
		lines = append(lines, valueName+" 60 IN TXT "+txt)
	}
	z.set(t, lines...)
}

// hubPair starts two hub nameservers, ns1 mapped by name and ns2 by
// address, and a client for them.
func hubPair(t *testing.T, timeout time.Duration) (a, b *zoneServer, servers []Nameserver, c *Client) {
	t.Helper()
	a, b = hubServer(t), hubServer(t)
	rec := startServer(t, &zoneServer{recursive: true}) // asked for nothing: every address is known
	c, err := New(Config{
		Recursive: []string{rec.Addr},
		Addrs:     map[string]string{"ns1." + hubZone: a.Addr, "192.0.2.53": b.Addr},
		Timeout:   timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	servers = []Nameserver{
		{Name: "NS1." + strings.TrimSuffix(hubZone, ".")},
		{Name: "ns2." + hubZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")}},
	}
	return a, b, servers, c
}

func TestCheckPropagation(t *testing.T) {
	t.Parallel()
	a, b, servers, c := hubPair(t, 2*time.Second)
	// a is current and serves the value among others, split in two
	// strings; b is one serial behind, though it has the value already
	// (presented earlier): only a current server's answer counts.
	serve(t, a, 10, `"other"`, `"abc" "def"`)
	serve(t, b, 9, `"abcdef"`)
	res := c.CheckPropagation(t.Context(), "ACME.example.net", servers, "K7X2.acme.example.net", "abcdef", 10)
	if res.Everywhere || len(res.Servers) != 2 || res.Name != valueName || res.Value != "abcdef" || res.CheckedAt.IsZero() {
		t.Fatalf("%+v", res)
	}
	want := []ServerStatus{
		{Server: "ns1." + hubZone, Addr: a.Addr, Serial: 10, Current: true, Serves: true},
		{Server: "ns2." + hubZone, Addr: b.Addr, Serial: 9},
	}
	for i := range want {
		if res.Servers[i] != want[i] {
			t.Errorf("server %d: %+v, want %+v", i, res.Servers[i], want[i])
		}
	}

	serve(t, b, 11, `"abcdef"`)
	res = c.CheckPropagation(t.Context(), hubZone, servers, valueName, "abcdef", 10)
	if !res.Everywhere || !res.Servers[1].Current || res.Servers[1].Serial != 11 {
		t.Fatalf("after catching up: %+v", res)
	}

	// A current server without the value (removed since) does not serve it.
	serve(t, b, 12, `"abcde"`)
	res = c.CheckPropagation(t.Context(), hubZone, servers, valueName, "abcdef", 10)
	if res.Everywhere || !res.Servers[1].Current || res.Servers[1].Serves {
		t.Fatalf("value gone: %+v", res)
	}
}

func TestCheckPropagationSerialWrap(t *testing.T) {
	t.Parallel()
	a, b, servers, c := hubPair(t, 2*time.Second)
	serve(t, a, 5, `"v"`)          // past 4294967290 by 11 after the wrap
	serve(t, b, 4294967280, `"v"`) // 10 before it
	res := c.CheckPropagation(t.Context(), hubZone, servers, valueName, "v", 4294967290)
	if !res.Servers[0].Current || !res.Servers[0].Serves || res.Servers[1].Current || res.Servers[1].Serves || res.Everywhere {
		t.Fatalf("%+v", res.Servers)
	}
}

func TestSerialLess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b uint32
		less bool
	}{
		{1, 2, true}, {2, 1, false}, {7, 7, false},
		{4294967290, 5, true}, {5, 4294967290, false},
		{0, 1<<31 - 1, true}, {0, 1 << 31, false}, // RFC 1982: 2^31 apart is undefined; we say not less
		{4294967295, 0, true},
	} {
		if got := serialLess(tc.a, tc.b); got != tc.less {
			t.Errorf("serialLess(%d, %d) = %v", tc.a, tc.b, got)
		}
	}
}

func TestCheckPropagationErrors(t *testing.T) {
	t.Parallel()
	a, b, servers, c := hubPair(t, 300*time.Millisecond)
	serve(t, a, 10, `"v"`)
	serve(t, b, 10, `"v"`)
	closed := closedAddr(t)
	c.addrs["192.0.2.54"] = closed
	servers = append(servers,
		Nameserver{Name: "ns3." + hubZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.54")}},
		Nameserver{Name: "ns4." + hubZone}, // no address, and the resolver knows none
	)
	b.with(func(z *zoneServer) { z.truncateUDP = true }) // b answers over TCP only
	res := c.CheckPropagation(t.Context(), hubZone, servers, valueName, "v", 10)
	if res.Everywhere || len(res.Servers) != 4 {
		t.Fatalf("%+v", res)
	}
	if s := res.Servers[1]; !s.Serves || s.Err != "" {
		t.Errorf("over TCP: %+v", s)
	}
	if s := res.Servers[2]; s.Addr != closed || s.Serves || !strings.Contains(s.Err, "connection refused") {
		t.Errorf("closed port: %+v", s)
	}
	if s := res.Servers[3]; s.Addr != "" || s.Serves || !strings.Contains(s.Err, "resolve ns4.acme.example.net.") {
		t.Errorf("no address: %+v", s)
	}
	if res := c.CheckPropagation(t.Context(), hubZone, nil, valueName, "v", 10); res.Everywhere {
		t.Error("everywhere with no nameservers")
	}

	// Not authoritative for the zone: the SOA answer is REFUSED.
	res = c.CheckPropagation(t.Context(), "example.com.", servers[:1], "x.example.com.", "v", 10)
	if s := res.Servers[0]; s.Current || !strings.Contains(s.Err, "answered REFUSED") {
		t.Errorf("other zone: %+v", s)
	}
}

func TestWaitPropagation(t *testing.T) {
	t.Parallel()
	t.Run("returns once the stale server catches up", func(t *testing.T) {
		t.Parallel()
		a, b, servers, c := hubPair(t, 2*time.Second)
		serve(t, a, 20, `"v"`)
		serve(t, b, 19)
		start := time.Now()
		time.AfterFunc(200*time.Millisecond, func() { serve(t, b, 20, `"v"`) })
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		res := c.WaitPropagation(ctx, hubZone, servers, valueName, "v", 20, 20*time.Millisecond)
		if !res.Everywhere || res.Servers[1].Serial != 20 {
			t.Fatalf("%+v", res)
		}
		if elapsed := time.Since(start); elapsed < 200*time.Millisecond || ctx.Err() != nil {
			t.Errorf("returned after %v (ctx %v): before the catch-up or at the timeout", elapsed, ctx.Err())
		}
		if b.queries.Load() < 3 {
			t.Errorf("b asked %d times: not polled", b.queries.Load())
		}
	})
	t.Run("times out with per-server detail", func(t *testing.T) {
		t.Parallel()
		a, b, servers, c := hubPair(t, 2*time.Second)
		serve(t, a, 20, `"v"`)
		serve(t, b, 19)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		res := c.WaitPropagation(ctx, hubZone, servers, valueName, "v", 20, 20*time.Millisecond)
		if res.Everywhere || len(res.Servers) != 2 || !res.Servers[0].Serves ||
			res.Servers[1].Serial != 19 || res.Servers[1].Current || res.Servers[1].Err != "" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("a slow server cut off by the timeout: the last full check", func(t *testing.T) {
		t.Parallel()
		a, b, servers, c := hubPair(t, 10*time.Second)
		serve(t, a, 20, `"v"`)
		serve(t, b, 19)
		// b goes silent after the first check: every later check of b
		// is cut off by ctx, so the result must be the first check's.
		time.AfterFunc(100*time.Millisecond, func() { b.with(func(z *zoneServer) { z.silent = true }) })
		ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
		defer cancel()
		res := c.WaitPropagation(ctx, hubZone, servers, valueName, "v", 20, 20*time.Millisecond)
		if s := res.Servers[1]; s.Serial != 19 || s.Err != "" {
			t.Fatalf("%+v", res.Servers)
		}
	})
	t.Run("ended ctx: one check still reported", func(t *testing.T) {
		t.Parallel()
		_, _, servers, c := hubPair(t, 2*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := c.WaitPropagation(ctx, hubZone, servers, valueName, "v", 20, 0)
		if res.Everywhere || len(res.Servers) != 2 || !strings.Contains(res.Servers[0].Err, "check ended") {
			t.Fatalf("%+v", res)
		}
	})
}
