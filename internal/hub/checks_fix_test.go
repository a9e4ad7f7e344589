package hub

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/acmehub/acmehub/internal/dnscheck"
)

// When the hub's own recursive resolver does not answer, the check says
// so but is not stored as the domain's state, nor audited.
func TestCheckDelegationResolverDownNotStored(t *testing.T) {
	t.Parallel()
	w := newDNSWorld(t)
	ts := newTestService(t, "*.example.org", nil, func(c *Config) { c.DNSCheck = w.client(t) })
	g := ts.adminGrant(t, "alice", "*.example.org")
	d, _, err := ts.svc.CreateDelegation(t.Context(), g, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	cname := "_acme-challenge.example.org. 300 IN CNAME " + d.Target
	w.serve(t, []string{cname}, []string{cname})
	if got, err := ts.svc.CheckDelegation(t.Context(), g, "example.org"); err != nil || got.Check.State != "ok" {
		t.Fatalf("%+v %v", got.Check, err)
	}
	audits := len(checkAudits(t, ts.db, "example.org"))

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	_ = pc.Close()
	down, err := dnscheck.New(dnscheck.Config{Recursive: []string{closed}, Timeout: w.cfg.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	ts.svc.cfg.DNSCheck = down
	got, err := ts.svc.CheckDelegation(t.Context(), g, "example.org")
	if err != nil || got.Check.State != "unreachable" || !strings.Contains(got.Check.Detail, "Recursive resolver unreachable") {
		t.Fatalf("resolver down: %+v %v", got.Check, err)
	}
	if again, err := ts.svc.GetDelegation(t.Context(), g, "example.org"); err != nil || again.Check.State != "ok" {
		t.Fatalf("stored: %+v %v", again.Check, err)
	}
	if n := len(checkAudits(t, ts.db, "example.org")); n != audits {
		t.Errorf("%d audit events, want %d", n, audits)
	}
}

// What a domain's zone feeds into the evidence and the detail is bounded.
func TestEvidenceBounds(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("ü", 1000)
	var others []string
	for i := range 100 {
		others = append(others, fmt.Sprintf("%d %s", i, big))
	}
	e := serverEvidence(dnscheck.ServerAnswer{Server: "ns1.example.org.", Other: others, Err: big})
	if len(e.Other) != maxOtherRecords+1 || e.Other[maxOtherRecords] != "(92 more)" || len(e.Other[0]) > maxEvidenceText ||
		len(e.Error) > maxEvidenceText || !strings.HasSuffix(e.Error, "...") {
		t.Fatalf("%d other, first %d bytes, error %d bytes", len(e.Other), len(e.Other[0]), len(e.Error))
	}
	ev := CheckEvidence{Name: "_acme-challenge.example.org.", Expected: "x.acme.example.net."}
	for range 66 {
		ev.Nameservers = append(ev.Nameservers, e)
	}
	b, err := evidenceJSON(ev)
	if err != nil || len(b) > maxEvidenceBytes || !strings.Contains(string(b), "more answers not kept") {
		t.Fatalf("%d bytes %v", len(b), err)
	}
	small := CheckEvidence{Nameservers: []ServerEvidence{{Server: "ns1"}}}
	if b, _ := evidenceJSON(small); strings.Contains(string(b), "not kept") {
		t.Errorf("small evidence cut: %s", b)
	}
	if d := truncate(big, maxDetailBytes); len(d) > maxDetailBytes || !strings.HasSuffix(d, "...") {
		t.Errorf("detail %d bytes", len(d))
	}
}

// Onboarding refreshes the delegations gauge: new ones are unchecked.
func TestOnboardReportsStates(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		counts map[string]int
	)
	ts := newTestService(t, "*.example.org", nil, func(c *Config) {
		c.CheckStates = func(m map[string]int) { mu.Lock(); counts = m; mu.Unlock() }
	})
	g := ts.adminGrant(t, "alice", "*.example.org")
	if _, err := ts.svc.Onboard(t.Context(), g, []string{"a.example.org", "b.example.org"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"unchecked": 2}; !reflect.DeepEqual(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
}
