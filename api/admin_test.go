package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// must sends a request and fails the test unless the status is want.
func (f *fixture) must(t *testing.T, want int, method, path, body string, auth func(*http.Request)) response {
	t.Helper()
	r := f.do(t, method, path, body, auth)
	if r.status != want {
		t.Fatalf("%s %s %s: got %d %s, want %d", method, path, body, r.status, r.raw, want)
	}
	return r
}

// problem checks a problem document's status and code, and that its
// detail mentions every word in words.
func (f *fixture) problem(t *testing.T, status int, code, method, path, body string, auth func(*http.Request), words ...string) response {
	t.Helper()
	r := f.must(t, status, method, path, body, auth)
	if r.ctype != "application/problem+json" || r.body["code"] != code {
		t.Fatalf("%s %s: want a %s problem document, got %s %s", method, path, code, r.ctype, r.raw)
	}
	detail, _ := r.body["detail"].(string)
	for _, w := range words {
		if !strings.Contains(detail, w) {
			t.Fatalf("%s %s: detail %q does not mention %q", method, path, detail, w)
		}
	}
	return r
}

func idOf(t *testing.T, r response) int64 {
	t.Helper()
	n, ok := r.body["id"].(float64)
	if !ok || n <= 0 {
		t.Fatalf("no id in %s", r.raw)
	}
	return int64(n)
}

