package dnsserver

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/miekg/dns"
)

func FuzzServeDNS(f *testing.F) {
	for _, tc := range malformedCases() {
		f.Add(tc.b)
	}
	for _, tc := range checklistCases() {
		f.Add(pack(f, tc.q))
	}
	f.Add(pack(f, withEDNS(query("big."+origin, dns.TypeTXT), 700, true)))
	h := testHandler(f)

	// respond is the pipeline the UDP batch loops run, and what miekg's
	// server does over TCP (TestRespondMatchesMiekgTCP). It has no recover,
	// so a panic fails the fuzz run. A Msg reused across runs, as the loops
	// do, must not carry anything from one message into the next reply.
	req := new(dns.Msg)
	f.Fuzz(func(t *testing.T, m []byte) {
		for _, tr := range []Transport{UDP, TCP} {
			b, _, v := h.respond(nil, req, m, tr)
			if fresh, _, fv := h.respond(nil, new(dns.Msg), m, tr); fv != v || !bytes.Equal(fresh, b) {
				t.Fatalf("%s: reply with a reused Msg differs from a fresh one:\n% x\n% x", tr, b, fresh)
			}
			if v == dropped {
				if len(m) >= hdrLen && m[2]&0x80 == 0 && acceptMsg(dns.Header{Bits: binary.BigEndian.Uint16(m[2:])}) != dns.MsgIgnore {
					// Only a reply that does not pack goes unsent.
					t.Fatalf("%s: a query got no reply", tr)
				}
				continue
			}
			if len(m) >= 3 && m[2]&0x80 != 0 {
				t.Fatalf("%s: replied to a response", tr)
			}
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil {
				t.Fatalf("%s: reply does not parse: %v\n% x", tr, err, b)
			}
			if _, err := r.Pack(); err != nil {
				t.Fatalf("%s: reply does not pack: %v", tr, err)
			}
			if r.Id != binary.BigEndian.Uint16(m) || !r.Response {
				t.Fatalf("%s: id %d response %v", tr, r.Id, r.Response)
			}
			if r.RecursionAvailable {
				t.Fatalf("%s: RA set", tr)
			}
			if r.Rcode == dns.RcodeServerFailure {
				t.Fatalf("%s: SERVFAIL from a loaded zone", tr)
			}
			if tr != UDP {
				continue
			}
			limit := minUDP
			if opt := r.IsEdns0(); opt != nil {
				// The reply's OPT is ours; the client's size is in the query.
				q := new(dns.Msg)
				if err := q.Unpack(m); err == nil && q.IsEdns0() != nil {
					limit = min(max(int(q.IsEdns0().UDPSize()), minUDP), ednsSize)
				}
			}
			if len(b) > limit {
				t.Fatalf("UDP reply %d bytes over the limit %d", len(b), limit)
			}
			if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError && len(b) > max(len(m), minUDP) {
				t.Fatalf("error reply %d bytes for a %d-byte query", len(b), len(m))
			}
		}
	})
}
