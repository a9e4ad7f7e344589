package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// httpreqServer serves the real router with HTTPReqPath prefix over the
// fixture's database (a second service on the same store, as a second hub
// process would be).
func (f *fixture) httpreqServer(t *testing.T, prefix string) string {
	t.Helper()
	svc := hub.New(f.db, f.kr, hub.Config{Zone: testZone, DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour})
	a, err := api.New(svc, api.Config{MaxBody: 1024, HTTPReqPath: prefix, Logger: slog.New(slog.NewJSONHandler(f.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv.URL
}

type httpreqReply struct {
	status int
	body   string
	header http.Header
}

// post sends body to url with the headers a client sets.
func post(t *testing.T, url, body string, headers func(*http.Request)) httpreqReply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if headers != nil {
		headers(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpreqReply{status: resp.StatusCode, body: string(raw), header: resp.Header}
}

// legoHeaders are what lego's httpreq provider sends (doPost).
func legoHeaders(tok secret.Token) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Accept", "application/json")
		r.Header.Set("Content-Type", "application/json")
		r.SetBasicAuth(tok.ClientID, tok.Secret)
	}
}

// acmeshHeaders are what acme.sh's dns_acmeproxy sends: the Basic
// credentials it encodes itself with printf | _base64 (padded base64).
func acmeshHeaders(tok secret.Token) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(tok.ClientID+":"+tok.Secret)))
		r.Header.Set("Accept", "application/json")
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "acme.sh/3.1.1 (https://github.com/acmesh-official/acme.sh)")
	}
}

func txtValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// values lists the live values at a hub-zone name, sorted.
func (f *fixture) values(t *testing.T, name string) []string {
	t.Helper()
	recs, err := f.db.ListValues(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Value)
	}
	slices.Sort(out)
	return out
}

