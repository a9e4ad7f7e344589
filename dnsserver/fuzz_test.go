package dnsserver

import (
	"encoding/binary"
	"testing"

	"github.com/miekg/dns"
)

// serveWire answers one wire message the way the server does: it mirrors
// miekg's Server.serveDNS (v1.1.73) around our parts (header, acceptMsg,
// Unpack, then Answer, or miekg's own FORMERR/NOTIMP through our guard).
// Answer is called directly, not through the shell, so a panic is not
// hidden by the shell's recover.
func serveWire(h *Handler, m []byte, t Transport) (reply []byte, sent bool) {
	if len(m) < hdrLen {
		return nil, false // miekg drops these
	}
	dh := dns.Header{
		Id: binary.BigEndian.Uint16(m), Bits: binary.BigEndian.Uint16(m[2:]),
		Qdcount: binary.BigEndian.Uint16(m[4:]), Ancount: binary.BigEndian.Uint16(m[6:]),
		Nscount: binary.BigEndian.Uint16(m[8:]), Arcount: binary.BigEndian.Uint16(m[10:]),
	}
	req := new(dns.Msg)
	action := acceptMsg(dh)
	switch action {
	case dns.MsgIgnore:
		return nil, false
	case dns.MsgAccept:
		if err := req.Unpack(m); err == nil {
			b, _ := h.Answer(nil, req, t)
			return b, true
		}
	default:
		_ = req.Unpack(m[:hdrLen]) // miekg only has the header here
	}
	opcode := req.Opcode
	req.SetRcodeFormatError(req)
	req.Zero = false
	if action == dns.MsgRejectNotImplemented {
		req.Opcode, req.Rcode = opcode, dns.RcodeNotImplemented
	}
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	b, err := req.Pack()
	if err != nil {
		return nil, false
	}
	w := &recorder{tcp: t == TCP}
	if _, err := h.guardWriter(t)(w).Write(b); err != nil {
		return nil, false
	}
	return w.writes[0], true
}

func FuzzServeDNS(f *testing.F) {
	for _, tc := range malformedCases() {
		f.Add(tc.b)
	}
	for _, tc := range checklistCases() {
		f.Add(pack(f, tc.q))
	}
	f.Add(pack(f, withEDNS(query("big."+origin, dns.TypeTXT), 700, true)))
	h := testHandler(f)

	f.Fuzz(func(t *testing.T, m []byte) {
		for _, tr := range []Transport{UDP, TCP} {
			b, sent := serveWire(h, m, tr)
			if !sent {
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
