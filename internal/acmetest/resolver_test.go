package acmetest

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// authServer runs a tiny authoritative server for hub.example.net. that
// knows one TXT name with two values. It answers REFUSED to queries with RD
// set (the Resolver must ask without recursion) and to names outside its
// zone.
func authServer(t *testing.T) string {
	t.Helper()
	const zone = "hub.example.net."
	soa := RR(t, zone+" 3600 IN SOA ns1."+zone+" hostmaster."+zone+" 7 3600 600 86400 60")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		switch {
		case req.RecursionDesired:
			m.Rcode = dns.RcodeRefused // the resolver must ask without recursion
		case !dns.IsSubDomain(zone, name):
			m.Rcode = dns.RcodeRefused
		case name == "abc."+zone && q.Qtype == dns.TypeTXT:
			m.Answer = []dns.RR{RR(t, "abc."+zone+" 60 IN TXT one"), RR(t, "abc."+zone+" 60 IN TXT two")}
		case name == "abc."+zone || name == zone:
			m.Ns = []dns.RR{soa}
		default:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{soa}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// closedUDPAddr returns a 127.0.0.1 address where nothing listens.
func closedUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

func TestResolver(t *testing.T) {
	t.Parallel()
	r := NewResolver(t)
	r.Forward("hub.example.net", authServer(t))
	r.Forward("down.example.net", closedUDPAddr(t))
	r.SetRecords(
		RR(t, "example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 30"),
		RR(t, "example.org. 3600 IN NS ns1.example.org."),
		RR(t, "_acme-challenge.example.org. 60 IN CNAME abc.hub.example.net."),
		RR(t, "_acme-challenge.a.b.example.org. 60 IN CNAME missing.hub.example.net."),
		RR(t, "loop1.example.org. 60 IN CNAME loop2.example.org."),
		RR(t, "loop2.example.org. 60 IN CNAME loop1.example.org."),
	)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		net    string
		rcode  int
		answer []string // "TYPE data", in order
		soa    bool     // a SOA in the authority section
	}{
		{name: "txt through cname", qname: "_acme-challenge.example.org.", qtype: dns.TypeTXT, rcode: dns.RcodeSuccess,
			answer: []string{"CNAME abc.hub.example.net.", `TXT "one"`, `TXT "two"`}},
		{name: "txt through cname over tcp", qname: "_ACME-challenge.Example.org.", qtype: dns.TypeTXT, net: "tcp", rcode: dns.RcodeSuccess,
			answer: []string{"CNAME abc.hub.example.net.", `TXT "one"`, `TXT "two"`}},
		{name: "cname itself", qname: "_acme-challenge.example.org.", qtype: dns.TypeCNAME, rcode: dns.RcodeSuccess,
			answer: []string{"CNAME abc.hub.example.net."}},
		{name: "caa through cname is nodata", qname: "_acme-challenge.example.org.", qtype: dns.TypeCAA, rcode: dns.RcodeSuccess,
			answer: []string{"CNAME abc.hub.example.net."}, soa: true},
		{name: "caa at the domain is nodata", qname: "example.org.", qtype: dns.TypeCAA, rcode: dns.RcodeSuccess, soa: true},
		{name: "caa at the parent is nodata", qname: "org.", qtype: dns.TypeCAA, rcode: dns.RcodeSuccess},
		{name: "a name nobody serves", qname: "example.com.", qtype: dns.TypeCAA, rcode: dns.RcodeNameError},
		{name: "soa at the apex", qname: "example.org.", qtype: dns.TypeSOA, rcode: dns.RcodeSuccess,
			answer: []string{"SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 30"}},
		{name: "empty non-terminal is nodata", qname: "a.b.example.org.", qtype: dns.TypeTXT, rcode: dns.RcodeSuccess, soa: true},
		{name: "unknown static name", qname: "nope.example.org.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, soa: true},
		{name: "cname to a missing forwarded name", qname: "_acme-challenge.a.b.example.org.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			answer: []string{"CNAME missing.hub.example.net."}, soa: true},
		{name: "forwarded nodata", qname: "hub.example.net.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, soa: true},
		{name: "forward zone server down", qname: "x.down.example.net.", qtype: dns.TypeTXT, rcode: dns.RcodeServerFailure},
		{name: "cname loop", qname: "loop1.example.org.", qtype: dns.TypeTXT, rcode: dns.RcodeServerFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := new(dns.Msg)
			m.SetQuestion(tc.qname, tc.qtype)
			m.RecursionDesired = tc.net == "" // lego's pre-check asks with RD=0
			m.SetEdns0(4096, false)
			resp, _, err := (&dns.Client{Net: tc.net}).Exchange(m, r.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Rcode != tc.rcode || !resp.RecursionAvailable {
				t.Errorf("rcode %s ra %v, want %s and RA", dns.RcodeToString[resp.Rcode], resp.RecursionAvailable, dns.RcodeToString[tc.rcode])
			}
			var got []string
			for _, rr := range resp.Answer {
				fields := strings.SplitN(rr.String(), "\t", 5)
				got = append(got, fields[3]+" "+fields[4])
			}
			if !slices.Equal(got, tc.answer) {
				t.Errorf("answer %q, want %q", got, tc.answer)
			}
			hasSOA := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tc.soa {
				t.Errorf("authority %v, want a SOA: %v", resp.Ns, tc.soa)
			}
		})
	}
}

func TestResolverSetRecordsReplacesRRsets(t *testing.T) {
	t.Parallel()
	r := NewResolver(t)
	r.SetRecords(RR(t, "x.example.org. 60 IN TXT old"), RR(t, "x.example.org. 60 IN A 192.0.2.1"))
	r.SetRecords(RR(t, "X.example.org. 60 IN TXT new"))
	if got := txtAt(t, r.Addr(), "x.example.org."); !slices.Equal(got, []string{"new"}) {
		t.Errorf("TXT after replace: %q", got)
	}
	m := new(dns.Msg)
	m.SetQuestion("x.example.org.", dns.TypeA)
	resp, _, err := new(dns.Client).Exchange(m, r.Addr())
	if err != nil || len(resp.Answer) != 1 {
		t.Errorf("the A record did not survive: %v %v", resp, err)
	}
	if n := len(r.Queries()); n != 2 {
		t.Errorf("Queries() has %d entries, want 2", n)
	}
}

func TestHubProviderConfig(t *testing.T) {
	t.Parallel()
	names := map[string]string{"example.org": "abc"}
	tests := []struct {
		name string
		cfg  HubProviderConfig
		want string // substring of the error; "" for none
	}{
		{name: "ok", cfg: HubProviderConfig{BaseURL: "http://127.0.0.1:1", Token: "t", Names: names}},
		{name: "no url", cfg: HubProviderConfig{Token: "t", Names: names}, want: "base url"},
		{name: "no token", cfg: HubProviderConfig{BaseURL: "http://127.0.0.1:1", Names: names}, want: "token"},
		{name: "no names", cfg: HubProviderConfig{BaseURL: "http://127.0.0.1:1", Token: "t"}, want: "names"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewHubProvider(tc.cfg)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
