package hub

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/acmetest"
	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// dnsWorld is the zone example.org served by two authoritative servers
// (ns1 and ns2, at 192.0.2.1 and .2, mapped to loopback ports) and a
// recursive resolver that forwards the zone to ns1.
type dnsWorld struct {
	ns  [2]*acmetest.AuthServer
	rec *acmetest.Resolver
	cfg dnscheck.Config
}

func newDNSWorld(t *testing.T) *dnsWorld {
	t.Helper()
	w := &dnsWorld{rec: acmetest.NewResolver(t), cfg: dnscheck.Config{Addrs: map[string]string{}, Timeout: time.Second}}
	for i := range w.ns {
		w.ns[i] = acmetest.StartAuthServer(t, "example.org.")
		w.cfg.Addrs["192.0.2."+string(rune('1'+i))] = w.ns[i].Addr
	}
	w.rec.Forward("example.org.", w.ns[0].Addr)
	w.cfg.Recursive = []string{w.rec.Addr()}
	w.serve(t, nil, nil)
	return w
}

// serve sets the zone on both servers, each with its own extra records.
func (w *dnsWorld) serve(t *testing.T, ns1, ns2 []string) {
	t.Helper()
	w.ns[0].Set(t, append(acmetest.ExampleOrgApex(), ns1...)...)
	w.ns[1].Set(t, append(acmetest.ExampleOrgApex(), ns2...)...)
}

