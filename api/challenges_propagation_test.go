package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/store"
)

// fakeNS is an authoritative server for testZone on 127.0.0.1 that answers
// from the store, like a hub process, or, while stale, at the serial it
// had when frozen and without the values written since: a nameserver that
// has not loaded the latest writes.
type fakeNS struct {
	addr   string
	db     atomic.Pointer[store.DB] // set before the first query
	stale  atomic.Bool
	frozen atomic.Uint32
}

func startFakeNS(t *testing.T) *fakeNS {
	t.Helper()
	ns := &fakeNS{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: ns, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	ns.addr = pc.LocalAddr().String()
	return ns
}

// freeze makes the server stale at the store's current serial.
func (ns *fakeNS) freeze(t *testing.T) {
	t.Helper()
	s, err := ns.db.Load().Serial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ns.frozen.Store(uint32(s)) // the SOA serial is the counter mod 2^32
	ns.stale.Store(true)
}

func (ns *fakeNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	switch {
	case q.Qtype == dns.TypeSOA && strings.EqualFold(q.Name, testZone):
		serial := ns.frozen.Load()
		if !ns.stale.Load() {
			s, err := ns.db.Load().Serial(ctx)
			if err != nil {
				m.Rcode = dns.RcodeServerFailure
				break
			}
			serial = uint32(s) // the SOA serial is the counter mod 2^32
		}
		hdr.Rrtype = dns.TypeSOA
		m.Answer = append(m.Answer, &dns.SOA{Hdr: hdr, Ns: "ns1." + testZone, Mbox: "hostmaster." + testZone,
			Serial: serial, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60})
	case q.Qtype == dns.TypeTXT && !ns.stale.Load():
		recs, err := ns.db.Load().ListValues(ctx, strings.ToLower(q.Name))
		if err != nil {
			m.Rcode = dns.RcodeServerFailure
			break
		}
		hdr.Rrtype = dns.TypeTXT
		for _, rec := range recs {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{rec.Value}})
		}
	}
	_ = w.WriteMsg(m)
}

// propagationFixture is the API with propagation checks over two fake
// nameservers, ns1 (current) and ns2 (stale until told otherwise), and a
// consumer allowed *.example.org.
type propagationFixture struct {
	*fixture
	ns1, ns2 *fakeNS
	auth     func(*http.Request)
}

