package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/zone"
)

// want describes the parts of a reply a checklist line cares about.
type want struct {
	rcode      int
	aa         bool
	answer     []uint16 // types, in order; nil means empty
	nsSOA      bool     // exactly one SOA in authority
	noNS       bool     // authority must be empty
	extraTypes []uint16 // additional record types other than OPT, in order
	check      func(t *testing.T, r *dns.Msg)
}

func checkReply(t *testing.T, q, r *dns.Msg, w want) {
	t.Helper()
	if r.Rcode != w.rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[w.rcode])
	}
	if r.Authoritative != w.aa {
		t.Errorf("AA %v, want %v", r.Authoritative, w.aa)
	}
	if r.RecursionAvailable {
		t.Error("RA set")
	}
	if r.RecursionDesired != q.RecursionDesired {
		t.Errorf("RD %v, query had %v", r.RecursionDesired, q.RecursionDesired)
	}
	if r.Truncated {
		t.Error("TC set")
	}
	var types []uint16
	for _, rr := range r.Answer {
		types = append(types, rr.Header().Rrtype)
	}
	if !slices.Equal(types, w.answer) {
		t.Errorf("answer types %v, want %v (answer %v)", types, w.answer, r.Answer)
	}
	if w.nsSOA {
		soa := soaOf(t, r.Ns)
		if soa.Hdr.Ttl > min(soa.Hdr.Ttl, soa.Minttl) || soa.Hdr.Ttl != 60 {
			t.Errorf("negative SOA TTL %d, want min(SOA TTL, minimum) = 60", soa.Hdr.Ttl)
		}
		if soa.Hdr.Name != origin && !strings.EqualFold(soa.Hdr.Name, origin) {
			t.Errorf("authority SOA owner %q", soa.Hdr.Name)
		}
		if soa.Serial != testSer {
			t.Errorf("serial %d", soa.Serial)
		}
	}
	if w.noNS && len(r.Ns) != 0 {
		t.Errorf("authority %v, want empty", r.Ns)
	}
	var extra []uint16
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr.Header().Rrtype)
		}
	}
	if !slices.Equal(extra, w.extraTypes) {
		t.Errorf("additional types %v, want %v", extra, w.extraTypes)
	}
	if (q.IsEdns0() != nil) != (r.IsEdns0() != nil) && r.Rcode != dns.RcodeFormatError {
		t.Errorf("OPT in query %v, in reply %v", q.IsEdns0() != nil, r.IsEdns0() != nil)
	}
	if w.check != nil {
		w.check(t, r)
	}
}

var (
	nodata   = want{aa: true, nsSOA: true}
	nxdomain = want{rcode: dns.RcodeNameError, aa: true, nsSOA: true}
	refused  = want{rcode: dns.RcodeRefused, noNS: true}
)

func withRD(m *dns.Msg) *dns.Msg { m.RecursionDesired = true; return m }

func withClass(m *dns.Msg, class uint16) *dns.Msg { m.Question[0].Qclass = class; return m }

func withOpcode(m *dns.Msg, op int) *dns.Msg { m.Opcode = op; return m }

type checklistCase struct {
	name string
	line string
	net  string
	q    *dns.Msg
	want want
}