func (w *dnsWorld) client(t *testing.T) *dnscheck.Client {
	t.Helper()
	c, err := dnscheck.New(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminGrant is a managed_challenge_admin restricted to rule.
func (ts *testService) adminGrant(t *testing.T, name, rule string) Grant {
	t.Helper()
	p, err := ts.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalUser, Name: name, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.AddRoleAssignment(t.Context(), store.RoleAssignment{PrincipalID: p.ID, Role: store.RoleChallengeAdmin, Domains: rule}); err != nil {
		t.Fatal(err)
	}
	r, err := rules.Parse(rule)
	if err != nil {
		t.Fatal(err)
	}
	return Grant{Principal: Principal{ID: p.ID, Name: p.Name, TokenID: "ahc_test"}, Assignments: []Assignment{{Role: RoleChallengeAdmin, Domains: r}}}
}

func checkAudits(t *testing.T, db *store.DB, domain string) []store.AuditEvent {
	t.Helper()
	evs, err := db.ListAudit(t.Context(), store.AuditFilter{Action: "delegation.check", Domain: domain})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestCheckDelegationStoresAndAuditsChanges(t *testing.T) {
	t.Parallel()
	w := newDNSWorld(t)
	var mu sync.Mutex
	var counts map[string]int
	ts := newTestService(t, "*.example.org", nil, func(c *Config) {
		c.DNSCheck = w.client(t)
		c.CheckStates = func(m map[string]int) { mu.Lock(); counts = m; mu.Unlock() }
	})
	g := ts.adminGrant(t, "alice", "*.example.org")
	d, _, err := ts.svc.CreateDelegation(t.Context(), g, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if d.Check.State != "" {
		t.Fatalf("new delegation checked: %+v", d.Check)
	}
	cname := "_acme-challenge.example.org. 300 IN CNAME " + d.Target
	txt := `_acme-challenge.example.org. 300 IN TXT "left over"`
	steps := []struct {
		name     string
		ns1, ns2 []string
		refuse   bool
		state    string
		detail   string
	}{
		{name: "missing", state: "missing", detail: "add \"" + d.CNAME.ZoneLine() + "\""},
		{name: "missing again: no audit", state: "missing"},
		{name: "ok", ns1: []string{cname}, ns2: []string{cname}, state: "ok"},
		{name: "wrong target", ns1: []string{"_acme-challenge.example.org. 300 IN CNAME old.acme.example.com."},
			ns2: []string{"_acme-challenge.example.org. 300 IN CNAME old.acme.example.com."}, state: "wrong_target", detail: "old.acme.example.com."},
		{name: "conflict", ns1: []string{cname, txt}, ns2: []string{cname, txt}, state: "conflict", detail: "left over"},
		{name: "inconsistent", ns1: []string{cname}, ns2: nil, state: "inconsistent", detail: "ns2.example.org."},
		{name: "unreachable", ns1: []string{cname}, ns2: []string{cname}, refuse: true, state: "unreachable", detail: "REFUSED"},
	}
	wantAudits := 0
	prevState, since := store.CheckUnchecked, time.Time{}
	for _, st := range steps {
		w.serve(t, st.ns1, st.ns2)
		w.ns[1].Refuse(st.refuse)
		got, err := ts.svc.CheckDelegation(t.Context(), g, "*.Example.ORG")
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		c := got.Check
		if c.State != st.state || !strings.Contains(c.Detail, st.detail) || c.CheckedAt.IsZero() || c.Evidence == nil ||
			len(c.Evidence.Nameservers) != 2 || c.Evidence.Expected != d.Target {
			t.Fatalf("%s: %+v evidence %+v", st.name, c, c.Evidence)
		}
		if c.State != prevState {
			wantAudits++
			since = c.CheckedAt
		}
		if !c.Since.Equal(since) {
			t.Errorf("%s: since %v, want %v", st.name, c.Since, since)
		}
		evs := checkAudits(t, ts.db, "example.org")
		if len(evs) != wantAudits {
			t.Fatalf("%s: %d audit events, want %d: %+v", st.name, len(evs), wantAudits, evs)
		}
		if c.State != prevState {
			e := evs[0]
			if want := prevState + " -> " + c.State + ": " + c.Detail; e.Detail != want || e.PrincipalID != g.Principal.ID ||
				e.Result != "ok" || e.Target != d.Target {
				t.Errorf("%s: audit %+v, want detail %q", st.name, e, want)
			}
		}
		prevState = c.State
		// GetDelegation shows the stored check.
		if again, err := ts.svc.GetDelegation(t.Context(), g, "example.org"); err != nil || again.Check.State != st.state ||
			again.Check.Evidence == nil {
			t.Fatalf("%s: get %+v %v", st.name, again.Check, err)
		}
		mu.Lock()
		if want := map[string]int{st.state: 1}; !reflect.DeepEqual(counts, want) {
			t.Errorf("%s: counts %v, want %v", st.name, counts, want)
		}
		mu.Unlock()
	}

	// Listing by state.
	for _, tc := range []struct {
		state string
		n     int
	}{{"unreachable", 1}, {"ok", 0}, {"unchecked", 0}} {
		ds, _, err := ts.svc.ListDelegations(t.Context(), g, DelegationFilter{CheckState: tc.state})
		if err != nil || len(ds) != tc.n {
			t.Errorf("state %s: %d %v", tc.state, len(ds), err)
		}
	}
	if _, _, err := ts.svc.ListDelegations(t.Context(), g, DelegationFilter{CheckState: "fine"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown state: %v", err)
	}
}

func TestCheckDelegationScope(t *testing.T) {
	t.Parallel()
	w := newDNSWorld(t)
	ts := newTestService(t, "*.example.org", nil, func(c *Config) { c.DNSCheck = w.client(t) })
	admin := ts.adminGrant(t, "alice", "*.example.org")
	if _, _, err := ts.svc.CreateDelegation(t.Context(), admin, "www.example.org"); err != nil {
		t.Fatal(err)
	}
	other := ts.adminGrant(t, "bob", "example.net")
	consumer := Grant{Principal: Principal{ID: ts.principal.ID}, Assignments: []Assignment{{Role: RoleChallengeConsumer}}}
	for name, g := range map[string]Grant{"outside the scope": other, "consumer": consumer} {
		if _, err := ts.svc.CheckDelegation(t.Context(), g, "www.example.org"); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ts.svc.CheckDelegation(t.Context(), admin, "api.example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("not delegated: %v", err)
	}
	if evs := checkAudits(t, ts.db, "www.example.org"); len(evs) != 0 {
		t.Errorf("refused checks audited as checks: %+v", evs)
	}
	off := newTestService(t, "*.example.org", nil, nil)
	g := off.adminGrant(t, "carol", "*.example.org")
	if _, _, err := off.svc.CreateDelegation(t.Context(), g, "www.example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := off.svc.CheckDelegation(t.Context(), g, "www.example.org"); !errors.Is(err, ErrChecksOff) {
		t.Errorf("checks off: %v", err)
	}
	if err := off.svc.RunChecks(t.Context(), time.Minute); !errors.Is(err, ErrChecksOff) {
		t.Errorf("run checks off: %v", err)
	}
}

// The background checker notices a zone change on its own.
func TestRunChecksFollowsTheZone(t *testing.T) {
	t.Parallel()
	w := newDNSWorld(t)
	rounds := make(chan map[string]int, 100)
	ts := newTestService(t, "*.example.org", nil, func(c *Config) {
		c.DNSCheck = w.client(t)
		c.CheckStates = func(m map[string]int) { rounds <- m }
	})
	g := ts.adminGrant(t, "alice", "*.example.org")
	var ds []Delegation
	for _, dom := range []string{"example.org", "www.example.org", "api.example.org"} {
		d, _, err := ts.svc.CreateDelegation(t.Context(), g, dom)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ts.svc.RunChecks(ctx, 100*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run checks: %v", err)
		}
	}()
	waitCounts := func(want map[string]int) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case got := <-rounds:
				if reflect.DeepEqual(got, want) {
					return
				}
			case <-deadline:
				t.Fatalf("counts never became %v", want)
			}
		}
	}
	waitCounts(map[string]int{"missing": 3})
	// The owner of www adds the CNAME on both servers.
	rec := "_acme-challenge.www.example.org. 300 IN CNAME " + ds[1].Target
	w.serve(t, []string{rec}, []string{rec})
	waitCounts(map[string]int{"missing": 2, "ok": 1})
	got, err := ts.svc.GetDelegation(t.Context(), g, "www.example.org")
	if err != nil || got.Check.State != "ok" {
		t.Fatalf("www: %+v %v", got.Check, err)
	}
	evs := checkAudits(t, ts.db, "www.example.org")
	if len(evs) != 2 || evs[0].Detail[:len("missing -> ok")] != "missing -> ok" || evs[0].Source != "checker" || evs[0].PrincipalID != 0 {
		t.Fatalf("audit %+v", evs)
	}
}

func TestOnboard(t *testing.T) {
	t.Parallel()
	w := newDNSWorld(t)
	ts := newTestService(t, "*.example.org; a.b.example.org", nil, func(c *Config) { c.DNSCheck = w.client(t) })
	g := ts.adminGrant(t, "alice", "*.example.org; a.b.example.org")
	if _, _, err := ts.svc.CreateDelegation(t.Context(), g, "api.example.org"); err != nil {
		t.Fatal(err)
	}
	in := []string{"www.example.org", "*.a.b.example.org", "bücher.example.org", "WWW.example.org.", "api.example.org",
		"x.y.example.org", "shop.example.com", "exa mple.org"}
	res, err := ts.svc.Onboard(t.Context(), g, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ domain, outcome, reason string }{
		{"www.example.org", OnboardCreated, ""},
		{"a.b.example.org", OnboardCreated, ""},
		{"xn--bcher-kva.example.org", OnboardCreated, ""},
		{"api.example.org", OnboardExisting, ""},
		{"x.y.example.org", OnboardRefused, "no managed challenge"},
		{"shop.example.com", OnboardRefused, "no managed challenge"},
		{"", OnboardRefused, "invalid"},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	for i, r := range res {
		wt := want[i]
		if r.Domain != wt.domain || r.Outcome != wt.outcome || !strings.Contains(r.Reason, wt.reason) {
			t.Errorf("%d: %+v, want %+v", i, r, wt)
		}
		if r.Outcome != OnboardRefused && (r.Delegation.CNAME.Name != "_acme-challenge."+wt.domain+"." || r.Delegation.CNAME.Type != "CNAME" ||
			!strings.HasSuffix(r.Delegation.CNAME.Target, ".acme.example.net.")) {
			t.Errorf("%d: cname %+v", i, r.Delegation.CNAME)
		}
	}
	// Deep and IDN names check like any other.
	for _, r := range res[1:3] {
		rec := r.Delegation.CNAME.Name + " 300 IN CNAME " + r.Delegation.CNAME.Target
		w.serve(t, []string{rec}, []string{rec})
		got, err := ts.svc.CheckDelegation(t.Context(), g, r.Input)
		if err != nil || got.Check.State != "ok" {
			t.Errorf("%s: %+v %v", r.Input, got.Check, err)
		}
	}
	// Again: everything exists.
	res, err = ts.svc.Onboard(t.Context(), g, in[:3])
	if err != nil || len(res) != 3 || res[0].Outcome != OnboardExisting || res[2].Outcome != OnboardExisting {
		t.Fatalf("again: %+v %v", res, err)
	}
	consumer := Grant{Principal: Principal{ID: ts.principal.ID}, Assignments: []Assignment{{Role: RoleChallengeConsumer}}}
	if _, err := ts.svc.Onboard(t.Context(), consumer, in); !errors.Is(err, ErrForbidden) {
		t.Errorf("consumer: %v", err)
	}
	if _, err := ts.svc.Onboard(t.Context(), g, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("none: %v", err)
	}
}

func TestZoneFileDomains(t *testing.T) {
	t.Parallel()
	zf := `$ORIGIN example.org.
$TTL 3600
@        IN SOA ns1 hostmaster 1 7200 3600 1209600 60
         IN NS  ns1
ns1      IN A   192.0.2.1
www      IN A   192.0.2.80
WWW      IN AAAA 2001:db8::80
*.shop   IN CNAME www
a.b      IN A   192.0.2.81
bücher   IN A   192.0.2.82
_dmarc   IN TXT "v=DMARC1; p=none"
s1._domainkey IN TXT "v=DKIM1"
_acme-challenge.www IN CNAME k7.acme.example.net.
`
	got, err := ZoneFileDomains(t.Context(), strings.NewReader(zf), "")
	want := []string{"example.org", "ns1.example.org", "www.example.org", "shop.example.org", "a.b.example.org", "xn--bcher-kva.example.org"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v %v, want %v", got, err, want)
	}
	// Relative names need an origin.
	got, err = ZoneFileDomains(t.Context(), strings.NewReader("www 60 IN A 192.0.2.1\n"), "example.net")
	if err != nil || !reflect.DeepEqual(got, []string{"www.example.net"}) {
		t.Fatalf("origin: %v %v", got, err)
	}
	for _, bad := range []string{"www 60 IN A 192.0.2.1\n", "example.org. 60 IN A not-an-address\n", "$INCLUDE /etc/passwd\n",
		"$GENERATE 0-65535 @ 60 IN TXT \"x\"\n", "$ORIGIN example.org.\n $Generate 1-3 h$ A 192.0.2.1\n"} {
		if _, err := ZoneFileDomains(t.Context(), strings.NewReader(bad), ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// The work of a zone file is bounded by its records, not its new names:
// one name repeated is refused past MaxZoneFileRecords; so is a file
// larger than MaxZoneFileBytes; ctx ends the parse.
func TestZoneFileDomainsBounds(t *testing.T) {
	t.Parallel()
	repeat := func(n int) string {
		return "$ORIGIN example.org.\n" + strings.Repeat("@ 60 IN TXT \"x\"\n", n)
	}
	if got, err := ZoneFileDomains(t.Context(), strings.NewReader(repeat(MaxZoneFileRecords)), ""); err != nil || len(got) != 1 {
		t.Fatalf("at the bound: %v %v", got, err)
	}
	if _, err := ZoneFileDomains(t.Context(), strings.NewReader(repeat(MaxZoneFileRecords+1)), ""); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "records") {
		t.Fatalf("past the record bound: %v", err)
	}
	big := "; " + strings.Repeat("x", MaxZoneFileBytes) + "\nexample.org. 60 IN A 192.0.2.1\n"
	if _, err := ZoneFileDomains(t.Context(), strings.NewReader(big), ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("past the size bound: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ZoneFileDomains(ctx, strings.NewReader(repeat(1000)), ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestListUnused(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, func(c *Config) { c.UnusedAfter = time.Hour })
	g := ts.adminGrant(t, "alice", "*.example.org")
	for _, dom := range []string{"a.example.org", "b.example.org"} {
		if _, _, err := ts.svc.CreateDelegation(t.Context(), g, dom); err != nil {
			t.Fatal(err)
		}
	}
	if ds, _, err := ts.svc.ListDelegations(t.Context(), g, DelegationFilter{Unused: true}); err != nil || len(ds) != 0 {
		t.Fatalf("just created: %d %v", len(ds), err)
	}
	ts.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	ds, _, err := ts.svc.ListDelegations(t.Context(), g, DelegationFilter{Unused: true})
	if err != nil || len(ds) != 2 {
		t.Fatalf("two hours on: %d %v", len(ds), err)
	}
	off := newTestService(t, "*.example.org", nil, nil)
	if _, _, err := off.svc.ListDelegations(t.Context(), off.adminGrant(t, "bob", "*"), DelegationFilter{Unused: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unused off: %v", err)
	}
}
