package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/acmetest"
)

// TestDelegationChecksCLIAndAPI runs `acmehub serve` with check settings
// pointing at two nameservers of example.org on loopback, and drives
// onboarding and checks through the CLI (on the same database) and the
// API; each sees the other's stored results.
func TestDelegationChecksCLIAndAPI(t *testing.T) {
	t.Parallel()
	ns := [2]*acmetest.AuthServer{acmetest.StartAuthServer(t, "example.org."), acmetest.StartAuthServer(t, "example.org.")}
	rec := acmetest.NewResolver(t)
	rec.Forward("example.org.", ns[0].Addr)
	serveBoth := func(refuse2 bool, ns1, ns2 []string) {
		ns[0].Set(t, append(acmetest.ExampleOrgApex(), ns1...)...)
		ns[1].Set(t, append(acmetest.ExampleOrgApex(), ns2...)...)
		ns[1].Refuse(refuse2)
	}
	serveBoth(false, nil, nil)
	checkArgs := []string{"--check-resolver", rec.Addr(), "--check-nameserver-addr", "192.0.2.1=" + ns[0].Addr,
		"--check-nameserver-addr", "192.0.2.2=" + ns[1].Addr, "--check-timeout", "1s"}

	dir := t.TempDir()
	mustCLI(t, dir, "managed-challenge", "create", "--name", "org", "--rule", "*.example.org; a.b.example.org")
	h := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: dir, Args: append([]string{"--check-interval", "0"}, checkArgs...)})
	cli := func(args ...string) string { return mustCLI(t, dir, append(args, checkArgs...)...) }
	type check struct {
		State, Detail string
	}
	type deleg struct {
		Domain, Target string
		CNAME          struct{ Name, Target string }
		Check          *check
	}

	// Onboarding: a plain, a deep and an IDN name, one refused.
	out := runCLI(t, dir, append([]string{"delegation", "onboard", "www.example.org", "*.a.b.example.org", "bücher.example.org", "shop.example.com"}, checkArgs...)...)
	if out.err == nil || !strings.Contains(out.err.Error(), "1 of 4 domains refused") ||
		!strings.Contains(out.stdout, "; shop.example.com: refused: no managed challenge") {
		t.Fatalf("onboard: %v\n%s", out.err, out.stdout)
	}
	var ds []deleg
	if err := json.Unmarshal([]byte(cli("delegation", "list", "--json")), &ds); err != nil || len(ds) != 3 {
		t.Fatalf("list: %v %+v", err, ds)
	}
	targets := map[string]string{}
	for _, d := range ds {
		targets[d.Domain] = d.Target
		if !strings.Contains(out.stdout, d.CNAME.Name+" CNAME "+d.Target+" ; "+d.Domain+", created") {
			t.Errorf("onboard output lacks the record of %s:\n%s", d.Domain, out.stdout)
		}
	}
	if targets["xn--bcher-kva.example.org"] == "" || targets["a.b.example.org"] == "" {
		t.Fatalf("targets %v", targets)
	}
	cname := func(domain string) string {
		return "_acme-challenge." + domain + ". 300 IN CNAME " + targets[domain]
	}

	apiCheck := func(domain, want string) {
		t.Helper()
		code, body := request(t, h, h.Token, "POST", "/api/v1/delegations/"+domain+"/check", nil)
		var d deleg
		if err := json.Unmarshal(body, &d); code != http.StatusOK || err != nil || d.Check == nil || d.Check.State != want {
			t.Fatalf("API check %s: %d %s, want %s", domain, code, body, want)
		}
	}
	cliCheck := func(domain, want string) {
		t.Helper()
		var d deleg
		if err := json.Unmarshal([]byte(cli("delegation", "check", domain, "--json")), &d); err != nil || d.Check == nil || d.Check.State != want {
			t.Fatalf("CLI check %s: %v %+v, want %s", domain, err, d.Check, want)
		}
	}
	listed := func(state string) []string {
		var ds []deleg
		if err := json.Unmarshal([]byte(cli("delegation", "list", "--state", state, "--json")), &ds); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.Domain)
		}
		return out
	}

	apiCheck("www.example.org", "missing")
	cliCheck("www.example.org", "missing")
	serveBoth(false, []string{cname("www.example.org")}, []string{cname("www.example.org")})
	cliCheck("www.example.org", "ok")
	apiCheck("www.example.org", "ok")
	serveBoth(false, []string{"_acme-challenge.www.example.org. 300 IN CNAME elsewhere.example.net."},
		[]string{"_acme-challenge.www.example.org. 300 IN CNAME elsewhere.example.net."})
	apiCheck("www.example.org", "wrong_target")
	txt := `_acme-challenge.www.example.org. 300 IN TXT "old"`
	serveBoth(false, []string{cname("www.example.org"), txt}, []string{cname("www.example.org"), txt})
	cliCheck("www.example.org", "conflict")

	// The deep and the IDN name only on ns1: inconsistent.
	serveBoth(false, []string{cname("a.b.example.org"), cname("xn--bcher-kva.example.org")}, nil)
	apiCheck("a.b.example.org", "inconsistent")
	cliCheck("bücher.example.org", "inconsistent")
	if got := listed("inconsistent"); len(got) != 2 {
		t.Fatalf("inconsistent: %v", got)
	}
	serveBoth(true, nil, nil)
	apiCheck("a.b.example.org", "unreachable")
	if got := listed("unreachable"); len(got) != 1 || got[0] != "a.b.example.org" {
		t.Fatalf("unreachable: %v", got)
	}
	code, body := request(t, h, h.Token, "GET", "/api/v1/delegations?state=conflict", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"domain":"www.example.org"`) || strings.Count(string(body), `"domain"`) != 1 {
		t.Fatalf("API list by state: %d %s", code, body)
	}
	// The text form shows the state and the evidence.
	if s := cli("delegation", "show", "a.b.example.org"); !strings.Contains(s, "check:             unreachable since") ||
		!strings.Contains(s, "answered REFUSED") {
		t.Fatalf("show:\n%s", s)
	}
	if got := cli("delegation", "list", "--unused"); strings.Contains(got, "example.org") {
		t.Fatalf("unused right after onboarding:\n%s", got)
	}
	// Metrics count the states.
	code, body = request(t, h, h.Token, "GET", "/metrics", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `acmehub_delegations{state="unreachable"} 1`) ||
		!strings.Contains(string(body), "acmehub_txt_values 0") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
}

// The delegation commands read the check settings with serve's bounds.
func TestReadCheckSettingsBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"check-timeout", "2s", true}, {"check-timeout", "2m", false}, {"check-timeout", "10ms", false},
		{"delegation-unused-after", "720h", true}, {"delegation-unused-after", "100000h", false},
	} {
		ss := newSettingSet()
		addCheckSettings(ss)
		ss.byName[tc.name].value = tc.value
		var p problems
		readCheckSettings(&p, ss)
		if (len(p) == 0) != tc.ok {
			t.Errorf("%s=%s: problems %q", tc.name, tc.value, p)
		}
	}
}