func newPropagationFixture(t *testing.T, maxWait time.Duration) *propagationFixture {
	t.Helper()
	pf := &propagationFixture{ns1: startFakeNS(t), ns2: startFakeNS(t)}
	// Mapped by name, as --check-nameserver-addr does: the glue addresses
	// (documentation addresses) are never asked.
	checker, err := dnscheck.New(dnscheck.Config{
		Recursive: []string{pf.ns1.addr},
		Addrs:     map[string]string{"ns1." + testZone: pf.ns1.addr, "ns2." + testZone: pf.ns2.addr},
		Timeout:   time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pf.fixture = newFixtureWith(t, func(hc *hub.Config) {
		hc.DNSCheck, hc.MaxWait = checker, maxWait
		hc.Nameservers = []dnscheck.Nameserver{
			{Name: "ns1." + testZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
			{Name: "ns2." + testZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}},
		}
	}, nil)
	pf.ns1.db.Store(pf.db)
	pf.ns2.db.Store(pf.db)
	pf.config(t, "example-org", "*.example.org")
	pf.auth = bearer(pf.consumer(t, "shop", store.RoleChallengeConsumer, "*.example.org", store.Token{}))
	return pf
}

// propagation is the propagation object of an answer.
type propagationView struct {
	Everywhere bool
	Lagging    []string
	Servers    map[string]map[string]any // by server name
}

func propagationOf(t *testing.T, r response) (propagationView, bool) {
	t.Helper()
	p, ok := r.body["propagation"].(map[string]any)
	if !ok {
		return propagationView{}, false
	}
	v := propagationView{Servers: map[string]map[string]any{}}
	v.Everywhere, _ = p["everywhere"].(bool)
	if _, err := time.Parse(time.RFC3339Nano, p["checked_at"].(string)); err != nil {
		t.Errorf("checked_at: %v", err)
	}
	for _, l := range p["lagging"].([]any) {
		v.Lagging = append(v.Lagging, l.(string))
	}
	for _, s := range p["servers"].([]any) {
		m := s.(map[string]any)
		v.Servers[m["server"].(string)] = m
	}
	return v, true
}

// checkServer compares one server's entry.
func checkServer(t *testing.T, v propagationView, name string, current, serves bool) {
	t.Helper()
	s := v.Servers[name]
	if s == nil {
		t.Fatalf("no entry for %s in %v", name, v.Servers)
	}
	if s["current"] != current || s["serves"] != serves || s["addr"] == "" {
		t.Errorf("%s: %v, want current %v serves %v", name, s, current, serves)
	}
}

// TestChallengeStatusPropagation: GET /challenges/{id} says per nameserver
// whether it serves the value; a stale one is named as lagging until it
// catches up.
func TestChallengeStatusPropagation(t *testing.T) {
	t.Parallel()
	pf := newPropagationFixture(t, 2*time.Second)
	ns1, ns2 := "ns1."+testZone, "ns2."+testZone
	pf.ns2.freeze(t)
	r := pf.do(t, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"v1"}`, pf.auth)
	if r.status != http.StatusCreated {
		t.Fatalf("present: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["propagation"]; ok {
		t.Errorf("a present without wait checked propagation: %s", r.raw)
	}
	id := r.body["id"].(string)

	s := pf.do(t, "GET", "/api/v1/challenges/"+id, "", pf.auth)
	v, ok := propagationOf(t, s)
	if s.status != http.StatusOK || !ok {
		t.Fatalf("status: %d %s", s.status, s.raw)
	}
	if v.Everywhere || !slices.Equal(v.Lagging, []string{ns2}) {
		t.Errorf("stale ns2: everywhere %v lagging %q, want false [%s]", v.Everywhere, v.Lagging, ns2)
	}
	checkServer(t, v, ns1, true, true)
	checkServer(t, v, ns2, false, false)
	serial, err := pf.db.Serial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Servers[ns1]["serial"].(float64); got != float64(serial) {
		t.Errorf("ns1 serial %v, want %d", got, serial)
	}

	// A status read may answer from a round up to 250 ms old (checks are
	// shared): ask until the caught-up round shows.
	pf.ns2.stale.Store(false)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, _ = propagationOf(t, pf.do(t, "GET", "/api/v1/challenges/"+id, "", pf.auth)); v.Everywhere {
			break
		}
	}
	if !v.Everywhere || len(v.Lagging) != 0 {
		t.Errorf("caught up: everywhere %v lagging %q", v.Everywhere, v.Lagging)
	}
	checkServer(t, v, ns2, true, true)

	// Removed: absent, and no propagation object.
	pf.do(t, "DELETE", "/api/v1/challenges/"+id, "", pf.auth)
	s = pf.do(t, "GET", "/api/v1/challenges/"+id, "", pf.auth)
	if _, ok := propagationOf(t, s); ok || s.body["status"] != "absent" {
		t.Errorf("after delete: %s", s.raw)
	}
}

// TestPresentWait: a present with a wait answers 201 once every nameserver
// serves the value, 202 with the laggards when the wait ends first (the
// value stays stored); bad waits are refused before anything is written.
func TestPresentWait(t *testing.T) {
	t.Parallel()
	pf := newPropagationFixture(t, 2*time.Second)
	ns2 := "ns2." + testZone
	pf.ns2.freeze(t)

	r := pf.do(t, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"lag","wait":"300ms"}`, pf.auth)
	v, ok := propagationOf(t, r)
	if r.status != http.StatusAccepted || !ok || v.Everywhere || !slices.Equal(v.Lagging, []string{ns2}) {
		t.Fatalf("stale ns2: %d %s", r.status, r.raw)
	}
	if r.body["status"] != "published" || !slices.Contains(pf.values(t, r.body["cname_target"].(string)), "lag") {
		t.Errorf("after 202 the value is not stored: %s", r.raw)
	}
	target := r.body["cname_target"].(string)

	// ns2 catches up while the present waits (the query form of wait).
	go func() {
		time.Sleep(200 * time.Millisecond)
		pf.ns2.stale.Store(false)
	}()
	r = pf.do(t, "POST", "/api/v1/challenges?wait=2s", `{"identifier":"www.example.org","value":"caught"}`, pf.auth)
	v, ok = propagationOf(t, r)
	if r.status != http.StatusCreated || !ok || !v.Everywhere || len(v.Lagging) != 0 || len(v.Servers) != 2 {
		t.Fatalf("caught up: %d %s", r.status, r.raw)
	}

	for _, tc := range []struct{ name, query, wait string }{
		{"beyond the maximum", "", "3s"},
		{"not a duration", "", "soon"},
		{"negative", "", "-1s"},
		{"body and query differ", "?wait=2s", "1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"identifier":"www.example.org","value":"refused","wait":"` + tc.wait + `"}`
			r := pf.do(t, "POST", "/api/v1/challenges"+tc.query, body, pf.auth)
			if r.status != http.StatusBadRequest || r.body["code"] != "bad_request" {
				t.Errorf("%d %s", r.status, r.raw)
			}
		})
	}
	if slices.Contains(pf.values(t, target), "refused") {
		t.Error("a refused wait stored its value")
	}
	// Whole seconds are a wait too.
	if r := pf.do(t, "POST", "/api/v1/challenges?wait=1", `{"identifier":"www.example.org","value":"secs"}`, pf.auth); r.status != http.StatusCreated {
		t.Errorf("wait=1: %d %s", r.status, r.raw)
	}
}

