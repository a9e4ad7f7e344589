package dnsserver

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// header builds a 12-byte DNS header.
func header(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 0, 12)
	for _, v := range []uint16{id, flags, qd, an, ns, ar} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func question(name string, qtype uint16) []byte {
	b := packName(name)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, dns.ClassINET)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var optRR = []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0} // OPT, size 1232

type malformed struct {
	name    string
	b       []byte
	silent  bool // no reply expected
	noerror bool // a real answer expected
}

// malformedCases are DNS-CHECKLIST.md section B; they also seed FuzzServeDNS.
func malformedCases() []malformed {
	q := question("abc."+origin, dns.TypeTXT)
	padded := new(dns.Msg)
	padded.SetQuestion("abc."+origin, dns.TypeTXT)
	padded.SetEdns0(1232, false)
	padded.IsEdns0().Option = append(padded.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 1400-12-len(q)-11-4)})
	paddedWire, err := padded.Pack()
	if err != nil {
		panic(err)
	}
	return []malformed{
		{name: "truncated header", b: []byte{0x12, 0x34, 0x01, 0x00, 0x00}, silent: true},
		{name: "QDCOUNT 0", b: header(1, 0, 0, 0, 0, 0)},
		{name: "QDCOUNT 0 with echoable flags", b: header(1, 0x0200|0x0080|0x0020|0x0040, 0, 0, 0, 0)},
		{name: "QDCOUNT 2", b: cat(header(2, 0, 2, 0, 0, 0), q, q)},
		{name: "QDCOUNT 2 without data", b: header(2, 0, 2, 0, 0, 0)},
		{name: "compression self-loop", b: cat(header(3, 0, 1, 0, 0, 0), []byte{0xC0, 0x0C, 0, 16, 0, 1})},
		{name: "compression loop pair", b: cat(header(3, 0, 1, 0, 0, 0), []byte{1, 'a', 0xC0, 0x0C, 0, 16, 0, 1})},
		{name: "pointer past the end", b: cat(header(4, 0, 1, 0, 0, 0), []byte{0xC0, 0xFF, 0, 16, 0, 1})},
		{name: "label longer than the packet", b: cat(header(5, 0, 1, 0, 0, 0), []byte{0x3F, 'a', 'b', 'c'})},
		{name: "question without type", b: cat(header(5, 0, 1, 0, 0, 0), packName("abc."+origin))},
		{name: "QR=1", b: cat(header(6, 0x8000, 1, 0, 0, 0), q), silent: true},
		{name: "QR=1 garbage", b: cat(header(6, 0x8400, 9, 9, 9, 9), []byte{0xff, 0xff}), silent: true},
		{name: "two OPT", b: cat(header(7, 0, 1, 0, 0, 2), q, optRR, optRR)},
		{name: "OPT rdlength overflow", b: cat(header(8, 0, 1, 0, 0, 1), q, []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3})},
		{name: "OPT not at the root", b: cat(header(8, 0, 1, 0, 0, 1), q, []byte{1, 'x', 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0})},
		{name: "ARCOUNT 5000 without data", b: cat(header(9, 0, 1, 0, 0, 5000), q)},
		{name: "ANCOUNT in a query", b: cat(header(10, 0, 1, 1, 0, 0), q)},
		{name: "unknown opcode garbage", b: cat(header(11, 7<<11, 7, 7, 7, 7), []byte{0xC0, 0x0C})},
		{name: "name over 255 bytes via pointers", b: func() []byte {
			// 4 labels of 63 bytes then a pointer back into them: over 255 once expanded.
			b := header(12, 0, 1, 0, 0, 0)
			for range 4 {
				b = append(b, 63)
				b = append(b, make([]byte, 63)...)
			}
			return append(b, 0xC0, 0x0C, 0, 16, 0, 1)
		}()},
		{name: "padded 1400-byte query", b: paddedWire, noerror: true},
	}
}

// TestChecklistB sends each malformed packet over UDP to a real server: the
// reply, if any, is a FORMERR no larger than max(query, 512) bytes, and the
// server still answers a normal query afterwards.
func TestChecklistB(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, testView(t))
	for _, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wait := 3 * time.Second
			if tc.silent {
				wait = 300 * time.Millisecond
			}
			b := rawUDP(t, addr, tc.b, wait)
			switch {
			case tc.silent && b != nil:
				t.Fatalf("got a %d-byte reply, want none", len(b))
			case !tc.silent && b == nil:
				t.Fatal("no reply")
			}
			if b != nil {
				if limit := max(len(tc.b), 512); len(b) > limit {
					t.Fatalf("reply %d bytes > %d", len(b), limit)
				}
				r := new(dns.Msg)
				if err := r.Unpack(b); err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if r.Id != binary.BigEndian.Uint16(tc.b) || !r.Response {
					t.Fatalf("id %d response %v", r.Id, r.Response)
				}
				if r.RecursionAvailable || r.Truncated || r.AuthenticatedData || r.Zero {
					t.Fatalf("echoed flags: %v", r.MsgHdr)
				}
				want := dns.RcodeFormatError
				if tc.noerror {
					want = dns.RcodeSuccess
				} else if tc.name == "unknown opcode garbage" {
					want = dns.RcodeNotImplemented
				}
				if r.Rcode != want {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
				}
			}
			if r := exchange(t, "udp", addr, query("abc."+origin, dns.TypeTXT)); len(r.Answer) != 2 {
				t.Fatalf("normal query after the malformed one: %v", r)
			}
		})
	}
}
