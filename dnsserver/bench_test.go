package dnsserver

import (
	"fmt"
	"net"
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