// checklistCases are DNS-CHECKLIST.md section A, one or more per line.
func checklistCases() []checklistCase {
	return []checklistCase{
		{"apex SOA", "A.1", "udp", query(origin, dns.TypeSOA), want{aa: true, answer: []uint16{dns.TypeSOA}, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			soa := r.Answer[0].(*dns.SOA)
			if soa.Serial != testSer || soa.Ns != "ns1.acme.example.net." || soa.Mbox != "hostmaster.example.net." || soa.Minttl != 60 || soa.Hdr.Ttl != 3600 {
				t.Errorf("SOA %v", soa)
			}
		}}},
		{"apex SOA with RD", "A.1", "udp", withRD(query(origin, dns.TypeSOA)), want{aa: true, answer: []uint16{dns.TypeSOA}}},
		{"apex SOA over TCP", "A.1", "tcp", withRD(query(origin, dns.TypeSOA)), want{aa: true, answer: []uint16{dns.TypeSOA}}},
		{"apex NS with glue", "A.1", "udp", query(origin, dns.TypeNS), want{aa: true, answer: []uint16{dns.TypeNS, dns.TypeNS, dns.TypeNS},
			extraTypes: []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeA}, check: func(t *testing.T, r *dns.Msg) {
				t.Helper()
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.(*dns.NS).Ns)
				}
				if !slices.Equal(got, []string{"ns1.acme.example.net.", "ns2.dns.acme.example.net.", "ns.example.org."}) {
					t.Errorf("NS %v", got)
				}
				if a := r.Extra[0].(*dns.A); a.Hdr.Name != "ns1.acme.example.net." || a.A.String() != "192.0.2.1" {
					t.Errorf("glue %v", a)
				}
			}}},
		{"glue name A", "A.1", "udp", query("ns1."+origin, dns.TypeA), want{aa: true, answer: []uint16{dns.TypeA}}},
		{"glue name AAAA", "A.1", "udp", query("ns1."+origin, dns.TypeAAAA), want{aa: true, answer: []uint16{dns.TypeAAAA}}},
		{"glue name without AAAA", "A.3", "udp", query("ns2.dns."+origin, dns.TypeAAAA), nodata},
		{"glue name TXT", "A.3", "udp", query("ns1."+origin, dns.TypeTXT), nodata},

		{"NXDOMAIN", "A.2", "udp", query("nope."+origin, dns.TypeTXT), nxdomain},
		{"NXDOMAIN below a value", "A.2", "udp", query("sub.abc."+origin, dns.TypeTXT), nxdomain},
		{"NXDOMAIN odd bytes", "A.2", "udp", query(`a\.b\000.`+origin, dns.TypeTXT), nxdomain},

		{"NODATA label A", "A.3", "udp", query("label."+origin, dns.TypeA), nodata},
		{"NODATA label TXT", "A.3", "udp", query("label."+origin, dns.TypeTXT), nodata},
		{"NODATA TXT name A", "A.3", "udp", query("abc."+origin, dns.TypeA), nodata},
		{"NODATA TXT name AAAA", "A.3", "udp", query("abc."+origin, dns.TypeAAAA), nodata},
		{"NODATA TXT name TYPE666", "A.3", "udp", query("abc."+origin, 666), nodata},
		{"NODATA apex TXT", "A.3", "udp", query(origin, dns.TypeTXT), nodata},
		{"NODATA apex A", "A.3", "udp", query(origin, dns.TypeA), nodata},

		{"ENT", "A.4", "udp", query("deep."+origin, dns.TypeTXT), nodata},
		{"ENT of a nameserver", "A.4", "udp", query("dns."+origin, dns.TypeA), nodata},

		{"SOA at a TXT name", "A.5", "udp", query("abc."+origin, dns.TypeSOA), nodata},
		{"SOA at a label", "A.5", "udp", query("label."+origin, dns.TypeSOA), nodata},
		{"SOA at an ENT", "A.5", "udp", query("deep."+origin, dns.TypeSOA), nodata},
		{"SOA at a missing name", "A.5", "udp", query("_acme-challenge.nope."+origin, dns.TypeSOA), nxdomain},

		{"CAA at apex", "A.6", "udp", query(origin, dns.TypeCAA), nodata},
		{"CAA at TXT name", "A.6", "udp", query("abc."+origin, dns.TypeCAA), nodata},
		{"CAA at ENT", "A.6", "udp", query("deep."+origin, dns.TypeCAA), nodata},
		{"CAA at missing name", "A.6", "udp", query("nope."+origin, dns.TypeCAA), nxdomain},

		{"out of zone", "A.7", "udp", query("example.org.", dns.TypeSOA), refused},
		{"parent of the zone", "A.7", "udp", query("example.net.", dns.TypeNS), refused},
		{"sibling sharing a suffix", "A.7", "udp", query("xacme.example.net.", dns.TypeTXT), refused},
		{"escaped dot is not a zone cut", "A.7", "udp", query(`x\.acme.example.net.`, dns.TypeTXT), refused},
		{"root", "A.7", "udp", query(".", dns.TypeNS), refused},
		{"CH version.bind", "A.7", "udp", withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS), refused},
		{"CH in zone", "A.7", "udp", withClass(query("abc."+origin, dns.TypeTXT), dns.ClassCHAOS), refused},
		{"HS class", "A.7", "udp", withClass(query(origin, dns.TypeSOA), dns.ClassHESIOD), refused},
		{"ANY class", "A.7", "udp", withClass(query(origin, dns.TypeSOA), dns.ClassANY), refused},

		{"0x20 TXT", "A.8", "udp", query("AbC.AcMe.ExAmPlE.nEt.", dns.TypeTXT), want{aa: true, answer: []uint16{dns.TypeTXT, dns.TypeTXT}, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if r.Question[0].Name != "AbC.AcMe.ExAmPlE.nEt." {
				t.Errorf("question %q", r.Question[0].Name)
			}
			for _, rr := range r.Answer {
				if rr.Header().Name != "AbC.AcMe.ExAmPlE.nEt." {
					t.Errorf("owner %q", rr.Header().Name)
				}
			}
			if got := r.Answer[0].(*dns.TXT).Txt; !slices.Equal(got, []string{acmeValue}) || r.Answer[0].Header().Ttl != 120 {
				t.Errorf("TXT %v", r.Answer[0])
			}
		}}},
		{"0x20 NXDOMAIN", "A.8", "udp", query("NoPe.ACME.example.NET.", dns.TypeTXT), want{rcode: dns.RcodeNameError, aa: true, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if r.Question[0].Name != "NoPe.ACME.example.NET." {
				t.Errorf("question %q", r.Question[0].Name)
			}
		}}},
		{"0x20 apex", "A.8", "udp", query("ACME.Example.Net.", dns.TypeSOA), want{aa: true, answer: []uint16{dns.TypeSOA}, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if r.Answer[0].Header().Name != "ACME.Example.Net." {
				t.Errorf("owner %q", r.Answer[0].Header().Name)
			}
		}}},

		{"EDNS OPT echoed", "A.9", "udp", withEDNS(query("abc."+origin, dns.TypeTXT), 4096, false), want{aa: true, answer: []uint16{dns.TypeTXT, dns.TypeTXT}, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			opt := r.IsEdns0()
			if opt.Version() != 0 || opt.UDPSize() != 1232 || opt.Do() || len(opt.Option) != 0 {
				t.Errorf("OPT %v", opt)
			}
		}}},
		{"EDNS DO echoed", "A.9", "udp", withEDNS(query(origin, dns.TypeSOA), 1232, true), want{aa: true, answer: []uint16{dns.TypeSOA}, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if !r.IsEdns0().Do() {
				t.Error("DO not echoed")
			}
		}}},
		{"EDNS unknown options and flags not echoed", "A.9", "udp", func() *dns.Msg {
			m := withEDNS(query(origin, dns.TypeSOA), 1232, false)
			opt := m.IsEdns0()
			opt.Hdr.Ttl |= 0x4000 // an unknown flag
			opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte("hello")}, &dns.EDNS0_NSID{Code: dns.EDNS0NSID},
				&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
			return m
		}(), want{aa: true, answer: []uint16{dns.TypeSOA}, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			opt := r.IsEdns0()
			if len(opt.Option) != 0 || opt.Hdr.Ttl&0xFFFF != 0 {
				t.Errorf("OPT echoed options or flags: %v", opt)
			}
		}}},
		{"EDNS version 1", "A.9", "udp", func() *dns.Msg {
			m := withEDNS(query("abc."+origin, dns.TypeTXT), 1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}(), want{rcode: dns.RcodeBadVers, noNS: true, check: func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if opt := r.IsEdns0(); opt == nil || opt.Version() != 0 {
				t.Errorf("BADVERS without an OPT of version 0: %v", opt)
			}
		}}},
		{"EDNS two OPT", "A.9", "udp", func() *dns.Msg {
			m := withEDNS(query(origin, dns.TypeSOA), 1232, false)
			m.Extra = append(m.Extra, m.Extra[0])
			return m
		}(), want{rcode: dns.RcodeFormatError, noNS: true}},

		{"query over 1232 bytes", "A.10", "udp", func() *dns.Msg {
			m := withEDNS(query("abc."+origin, dns.TypeTXT), 1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 1300)})
			return m
		}(), want{aa: true, answer: []uint16{dns.TypeTXT, dns.TypeTXT}}},

		{"fits in 512 without EDNS", "A.11", "udp", query("abc."+origin, dns.TypeTXT), want{aa: true, answer: []uint16{dns.TypeTXT, dns.TypeTXT}}},

		{"TCP full big answer", "A.12", "tcp", query("big."+origin, dns.TypeTXT), want{aa: true, answer: slices.Repeat([]uint16{dns.TypeTXT}, 40)}},

		{"ANY at a TXT name", "A.13", "udp", query("abc."+origin, dns.TypeANY), want{aa: true, answer: []uint16{dns.TypeTXT, dns.TypeTXT}}},
		{"ANY at the apex", "A.13", "udp", query(origin, dns.TypeANY), want{aa: true, answer: []uint16{dns.TypeSOA}}},
		{"ANY at a nameserver", "A.13", "udp", query("ns1."+origin, dns.TypeANY), want{aa: true, answer: []uint16{dns.TypeA}}},
		{"ANY at a label", "A.13", "udp", query("label."+origin, dns.TypeANY), nodata},
		{"ANY over TCP", "A.13", "tcp", query(origin, dns.TypeANY), want{aa: true, answer: []uint16{dns.TypeSOA}}},

		{"AXFR", "A.14", "tcp", query(origin, dns.TypeAXFR), refused},
		{"IXFR", "A.14", "tcp", func() *dns.Msg {
			m := new(dns.Msg)
			m.SetIxfr(origin, testSer-1, "ns1."+origin, "hostmaster.example.net.")
			return m
		}(), refused},
		{"AXFR over UDP", "A.14", "udp", query(origin, dns.TypeAXFR), refused},
		{"NOTIFY from a stranger", "A.14", "udp", func() *dns.Msg { m := new(dns.Msg); m.SetNotify(origin); return m }(),
			want{rcode: dns.RcodeRefused, noNS: true, check: func(t *testing.T, r *dns.Msg) {
				t.Helper()
				if r.Opcode != dns.OpcodeNotify {
					t.Errorf("opcode %d", r.Opcode)
				}
			}}},
		{"UPDATE without TSIG", "A.14", "udp", func() *dns.Msg {
			m := new(dns.Msg)
			m.SetUpdate(origin)
			m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "evil." + origin, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"x"}}})
			m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "evil2." + origin, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"y"}}})
			return m
		}(), want{rcode: dns.RcodeRefused, noNS: true}},
		{"UPDATE over TCP", "A.14", "tcp", func() *dns.Msg { m := new(dns.Msg); m.SetUpdate(origin); return m }(), want{rcode: dns.RcodeRefused, noNS: true}},

		{"opcode IQUERY", "A.15", "udp", withOpcode(query(origin, dns.TypeSOA), dns.OpcodeIQuery), want{rcode: dns.RcodeNotImplemented, noNS: true}},
		{"opcode STATUS", "A.15", "udp", withOpcode(query(origin, dns.TypeSOA), dns.OpcodeStatus), want{rcode: dns.RcodeNotImplemented, noNS: true}},
		{"opcode 3", "A.15", "tcp", withOpcode(query(origin, dns.TypeSOA), 3), want{rcode: dns.RcodeNotImplemented, noNS: true}},
		{"opcode 15 with RD", "A.15", "udp", withRD(withOpcode(query(origin, dns.TypeSOA), 15)), want{rcode: dns.RcodeNotImplemented, noNS: true}},
	}
}

