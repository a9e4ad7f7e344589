package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// principal creates a principal holding role (restricted to domains, ""
// for all) and returns a token for it with the given narrowing and limits.
func (f *fixture) consumer(t *testing.T, name, role, domains string, tok store.Token) secret.Token {
	t.Helper()
	p, err := f.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalApp, Name: name, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.AddRoleAssignment(t.Context(), store.RoleAssignment{PrincipalID: p.ID, Role: role, Domains: domains}); err != nil {
		t.Fatal(err)
	}
	return f.tokenFor(t, p.ID, tok)
}

func (f *fixture) tokenFor(t *testing.T, principalID int64, tok store.Token) secret.Token {
	t.Helper()
	st, err := secret.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok.ClientID, tok.PrincipalID, tok.SecretHash = st.ClientID, principalID, f.kr.HashSecret(st.Secret)
	if err := f.db.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *fixture) config(t *testing.T, name, rule string) {
	t.Helper()
	if _, err := f.db.CreateConfig(t.Context(), store.ChallengeConfig{Name: name, Provider: store.ProviderDelegated, Rule: rule}); err != nil {
		t.Fatal(err)
	}
}

func bearer(tok secret.Token) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.String()) }
}

func TestChallengeScopeAndRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	f.config(t, "example-net", "example.net")
	tok := f.consumer(t, "shop", store.RoleChallengeConsumer, "*.example.org", store.Token{})

	var forbiddenBody string
	tests := []struct {
		identifier string
		want       int
	}{
		{"www.example.org", http.StatusCreated},
		{"*.example.org", http.StatusCreated},
		{"example.org", http.StatusCreated},
		{"_acme-challenge.www.example.org", http.StatusCreated},
		{"WWW.Example.ORG.", http.StatusCreated},
		{"a.b.example.org", http.StatusForbidden},
		{"example.net", http.StatusForbidden}, // a config exists, but outside the token's scope
		{"evilexample.org", http.StatusForbidden},
		{"example.org.evil.net", http.StatusForbidden},
		{"not a name", http.StatusBadRequest},
	}
	for i, tc := range tests {
		t.Run(tc.identifier, func(t *testing.T) {
			body := fmt.Sprintf(`{"identifier":%q,"value":"v%d"}`, tc.identifier, i)
			r := f.do(t, "POST", "/api/v1/challenges", body, bearer(tok))
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tc.want)
			}
			if r.status == http.StatusForbidden {
				if forbiddenBody != "" && r.raw != forbiddenBody {
					t.Fatalf("403 bodies differ: %s vs %s", r.raw, forbiddenBody)
				}
				forbiddenBody = r.raw
			}
		})
	}
	// The wildcard and its base share one delegation, one record name, and
	// both values live there at once.
	base := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"shop.example.org","value":"base-value"}`, bearer(tok))
	wild := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"*.shop.example.org","value":"wild-value"}`, bearer(tok))
	if base.body["cname_target"] != wild.body["cname_target"] || base.body["record_name"] != "_acme-challenge.shop.example.org." {
		t.Fatalf("base and wildcard differ: %s / %s", base.raw, wild.raw)
	}
	target := base.body["cname_target"].(string)
	if !strings.HasSuffix(target, "."+testZone) || base.body["managed_challenge"] != "example-org" {
		t.Fatalf("unexpected target or config: %s", base.raw)
	}
	recs, err := f.db.ListValues(t.Context(), target)
	if err != nil || len(recs) != 2 {
		t.Fatalf("values at %s: %v %v", target, recs, err)
	}
	// A request naming the CNAME target resolves to the same delegation and
	// is checked against the same rules.
	r := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"`+target+`","value":"via-target"}`, bearer(tok))
	if r.status != http.StatusCreated || r.body["domain"] != "shop.example.org" {
		t.Fatalf("present via the target: %d %s", r.status, r.raw)
	}
	// An unknown name in the hub zone reveals nothing.
	if r := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"nosuch.`+testZone+`","value":"x"}`, bearer(tok)); r.status != http.StatusForbidden {
		t.Fatalf("unknown hub name: %d %s", r.status, r.raw)
	}

	// Status and clean-up by id, idempotent.
	id := base.body["id"].(string)
	if r := f.do(t, "GET", "/api/v1/challenges/"+id, "", bearer(tok)); r.body["status"] != "published" {
		t.Fatalf("status: %s", r.raw)
	}
	for _, want := range []float64{1, 0} {
		if r := f.do(t, "DELETE", "/api/v1/challenges/"+id, "", bearer(tok)); r.status != http.StatusOK || r.body["removed"] != want {
			t.Fatalf("clean-up by id: %d %s", r.status, r.raw)
		}
	}
	if r := f.do(t, "GET", "/api/v1/challenges/"+id, "", bearer(tok)); r.body["status"] != "absent" {
		t.Fatalf("status after clean-up: %s", r.raw)
	}
	// Clean-up by identifier and value.
	r = f.do(t, "POST", "/api/v1/challenges/cleanup", `{"identifier":"*.shop.example.org","value":"wild-value"}`, bearer(tok))
	if r.status != http.StatusOK || r.body["removed"] != float64(1) {
		t.Fatalf("clean-up: %d %s", r.status, r.raw)
	}
	// Audit rows: presents allowed and denied.
	events, err := f.db.ListAudit(t.Context(), store.AuditFilter{Action: "challenge.present", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]int{}
	for _, e := range events {
		results[e.Result]++
	}
	if results["ok"] < 7 || results["denied"] < 4 {
		t.Fatalf("audit results %v", results)
	}
}

