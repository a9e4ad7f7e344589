package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/acmetest"
	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/internal/hub"
)

// checkFixture is the API over a hub whose checks ask two nameservers of
// example.org on loopback, through a resolver forwarding to the first.
func checkFixture(t *testing.T) (*fixture, [2]*acmetest.AuthServer) {
	t.Helper()
	ns := [2]*acmetest.AuthServer{acmetest.StartAuthServer(t, "example.org."), acmetest.StartAuthServer(t, "example.org.")}
	rec := acmetest.NewResolver(t)
	rec.Forward("example.org.", ns[0].Addr)
	for _, a := range ns {
		a.Set(t, acmetest.ExampleOrgApex()...)
	}
	c, err := dnscheck.New(dnscheck.Config{Recursive: []string{rec.Addr()}, Timeout: time.Second,
		Addrs: map[string]string{"192.0.2.1": ns[0].Addr, "192.0.2.2": ns[1].Addr}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(hc *hub.Config) { hc.DNSCheck, hc.UnusedAfter = c, time.Hour }, nil)
	f.config(t, "org", "*.example.org; example.org; a.b.example.org; *.xn--bcher-kva.example")
	return f, ns
}

func TestDelegationCheckAPI(t *testing.T) {
	t.Parallel()
	f, ns := checkFixture(t)
	d := f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"example.org"}`, f.bearer)
	if _, ok := d.body["check"]; ok {
		t.Fatalf("a new delegation has a check: %s", d.raw)
	}
	target := d.body["target"].(string)
	cname := "_acme-challenge.example.org. 300 IN CNAME " + target
	txt := `_acme-challenge.example.org. 300 IN TXT "left over"`
	for _, st := range []struct {
		state    string
		ns1, ns2 []string
		refuse   bool
		detail   string
	}{
		{state: "missing", detail: "add"},
		{state: "ok", ns1: []string{cname}, ns2: []string{cname}},
		{state: "wrong_target", ns1: []string{"_acme-challenge.example.org. 300 IN CNAME old.example.com."},
			ns2: []string{"_acme-challenge.example.org. 300 IN CNAME old.example.com."}, detail: "old.example.com."},
		{state: "conflict", ns1: []string{cname, txt}, ns2: []string{cname, txt}, detail: "left over"},
		{state: "inconsistent", ns1: []string{cname}, detail: "disagree"},
		{state: "unreachable", ns1: []string{cname}, ns2: []string{cname}, refuse: true, detail: "REFUSED"},
	} {
		ns[0].Set(t, append(acmetest.ExampleOrgApex(), st.ns1...)...)
		ns[1].Set(t, append(acmetest.ExampleOrgApex(), st.ns2...)...)
		ns[1].Refuse(st.refuse)
		r := f.must(t, http.StatusOK, "POST", "/api/v1/delegations/example.org/check", "", f.bearer)
		var got struct {
			Domain string
			Check  struct {
				State, Detail string
				CheckedAt     time.Time `json:"checked_at"`
				Since         time.Time
				Evidence      hub.CheckEvidence
			}
		}
		if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
			t.Fatal(err)
		}
		c := got.Check
		if c.State != st.state || !strings.Contains(c.Detail, st.detail) || c.CheckedAt.IsZero() ||
			len(c.Evidence.Nameservers) != 2 || c.Evidence.Expected != target {
			t.Fatalf("%s: %s", st.state, r.raw)
		}
		// The stored check shows on the delegation and in the list by state.
		g := f.must(t, http.StatusOK, "GET", "/api/v1/delegations/example.org", "", f.bearer)
		if g.body["check"].(map[string]any)["state"] != st.state {
			t.Fatalf("%s: get %s", st.state, g.raw)
		}
		l := f.must(t, http.StatusOK, "GET", "/api/v1/delegations?state="+st.state, "", f.bearer)
		if ds := l.body["delegations"].([]any); len(ds) != 1 || ds[0].(map[string]any)["domain"] != "example.org" {
			t.Fatalf("%s: list %s", st.state, l.raw)
		}
	}
	// One audit event per change of state: six states, six events.
	a := f.must(t, http.StatusOK, "GET", "/api/v1/audit?action=delegation.check", "", f.bearer)
	evs, _ := a.body["events"].([]any)
	details := make([]string, 0, len(evs))
	for _, e := range evs {
		details = append(details, e.(map[string]any)["detail"].(string))
	}
	if len(evs) != 6 || !strings.Contains(strings.Join(details, "\n"), "unchecked -> missing: There is no CNAME") ||
		!strings.Contains(strings.Join(details, "\n"), "inconsistent -> unreachable: ") {
		t.Fatalf("audit %s", a.raw)
	}

	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/delegations?state=fine", "", f.bearer, "fine")
	if l := f.must(t, http.StatusOK, "GET", "/api/v1/delegations?unused=true", "", f.bearer); len(l.body["delegations"].([]any)) != 0 {
		t.Fatalf("unused just after creation: %s", l.raw)
	}
	f.problem(t, http.StatusNotFound, "not_found", "POST", "/api/v1/delegations/www.example.org/check", "", f.bearer)
	_, other := f.newPrincipal(t, "net-admin", "managed_challenge_admin", "example.net")
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/delegations/example.org/check", "", bearer(other))
}

func TestDelegationCheckAPILimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // no DNS check client: checks are off
	f.config(t, "org", "*.example.org")
	f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"www.example.org"}`, f.bearer)
	f.problem(t, http.StatusServiceUnavailable, "checks_off", "POST", "/api/v1/delegations/www.example.org/check", "", f.bearer, "check-resolver")
	// The burst is 10 per principal; then 429 with Retry-After.
	for range 9 {
		f.must(t, http.StatusServiceUnavailable, "POST", "/api/v1/delegations/www.example.org/check", "", f.bearer)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.srv.URL+"/api/v1/delegations/www.example.org/check", nil)
	f.bearer(req)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "6" {
		t.Fatalf("11th check: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another principal has its own budget.
	_, other := f.newPrincipal(t, "org-admin", "managed_challenge_admin", "*.example.org")
	f.must(t, http.StatusServiceUnavailable, "POST", "/api/v1/delegations/www.example.org/check", "", bearer(other))
}

func TestOnboardAPI(t *testing.T) {
	t.Parallel()
	f, ns := checkFixture(t)
	body := `{"domains":["www.example.org","*.a.b.example.org","shop.bücher.example","x.y.example.org","exa mple.org"]}`
	r := f.must(t, http.StatusOK, "POST", "/api/v1/delegations/onboard", body, f.bearer)
	var got struct{ Results []onboardResult }
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatal(err)
	}
	want := []struct{ domain, outcome string }{
		{"www.example.org", "created"}, {"a.b.example.org", "created"}, {"shop.xn--bcher-kva.example", "created"},
		{"x.y.example.org", "refused"}, {"", "refused"},
	}
	if len(got.Results) != len(want) {
		t.Fatalf("%s", r.raw)
	}
	for i, w := range want {
		res := got.Results[i]
		if res.Domain != w.domain || res.Outcome != w.outcome || (w.outcome == "refused") != (res.Reason != "" && res.Delegation == nil) {
			t.Errorf("%d: %+v, want %+v", i, res, w)
		}
		if w.outcome == "created" {
			c := res.Delegation.CNAME
			if c.Name != "_acme-challenge."+w.domain+"." || c.Type != "CNAME" || c.ZoneLine != c.Name+" CNAME "+c.Target {
				t.Errorf("%d: cname %+v", i, c)
			}
		}
	}
	// The deep name checks ok once its owner adds the record.
	deep := got.Results[1].Delegation.CNAME
	rec := deep.Name + " 300 IN CNAME " + deep.Target
	ns[0].Set(t, append(acmetest.ExampleOrgApex(), rec)...)
	ns[1].Set(t, append(acmetest.ExampleOrgApex(), rec)...)
	c := f.must(t, http.StatusOK, "POST", "/api/v1/delegations/"+url.PathEscape("*.a.b.example.org")+"/check", "", f.bearer)
	if c.body["check"].(map[string]any)["state"] != "ok" {
		t.Fatalf("deep: %s", c.raw)
	}

	// A zone file: its names, existing ones reported as such.
	zf := "$ORIGIN example.org.\n@ 3600 IN SOA ns1 h 1 2 3 4 5\nwww 60 IN A 192.0.2.1\n_dmarc 60 IN TXT \"v=DMARC1\"\n*.api 60 IN A 192.0.2.2\n"
	b, _ := json.Marshal(map[string]string{"zone_file": zf})
	r = f.must(t, http.StatusOK, "POST", "/api/v1/delegations/onboard", string(b), f.bearer)
	got.Results = nil
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 3 || got.Results[0].Domain != "example.org" || got.Results[0].Outcome != "created" ||
		got.Results[1].Domain != "www.example.org" || got.Results[1].Outcome != "existing" ||
		got.Results[2].Domain != "api.example.org" || got.Results[2].Outcome != "created" {
		t.Fatalf("zone file: %s", r.raw)
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/delegations/onboard", `{"zone_file":"www 60 IN A 192.0.2.1\n"}`, f.bearer, "zone file")
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/delegations/onboard", `{}`, f.bearer)
	_, consumer := f.newPrincipal(t, "shop", "managed_challenge_consumer", "*.example.org")
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/delegations/onboard", body, bearer(consumer))
	// The role is checked before a zone file is parsed: a bad file is 403, not 400.
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/delegations/onboard", `{"zone_file":"www 60 IN A 192.0.2.1\n"}`, bearer(consumer))
	// $GENERATE is refused, however it is written.
	for _, zf := range []string{"$GENERATE 0-65535 @ 60 IN TXT \"x\"\n", "$ORIGIN example.org.\n  $generate 1-9 h$ A 192.0.2.1\n"} {
		b, _ := json.Marshal(map[string]string{"zone_file": zf})
		f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/delegations/onboard", string(b), f.bearer, "$GENERATE")
	}
}

// onboardResult mirrors api.OnboardResultJSON for decoding.
type onboardResult struct {
	Input, Domain, Outcome, Reason string
	Delegation                     *struct {
		CNAME struct {
			Name, Type, Target string
			ZoneLine           string `json:"zone_line"`
		} `json:"cname"`
	}
}