// target returns domain's delegation name, creating it with the admin token.
func (f *fixture) target(t *testing.T, domain string) string {
	t.Helper()
	r := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"`+domain+`","value":"setup"}`, f.bearer)
	if r.status != http.StatusCreated {
		t.Fatalf("delegate %s: %d %s", domain, r.status, r.raw)
	}
	if r := f.do(t, "POST", "/api/v1/challenges/cleanup", `{"identifier":"`+domain+`","value":"setup"}`, f.bearer); r.status != http.StatusOK {
		t.Fatalf("clean up the setup value: %d %s", r.status, r.raw)
	}
	return r.body["cname_target"].(string)
}

// TestHTTPReqClients replays the clients' wire formats at the root and
// under /httpreq, and checks the echo byte for byte and the values the hub
// then serves.
func TestHTTPReqClients(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "traefik", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	www := f.target(t, "www.example.org")
	apex := f.target(t, "example.org")
	bases := map[string]string{"root": f.httpreqServer(t, ""), "/httpreq": f.httpreqServer(t, "/httpreq") + "/httpreq"}

	tests := []struct {
		name    string
		headers func(*http.Request)
		body    string // the request; VALUE stands for the test's value
		keyAuth string // RAW mode: the key authorization in body
		value   string // default mode: the value; "" for one made from the name
		echo    string // the whole 200 body; VALUE as above
		at      string // where the value is served
	}{
		{
			name: "lego default", headers: legoHeaders(tok),
			body: `{"fqdn":"_acme-challenge.www.example.org.","value":"VALUE"}` + "\n",
			echo: `{"fqdn":"_acme-challenge.www.example.org.","value":"VALUE"}` + "\n", at: www,
		},
		{
			// lego follows the CNAME and names the delegation's name.
			name: "lego default, cname target", headers: legoHeaders(tok),
			body: `{"fqdn":"` + www + `","value":"VALUE"}` + "\n",
			echo: `{"fqdn":"` + www + `","value":"VALUE"}` + "\n", at: www,
		},
		{
			name: "lego RAW", headers: legoHeaders(tok), keyAuth: "tok-www.thumbprint",
			body: `{"domain":"www.example.org","token":"tok-www","keyAuth":"tok-www.thumbprint"}` + "\n",
			echo: `{"domain":"www.example.org","token":"tok-www","keyAuth":"tok-www.thumbprint","value":"VALUE"}` + "\n", at: www,
		},
		{
			// lego names the base domain for a wildcard identifier.
			name: "lego RAW wildcard order", headers: legoHeaders(tok), keyAuth: "tok-apex.thumbprint",
			body: `{"domain":"example.org","token":"tok-apex","keyAuth":"tok-apex.thumbprint"}` + "\n",
			echo: `{"domain":"example.org","token":"tok-apex","keyAuth":"tok-apex.thumbprint","value":"VALUE"}` + "\n", at: apex,
		},
		{
			// acmeproxy's own server spells the key "keyauth".
			name: "RAW keyauth spelling", headers: legoHeaders(tok), keyAuth: "tok-2.thumbprint",
			body: `{"domain":"www.example.org","token":"tok-2","keyauth":"tok-2.thumbprint"}`,
			echo: `{"domain":"www.example.org","token":"tok-2","keyauth":"tok-2.thumbprint","value":"VALUE"}` + "\n", at: www,
		},
		{
			name: "acme.sh dns_acmeproxy", headers: acmeshHeaders(tok),
			body: `{"fqdn": "_acme-challenge.example.org.", "value": "VALUE"}`,
			echo: `{"fqdn":"_acme-challenge.example.org.","value":"VALUE"}` + "\n", at: apex,
		},
		{
			// Printable ASCII the JSON encoder would escape for HTML: acme.sh
			// greps for the value as sent.
			name: "value with HTML characters", headers: acmeshHeaders(tok), value: "a<b>&c",
			body: `{"fqdn": "_acme-challenge.www.example.org.", "value": "VALUE"}`,
			echo: `{"fqdn":"_acme-challenge.www.example.org.","value":"VALUE"}` + "\n", at: www,
		},
		{
			name: "upper-case keys, no trailing dot", headers: legoHeaders(tok),
			body: `{"FQDN":"_acme-challenge.WWW.example.org","Value":"VALUE"}`,
			echo: `{"FQDN":"_acme-challenge.WWW.example.org","Value":"VALUE"}` + "\n", at: www,
		},
	}
	for prefix, base := range bases {
		t.Run(prefix, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					value := "v-" + strings.ReplaceAll(prefix+tc.name, " ", "_")
					switch {
					case tc.keyAuth != "":
						value = txtValue(tc.keyAuth)
					case tc.value != "":
						value = tc.value + prefix
					}
					body := strings.ReplaceAll(tc.body, "VALUE", value)
					echo := strings.ReplaceAll(tc.echo, "VALUE", value)

					r := post(t, base+"/present", body, tc.headers)
					if r.status != http.StatusOK || r.body != echo || r.header.Get("Content-Type") != "application/json" {
						t.Fatalf("present: %d %q %s\nwant 200 %q", r.status, r.body, r.header.Get("Content-Type"), echo)
					}
					if !strings.Contains(r.body, `"`+value+`"`) { // acme.sh's success test
						t.Fatalf("acme.sh would not find %q in %s", value, r.body)
					}
					if got := f.values(t, tc.at); !slices.Contains(got, value) {
						t.Fatalf("after present, %s serves %q, want %q among them", tc.at, got, value)
					}
					// Clean-up takes the same body, echoes it, and removes the
					// value; again, it removes nothing and still succeeds.
					for range 2 {
						r = post(t, base+"/cleanup", body, tc.headers)
						if r.status != http.StatusOK || r.body != echo {
							t.Fatalf("cleanup: %d %q, want 200 %q", r.status, r.body, echo)
						}
						if got := f.values(t, tc.at); slices.Contains(got, value) {
							t.Fatalf("after cleanup, %s still serves %q", tc.at, value)
						}
					}
				})
			}
		})
	}
	if got := append(f.values(t, www), f.values(t, apex)...); len(got) != 0 {
		t.Errorf("values left: %q", got)
	}
	// Each prefix serves only its own paths; the native API is unaffected.
	if r := post(t, bases["root"]+"/httpreq/present", `{"fqdn":"_acme-challenge.example.org.","value":"x"}`, legoHeaders(tok)); r.status != http.StatusNotFound {
		t.Errorf("root server, /httpreq/present: %d %s", r.status, r.body)
	}
	if r := post(t, strings.TrimSuffix(bases["/httpreq"], "/httpreq")+"/present", `{"fqdn":"_acme-challenge.example.org.","value":"x"}`, legoHeaders(tok)); r.status != http.StatusNotFound {
		t.Errorf("/httpreq server, /present: %d %s", r.status, r.body)
	}
	// The audit log names the domain for the CNAME-target form too.
	events, err := f.db.ListAudit(t.Context(), store.AuditFilter{Action: "challenge.present", Domain: "www.example.org", Result: "ok", Limit: 100})
	if err != nil || len(events) < 2*4 {
		t.Errorf("presents for www.example.org audited: %d %v", len(events), err)
	}
}

// TestHTTPReqRules checks that the token's scope and the managed challenge
// rules apply through both modes and the CNAME-target form, with the one
// 403 body of the native API, and that nothing is published.
func TestHTTPReqRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	f.config(t, "example-net", "example.net")
	tok := f.consumer(t, "shop", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	netTarget := f.target(t, "example.net") // delegated by the admin
	base := f.httpreqServer(t, "/httpreq") + "/httpreq"

	native := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"example.net","value":"x"}`, bearer(tok))
	if native.status != http.StatusForbidden {
		t.Fatalf("native present for example.net: %d %s", native.status, native.raw)
	}
	bodies := []struct{ name, body string }{
		{"default", `{"fqdn":"_acme-challenge.example.net.","value":"denied-value"}`},
		{"RAW", `{"domain":"example.net","token":"t","keyAuth":"t.thumb"}`},
		{"cname target of example.net", `{"fqdn":"` + netTarget + `","value":"denied-value"}`},
		{"two labels below example.org", `{"fqdn":"_acme-challenge.a.b.example.org.","value":"denied-value"}`},
		{"unknown hub-zone name", `{"fqdn":"nosuch.` + testZone + `","value":"denied-value"}`},
		{"look-alike domain", `{"domain":"example.org.evil.net","token":"t","keyAuth":"t.thumb"}`},
	}
	for _, action := range []string{"present", "cleanup"} {
		for _, tc := range bodies {
			t.Run(action+" "+tc.name, func(t *testing.T) {
				r := post(t, base+"/"+action, tc.body, legoHeaders(tok))
				if r.status != http.StatusForbidden || r.body != native.raw {
					t.Fatalf("got %d %s, want 403 %s", r.status, r.body, native.raw)
				}
				if strings.Contains(r.body, `"denied-value"`) || strings.Contains(r.body, `"`+txtValue("t.thumb")+`"`) {
					t.Fatalf("the 403 body holds the value: acme.sh would read it as success: %s", r.body)
				}
			})
		}
	}
	if got := f.values(t, netTarget); len(got) != 0 {
		t.Errorf("values published for example.net: %q", got)
	}
	denied, err := f.db.ListAudit(t.Context(), store.AuditFilter{Result: "denied", Limit: 100})
	if err != nil || len(denied) < len(bodies) {
		t.Errorf("denied requests audited: %d %v", len(denied), err)
	}
}