func TestKeyAuthorization(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	tok := f.consumer(t, "lego", store.RoleChallengeConsumer, "", store.Token{})
	// RFC 8555 8.4: the value is base64url(SHA-256(key authorization)).
	r := f.do(t, "POST", "/api/v1/challenges", `{"identifier":"example.org","key_authorization":"token.thumbprint"}`, bearer(tok))
	if r.status != http.StatusCreated || r.body["value"] != "61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	r = f.do(t, "POST", "/api/v1/challenges", `{"identifier":"example.org","key_authorization":"a.b","value":"other"}`, bearer(tok))
	if r.status != http.StatusBadRequest {
		t.Fatalf("mismatched value and key authorization: %d %s", r.status, r.raw)
	}
}

func TestTokenLimitsTakeEffectAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	p, err := f.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalUser, Name: "ops", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{store.RoleAdmin, store.RoleChallengeConsumer} {
		if _, err := f.db.AddRoleAssignment(t.Context(), store.RoleAssignment{PrincipalID: p.ID, Role: role}); err != nil {
			t.Fatal(err)
		}
	}
	present := func(tok secret.Token) int {
		return f.do(t, "POST", "/api/v1/challenges", `{"identifier":"example.org","value":"x"}`, bearer(tok)).status
	}
	records := func(tok secret.Token) int { return f.do(t, "GET", "/api/v1/records", "", bearer(tok)).status }

	full := f.tokenFor(t, p.ID, store.Token{})
	narrowed := f.tokenFor(t, p.ID, store.Token{Roles: []string{store.RoleChallengeConsumer}})
	if records(full) != http.StatusOK || records(narrowed) != http.StatusForbidden || present(narrowed) != http.StatusCreated {
		t.Fatal("a token narrowed to the consumer role kept admin rights or lost its own")
	}
	// Revocation: refused at once.
	if err := f.db.RevokeToken(t.Context(), full.ClientID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := records(full); got != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", got)
	}
	// Expiry.
	expired := f.tokenFor(t, p.ID, store.Token{ExpiresAt: time.Now().Add(-time.Second)})
	if got := present(expired); got != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", got)
	}
	// CIDR allow-list: httptest clients come from 127.0.0.1.
	elsewhere := f.tokenFor(t, p.ID, store.Token{AllowCIDRs: []string{"192.0.2.0/24"}})
	here := f.tokenFor(t, p.ID, store.Token{AllowCIDRs: []string{"192.0.2.0/24", "127.0.0.0/8"}})
	if present(elsewhere) != http.StatusUnauthorized || present(here) != http.StatusCreated {
		t.Fatal("the CIDR allow-list is not applied")
	}
	// A disabled principal's tokens stop working.
	p.Enabled = false
	if _, err := f.db.UpdatePrincipal(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if got := present(here); got != http.StatusUnauthorized {
		t.Fatalf("disabled principal: %d", got)
	}
	events, err := f.db.ListAudit(t.Context(), store.AuditFilter{Result: "failed_auth", Limit: 100})
	if err != nil || len(events) < 4 {
		t.Fatalf("failed authentications audited: %d %v", len(events), err)
	}
}

func TestFailedAuthenticationsLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	wrong := func(r *http.Request) { r.SetBasicAuth(f.token.ClientID, "ahs_"+strings.Repeat("A", 43)) }
	codes := map[int]int{}
	for range 15 {
		codes[f.do(t, "GET", "/api/v1/records", "", wrong).status]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 5 {
		t.Fatalf("status counts %v, want 10 x 401 then 429", codes)
	}
	// The right secret is refused too while the client id is limited.
	if r := f.do(t, "GET", "/api/v1/records", "", f.bearer); r.status != http.StatusTooManyRequests || r.body["code"] != "rate_limited" {
		t.Fatalf("while limited: %d %s", r.status, r.raw)
	}
	events, err := f.db.ListAudit(t.Context(), store.AuditFilter{Result: "rate_limited", Limit: 10})
	if err != nil || len(events) != 1 {
		t.Fatalf("the switch to limited is audited once: %d %v", len(events), err)
	}
}
