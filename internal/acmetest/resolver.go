package acmetest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds how many CNAMEs the Resolver follows for one query.
const maxCNAMEChain = 8

// forwardTimeout bounds one query to a forward zone's server.
const forwardTimeout = 2 * time.Second

// Resolver is a small recursive-style DNS resolver on 127.0.0.1 (UDP and
// TCP on one port) whose data the test controls. It answers from static
// records set with SetRecords and, for names inside a forward zone, from
// that zone's authoritative server, asked without recursion. It follows
// CNAME chains across both (the answer holds the CNAMEs and the target's
// records), sets RA, and answers NXDOMAIN or NODATA (with the enclosing
// zone's SOA when it knows one) otherwise; it never answers SERVFAIL for a
// name it has no data for, so CAA lookups get NOERROR or NXDOMAIN. It
// answers whatever the RD bit says.
//
// Its methods are safe for concurrent use.
type Resolver struct {
	addr   string
	client *dns.Client

	mu       sync.RWMutex
	records  map[string]map[uint16][]dns.RR // owner fqdn (lower case) -> type -> RRset
	forwards map[string]string              // zone fqdn (lower case) -> server host:port
	queries  []dns.Question
}

// NewResolver starts a Resolver on a free 127.0.0.1 port; t.Cleanup stops it.
func NewResolver(t *testing.T) *Resolver {
	t.Helper()
	r := &Resolver{
		client:   &dns.Client{Timeout: forwardTimeout},
		records:  map[string]map[uint16][]dns.RR{},
		forwards: map[string]string{},
	}
	pc, ln, err := listenUDPAndTCP()
	if err != nil {
		t.Fatalf("acmetest: resolver: %v", err)
	}
	r.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: r},
		{Listener: ln, Handler: r},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		var serveErr error
		done := make(chan struct{})
		go func() { serveErr = srv.ActivateAndServe(); close(done) }()
		select {
		case <-started:
		case <-done:
			t.Fatalf("acmetest: resolver: serve: %v", serveErr)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-done
		})
	}
	return r
}

// listenUDPAndTCP binds UDP and TCP on one free 127.0.0.1 port.
func listenUDPAndTCP() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		lastErr = err
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("no free port for both udp and tcp: %w", lastErr)
}

// Addr is the resolver's host:port, the same for UDP and TCP.
func (r *Resolver) Addr() string { return r.addr }

// SetRecords serves rrs. Each RRset given (owner name and type) replaces
// the records the Resolver had for that owner and type; others are kept.
// Owner names are matched case-insensitively.
func (r *Resolver) SetRecords(rrs ...dns.RR) {
	sets := map[string]map[uint16][]dns.RR{}
	for _, rr := range rrs {
		name := strings.ToLower(dns.Fqdn(rr.Header().Name))
		if sets[name] == nil {
			sets[name] = map[uint16][]dns.RR{}
		}
		rr = dns.Copy(rr)
		rr.Header().Name = name
		sets[name][rr.Header().Rrtype] = append(sets[name][rr.Header().Rrtype], rr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, byType := range sets {
		if r.records[name] == nil {
			r.records[name] = map[uint16][]dns.RR{}
		}
		for typ, set := range byType {
			r.records[name][typ] = set
		}
	}
}

// Forward sends queries for zone and every name below it to the
// authoritative server at addr (host:port), without recursion, and returns
// its answer. A forward zone takes precedence over static records.
func (r *Resolver) Forward(zone, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forwards[strings.ToLower(dns.Fqdn(zone))] = addr
}

// Queries returns the questions the Resolver has received so far, in order.
func (r *Resolver) Queries() []dns.Question {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]dns.Question(nil), r.queries...)
}

// RR parses one record in zone-file syntax, failing the test if it is
// malformed: RR(t, "_acme-challenge.example.org. 60 IN CNAME abc.acme.test.").
func RR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		t.Fatalf("acmetest: parse record %q: %v", s, err)
	}
	return rr
}