// TestPropagationOff: without a DNS check client, status has no
// propagation object and a wait is refused, naming why.
func TestPropagationOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	auth := bearer(f.consumer(t, "shop", store.RoleChallengeConsumer, "*.example.org", store.Token{}))
	r := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"v","wait":"1s"}`, auth)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body["detail"].(string), "propagation checks") {
		t.Fatalf("wait without checks: %d %s", r.status, r.raw)
	}
	r = f.do(t, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"v"}`, auth)
	if r.status != http.StatusCreated {
		t.Fatalf("present: %d %s", r.status, r.raw)
	}
	s := f.do(t, "GET", "/api/v1/challenges/"+r.body["id"].(string), "", auth)
	if _, ok := s.body["propagation"]; ok || s.status != http.StatusOK {
		t.Errorf("status without checks: %d %s", s.status, s.raw)
	}
}

// TestCertifyPropagation: request and requestbegin complete once every hub
// nameserver serves the value; when the wait ends first they still
// succeed, with isWarning and the lagging server in the message.
func TestCertifyPropagation(t *testing.T) {
	t.Parallel()
	pf := newPropagationFixture(t, time.Second)
	tok := pf.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	body := func(v string) string {
		return certifyBody("www.example.org", "_acme-challenge.www.example.org", v, tok)
	}

	// check reads an action result: success always, the warning and the
	// lagging server as wanted.
	check := func(name string, ar map[string]any, warning bool) {
		t.Helper()
		msg, _ := ar["message"].(string)
		if ar["isSuccess"] != true || ar["isWarning"] != warning {
			t.Errorf("%s: %v, want success with isWarning %v", name, ar, warning)
		}
		if lags := strings.Contains(msg, "not yet visible") && strings.Contains(msg, "ns2."+testZone); lags != warning {
			t.Errorf("%s: message %q names the lagging ns2: %v, want %v", name, msg, lags, warning)
		}
		if !warning && !strings.Contains(msg, "visible on all 2") {
			t.Errorf("%s: message %q does not say every nameserver serves it", name, msg)
		}
	}
	request := func(v string) map[string]any {
		r := pf.do(t, "POST", pathRequest, body(v), nil)
		if r.status != http.StatusOK {
			t.Fatalf("request: %d %s", r.status, r.raw)
		}
		return r.body
	}
	begin := func(v string) map[string]any {
		op := beginAndWait(t, pf.fixture, body(v))
		if op["status"] != "succeeded" || op["isSuccess"] != true {
			t.Fatalf("requestbegin: %v", op)
		}
		return op["result"].(map[string]any)
	}

	pf.ns2.freeze(t)
	check("request, ns2 stale", request("sync-lag"), true)
	check("requestbegin, ns2 stale", begin("begin-lag"), true)
	pf.ns2.stale.Store(false)
	check("request", request("sync"), false)
	check("requestbegin", begin("begin"), false)
}