// TestChecklistA runs DNS-CHECKLIST.md section A against a real server,
// one case per line (A.16 is about several servers; A.14's transfers with
// keys come later).
func TestChecklistA(t *testing.T) {
	t.Parallel()
	v := testView(t)
	_, addr := startServer(t, v)
	t.Run("cases", func(t *testing.T) {
		for _, tc := range checklistCases() {
			t.Run(tc.line+" "+tc.name, func(t *testing.T) {
				t.Parallel()
				r := exchange(t, tc.net, addr, tc.q)
				checkReply(t, tc.q, r, tc.want)
			})
		}
	})
	// A.14: the refused UPDATEs changed nothing.
	if got := v.Lookup("evil." + origin).Kind; got != zone.KindNXDomain || v.Serial() != testSer {
		t.Fatalf("after UPDATE: evil is %v, serial %d", got, v.Serial())
	}
}

// TestChecklistA11Truncation: an answer that does not fit is sent with TC
// and no records at all, within 512 bytes (no EDNS) or the EDNS size.
func TestChecklistA11Truncation(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, testView(t))
	tests := []struct {
		name  string
		edns  uint16 // 0: no OPT
		limit int
	}{
		{"no EDNS", 0, 512},
		{"EDNS 4096 capped at 1232", 4096, 1232},
		{"EDNS 1232", 1232, 1232},
		{"EDNS 800", 800, 800},
		{"EDNS below 512 counts as 512", 100, 512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := query("big."+origin, dns.TypeTXT)
			if tc.edns > 0 {
				withEDNS(q, tc.edns, false)
			}
			b := rawUDP(t, addr, pack(t, q), 3*time.Second)
			if b == nil {
				t.Fatal("no reply")
			}
			if len(b) > tc.limit {
				t.Fatalf("reply %d bytes, limit %d", len(b), tc.limit)
			}
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if !r.Truncated || len(r.Answer) != 0 || len(r.Ns) != 0 || r.Rcode != dns.RcodeSuccess || !r.Authoritative {
				t.Fatalf("want TC, no records: %v", r)
			}
			if (tc.edns > 0) != (r.IsEdns0() != nil) {
				t.Fatalf("OPT presence wrong: %v", r)
			}
			if len(b) > 64 {
				t.Fatalf("truncated reply is %d bytes; NSD/Knot send ~42", len(b))
			}
		})
	}
	// The 40 values do fit over TCP, as the client retries there.
	r := exchange(t, "tcp", addr, query("big."+origin, dns.TypeTXT))
	if len(r.Answer) != 40 || r.Truncated {
		t.Fatalf("TCP: %d answers, TC %v", len(r.Answer), r.Truncated)
	}
}

