package acmetest

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// AuthServer is an authoritative DNS server on 127.0.0.1 (UDP) for the
// zones it is given, answering from the records a test sets: AA, no
// recursion, a CNAME itself (never followed), NXDOMAIN or NODATA with the
// zone's SOA, REFUSED outside its zones or while told to refuse. It plays
// a domain's own nameservers in delegation-check tests.
type AuthServer struct {
	// Addr is its host:port.
	Addr  string
	zones []string

	mu     sync.Mutex
	rrs    []dns.RR
	refuse bool
}

// StartAuthServer starts an AuthServer for zones (fqdns); t.Cleanup stops it.
func StartAuthServer(t *testing.T, zones ...string) *AuthServer {
	t.Helper()
	a := &AuthServer{zones: zones}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.Addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: a}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return a
}

// Set replaces the records, given in zone-file syntax.
func (a *AuthServer) Set(t *testing.T, lines ...string) {
	t.Helper()
	rrs := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rrs = append(rrs, RR(t, l))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rrs = rrs
}

// Refuse makes it answer REFUSED to everything (true) or serve again.
func (a *AuthServer) Refuse(refuse bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse = refuse
}

// ServeDNS answers one query.
func (a *AuthServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	zone := ""
	for _, z := range a.zones {
		if dns.IsSubDomain(z, q.Name) {
			zone = z
		}
	}
	if zone == "" || a.refuse {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	m.Authoritative = true
	exists := false
	for _, rr := range a.rrs {
		h := rr.Header()
		exists = exists || dns.IsSubDomain(q.Name, h.Name)
		if strings.EqualFold(h.Name, q.Name) && (h.Rrtype == q.Qtype || h.Rrtype == dns.TypeCNAME) {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) == 0 {
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range a.rrs {
			if rr.Header().Rrtype == dns.TypeSOA && strings.EqualFold(rr.Header().Name, zone) {
				m.Ns = append(m.Ns, dns.Copy(rr))
			}
		}
	}
	_ = w.WriteMsg(m)
}

// ExampleOrgApex is the apex of example.org as the delegation-check tests
// serve it: SOA, two NS (ns1 and ns2) and their glue at 192.0.2.1 and .2,
// which the tests map to AuthServers' ports.
func ExampleOrgApex() []string {
	return []string{
		"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60",
		"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.org.",
		"ns1.example.org. 3600 IN A 192.0.2.1", "ns2.example.org. 3600 IN A 192.0.2.2",
	}
}

// FreePort returns a port that was free for both UDP and TCP on 127.0.0.1
// a moment ago, for a DNS server that cannot be told to pick its own
// (Knot, or a hub restarted on the same port).
func FreePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = pc.Close()
		if err != nil {
			continue
		}
		_ = l.Close()
		return port
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}