// TestWaitOutlivesWriteTimeout: a present's wait, and Certify's
// synchronous request, may take longer than the server's write timeout
// (30 s; 1 s here) and still answer.
func TestWaitOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	pf := newPropagationFixture(t, 2*time.Second)
	pf.ns2.freeze(t)
	srv := httptest.NewUnstartedServer(pf.srv.Config.Handler)
	srv.Config = api.NewServer(pf.srv.Config.Handler, slog.New(slog.DiscardHandler))
	srv.Config.WriteTimeout = time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	short := *pf.fixture
	short.srv = srv

	r := short.do(t, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"slow","wait":"2s"}`, pf.auth)
	if v, ok := propagationOf(t, r); r.status != http.StatusAccepted || !ok || v.Everywhere {
		t.Fatalf("present with a 2 s wait: %d %s", r.status, r.raw)
	}
	tok := pf.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	r = short.do(t, "POST", pathRequest, certifyBody("www.example.org", "_acme-challenge.www.example.org", "slow-sync", tok), nil)
	if r.status != http.StatusOK || r.body["isWarning"] != true {
		t.Fatalf("Certify request waiting 2 s: %d %s", r.status, r.raw)
	}
}

// TestCertifyWaitsHoldNoWorker: requestbegin operations waiting for
// propagation do not hold the 16 workers that do DNS updates: more
// operations than workers all store their values while every wait still
// runs, and complete once the lagging nameserver catches up.
func TestCertifyWaitsHoldNoWorker(t *testing.T) {
	t.Parallel()
	pf := newPropagationFixture(t, time.Minute)
	tok := pf.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	pf.ns2.freeze(t)
	const n = 20 // more than the 16 workers
	ids := make([]string, n)
	for i := range n {
		// One name each: the fake nameservers answer over UDP only, where
		// 20 values at one name do not fit.
		domain := fmt.Sprintf("w%02d.example.org", i)
		body := certifyBody(domain, "_acme-challenge."+domain, "begin", tok)
		r := pf.do(t, "POST", pathBegin, body, nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("requestbegin %d: %d %s", i, r.status, r.raw)
		}
		ids[i] = r.body["id"].(string)
	}
	stored := 0
	for deadline := time.Now().Add(20 * time.Second); stored < n && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		recs, err := pf.db.ListAll(t.Context(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		stored = len(recs)
	}
	if stored != n {
		t.Fatalf("%d of %d values stored while the waits run: waits hold the workers", stored, n)
	}
	for _, id := range ids {
		if s := pf.do(t, "GET", pathStatus+id, "", nil); s.body["status"] != "running" {
			t.Fatalf("operation %s: %s, want running (ns2 is stale)", id, s.raw)
		}
	}
	pf.ns2.stale.Store(false)
	for _, id := range ids {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			s := pf.do(t, "GET", pathStatus+id, "", nil)
			if s.body["isCompleted"] == true {
				if ar, _ := s.body["result"].(map[string]any); s.body["isSuccess"] != true || ar["isWarning"] != false {
					t.Errorf("operation %s: %s", id, s.raw)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("operation %s never completed: %s", id, s.raw)
			}
		}
	}
}
