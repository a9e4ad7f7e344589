package dnsserver

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
)

// fuzzNow is the fuzz handlers' clock and the seeds' signing time.
var fuzzNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// updateSeeds are signed and unsigned UPDATEs and gateway queries in the
// shapes clients send.
func updateSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	be := newFakeBackend()
	k := be.key(keyOrg)
	sign := func(m *dns.Msg) []byte {
		m.SetTsig(k.Name, k.Algorithm, 300, fuzzNow.Unix())
		b, _, err := dns.TsigGenerateWithProvider(m, k, "", false)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	lego := updateMsg(origin)
	lego.RemoveRRset([]dns.RR{txt(chalLbl, "")})
	lego.Insert([]dns.RR{txt(chalLbl, "v")})
	certbot := updateMsg("example.org.")
	certbot.Insert([]dns.RR{txt(chalOrg, "v")})
	pre := updateMsg("example.org.")
	pre.Used([]dns.RR{txt(chalOrg, "a"), txt(chalOrg, "b")})
	pre.NameUsed([]dns.RR{txt(chalOrg, "")})
	pre.RRsetNotUsed([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeA}}})
	pre.Remove([]dns.RR{txt(chalOrg, "a")})
	pre.RemoveName([]dns.RR{txt(chalOrg, "")})
	edns := updateMsg("example.org.")
	edns.SetEdns0(1232, false)
	edns.Insert([]dns.RR{txt(chalOrg, "v")})
	return [][]byte{
		pack(tb, lego), sign(lego.Copy()), sign(certbot), sign(pre), sign(edns),
		pack(tb, query(chalOrg, dns.TypeSOA)), sign(query(chalOrg, dns.TypeSOA)),
	}
}

func FuzzServeDNS(f *testing.F) {
	for _, tc := range malformedCases() {
		f.Add(tc.b)
	}
	for _, tc := range checklistCases() {
		f.Add(pack(f, tc.q))
	}
	f.Add(pack(f, withEDNS(query("big."+origin, dns.TypeTXT), 700, true)))
	for _, b := range updateSeeds(f) {
		f.Add(b)
	}
	// The plain handler, and the public and gateway listeners with an
	// UPDATE handler (a backend that never changes, a fixed clock and no
	// rate limits, so a message gets the same reply twice).
	plain := testHandler(f)
	be := newFakeBackend()
	be.stateless = true
	be.set(chalOrg, "a", "b")
	u, err := dnsupdate.New(dnsupdate.Config{
		Backend: be, Zone: origin, MName: "ns1.acme.example.net.", RName: "hostmaster.example.net.",
		Limits: dnsupdate.Limits{FailuresPerSource: ratelimitOff, FailuresPerKey: ratelimitOff, UpdatesPerKey: ratelimitOff},
		Now:    func() time.Time { return fuzzNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	cfg := testConfig()
	cfg.Updates = u
	public, err := NewHandler(cfg, testView(f))
	if err != nil {
		f.Fatal(err)
	}
	cfg.Gateway = true
	gateway, err := NewHandler(cfg, testView(f))
	if err != nil {
		f.Fatal(err)
	}

	// respond is the pipeline the UDP batch loops run, and what miekg's
	// server does over TCP (TestRespondMatchesMiekgTCP). It has no recover,
	// so a panic fails the fuzz run. A Msg reused across runs, as the loops
	// do, must not carry anything from one message into the next reply.
	req := new(dns.Msg)
	f.Fuzz(func(t *testing.T, m []byte) {
		for i, tr := range []Transport{UDP, TCP, UDP, TCP, UDP, TCP} {
			h := []*Handler{plain, public, gateway}[i/2]
			b, _, v := h.respond(nil, req, m, tr, nil)
			if fresh, _, fv := h.respond(nil, new(dns.Msg), m, tr, nil); fv != v || !bytes.Equal(fresh, b) {
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