func list(t *testing.T, r response, key string) []map[string]any {
	t.Helper()
	raw, ok := r.body[key].([]any)
	if !ok {
		t.Fatalf("no list %q in %s", key, r.raw)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

// newPrincipal creates a principal with one role through the API and
// returns its id and a token for it, also created through the API.
func (f *fixture) newPrincipal(t *testing.T, name, role, domains string) (int64, secret.Token) {
	t.Helper()
	p := f.must(t, http.StatusCreated, "POST", "/api/v1/principals", `{"kind":"app","name":"`+name+`"}`, f.bearer)
	id := idOf(t, p)
	f.must(t, http.StatusCreated, "POST", fmt.Sprintf("/api/v1/principals/%d/roles", id),
		fmt.Sprintf(`{"role":%q,"domains":%q}`, role, domains), f.bearer)
	tr := f.must(t, http.StatusCreated, "POST", "/api/v1/tokens", fmt.Sprintf(`{"principal_id":%d,"title":"ci"}`, id), f.bearer)
	tok, err := secret.ParseToken(tr.body["token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return id, tok
}

func (f *fixture) adminID(t *testing.T) int64 {
	t.Helper()
	p, err := f.db.PrincipalByName(t.Context(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// TestAdminSetsUpAConsumer walks the scenario end to end through
// the API alone.
func TestAdminSetsUpAConsumer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	p := f.must(t, http.StatusCreated, "POST", "/api/v1/principals",
		`{"kind":"app","name":"shop","description":"the web shop"}`, f.bearer)
	shop := idOf(t, p)
	if p.body["enabled"] != true || p.body["kind"] != "app" || len(p.body["roles"].([]any)) != 0 {
		t.Fatalf("created principal: %s", p.raw)
	}
	role := f.must(t, http.StatusCreated, "POST", fmt.Sprintf("/api/v1/principals/%d/roles", shop),
		`{"role":"managed_challenge_consumer","domains":"*.Example.ORG."}`, f.bearer)
	if role.body["domains"] != "*.example.org" || role.body["role"] != "managed_challenge_consumer" {
		t.Fatalf("role assignment not canonical: %s", role.raw)
	}
	cfg := f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges",
		`{"name":"example-org","rule":"*.example.org","ttl":30,"lifetime":600}`, f.bearer)
	if cfg.body["provider"] != "delegated" || cfg.body["challenge_type"] != "dns-01" || cfg.body["ttl"] != float64(30) {
		t.Fatalf("created config: %s", cfg.raw)
	}
	f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"example-net","rule":"example.net"}`, f.bearer)

	tr := f.must(t, http.StatusCreated, "POST", "/api/v1/tokens",
		fmt.Sprintf(`{"principal_id":%d,"title":"deploy","roles":["managed_challenge_consumer"],"allow_cidrs":["127.0.0.0/8"],"expires_in":3600}`, shop), f.bearer)
	clientID, clientSecret := tr.body["client_id"].(string), tr.body["client_secret"].(string)
	if tr.body["token"] != clientID+"."+clientSecret || tr.body["principal_id"] != float64(shop) || tr.body["status"] != "active" {
		t.Fatalf("token answer: %s", tr.raw)
	}
	tok, err := secret.ParseToken(tr.body["token"].(string))
	if err != nil {
		t.Fatal(err)
	}

	r := f.must(t, http.StatusCreated, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"v1"}`, bearer(tok))
	if r.body["managed_challenge"] != "example-org" || r.body["ttl"] != float64(30) {
		t.Fatalf("present: %s", r.raw)
	}
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/challenges", `{"identifier":"example.net","value":"v1"}`, bearer(tok))

	// The secret appears only in that one answer: listings never hold it.
	l := f.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/tokens?principal=%d", shop), "", f.bearer)
	if strings.Contains(l.raw, clientSecret) || len(list(t, l, "tokens")) != 1 {
		t.Fatalf("token list: %s", l.raw)
	}
	own := f.must(t, http.StatusOK, "GET", "/api/v1/tokens", "", bearer(tok))
	if ts := list(t, own, "tokens"); len(ts) != 1 || ts[0]["client_id"] != clientID || ts[0]["expires_at"] == nil {
		t.Fatalf("own token list: %s", own.raw)
	}

	// The consumer sees its own audit events only.
	a := f.must(t, http.StatusOK, "GET", "/api/v1/audit", "", bearer(tok))
	events := list(t, a, "events")
	if len(events) == 0 {
		t.Fatal("the consumer sees none of its own events")
	}
	for _, e := range events {
		if e["principal_id"] != float64(shop) {
			t.Fatalf("the consumer sees another principal's event: %v", e)
		}
	}
	all := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/audit?limit=1000", "", f.bearer), "events")
	if len(all) <= len(events) {
		t.Fatalf("the admin sees %d events, the consumer %d", len(all), len(events))
	}
	f.problem(t, http.StatusForbidden, "forbidden", "GET", fmt.Sprintf("/api/v1/audit?principal=%d", f.adminID(t)), "", bearer(tok))

	// Revocation is immediate.
	rv := f.must(t, http.StatusOK, "DELETE", "/api/v1/tokens/"+clientID, "", f.bearer)
	if rv.body["status"] != "revoked" || rv.body["revoked_at"] == nil {
		t.Fatalf("revoke: %s", rv.raw)
	}
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"v2"}`, bearer(tok))

	// Secrets are nowhere at rest: not in the database, not in the logs,
	// not in the audit log.
	for _, e := range all {
		if strings.Contains(fmt.Sprint(e), clientSecret) {
			t.Fatalf("audit event holds the secret: %v", e)
		}
	}
	_ = f.db.Close()
	for _, path := range []string{f.dbPath, f.dbPath + "-wal"} {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, s := range []string{clientSecret, strings.TrimPrefix(clientSecret, secret.SecretPrefix), f.token.Secret} {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("%s holds a token secret", path)
			}
		}
	}
	if strings.Contains(f.logs.String(), clientSecret) || strings.Contains(f.logs.String(), strings.TrimPrefix(clientSecret, secret.SecretPrefix)) {
		t.Fatal("the logs hold the token secret")
	}
}

func TestManagedChallenges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const path = "/api/v1/managed-challenges"
	a := f.must(t, http.StatusCreated, "POST", path, `{"name":"a","rule":"*.example.org"}`, f.bearer)
	aID := idOf(t, a)
	if a.body["rule"] != "*.example.org" {
		t.Fatalf("create: %s", a.raw)
	}

	t.Run("ties refused", func(t *testing.T) {
		// The same wildcard: they tie on example.org and every child.
		f.problem(t, http.StatusConflict, "conflict", "POST", path, `{"name":"b","rule":"example.net; *.EXAMPLE.org"}`, f.bearer,
			`"a"`, `"b"`, `"*.example.org"`, `"example.org"`)
		f.must(t, http.StatusCreated, "POST", path, `{"name":"all","rule":"*"}`, f.bearer)
		f.problem(t, http.StatusConflict, "conflict", "POST", path, `{"name":"all2","rule":"*"}`, f.bearer, `"all"`, `"*"`)
		// A more specific pattern is no tie: the exact name wins.
		f.must(t, http.StatusCreated, "POST", path, `{"name":"www","rule":"www.example.org"}`, f.bearer)
		// An update that would tie is refused too, and changes nothing.
		www := list(t, f.must(t, http.StatusOK, "GET", path, "", f.bearer), "managed_challenges")[2]
		f.problem(t, http.StatusConflict, "conflict", "PUT", fmt.Sprintf("%s/%d", path, int64(www["id"].(float64))),
			`{"name":"www","rule":"www.example.org, *.example.org"}`, f.bearer, `"a"`)
		got := f.must(t, http.StatusOK, "GET", fmt.Sprintf("%s/%d", path, int64(www["id"].(float64))), "", f.bearer)
		if got.body["rule"] != "www.example.org" {
			t.Fatalf("a refused update changed the config: %s", got.raw)
		}
		// A name in use, in another case.
		f.problem(t, http.StatusConflict, "conflict", "POST", path, `{"name":"A","rule":"example.com"}`, f.bearer, "exists")
	})

	t.Run("bad input", func(t *testing.T) {
		tests := []struct{ name, body, word string }{
			{"empty rule", `{"name":"x","rule":""}`, "rule is required"},
			{"blank rule", `{"name":"x","rule":" ; "}`, "no patterns"},
			{"bad pattern", `{"name":"x","rule":"ex*ample.org"}`, "rule"},
			{"upstream provider without credential", `{"name":"x","rule":"example.com","provider":"route53"}`, "needs a credential"},
			{"unknown provider", `{"name":"x","rule":"example.com","provider":"nosuch","credential":"c"}`, "not a lego provider code"},
			{"challenge type", `{"name":"x","rule":"example.com","challenge_type":"http-01"}`, "dns-01"},
			{"lifetime too long", `{"name":"x","rule":"example.com","lifetime":90000}`, "lifetime"},
			{"negative ttl", `{"name":"x","rule":"example.com","ttl":-1}`, "ttl"},
			{"bad name", `{"name":"a b","rule":"example.com"}`, "name"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f.problem(t, http.StatusBadRequest, "bad_request", "POST", path, tc.body, f.bearer, tc.word)
			})
		}
		f.problem(t, http.StatusBadRequest, "malformed_json", "POST", path, `{"name":"x","rule":"*","extra":1}`, f.bearer)
		f.problem(t, http.StatusBadRequest, "bad_request", "GET", path+"/abc", "", f.bearer)
		f.problem(t, http.StatusNotFound, "not_found", "GET", path+"/999", "", f.bearer)
	})

	t.Run("update and delete", func(t *testing.T) {
		u := f.must(t, http.StatusOK, "PUT", fmt.Sprintf("%s/%d", path, aID), `{"name":"a","rule":"*.example.org, example.com","ttl":60}`, f.bearer)
		if u.body["rule"] != "example.com, *.example.org" || u.body["ttl"] != float64(60) {
			t.Fatalf("update: %s", u.raw)
		}
		f.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("%s/%d", path, aID), "", f.bearer)
		f.problem(t, http.StatusNotFound, "not_found", "DELETE", fmt.Sprintf("%s/%d", path, aID), "", f.bearer)
		f.problem(t, http.StatusNotFound, "not_found", "PUT", fmt.Sprintf("%s/%d", path, aID), `{"name":"a","rule":"*"}`, f.bearer)
	})

	t.Run("audited", func(t *testing.T) {
		evs, err := f.db.ListAudit(t.Context(), store.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range evs {
			seen[e.Action+"/"+e.Result] = true
		}
		for _, want := range []string{"config.create/ok", "config.create/refused", "config.update/ok", "config.update/refused", "config.delete/ok"} {
			if !seen[want] {
				t.Errorf("no %s audit event in %v", want, seen)
			}
		}
	})
}

func TestRolesLimitTheAdminAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	consumerID, consumer := f.newPrincipal(t, "shop", store.RoleChallengeConsumer, "")
	_, chAdmin := f.newPrincipal(t, "dnsteam", store.RoleChallengeAdmin, "")
	_, narrowAdmin := f.newPrincipal(t, "ops", store.RoleChallengeAdmin, "*.example.org")

	forbidden := []struct{ method, path, body string }{
		{"POST", "/api/v1/principals", `{"kind":"app","name":"x"}`},
		{"GET", "/api/v1/principals", ""},
		{"GET", fmt.Sprintf("/api/v1/principals/%d", consumerID), ""},
		{"PATCH", fmt.Sprintf("/api/v1/principals/%d", consumerID), `{"enabled":false}`},
		{"DELETE", fmt.Sprintf("/api/v1/principals/%d", consumerID), ""},
		{"POST", fmt.Sprintf("/api/v1/principals/%d/roles", consumerID), `{"role":"admin"}`},
		{"GET", fmt.Sprintf("/api/v1/principals/%d/roles", consumerID), ""},
		{"DELETE", fmt.Sprintf("/api/v1/principals/%d/roles/1", consumerID), ""},
		{"POST", "/api/v1/tokens", fmt.Sprintf(`{"principal_id":%d}`, f.adminID(t))},
		{"GET", "/api/v1/tokens?principal=all", ""},
		{"GET", fmt.Sprintf("/api/v1/tokens?principal=%d", f.adminID(t)), ""},
	}
	consumerOnly := []struct{ method, path, body string }{
		{"POST", "/api/v1/managed-challenges", `{"name":"x","rule":"*"}`},
		{"GET", "/api/v1/managed-challenges", ""},
		{"GET", "/api/v1/delegations", ""},
		{"POST", "/api/v1/delegations", `{"domain":"example.org"}`},
		{"GET", "/api/v1/records", ""},
	}
	for _, who := range []struct {
		name string
		tok  secret.Token
		deny bool
	}{{"consumer", consumer, true}, {"managed_challenge_admin", chAdmin, false}} {
		t.Run(who.name, func(t *testing.T) {
			for _, c := range forbidden {
				r := f.problem(t, http.StatusForbidden, "forbidden", c.method, c.path, c.body, bearer(who.tok))
				if r.body["detail"] != "the token's roles do not allow this" {
					t.Fatalf("%s %s: detail %s", c.method, c.path, r.raw)
				}
			}
			for _, c := range consumerOnly {
				r := f.do(t, c.method, c.path, c.body, bearer(who.tok))
				if who.deny != (r.status == http.StatusForbidden) {
					t.Fatalf("%s %s: %d %s", c.method, c.path, r.status, r.raw)
				}
			}
		})
	}

	// The managed challenge admin manages configs and delegations.
	f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"org","rule":"*.example.org"}`, bearer(chAdmin))
	netCfg := f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"net","rule":"*.example.net"}`, bearer(chAdmin))
	f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"www.example.org"}`, bearer(chAdmin))

	// One restricted to *.example.org may only save rules within it, and
	// sees and manages only delegations within it.
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/managed-challenges", `{"name":"wide","rule":"*"}`, bearer(narrowAdmin))
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/managed-challenges", `{"name":"other","rule":"api.example.net"}`, bearer(narrowAdmin))
	f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"api","rule":"api.example.org"}`, bearer(narrowAdmin))
	f.problem(t, http.StatusForbidden, "forbidden", "DELETE", fmt.Sprintf("/api/v1/managed-challenges/%d", idOf(t, netCfg)), "", bearer(narrowAdmin)) // *.example.net is outside
	f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"www.example.net"}`, f.bearer)
	f.problem(t, http.StatusForbidden, "forbidden", "GET", "/api/v1/delegations/www.example.net", "", bearer(narrowAdmin))
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/delegations", `{"domain":"mail.example.net"}`, bearer(narrowAdmin))
	ds := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/delegations", "", bearer(narrowAdmin)), "delegations")
	if len(ds) != 2 || ds[0]["domain"] != "example.org" || ds[1]["domain"] != "www.example.org" { // not www.example.net
		t.Fatalf("the restricted admin sees %v", ds)
	}

	// Audit: the managed challenge admin sees events about configs only.
	evs := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/audit", "", bearer(chAdmin)), "events")
	if len(evs) == 0 {
		t.Fatal("no config events visible")
	}
	for _, e := range evs {
		if e["managed_challenge_id"] == nil {
			t.Fatalf("the managed challenge admin sees an event about no config: %v", e)
		}
	}
}

func TestPrincipalsAndRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.adminID(t)

	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/principals", `{"kind":"robot","name":"x"}`, f.bearer, "kind")
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/principals", `{"kind":"user","name":"no spaces"}`, f.bearer, "name")
	f.problem(t, http.StatusBadRequest, "malformed_json", "POST", "/api/v1/principals", `{"kind":"user","name":"x","roles":[]}`, f.bearer)
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "POST", "/api/v1/principals", `{"kind":"user","name":"x"}`, nil)

	p := f.must(t, http.StatusCreated, "POST", "/api/v1/principals", `{"kind":"user","name":"alice","enabled":false}`, f.bearer)
	alice := idOf(t, p)
	if p.body["enabled"] != false {
		t.Fatalf("created disabled: %s", p.raw)
	}
	f.problem(t, http.StatusConflict, "conflict", "POST", "/api/v1/principals", `{"kind":"app","name":"ALICE"}`, f.bearer, "ALICE", "exists")

	u := f.must(t, http.StatusOK, "PATCH", fmt.Sprintf("/api/v1/principals/%d", alice), `{"description":"on call","enabled":true}`, f.bearer)
	if u.body["description"] != "on call" || u.body["enabled"] != true || u.body["name"] != "alice" {
		t.Fatalf("update: %s", u.raw)
	}
	f.problem(t, http.StatusNotFound, "not_found", "GET", "/api/v1/principals/9999", "", f.bearer)
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/principals/-1", "", f.bearer)

	rolesPath := fmt.Sprintf("/api/v1/principals/%d/roles", alice)
	ra := f.must(t, http.StatusCreated, "POST", rolesPath, `{"role":"managed_challenge_consumer","domains":"example.net; *.example.org"}`, f.bearer)
	if ra.body["domains"] != "example.net, *.example.org" {
		t.Fatalf("domains not canonical: %s", ra.raw)
	}
	f.problem(t, http.StatusConflict, "conflict", "POST", rolesPath, `{"role":"managed_challenge_consumer","domains":"*.example.org,example.net."}`, f.bearer)
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", rolesPath, `{"role":"root"}`, f.bearer, "root")
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", rolesPath, `{"role":"admin","domains":"ex*ample.org"}`, f.bearer, "domains")
	f.problem(t, http.StatusNotFound, "not_found", "POST", "/api/v1/principals/9999/roles", `{"role":"admin"}`, f.bearer)
	adminRole := f.must(t, http.StatusCreated, "POST", rolesPath, `{"role":"admin"}`, f.bearer)
	rs := list(t, f.must(t, http.StatusOK, "GET", rolesPath, "", f.bearer), "roles")
	if len(rs) != 2 {
		t.Fatalf("roles: %v", rs)
	}
	ps := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/principals", "", f.bearer), "principals")
	if len(ps) != 2 || ps[0]["name"] != "admin" || len(ps[1]["roles"].([]any)) != 2 {
		t.Fatalf("principals: %v", ps)
	}
	f.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("%s/%d", rolesPath, idOf(t, adminRole)), "", f.bearer)
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", fmt.Sprintf("%s/%d", rolesPath, idOf(t, adminRole)), "", f.bearer)
	// An assignment id of another principal is not found under this one.
	adminRoles := list(t, f.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/principals/%d/roles", admin), "", f.bearer), "roles")
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", fmt.Sprintf("%s/%v", rolesPath, adminRoles[0]["id"]), "", f.bearer)

	// The last enabled admin cannot be disabled, deleted or lose the role.
	f.problem(t, http.StatusConflict, "conflict", "PATCH", fmt.Sprintf("/api/v1/principals/%d", admin), `{"enabled":false}`, f.bearer, "admin")
	f.problem(t, http.StatusConflict, "conflict", "DELETE", fmt.Sprintf("/api/v1/principals/%d", admin), "", f.bearer, "admin")
	f.problem(t, http.StatusConflict, "conflict", "DELETE", fmt.Sprintf("/api/v1/principals/%d/roles/%v", admin, adminRoles[0]["id"]), "", f.bearer, "admin")

	// Deleting a principal ends its tokens.
	bobID, bob := f.newPrincipal(t, "bob", store.RoleChallengeConsumer, "")
	f.must(t, http.StatusOK, "GET", "/api/v1/tokens", "", bearer(bob))
	f.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("/api/v1/principals/%d", bobID), "", f.bearer)
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/tokens", "", bearer(bob))
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", fmt.Sprintf("/api/v1/principals/%d", bobID), "", f.bearer)

	// Wrong methods are 405, not 404.
	f.problem(t, http.StatusMethodNotAllowed, "method_not_allowed", "PUT", fmt.Sprintf("/api/v1/principals/%d", alice), `{}`, f.bearer)
	f.problem(t, http.StatusMethodNotAllowed, "method_not_allowed", "PATCH", "/api/v1/challenges/abc", `{}`, f.bearer)

	evs, err := f.db.ListAudit(t.Context(), store.AuditFilter{PrincipalID: admin, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.Action+"/"+e.Result] = true
		if e.Source == "" {
			t.Fatalf("admin event without a source: %+v", e)
		}
	}
	for _, want := range []string{"principal.create/ok", "principal.create/refused", "principal.update/ok", "principal.update/refused",
		"principal.delete/ok", "role.add/ok", "role.add/refused", "role.remove/ok", "role.remove/refused", "token.create/ok"} {
		if !seen[want] {
			t.Errorf("no %s audit event", want)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	id, tok := f.newPrincipal(t, "shop", store.RoleChallengeConsumer, "")

	bad := []struct{ name, body, word string }{
		{"role the owner lacks", fmt.Sprintf(`{"principal_id":%d,"roles":["admin"]}`, id), "does not hold"},
		{"unknown role", `{"roles":["root"]}`, "root"},
		{"bad prefix", `{"allow_cidrs":["10.0.0.0/33"]}`, "10.0.0.0/33"},
		{"host bits", `{"allow_cidrs":["10.0.0.1/8"]}`, "10.0.0.0/8"},
		{"expired", `{"expires_at":"2001-01-01T00:00:00Z"}`, "future"},
		{"both expiries", `{"expires_at":"2101-01-01T00:00:00Z","expires_in":60}`, "not both"},
		{"negative expiry", `{"expires_in":-5}`, "expires_in"},
		{"negative principal", `{"principal_id":-1}`, "principal_id"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/tokens", tc.body, f.bearer, tc.word)
		})
	}
	f.problem(t, http.StatusNotFound, "not_found", "POST", "/api/v1/tokens", `{"principal_id":9999}`, f.bearer)

	// Its own tokens: a principal creates, lists and revokes them.
	mine := f.must(t, http.StatusCreated, "POST", "/api/v1/tokens", `{"title":"second"}`, bearer(tok))
	second, err := secret.ParseToken(mine.body["token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ts := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/tokens", "", bearer(tok)), "tokens"); len(ts) != 2 {
		t.Fatalf("own tokens: %v", ts)
	}
	f.must(t, http.StatusOK, "DELETE", "/api/v1/tokens/"+second.ClientID, "", bearer(tok))
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/tokens", "", bearer(second))
	// Another principal's token is not found for a non-admin.
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", "/api/v1/tokens/"+f.token.ClientID, "", bearer(tok))
	f.problem(t, http.StatusNotFound, "not_found", "GET", "/api/v1/tokens/"+f.token.ClientID, "", bearer(tok))
	f.must(t, http.StatusOK, "GET", "/api/v1/tokens/"+second.ClientID, "", f.bearer)
	f.must(t, http.StatusOK, "GET", "/api/v1/tokens?principal=all", "", f.bearer)
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/tokens?principal=x", "", f.bearer, "all")

	// A narrowed, source-bound, expiring token cannot mint a wider one.
	p, err := f.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalUser, Name: "ops", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{store.RoleChallengeAdmin, store.RoleChallengeConsumer} {
		if _, err := f.db.AddRoleAssignment(t.Context(), store.RoleAssignment{PrincipalID: p.ID, Role: role}); err != nil {
			t.Fatal(err)
		}
	}
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	narrow := f.tokenFor(t, p.ID, store.Token{Roles: []string{store.RoleChallengeConsumer}, AllowCIDRs: []string{"127.0.0.0/8"}, ExpiresAt: expires})
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/tokens", `{"roles":["managed_challenge_admin"]}`, bearer(narrow), "narrowed")
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/tokens", `{"allow_cidrs":["0.0.0.0/0"]}`, bearer(narrow), "127.0.0.0/8")
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/tokens", `{"expires_in":7200}`, bearer(narrow), "outlive")
	inherited := f.must(t, http.StatusCreated, "POST", "/api/v1/tokens", `{"allow_cidrs":["127.0.0.1/32"]}`, bearer(narrow))
	if fmt.Sprint(inherited.body["roles"]) != "[managed_challenge_consumer]" || fmt.Sprint(inherited.body["allow_cidrs"]) != "[127.0.0.1/32]" ||
		inherited.body["expires_at"] != expires.UTC().Format(time.RFC3339) {
		t.Fatalf("the new token does not inherit the limits: %s", inherited.raw)
	}
	// The unnarrowed owner's token may narrow freely within its roles.
	full := f.tokenFor(t, p.ID, store.Token{})
	f.must(t, http.StatusCreated, "POST", "/api/v1/tokens", `{"roles":["managed_challenge_admin"]}`, bearer(full))
}