// TestChecklistA12Pipelining writes many queries on one TCP connection
// before reading anything (RFC 7766 6.2.1.1) and expects every answer.
func TestChecklistA12Pipelining(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, testView(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	const n = 300 // more than miekg's default of 128 queries per connection
	var out bytes.Buffer
	names := []string{"abc." + origin, "nope." + origin, origin, "big." + origin}
	for i := range n {
		q := query(names[i%len(names)], dns.TypeTXT)
		q.Id = uint16(i + 1)
		b := pack(t, q)
		out.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b))))
		out.Write(b)
	}
	if _, err := c.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	seen := map[uint16]bool{}
	for range n {
		var l uint16
		if err := binary.Read(c, binary.BigEndian, &l); err != nil {
			t.Fatalf("after %d answers: %v", len(seen), err)
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		seen[r.Id] = true
		if want := names[(int(r.Id)-1)%len(names)]; r.Question[0].Name != want {
			t.Fatalf("answer %d is for %s, want %s", r.Id, r.Question[0].Name, want)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct answers, want %d", len(seen), n)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.TCPIdleTimeout = 200 * time.Millisecond
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
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(query(origin, dns.TypeSOA)); err != nil {
		t.Fatal(err)
	}
	if _, err := co.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
}

func TestUnloadedViewServfail(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, zone.NewView(origin))
	for _, q := range []*dns.Msg{query(origin, dns.TypeSOA), query("nope."+origin, dns.TypeTXT)} {
		r := exchange(t, "udp", addr, q)
		if r.Rcode != dns.RcodeServerFailure || r.Authoritative {
			t.Fatalf("unloaded view: %v", r)
		}
	}
}

func TestListenIPv6AndSeveralAddrs(t *testing.T) {
	t.Parallel()
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		_ = ln.Close()
	}
	s, _ := startServer(t, testView(t), "127.0.0.1:0", "[::1]:0")
	addrs := s.Addrs()
	if len(addrs) != 4 {
		t.Fatalf("addrs %v", addrs)
	}
	for _, a := range addrs {
		network := "udp"
		if _, ok := a.(*net.TCPAddr); ok {
			network = "tcp"
		}
		r := exchange(t, network, a.String(), query("abc."+origin, dns.TypeTXT))
		if len(r.Answer) != 2 {
			t.Fatalf("%s %s: %v", network, a, r)
		}
	}
	// UDP and TCP share a port per address.
	if addrs[0].(*net.UDPAddr).Port != addrs[2].(*net.TCPAddr).Port {
		t.Errorf("udp %v and tcp %v ports differ", addrs[0], addrs[2])
	}
}

