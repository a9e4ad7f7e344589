package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/zone"
)

const (
	origin    = "acme.example.net."
	testSer   = 2024_0001
	acmeValue = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
)

// testView holds: abc (two TXT values), label (a delegation label without
// values), x.deep (so deep is an empty non-terminal), big (40 long values:
// too big for UDP).
func testView(tb testing.TB) *zone.View {
	tb.Helper()
	v := zone.NewView(origin)
	snap := zone.Snapshot{
		Serial: testSer,
		Values: []zone.Value{
			{Name: "abc." + origin, Value: acmeValue, TTL: 120},
			{Name: "abc." + origin, Value: "second-value", TTL: 120},
			{Name: "x.deep." + origin, Value: "deep-value", TTL: 60},
		},
		Names: []string{"label." + origin},
	}
	for i := range 40 {
		snap.Values = append(snap.Values, zone.Value{Name: "big." + origin, Value: fmt.Sprintf("%03d-%s", i, strings.Repeat("v", 200)), TTL: 60})
	}
	v.Reset(snap)
	return v
}

func testConfig() Config {
	return Config{
		Origin: origin,
		Nameservers: []NS{
			{Name: "ns1.acme.example.net", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}},
			{Name: "ns2.dns.acme.example.net.", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}},
			{Name: "ns.example.org."},
		},
		Mbox:    "hostmaster@example.net",
		TTL:     3600 * time.Second,
		Minimum: 60 * time.Second,
	}
}

func testHandler(tb testing.TB) *Handler {
	tb.Helper()
	h, err := NewHandler(testConfig(), testView(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// startServer runs a real server on 127.0.0.1:0 (UDP and TCP on one port).
func startServer(t *testing.T, z Zone, addrs ...string) (*Server, string) {
	t.Helper()
	s, err := New(testConfig(), z)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:0"}
	}
	if err := s.Listen(addrs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s, s.Addrs()[0].String()
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	return m
}

func withEDNS(m *dns.Msg, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	return m
}

func exchange(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.ExchangeContext(t.Context(), m, addr)
	if err != nil {
		t.Fatalf("%s query %v: %v", network, m.Question, err)
	}
	if r.Id != m.Id || !r.Response {
		t.Fatalf("reply id %d response %v", r.Id, r.Response)
	}
	return r
}

// rawUDP sends b and returns the reply, or nil if none came within wait.
func rawUDP(t *testing.T, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func pack(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func soaOf(t *testing.T, rrs []dns.RR) *dns.SOA {
	t.Helper()
	if len(rrs) != 1 {
		t.Fatalf("want exactly one SOA in authority, got %v", rrs)
	}
	soa, ok := rrs[0].(*dns.SOA)
	if !ok {
		t.Fatalf("authority %v is not a SOA", rrs[0])
	}
	return soa
}
