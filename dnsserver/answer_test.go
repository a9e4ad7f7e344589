package dnsserver

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/zone"
)

func answerMsg(t *testing.T, h *Handler, q *dns.Msg, tr Transport) (*dns.Msg, []byte) {
	t.Helper()
	b, rcode := h.Answer(nil, q, tr)
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if r.Rcode != rcode {
		t.Fatalf("returned rcode %d, reply has %d", rcode, r.Rcode)
	}
	if _, err := r.Pack(); err != nil {
		t.Fatalf("reply does not re-pack: %v", err)
	}
	return r, b
}

// TestAnswerChecklist runs the section A cases through the pure function.
func TestAnswerChecklist(t *testing.T) {
	t.Parallel()
	h := testHandler(t)
	for _, tc := range checklistCases() {
		t.Run(tc.line+" "+tc.name, func(t *testing.T) {
			t.Parallel()
			tr := UDP
			if tc.net == "tcp" {
				tr = TCP
			}
			// Through the wire, as the server receives it.
			q := new(dns.Msg)
			if err := q.Unpack(pack(t, tc.q)); err != nil {
				t.Fatal(err)
			}
			r, _ := answerMsg(t, h, q, tr)
			if r.Id != q.Id || !r.Response || r.Opcode != q.Opcode {
				t.Fatalf("header %v", r.MsgHdr)
			}
			checkReply(t, q, r, tc.want)
		})
	}
}

func TestAnswerDetails(t *testing.T) {
	t.Parallel()
	v := zone.NewView(origin)
	v.Reset(zone.Snapshot{
		Serial: 1<<32 + 5, // published mod 2^32
		Values: []zone.Value{
			{Name: "mixed." + origin, Value: "a", TTL: 300},
			{Name: "mixed." + origin, Value: "b", TTL: 30},
		},
	})
	h, err := NewHandler(testConfig(), v)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := answerMsg(t, h, query(origin, dns.TypeSOA), UDP)
	if soa := r.Answer[0].(*dns.SOA); soa.Serial != 5 {
		t.Errorf("serial %d, want 5 (mod 2^32)", soa.Serial)
	}
	r, _ = answerMsg(t, h, query("mixed."+origin, dns.TypeTXT), UDP)
	for _, rr := range r.Answer {
		if rr.Header().Ttl != 30 {
			t.Errorf("TTL %d: one RRset, one TTL (the smallest)", rr.Header().Ttl)
		}
	}
	// Without a question section.
	q := query(origin, dns.TypeSOA)
	q.Question = nil
	if r, b := answerMsg(t, h, q, UDP); r.Rcode != dns.RcodeFormatError || len(b) != hdrLen {
		t.Errorf("no question: %v (%d bytes)", r, len(b))
	}
	// A name that is not fully qualified (only a direct caller can send one).
	if r, _ := answerMsg(t, h, query("abc", dns.TypeTXT), UDP); r.Rcode != dns.RcodeFormatError {
		t.Errorf("non-fqdn: %v", r)
	}
	// QTYPE OPT and the mailbox meta-types.
	if r, _ := answerMsg(t, h, query(origin, dns.TypeOPT), UDP); r.Rcode != dns.RcodeFormatError {
		t.Errorf("qtype OPT: %v", r)
	}
	if r, _ := answerMsg(t, h, query(origin, dns.TypeMAILB), UDP); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("qtype MAILB: %v", r)
	}
	// CD is copied like RD.
	q = query(origin, dns.TypeSOA)
	q.CheckingDisabled, q.AuthenticatedData = true, true
	if r, _ := answerMsg(t, h, q, UDP); !r.CheckingDisabled || r.AuthenticatedData {
		t.Errorf("CD/AD: %v", r.MsgHdr)
	}
}

// TestAnswerAllocations checks the hot path writes into the caller's
// buffer without allocating.
func TestAnswerAllocations(t *testing.T) {
	h := testHandler(t)
	tests := []struct {
		name string
		q    *dns.Msg
	}{
		{"TXT hit", query("abc."+origin, dns.TypeTXT)},
		{"TXT hit 0x20", query("ABC.acme.Example.NET.", dns.TypeTXT)},
		{"TXT hit EDNS", withEDNS(query("abc."+origin, dns.TypeTXT), 1232, true)},
		{"NXDOMAIN", query("nope."+origin, dns.TypeTXT)},
		{"NODATA", query("label."+origin, dns.TypeA)},
		{"apex NS", query(origin, dns.TypeNS)},
		{"truncated", query("big."+origin, dns.TypeTXT)},
		{"refused", query("example.org.", dns.TypeA)},
	}
	buf := make([]byte, 0, 4096)
	for _, tc := range tests {
		if n := testing.AllocsPerRun(200, func() { buf, _ = h.Answer(buf, tc.q, UDP) }); n != 0 {
			t.Errorf("%s: %v allocs per answer, want 0", tc.name, n)
		}
	}
}

type panicZone struct{}

func (panicZone) LookupBytes([]byte) zone.LookupResult { panic("boom") }

// recorder is a dns.ResponseWriter that keeps what was written.
type recorder struct {
	writes [][]byte
	tcp    bool
}

func (w *recorder) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *recorder) RemoteAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5353} }
func (w *recorder) Write(b []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(b))
	return len(b), nil
}
func (w *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}