func TestAttachAndViewUpdates(t *testing.T) {
	t.Parallel()
	v := testView(t)
	s, err := New(testConfig(), v)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(pc, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	addr := pc.LocalAddr().String()
	name := "fresh." + origin
	if r := exchange(t, "udp", addr, query(name, dns.TypeTXT)); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %v", r)
	}
	if err := v.Apply([]zone.Change{{Serial: testSer + 1, Op: zone.OpAddValue, Name: name, Value: "new", TTL: 30}}); err != nil {
		t.Fatal(err)
	}
	r := exchange(t, "udp", addr, query(name, dns.TypeTXT))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "new" {
		t.Fatalf("after: %v", r)
	}
	if soa := exchange(t, "udp", addr, query(origin, dns.TypeSOA)).Answer[0].(*dns.SOA); soa.Serial != testSer+1 {
		t.Fatalf("serial %d", soa.Serial)
	}
}

func TestServeStopsOnContext(t *testing.T) {
	t.Parallel()
	s, err := New(testConfig(), testView(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	addr := ""
	deadline := time.Now().Add(5 * time.Second)
	for addr == "" || !answers(addr) {
		if time.Now().After(deadline) {
			t.Fatal("server did not come up")
		}
		addr = s.Addrs()[0].String()
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if answers(addr) {
		t.Fatal("still answering after shutdown")
	}
}

func answers(addr string) bool {
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	_, _, err := c.Exchange(query(origin, dns.TypeSOA), addr)
	return err == nil
}