// ServeDNS answers one query. Implements dns.Handler.
func (r *Resolver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()

	resp.SetReply(req)
	resp.RecursionAvailable = true
	resp.Compress = true
	answer, ns, rcode := r.resolve(strings.ToLower(q.Name), q.Qtype)
	resp.Rcode = rcode
	resp.Answer, resp.Ns = answer, ns
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), 1232)
		resp.SetEdns0(1232, false)
	}
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// resolve answers qname/qtype, following CNAMEs across static data and
// forward zones.
func (r *Resolver) resolve(qname string, qtype uint16) (answer, ns []dns.RR, rcode int) {
	name := qname
	for range maxCNAMEChain + 1 {
		ans, auth, code, err := r.lookup(name, qtype)
		if err != nil {
			return nil, nil, dns.RcodeServerFailure
		}
		answer = append(answer, ans...)
		target := chainEnd(ans, name)
		if code != dns.RcodeSuccess || qtype == dns.TypeCNAME || target == name || hasData(ans, target, qtype) {
			return answer, auth, code
		}
		name = target
	}
	return nil, nil, dns.RcodeServerFailure // a CNAME loop or a chain too long
}

// chainEnd follows the CNAMEs in rrs from name and returns where they end.
func chainEnd(rrs []dns.RR, name string) string {
	for range maxCNAMEChain + 1 {
		next := ""
		for _, rr := range rrs {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				next = strings.ToLower(c.Target)
			}
		}
		if next == "" {
			return name
		}
		name = next
	}
	return name
}

func hasData(rrs []dns.RR, name string, qtype uint16) bool {
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == qtype && strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// lookup answers one name without following CNAMEs to other sources.
func (r *Resolver) lookup(name string, qtype uint16) (answer, ns []dns.RR, rcode int, err error) {
	r.mu.RLock()
	server := r.forwardFor(name)
	r.mu.RUnlock()
	if server != "" {
		return r.forward(server, name, qtype)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	answer, ns, rcode = r.static(name, qtype)
	return answer, ns, rcode, nil
}

// forwardFor returns the server of the longest forward zone holding name.
// r.mu must be held.
func (r *Resolver) forwardFor(name string) string {
	best, server := -1, ""
	for zone, addr := range r.forwards {
		if dns.IsSubDomain(zone, name) && len(zone) > best {
			best, server = len(zone), addr
		}
	}
	return server
}

func (r *Resolver) forward(server, name string, qtype uint16) (answer, ns []dns.RR, rcode int, err error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	resp, _, err := r.client.Exchange(m, server)
	if err == nil && resp.Truncated {
		tcp := &dns.Client{Net: "tcp", Timeout: forwardTimeout}
		resp, _, err = tcp.Exchange(m, server)
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("forward %s to %s: %w", name, server, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return resp.Answer, resp.Ns, resp.Rcode, nil
	}
	return nil, nil, 0, errors.New("forward " + name + " to " + server + ": " + dns.RcodeToString[resp.Rcode])
}

// static answers from the records set with SetRecords. r.mu must be held.
func (r *Resolver) static(name string, qtype uint16) (answer, ns []dns.RR, rcode int) {
	byType := r.records[name]
	switch {
	case qtype == dns.TypeANY && len(byType) > 0:
		for _, set := range byType {
			answer = append(answer, copyRRs(set)...)
		}
		return answer, nil, dns.RcodeSuccess
	case len(byType[qtype]) > 0:
		return copyRRs(byType[qtype]), nil, dns.RcodeSuccess
	case len(byType[dns.TypeCNAME]) > 0:
		return copyRRs(byType[dns.TypeCNAME]), nil, dns.RcodeSuccess
	}
	if soa := r.enclosingSOA(name); soa != nil {
		ns = []dns.RR{soa}
	}
	if len(byType) > 0 || r.emptyNonTerminal(name) {
		return nil, ns, dns.RcodeSuccess // NODATA
	}
	return nil, ns, dns.RcodeNameError
}

// enclosingSOA returns the SOA of the closest static zone holding name, with
// the negative-caching TTL, or nil. r.mu must be held.
func (r *Resolver) enclosingSOA(name string) dns.RR {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if set := r.records[name[off:]][dns.TypeSOA]; len(set) > 0 {
			soa := dns.Copy(set[0]).(*dns.SOA)
			soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			return soa
		}
	}
	return nil
}

// emptyNonTerminal reports whether some owner name lies below name.
// r.mu must be held.
func (r *Resolver) emptyNonTerminal(name string) bool {
	for owner := range r.records {
		if owner != name && dns.IsSubDomain(name, owner) {
			return true
		}
	}
	return false
}

func copyRRs(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}