// TestHTTPReqRAWCleanupNeverAdds cleans up a value that was never presented
// and one presented in default mode, through RAW mode.
func TestHTTPReqRAWCleanupNeverAdds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	tok := f.consumer(t, "lego", store.RoleChallengeConsumer, "", store.Token{})
	target := f.target(t, "example.org")
	base := f.httpreqServer(t, "")
	raw := `{"domain":"example.org","token":"abc","keyAuth":"abc.thumb"}`

	if r := post(t, base+"/cleanup", raw, legoHeaders(tok)); r.status != http.StatusOK {
		t.Fatalf("cleanup of nothing: %d %s", r.status, r.body)
	}
	if got := f.values(t, target); len(got) != 0 {
		t.Fatalf("a RAW cleanup published %q", got)
	}
	// Presented in default mode with the value RAW mode computes, plus an
	// unrelated value: RAW clean-up removes exactly the first.
	for _, v := range []string{txtValue("abc.thumb"), "other"} {
		if r := post(t, base+"/present", `{"fqdn":"_acme-challenge.example.org.","value":"`+v+`"}`, legoHeaders(tok)); r.status != http.StatusOK {
			t.Fatalf("present %s: %d %s", v, r.status, r.body)
		}
	}
	if r := post(t, base+"/cleanup", raw, legoHeaders(tok)); r.status != http.StatusOK {
		t.Fatalf("cleanup: %d %s", r.status, r.body)
	}
	if got := f.values(t, target); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("after the RAW cleanup: %q, want only \"other\"", got)
	}
}

