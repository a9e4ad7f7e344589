package dnsserver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/zone"
)

// benchHandler serves a zone of 100,000 names, like a busy hub.
func benchHandler(b *testing.B) *Handler {
	b.Helper()
	snap := zone.Snapshot{Serial: 1}
	for i := range 100_000 {
		snap.Values = append(snap.Values, zone.Value{Name: fmt.Sprintf("%08x-1b2c-4d5e-8f90-a1b2c3d4e5f6.%s", i, origin), Value: acmeValue, TTL: 60})
	}
	snap.Names = []string{"label." + origin}
	v := zone.NewView(origin)
	v.Reset(snap)
	h, err := NewHandler(testConfig(), v)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

var benchQueries = []struct {
	name string
	q    *dns.Msg
}{
	{"txt-hit", query("00000777-1b2c-4d5e-8f90-a1b2c3d4e5f6."+origin, dns.TypeTXT)},
	{"txt-hit-0x20", query("00000777-1B2C-4D5E-8F90-A1B2C3D4E5F6.Acme.Example.Net.", dns.TypeTXT)},
	{"txt-hit-edns", withEDNS(query("00000777-1b2c-4d5e-8f90-a1b2c3d4e5f6."+origin, dns.TypeTXT), 1232, true)},
	{"nxdomain", query("_acme-challenge.nope."+origin, dns.TypeTXT)},
	{"nodata", query("label."+origin, dns.TypeA)},
	{"apex-soa", query(origin, dns.TypeSOA)},
}

// BenchmarkAnswer measures the pure answer function: ns/op and allocs/op.
func BenchmarkAnswer(b *testing.B) {
	h := benchHandler(b)
	for _, bq := range benchQueries {
		b.Run(bq.name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = h.Answer(buf, bq.q, UDP)
			}
		})
	}
}

// BenchmarkServeDNS adds the shell (pool, write, observer) and miekg's
// unpacking of the query, which the server does before calling us.
func BenchmarkServeDNS(b *testing.B) {
	h := benchHandler(b)
	h.observe = func(uint16, int, time.Duration) {}
	sh := &shell{h: h, t: UDP}
	w := &discard{}
	for _, bq := range benchQueries {
		wire := pack(b, bq.q)
		b.Run(bq.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := new(dns.Msg)
				if err := req.Unpack(wire); err != nil {
					b.Fatal(err)
				}
				sh.ServeDNS(w, req)
			}
		})
	}
}

type discard struct{ recorder }

func (*discard) Write(b []byte) (int, error) { return len(b), nil }
func (*discard) LocalAddr() net.Addr         { return nil }

// BenchmarkServeUDP is the batch loops' per-packet work: the request
// pipeline (header check, acceptMsg, Unpack into a reused Msg, Answer
// into a reused buffer) with the observer, as process runs it.
func BenchmarkServeUDP(b *testing.B) {
	h := benchHandler(b)
	h.observe = func(uint16, int, time.Duration) {}
	for _, bq := range benchQueries {
		wire := pack(b, bq.q)
		b.Run(bq.name, func(b *testing.B) {
			req := new(dns.Msg)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				reply, send := h.serveUDP(buf, req, wire, nil)
				if !send {
					b.Fatal("no reply")
				}
				buf = reply[:0]
			}
		})
	}
}

// BenchmarkUDPServer measures a real server on loopback: 4 clients, each
// with its own socket and 32 queries outstanding (like dnsperf), share
// b.N TXT queries. ns/op is wall time per answered query, client included,
// so it compares serving loops rather than measuring one.
func BenchmarkUDPServer(b *testing.B) {
	h := benchHandler(b)
	s, err := New(testConfig(), h.zone)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	addr := s.Addrs()[0].String()
	wire := pack(b, query("00000777-1b2c-4d5e-8f90-a1b2c3d4e5f6."+origin, dns.TypeTXT))
	const clients, window = 4, 32
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		n := b.N / clients
		if c < b.N%clients {
			n++
		}
		wg.Go(func() {
			conn, err := net.Dial("udp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = conn.Close() }()
			buf := make([]byte, 1024)
			sent, got := 0, 0
			for got < n {
				for ; sent < n && sent-got < window; sent++ {
					if _, err := conn.Write(wire); err != nil {
						errs <- err
						return
					}
				}
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Read(buf); err != nil {
					errs <- fmt.Errorf("after %d of %d answers: %w", got, n, err)
					return
				}
				got++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