func TestServeDNSPanicServfail(t *testing.T) {
	t.Parallel()
	var observed atomic.Int32
	cfg := testConfig()
	cfg.Observer = func(uint16, int, time.Duration) { observed.Add(1) }
	h, err := NewHandler(cfg, panicZone{})
	if err != nil {
		t.Fatal(err)
	}
	w := &recorder{}
	q := withRD(query("abc."+origin, dns.TypeTXT))
	(&shell{h: h, t: UDP}).ServeDNS(w, q)
	if len(w.writes) != 1 {
		t.Fatalf("%d writes, want exactly one", len(w.writes))
	}
	r := new(dns.Msg)
	if err := r.Unpack(w.writes[0]); err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeServerFailure || r.Id != q.Id || !r.Response || !r.RecursionDesired {
		t.Fatalf("reply %v", r)
	}
}

func TestServeDNSObserver(t *testing.T) {
	t.Parallel()
	type obs struct {
		qtype uint16
		rcode int
	}
	got := make(chan obs, 4)
	cfg := testConfig()
	cfg.Observer = func(qtype uint16, rcode int, _ time.Duration) { got <- obs{qtype, rcode} }
	h, err := NewHandler(cfg, testView(t))
	if err != nil {
		t.Fatal(err)
	}
	w := &recorder{}
	(&shell{h: h, t: UDP}).ServeDNS(w, query("nope."+origin, dns.TypeCAA))
	if o := <-got; o.qtype != dns.TypeCAA || o.rcode != dns.RcodeNameError {
		t.Fatalf("observed %+v", o)
	}
	// The replies miekg writes itself pass through the guard.
	g := h.guardWriter(UDP)(w)
	reply := header(9, 0x8000|0x0200|0x0400|0x0100, 0, 0, 0, 0)
	reply[3] = 0x80 | 0x40 | 0x20 | 0x10 | dns.RcodeFormatError
	if _, err := g.Write(reply); err != nil {
		t.Fatal(err)
	}
	if o := <-got; o.qtype != 0 || o.rcode != dns.RcodeFormatError {
		t.Fatalf("observed %+v", o)
	}
	sent := w.writes[len(w.writes)-1]
	if sent[2] != 0x81 || sent[3] != 0x10|dns.RcodeFormatError {
		t.Fatalf("guard left flags %08b %08b; want QR RD / CD FORMERR", sent[2], sent[3])
	}
	// Never more than 512 bytes over UDP.
	big := append(header(9, 0x8001, 1, 0, 0, 0), make([]byte, 600)...)
	if _, err := g.Write(big); err != nil {
		t.Fatal(err)
	}
	if n := len(w.writes[len(w.writes)-1]); n != hdrLen {
		t.Fatalf("guard let %d bytes through", n)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := Config{
		Origin:      ".",
		Nameservers: []NS{{Name: "bad name!"}, {Name: "ns.acme.example.net."}, {Name: "ns.example.org."}, {Name: "NS.example.org"}},
		Mbox:        "@",
		TTL:         time.Millisecond,
		Minimum:     -time.Second,
	}.validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"origin", "nameserver 1", "listed twice", "mbox", "ttl", "minimum"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	_, err = Config{Origin: origin, Nameservers: []NS{{Name: "ns1." + origin}}}.validate()
	if err == nil || !strings.Contains(err.Error(), "glue") {
		t.Errorf("in-zone nameserver without addresses: %v", err)
	}
	if _, err := (Config{Origin: `a*b.example.net`, Nameservers: []NS{{Name: "ns.example.org"}}}).validate(); err == nil || !strings.Contains(err.Error(), "origin") {
		t.Errorf("origin with a wildcard character: %v", err)
	}
	if _, err := (Config{Origin: origin}).validate(); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("no nameservers: %v", err)
	}

	c, err := Config{Origin: "ACME.Example.NET", Nameservers: []NS{{Name: "ns.example.org", Addrs: []netip.Addr{{}}}}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin != origin || c.Mbox != "hostmaster."+origin || c.Minimum != DefaultMinimum || c.TCPIdleTimeout != DefaultTCPIdleTimeout {
		t.Fatalf("defaults: %+v", c)
	}
	c, _ = Config{Origin: origin, Nameservers: []NS{{Name: "ns.example.org"}}, Mbox: "host.master@example.net"}.validate()
	if c.Mbox != `host\.master.example.net.` {
		t.Fatalf("mbox from address: %q", c.Mbox)
	}
	if _, err := New(Config{}, testView(t)); err == nil {
		t.Fatal("New accepted an empty config")
	}
	if _, err := NewHandler(testConfig(), nil); err == nil {
		t.Fatal("nil zone accepted")
	}
}

func TestServerLifecycleErrors(t *testing.T) {
	t.Parallel()
	s, err := New(testConfig(), testView(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start without sockets succeeded")
	}
	if err := s.Listen("no-port"); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
	// Shutdown before Start closes the bound sockets.
	s2, _ := New(testConfig(), testView(t))
	if err := s2.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := s2.Addrs()[0].String()
	if err := s2.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("port still held after Shutdown: %v", err)
	}
	_ = pc.Close()
	// A fixed port already in use is an error, not a silent move.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	s3, _ := New(testConfig(), testView(t))
	if err := s3.Listen(busy.LocalAddr().String()); err == nil {
		t.Fatal("Listen on a busy port succeeded")
	}
}
