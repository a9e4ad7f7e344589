package dnscheck

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// zoneServer is a real DNS server on 127.0.0.1 (UDP and TCP on one port)
// answering from the records it holds: authoritatively for its zones, or,
// with recursive set, as a stand-in for a recursive resolver that already
// knows every answer (RD is ignored either way).
type zoneServer struct {
	Addr string

	mu          sync.Mutex
	zones       []string // apexes served, fqdn
	rrs         []dns.RR
	recursive   bool // RA instead of AA
	noGlue      bool // no A/AAAA of NS targets in the additional section
	noSOA       bool // no SOA in the authority section of negative answers
	rcode       int  // when non-zero, every reply has this rcode and nothing else
	silent      bool // never reply
	truncateUDP bool // every UDP reply is TC with an empty answer

	queries atomic.Int64
}

// parseRRs parses zone-file lines.
func parseRRs(tb testing.TB, lines ...string) []dns.RR {
	tb.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			tb.Fatalf("parse %q: %v", l, err)
		}
		if rr != nil {
			out = append(out, rr)
		}
	}
	return out
}

// set replaces the records the server answers from.
func (z *zoneServer) set(tb testing.TB, lines ...string) {
	tb.Helper()
	rrs := parseRRs(tb, lines...)
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rrs = rrs
}

// with changes the server's settings while it runs.
func (z *zoneServer) with(f func(z *zoneServer)) {
	z.mu.Lock()
	defer z.mu.Unlock()
	f(z)
}

// startServer starts z on a free loopback port and stops it when the
// test ends.
func startServer(tb testing.TB, z *zoneServer) *zoneServer {
	tb.Helper()
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	// TCP must share the UDP port (truncated answers are retried there);
	// another process may hold it, so try a few ports.
	for try := 0; ; try++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close()
		if try == 20 {
			tb.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	z.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: l, Handler: z}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.ActivateAndServe()
		}()
		<-started
		tb.Cleanup(func() {
			_ = srv.Shutdown()
			<-served
		})
	}
	return z
}

// closedAddr returns a loopback UDP address where nothing listens: a
// query there is refused at once (ICMP port unreachable).
func closedAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

func (z *zoneServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.queries.Add(1)
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.silent || len(r.Question) != 1 {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = z.recursive
	_, udp := w.LocalAddr().(*net.UDPAddr)
	switch {
	case z.rcode != 0:
		m.Rcode = z.rcode
	case udp && z.truncateUDP:
		m.Truncated = true
	default:
		z.answer(m, r.Question[0])
		if udp { // as a real server: TC when the reply is larger than asked
			size := dns.MinMsgSize
			if o := r.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			m.Truncate(size)
		}
	}
	_ = w.WriteMsg(m)
}

// answer fills m for q from the records, following CNAMEs within the
// zones served, with the SOA in the authority section of a negative
// answer.
func (z *zoneServer) answer(m *dns.Msg, q dns.Question) {
	name := strings.ToLower(q.Name)
	zone := z.zoneOf(name)
	if zone == "" {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = !z.recursive
	if cut := z.cut(name, zone); cut != nil {
		// A zone cut at or above the name: a referral, not authoritative.
		m.Authoritative, m.Ns = false, cut
		return
	}
	for range 8 {
		if exact := z.find(name, q.Qtype); len(exact) > 0 {
			m.Answer = append(m.Answer, exact...)
			break
		}
		cn := z.find(name, dns.TypeCNAME)
		if len(cn) == 0 || q.Qtype == dns.TypeCNAME {
			break
		}
		m.Answer = append(m.Answer, cn...)
		name = strings.ToLower(cn[0].(*dns.CNAME).Target)
		if z.zoneOf(name) == "" {
			return
		}
	}
	if len(m.Answer) == 0 {
		if !z.exists(name) {
			m.Rcode = dns.RcodeNameError
		}
		if !z.noSOA {
			m.Ns = z.find(z.zoneOf(name), dns.TypeSOA)
		}
		return
	}
	if q.Qtype == dns.TypeNS && !z.noGlue {
		for _, rr := range m.Answer {
			if ns, ok := rr.(*dns.NS); ok {
				m.Extra = append(m.Extra, z.find(ns.Ns, dns.TypeA)...)
				m.Extra = append(m.Extra, z.find(ns.Ns, dns.TypeAAAA)...)
			}
		}
	}
}

// zoneOf returns the closest zone served that holds name, or "".
func (z *zoneServer) zoneOf(name string) string {
	best := ""
	for _, apex := range z.zones {
		if dns.IsSubDomain(apex, name) && len(apex) > len(best) {
			best = apex
		}
	}
	return best
}

func (z *zoneServer) find(name string, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range z.rrs {
		if strings.EqualFold(rr.Header().Name, name) && rr.Header().Rrtype == qtype {
			out = append(out, dns.Copy(rr))
		}
	}
	return out
}

// exists reports whether name owns records or has names below it (an
// empty non-terminal exists: RFC 8020).
func (z *zoneServer) exists(name string) bool {
	for _, rr := range z.rrs {
		if dns.IsSubDomain(name, strings.ToLower(rr.Header().Name)) {
			return true
		}
	}
	return false
}

// cut returns the NS records of a delegation below zone at or above name
// (a child zone not served here), or nil.
func (z *zoneServer) cut(name, zone string) []dns.RR {
	for n := name; n != zone && dns.IsSubDomain(zone, n); n = parent(n) {
		if ns := z.find(n, dns.TypeNS); len(ns) > 0 {
			return ns
		}
	}
	return nil
}
