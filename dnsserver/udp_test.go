package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/zone"
)

// listenServer binds a server with cfg on addr without starting it.
func listenServer(t *testing.T, cfg Config, z Zone, addr string) *Server {
	t.Helper()
	s, err := New(cfg, z)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

func startWith(t *testing.T, cfg Config, z Zone, addr string) *Server {
	t.Helper()
	s := listenServer(t, cfg, z, addr)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func skipWithoutIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	_ = ln.Close()
}

// wantSockets checks that the server's first address is served by n batch
// sockets (Linux) or by miekg (elsewhere).
func wantSockets(t *testing.T, s *Server, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	got := len(s.udp[0].conns)
	if !batchUDP {
		n = 0
	}
	if got != n {
		t.Fatalf("%d batch sockets, want %d", got, n)
	}
}

// hammer runs clients goroutines, each with its own UDP socket (so the
// kernel spreads them over the reuse-port sockets by address hash),
// sending queries queries that each expect the TXT answer of a name of
// the bench-style zone. Every client keeps window queries outstanding,
// like dnsperf.
func hammer(t *testing.T, addr string, clients, queries, window int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			if err := hammerOne(addr, c, queries, window); err != nil {
				errs <- fmt.Errorf("client %d: %w", c, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func hammerOne(addr string, client, queries, window int) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	names := []string{"abc." + origin, "nope." + origin, origin, "x.deep." + origin}
	wantAn := []int{2, 0, 1, 1}
	sent, got := 0, 0
	pending := map[uint16]int{} // id -> name index
	buf := make([]byte, 2048)
	for got < queries {
		for sent < queries && len(pending) < window {
			i := (client + sent) % len(names)
			q := query(strings.ToUpper(names[i][:1])+names[i][1:], dns.TypeTXT) // some 0x20
			if i == 2 {
				q.Question[0].Qtype = dns.TypeSOA
			}
			q.Id = uint16(sent + 1)
			b, err := q.Pack()
			if err != nil {
				return err
			}
			if _, err := conn.Write(b); err != nil {
				return err
			}
			pending[q.Id] = i
			sent++
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("after %d of %d answers: %w", got, queries, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			return err
		}
		i, ok := pending[r.Id]
		if !ok {
			return fmt.Errorf("unexpected or duplicate reply id %d", r.Id)
		}
		delete(pending, r.Id)
		got++
		if !strings.EqualFold(r.Question[0].Name, names[i]) || len(r.Answer) != wantAn[i] || !r.Authoritative {
			return fmt.Errorf("reply %d for %s: %v", r.Id, names[i], r)
		}
	}
	return nil
}

// TestUDPManySockets: many clients with many queries outstanding, spread
// by the kernel over four reuse-port sockets of one address; each query
// gets its own correct answer once. With 64 client sockets, every server
// socket gets some (all but certainly), so each loop is exercised.
func TestUDPManySockets(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.UDPSockets = 4
	s := startWith(t, cfg, testView(t), "127.0.0.1:0")
	wantSockets(t, s, 4)
	addrs := s.Addrs()
	if len(addrs) != 2 || addrs[0].(*net.UDPAddr).Port != addrs[1].(*net.TCPAddr).Port {
		t.Fatalf("addrs %v: want one UDP and one TCP address on one port", addrs)
	}
	hammer(t, addrs[0].String(), 64, 200, 4)
	// TCP on the same port still answers.
	if r := exchange(t, "tcp", addrs[1].String(), query("abc."+origin, dns.TypeTXT)); len(r.Answer) != 2 {
		t.Fatalf("tcp: %v", r)
	}
}

func TestUDPSocketsDefault(t *testing.T) {
	t.Parallel()
	s := listenServer(t, testConfig(), testView(t), "127.0.0.1:0")
	wantSockets(t, s, runtime.GOMAXPROCS(0))
	// Wildcard binds keep miekg's loop (it replies from the address the
	// query was sent to).
	for _, ip := range []net.IP{nil, net.IPv4zero, net.IPv6unspecified} {
		if batchable(ip) {
			t.Errorf("wildcard %v served by the batch loops", ip)
		}
	}
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} {
		if batchable(ip) != batchUDP {
			t.Errorf("%v: batchable %v on %s", ip, batchable(ip), runtime.GOOS)
		}
	}
	if _, err := New(Config{Origin: origin, Nameservers: []NS{{Name: "ns.example.org"}}, UDPSockets: -1}, testView(t)); err == nil || !strings.Contains(err.Error(), "udp sockets") {
		t.Fatalf("UDPSockets -1: %v", err)
	}
}

// panicOn panics for one name, as a bug in the answer path would.
type panicOn struct {
	Zone
	name string
}

func (z panicOn) LookupBytes(name []byte) zone.LookupResult {
	if string(name) == z.name {
		panic("boom")
	}
	return z.Zone.LookupBytes(name)
}

// batchCase is one packet of a batch and the reply it should get.
type batchCase struct {
	name  string
	b     []byte
	rcode int // -1: no reply
	an    int
}

// mixedBatch interleaves good queries with every malformed case and a
// query that panics; all ids are distinct.
func mixedBatch(t *testing.T) []batchCase {
	t.Helper()
	good := func(i int) batchCase {
		q := withEDNS(query("abc."+origin, dns.TypeTXT), 1232, false)
		return batchCase{name: fmt.Sprintf("good %d", i), b: pack(t, q), rcode: dns.RcodeSuccess, an: 2}
	}
	cases := []batchCase{good(0)}
	for _, m := range malformedCases() {
		c := batchCase{name: m.name, b: bytes.Clone(m.b), rcode: dns.RcodeFormatError}
		switch {
		case m.silent:
			c.rcode = -1
		case m.noerror:
			c.rcode, c.an = dns.RcodeSuccess, 2
		case m.name == "unknown opcode garbage":
			c.rcode = dns.RcodeNotImplemented
		}
		cases = append(cases, c, good(len(cases)))
	}
	cases = append(cases, batchCase{name: "panic", b: pack(t, query("panic."+origin, dns.TypeTXT)), rcode: dns.RcodeServerFailure}, good(len(cases)))
	for i := range cases {
		if len(cases[i].b) >= 2 {
			binary.BigEndian.PutUint16(cases[i].b, uint16(1000+i))
		} else {
			t.Fatalf("%s: too short for an id", cases[i].name)
		}
	}
	return cases
}

// checkBatchReplies matches replies (in arrival order) to the cases.
func checkBatchReplies(t *testing.T, cases []batchCase, replies [][]byte, ordered bool) {
	t.Helper()
	var want []batchCase
	for _, c := range cases {
		if c.rcode >= 0 {
			want = append(want, c)
		}
	}
	if len(replies) != len(want) {
		t.Fatalf("%d replies, want %d", len(replies), len(want))
	}
	byID := map[uint16]batchCase{}
	for _, c := range want {
		byID[binary.BigEndian.Uint16(c.b)] = c
	}
	for i, b := range replies {
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatalf("reply %d does not parse: %v", i, err)
		}
		c, ok := byID[r.Id]
		if !ok {
			t.Fatalf("reply %d: unexpected id %d", i, r.Id)
		}
		delete(byID, r.Id)
		if ordered && binary.BigEndian.Uint16(want[i].b) != r.Id {
			t.Errorf("reply %d is for %q, want %q: replies leave in query order", i, c.name, want[i].name)
		}
		if r.Rcode != c.rcode || len(r.Answer) != c.an || !r.Response {
			t.Errorf("%s: rcode %s, %d answers, want %s, %d", c.name, dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[c.rcode], c.an)
		}
		if limit := max(len(c.b), minUDP); len(b) > limit {
			t.Errorf("%s: reply %d bytes > %d", c.name, len(b), limit)
		}
	}
}

// TestUDPBatchProcess runs one batch through a loop's process step: the
// malformed packets and the panic in the middle get their own replies (or
// none) and leave the others alone; replies keep the query order and go
// to each packet's sender.
func TestUDPBatchProcess(t *testing.T) {
	t.Parallel()
	var observed atomic.Int32
	cfg := testConfig()
	cfg.Observer = func(uint16, int, time.Duration) { observed.Add(1) }
	h, err := NewHandler(cfg, panicOn{testView(t), "panic." + origin})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	l := newUDPLoop(h, pc)
	all := mixedBatch(t)
	sent := 0
	for round := range 2 { // the second round reuses every buffer
		var replies [][]byte
		for cases := range slices.Chunk(all, udpBatch) {
			in := l.in[:len(cases)]
			for i, c := range cases {
				in[i].N = copy(in[i].Buffers[0], c.b)
				in[i].Addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: int(binary.BigEndian.Uint16(c.b))}
			}
			out := l.process(in)
			sent += len(out)
			for _, m := range out {
				replies = append(replies, bytes.Clone(m.Buffers[0]))
				id := binary.BigEndian.Uint16(m.Buffers[0])
				if port := m.Addr.(*net.UDPAddr).Port; port != int(id) {
					t.Fatalf("round %d: reply %d addressed to port %d", round, id, port)
				}
			}
		}
		checkBatchReplies(t, all, replies, true)
	}
	// Every reply but the SERVFAIL is observed, as on the miekg path.
	if got, want := int(observed.Load()), sent-2; got != want {
		t.Errorf("observer called %d times, want %d", got, want)
	}
}

// TestUDPBatchMalformedInTheMiddle sends the mixed batch to a real server
// before it starts, so the single socket's first recvmmsg reads it whole.
func TestUDPBatchMalformedInTheMiddle(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.UDPSockets = 1
	s := listenServer(t, cfg, panicOn{testView(t), "panic." + origin}, "127.0.0.1:0")
	wantSockets(t, s, 1)
	conn, err := net.Dial("udp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	cases := mixedBatch(t) // more than one batch: the first recvmmsg reads udpBatch of them
	for _, c := range cases {
		if _, err := conn.Write(c.b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	expect := 0
	for _, c := range cases {
		if c.rcode >= 0 {
			expect++
		}
	}
	var replies [][]byte
	buf := make([]byte, 65535)
	for {
		wait := 3 * time.Second
		if len(replies) >= expect {
			wait = 200 * time.Millisecond // any extra reply would be a bug
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		replies = append(replies, bytes.Clone(buf[:n]))
	}
	checkBatchReplies(t, cases, replies, batchUDP)
	// The server is fine afterwards.
	if r := exchange(t, "udp", s.Addrs()[0].String(), query("abc."+origin, dns.TypeTXT)); len(r.Answer) != 2 {
		t.Fatalf("after the batch: %v", r)
	}
}

// TestUDPShutdownInFlight shuts the server down while clients keep
// queries outstanding: Shutdown returns promptly without error, the loops
// have ended (the wait group) and the port is free again.
func TestUDPShutdownInFlight(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.UDPSockets = 3
	s, err := New(cfg, testView(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0].String()
	stop := make(chan struct{})
	var answered atomic.Int64
	var wg sync.WaitGroup
	b := pack(t, query("abc."+origin, dns.TypeTXT))
	for range 16 {
		wg.Go(func() {
			conn, err := net.Dial("udp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = conn.Close() }()
			buf := make([]byte, 2048)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 20 {
					_, _ = conn.Write(b) // refused once the server is gone
				}
				_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				for {
					if _, err := conn.Read(buf); err != nil {
						break
					}
					answered.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for answered.Load() < 1000 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with queries in flight: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	done := make(chan struct{})
	go func() { s.loops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Error("batch loops still running after Shutdown")
	}
	close(stop)
	wg.Wait()
	if answered.Load() == 0 {
		t.Fatal("no query was answered before the shutdown")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("port still held after Shutdown: %v", err)
	}
	_ = pc.Close()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestUDPIPv6Loopback: several batch sockets on ::1, concurrent clients,
// and a malformed query's FORMERR over IPv6.
func TestUDPIPv6Loopback(t *testing.T) {
	t.Parallel()
	skipWithoutIPv6(t)
	cfg := testConfig()
	cfg.UDPSockets = 3
	s := startWith(t, cfg, testView(t), "[::1]:0")
	wantSockets(t, s, 3)
	addr := s.Addrs()[0].(*net.UDPAddr)
	if !addr.IP.Equal(net.IPv6loopback) {
		t.Fatalf("bound %v", addr)
	}
	hammer(t, addr.String(), 16, 100, 10)
	b := rawUDP(t, addr.String(), header(77, 0, 2, 0, 0, 0), 3*time.Second)
	r := new(dns.Msg)
	if b == nil || r.Unpack(b) != nil || r.Id != 77 || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("FORMERR over IPv6: % x", b)
	}
	if r := exchange(t, "tcp", s.Addrs()[1].String(), query(origin, dns.TypeSOA)); len(r.Answer) != 1 {
		t.Fatalf("tcp over IPv6: %v", r)
	}
}

// TestRespondMatchesMiekgTCP: over TCP the malformed cases still go
// through miekg's server; its replies are byte for byte respond's, so
// FuzzServeDNS (which fuzzes respond) covers that path too.
func TestRespondMatchesMiekgTCP(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, testView(t))
	addr := s.Addrs()[1].String()
	h := s.Handler()
	for _, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want, _, v := h.respond(nil, new(dns.Msg), tc.b, TCP, nil)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(tc.b))), tc.b...)); err != nil {
				t.Fatal(err)
			}
			wait := 3 * time.Second
			if v == dropped {
				wait = 300 * time.Millisecond
			}
			_ = c.SetReadDeadline(time.Now().Add(wait))
			var l uint16
			err = binary.Read(c, binary.BigEndian, &l)
			if v == dropped {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("miekg replied (or closed: %v); respond drops it", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, l)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("miekg over TCP:\n% x\nrespond:\n% x", got, want)
			}
		})
	}
}
