package hub

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnscheck"
)

const propZone = "acme.example.net."

// countingNS is the hub zone's one nameserver on loopback: SOA serial 5
// and TXT "v" at every name, counting the SOA queries and holding every
// answer while gate is closed.
type countingNS struct {
	addr  string
	soas  atomic.Int32
	mu    sync.Mutex
	gate  chan struct{} // answers wait until it is closed
	stale atomic.Bool   // answer serial 4: not current
}

func startCountingNS(t *testing.T) *countingNS {
	t.Helper()
	ns := &countingNS{gate: make(chan struct{})}
	close(ns.gate)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ns.addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: ns, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ns
}

// hold makes answers wait; the returned func lets them go.
func (ns *countingNS) hold() (release func()) {
	g := make(chan struct{})
	ns.mu.Lock()
	ns.gate = g
	ns.mu.Unlock()
	return func() { close(g) }
}

func (ns *countingNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	if q.Qtype == dns.TypeSOA {
		ns.soas.Add(1)
	}
	ns.mu.Lock()
	g := ns.gate
	ns.mu.Unlock()
	<-g
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60, Rrtype: q.Qtype}
	switch q.Qtype {
	case dns.TypeSOA:
		serial := uint32(5)
		if ns.stale.Load() {
			serial = 4
		}
		m.Answer = append(m.Answer, &dns.SOA{Hdr: hdr, Ns: "ns1." + propZone, Mbox: "h." + propZone, Serial: serial, Minttl: 60})
	case dns.TypeTXT:
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{"v"}})
	}
	_ = w.WriteMsg(m)
}

// propService is a service whose propagation checks ask ns.
func propService(t *testing.T, ns *countingNS) *Service {
	t.Helper()
	c, err := dnscheck.New(dnscheck.Config{
		Recursive: []string{ns.addr}, Addrs: map[string]string{"ns1." + propZone: ns.addr}, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return newTestService(t, "*.example.org", nil, func(c2 *Config) {
		c2.DNSCheck = c
		c2.Nameservers = []dnscheck.Nameserver{{Name: "ns1." + propZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}}
		c2.MaxWait = 5 * time.Second
	}).svc
}

// TestPropagationChecksShared: status reads of one value at once cost one
// round of queries, not one each.
func TestPropagationChecksShared(t *testing.T) {
	t.Parallel()
	ns := startCountingNS(t)
	svc := propService(t, ns)
	ch := Challenge{Target: "abc." + propZone, Value: "v", Serial: 5, Principal: 1}

	release := ns.hold()
	const callers = 10
	var started, done sync.WaitGroup
	results := make([]Propagation, callers)
	for i := range callers {
		started.Add(1)
		done.Go(func() {
			started.Done()
			p, err := svc.WaitPropagation(t.Context(), ch, 0)
			if err != nil {
				t.Error(err)
			}
			results[i] = p
		})
	}
	started.Wait()
	// Every caller has started; the first round is held at the server, so
	// any caller still on its way joins it.
	for ns.soas.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	release()
	done.Wait()
	if n := ns.soas.Load(); n != 1 {
		t.Errorf("%d callers sent %d SOA queries, want 1 shared round", callers, n)
	}
	for i, p := range results {
		if !p.Everywhere || p.Detail != "" {
			t.Errorf("caller %d: %+v", i, p)
		}
	}
	// A later round asks again.
	time.Sleep(2 * shareFor)
	if _, err := svc.WaitPropagation(t.Context(), ch, 0); err != nil || ns.soas.Load() != 2 {
		t.Errorf("after the round expired: %d SOA queries, %v", ns.soas.Load(), err)
	}
}

// TestPropagationWaitCap: a principal with MaxWaitsPerPrincipal waits
// running gets one check, and a detail saying why; others still wait.
func TestPropagationWaitCap(t *testing.T) {
	t.Parallel()
	ns := startCountingNS(t)
	ns.stale.Store(true)
	svc := propService(t, ns)
	st := svc.prop
	for range MaxWaitsPerPrincipal {
		if !st.enter(7) {
			t.Fatal("refused below the cap")
		}
	}
	ch := Challenge{Target: "abc." + propZone, Value: "v", Serial: 5, Principal: 7}
	before := ns.soas.Load()
	p, err := svc.WaitPropagation(t.Context(), ch, 5*time.Second)
	if err != nil || p.Everywhere || !strings.Contains(p.Detail, "too many waits") {
		t.Fatalf("over the cap: %+v %v", p, err)
	}
	if n := ns.soas.Load() - before; n != 1 {
		t.Errorf("over the cap: %d rounds, want one check", n)
	}

	// Another principal waits: it sees the server catch up.
	other := ch
	other.Principal = 8
	go func() {
		time.Sleep(300 * time.Millisecond)
		ns.stale.Store(false)
	}()
	if p, err := svc.WaitPropagation(t.Context(), other, 5*time.Second); err != nil || !p.Everywhere || p.Detail != "" {
		t.Errorf("other principal: %+v %v", p, err)
	}
	// One wait of 7 ends: 7 may wait again.
	st.leave(7)
	if p, err := svc.WaitPropagation(t.Context(), ch, time.Second); err != nil || !p.Everywhere || p.Detail != "" {
		t.Errorf("below the cap again: %+v %v", p, err)
	}
	if n := st.waits[7]; n != MaxWaitsPerPrincipal-1 {
		t.Errorf("principal 7 holds %d waits after its own ended, want %d", n, MaxWaitsPerPrincipal-1)
	}
}