// TestHTTPReqErrors covers authentication, bad bodies and methods; none of
// them publishes anything.
func TestHTTPReqErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	tok := f.consumer(t, "lego", store.RoleChallengeConsumer, "", store.Token{})
	target := f.target(t, "example.org")
	base := f.httpreqServer(t, "/httpreq") + "/httpreq"
	good := `{"fqdn":"_acme-challenge.example.org.","value":"secret-looking"}`
	other, err := secret.NewToken()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		headers func(*http.Request)
		body    string
		status  int
		code    string
	}{
		{"no credentials", func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, good, 401, "unauthenticated"},
		{"wrong secret", func(r *http.Request) { r.SetBasicAuth(tok.ClientID, other.Secret) }, good, 401, "unauthenticated"},
		{"unknown client", legoHeaders(other), good, 401, "unauthenticated"},
		{"basic without password", func(r *http.Request) { r.SetBasicAuth(tok.ClientID, "") }, good, 401, "unauthenticated"},
		{"empty body", legoHeaders(tok), ``, 400, "malformed_json"},
		{"malformed", legoHeaders(tok), `{"fqdn":`, 400, "malformed_json"},
		{"not an object", legoHeaders(tok), `["_acme-challenge.example.org.","x"]`, 400, "malformed_json"},
		{"two objects", legoHeaders(tok), good + good, 400, "malformed_json"},
		{"null", legoHeaders(tok), `null`, 400, "bad_request"},
		{"empty object", legoHeaders(tok), `{}`, 400, "bad_request"},
		{"neither shape", legoHeaders(tok), `{"identifier":"example.org","value":"x"}`, 400, "bad_request"},
		{"mixed shapes", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","value":"x","domain":"example.org"}`, 400, "bad_request"},
		{"fqdn without value", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org."}`, 400, "bad_request"},
		{"empty value", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","value":""}`, 400, "bad_request"},
		{"number value", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","value":5}`, 400, "bad_request"},
		{"null value", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","value":null}`, 400, "bad_request"},
		{"key given twice", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","FQDN":"x.","value":"x"}`, 400, "bad_request"},
		{"wildcard fqdn", legoHeaders(tok), `{"fqdn":"*.example.org.","value":"x"}`, 400, "bad_request"},
		{"bad fqdn", legoHeaders(tok), `{"fqdn":"_acme-challenge.not a name.","value":"x"}`, 400, "bad_request"},
		{"control character in value", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","value":"a\u0001b"}`, 400, "bad_request"},
		{"RAW without keyAuth", legoHeaders(tok), `{"domain":"example.org","token":"abc"}`, 400, "bad_request"},
		{"RAW with the record name", legoHeaders(tok), `{"domain":"_acme-challenge.example.org","token":"a","keyAuth":"a.b"}`, 400, "bad_request"},
		{"too large", legoHeaders(tok), `{"fqdn":"_acme-challenge.example.org.","value":"` + strings.Repeat("a", 2000) + `"}`, 413, "body_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, action := range []string{"present", "cleanup"} {
				r := post(t, base+"/"+action, tc.body, tc.headers)
				if r.status != tc.status || !strings.Contains(r.body, `"code":"`+tc.code+`"`) || r.header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("%s: %d %s %s, want %d %s", action, r.status, r.header.Get("Content-Type"), r.body, tc.status, tc.code)
				}
				if strings.Count(strings.TrimSpace(r.body), "\n") != 0 {
					t.Errorf("%s: the error body is not one line (lego prints it after the status): %q", action, r.body)
				}
				if tc.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("%s: 401 without a Basic challenge: %q", action, r.header.Get("WWW-Authenticate"))
				}
				if strings.Contains(r.body, `"secret-looking"`) || strings.Contains(r.body, tok.Secret) {
					t.Errorf("%s: the error body echoes the value or the secret: %s", action, r.body)
				}
			}
		})
	}
	if got := f.values(t, target); len(got) != 0 {
		t.Errorf("published by bad requests: %q", got)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/present", nil)
	if err != nil {
		t.Fatal(err)
	}
	legoHeaders(tok)(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", req.URL.Path, resp.StatusCode)
	}
}

// TestHTTPReqRateLimited: after the failed-attempt budget, 429 with
// Retry-After, even with the right secret.
func TestHTTPReqRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	tok := f.consumer(t, "lego", store.RoleChallengeConsumer, "", store.Token{})
	base := f.httpreqServer(t, "")
	body := `{"fqdn":"_acme-challenge.example.org.","value":"x"}`
	codes := map[int]int{}
	for range 15 {
		codes[post(t, base+"/present", body, func(r *http.Request) { r.SetBasicAuth(tok.ClientID, "ahs_"+strings.Repeat("A", 43)) }).status]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 5 {
		t.Fatalf("status counts %v, want 10 x 401 then 5 x 429", codes)
	}
	r := post(t, base+"/present", body, legoHeaders(tok))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, `"code":"rate_limited"`) {
		t.Fatalf("right secret while limited: %d %s", r.status, r.body)
	}
}