func TestDelegations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	org := idOf(t, f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"org","rule":"*.example.org"}`, f.bearer))
	net := idOf(t, f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"net","rule":"example.net"}`, f.bearer))
	api := idOf(t, f.must(t, http.StatusCreated, "POST", "/api/v1/managed-challenges", `{"name":"api","rule":"api.example.org"}`, f.bearer))

	d := f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"WWW.example.org."}`, f.bearer)
	target := d.body["target"].(string)
	cname := d.body["cname"].(map[string]any)
	if d.body["domain"] != "www.example.org" || d.body["managed_challenge"] != "org" || !strings.HasSuffix(target, "."+testZone) ||
		cname["name"] != "_acme-challenge.www.example.org." || cname["type"] != "CNAME" || cname["target"] != target ||
		cname["zone_line"] != "_acme-challenge.www.example.org. CNAME "+target {
		t.Fatalf("delegation: %s", d.raw)
	}
	// Idempotent, and a wildcard maps to its base.
	again := f.must(t, http.StatusOK, "POST", "/api/v1/delegations", `{"domain":"*.www.example.org"}`, f.bearer)
	if again.body["target"] != target {
		t.Fatalf("again: %s", again.raw)
	}
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/delegations", `{"domain":"example.com"}`, f.bearer) // no config matches
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/delegations", `{"domain":"not a name"}`, f.bearer)
	f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"example.net"}`, f.bearer)
	f.must(t, http.StatusCreated, "POST", "/api/v1/delegations", `{"domain":"api.example.org"}`, f.bearer)

	for _, path := range []string{"www.example.org", "*.www.example.org", "_acme-challenge.www.example.org", target} {
		if g := f.must(t, http.StatusOK, "GET", "/api/v1/delegations/"+path, "", f.bearer); g.body["target"] != target {
			t.Fatalf("get %s: %s", path, g.raw)
		}
	}
	f.problem(t, http.StatusNotFound, "not_found", "GET", "/api/v1/delegations/mail.example.org", "", f.bearer)

	if ds := list(t, f.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/delegations?managed_challenge=%d", org), "", f.bearer), "delegations"); len(ds) != 1 {
		t.Fatalf("filter by config: %v", ds)
	}
	page := f.must(t, http.StatusOK, "GET", "/api/v1/delegations?limit=2", "", f.bearer)
	if len(list(t, page, "delegations")) != 2 || page.body["next_after"] == nil {
		t.Fatalf("page: %s", page.raw)
	}
	rest := f.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/delegations?limit=2&after=%v", page.body["next_after"]), "", f.bearer)
	if len(list(t, rest, "delegations")) != 1 || rest.body["next_after"] != nil {
		t.Fatalf("last page: %s", rest.raw)
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/delegations?limit=0", "", f.bearer, "limit")
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/delegations?unbound=maybe", "", f.bearer, "unbound")

	present := func(want string) {
		t.Helper()
		r := f.must(t, http.StatusCreated, "POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"x"}`, f.bearer)
		if r.body["managed_challenge"] != want || r.body["cname_target"] != target {
			t.Fatalf("present after a move: %s, want config %s", r.raw, want)
		}
	}
	rule := func(id int64) string {
		t.Helper()
		return f.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/managed-challenges/%d", id), "", f.bearer).body["rule"].(string)
	}

	// A move adds the exact pattern to the target; ranking then picks it.
	m := f.must(t, http.StatusOK, "POST", "/api/v1/delegations/www.example.org/move", fmt.Sprintf(`{"managed_challenge_id":%d}`, net), f.bearer)
	if m.body["managed_challenge"] != "net" || m.body["target"] != target || rule(net) != "example.net, www.example.org" || rule(org) != "*.example.org" {
		t.Fatalf("move: %s; rules %q %q", m.raw, rule(net), rule(org))
	}
	present("net")
	// Moving back takes the pattern away from its holder again.
	f.must(t, http.StatusOK, "POST", "/api/v1/delegations/www.example.org/move", fmt.Sprintf(`{"managed_challenge_id":%d}`, org), f.bearer)
	if rule(net) != "example.net" || rule(org) != "*.example.org, www.example.org" {
		t.Fatalf("rules after moving back: %q %q", rule(net), rule(org))
	}
	present("org")
	// A config whose whole rule is the domain cannot give it away.
	f.problem(t, http.StatusConflict, "conflict", "POST", "/api/v1/delegations/api.example.org/move", fmt.Sprintf(`{"managed_challenge_id":%d}`, org), f.bearer, `"api"`)
	if rule(api) != "api.example.org" || rule(org) != "*.example.org, www.example.org" {
		t.Fatal("a refused move changed a rule")
	}
	f.problem(t, http.StatusNotFound, "not_found", "POST", "/api/v1/delegations/www.example.org/move", `{"managed_challenge_id":999}`, f.bearer)
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/delegations/www.example.org/move", `{}`, f.bearer)

	// Deleting a config leaves its delegations unbound.
	f.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("/api/v1/managed-challenges/%d", net), "", f.bearer)
	unbound := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/delegations?unbound=true", "", f.bearer), "delegations")
	if len(unbound) != 1 || unbound[0]["domain"] != "example.net" || unbound[0]["managed_challenge_id"] != nil {
		t.Fatalf("unbound: %v", unbound)
	}

	// Deleting a delegation removes its values and its name.
	if recs, _ := f.db.ListValues(t.Context(), target); len(recs) == 0 {
		t.Fatal("no values to remove")
	}
	f.must(t, http.StatusNoContent, "DELETE", "/api/v1/delegations/www.example.org", "", f.bearer)
	if recs, _ := f.db.ListValues(t.Context(), target); len(recs) != 0 {
		t.Fatalf("values left after deleting the delegation: %v", recs)
	}
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", "/api/v1/delegations/www.example.org", "", f.bearer)

	evs, err := f.db.ListAudit(t.Context(), store.AuditFilter{Domain: "www.example.org", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.Action+"/"+e.Result] = true
	}
	for _, want := range []string{"delegation.create/ok", "delegation.move/ok", "delegation.delete/ok", "delegation.delete/refused"} {
		if !seen[want] {
			t.Errorf("no %s audit event in %v", want, seen)
		}
	}
}

func TestAuditQueries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	_, tok := f.newPrincipal(t, "shop", store.RoleChallengeConsumer, "")
	for i := range 3 {
		f.must(t, http.StatusCreated, "POST", "/api/v1/challenges", fmt.Sprintf(`{"identifier":"www.example.org","value":"v%d"}`, i), bearer(tok))
	}
	f.must(t, http.StatusCreated, "POST", "/api/v1/challenges", `{"identifier":"example.net","value":"x"}`, bearer(tok))

	r := f.must(t, http.StatusOK, "GET", "/api/v1/audit?action=challenge.present&domain=WWW.Example.org&limit=2", "", f.bearer)
	first := list(t, r, "events")
	if len(first) != 2 || r.body["next_before"] == nil || first[0]["domain"] != "www.example.org" || first[0]["result"] != "ok" {
		t.Fatalf("first page: %s", r.raw)
	}
	r = f.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/audit?action=challenge.present&domain=www.example.org&limit=2&before=%v", r.body["next_before"]), "", f.bearer)
	if evs := list(t, r, "events"); len(evs) != 1 || r.body["next_before"] != nil {
		t.Fatalf("second page: %s", r.raw)
	}
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	until := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	r = f.must(t, http.StatusOK, "GET", "/api/v1/audit?result=ok&action=challenge.present&since="+since+"&until="+until, "", f.bearer)
	if evs := list(t, r, "events"); len(evs) != 4 {
		t.Fatalf("since/until: %s", r.raw)
	}
	if evs := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/audit?until="+since, "", f.bearer), "events"); len(evs) != 0 {
		t.Fatalf("until in the past: %v", evs)
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/audit?since=yesterday", "", f.bearer, "since")
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/audit?limit=5000", "", f.bearer, "limit")
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/audit?domain=not%20a%20name", "", f.bearer, "domain")
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/audit", "", nil)
}
