package api_test

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/secret"
)

// TestTSIGKeyLifecycle: create (the secret and its forms once), list and
// show (never the secret), the key refused as HTTP credentials, revoke.
func TestTSIGKeyLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	shopID, shopTok := f.newPrincipal(t, "shop", "managed_challenge_consumer", "*.example.org")

	r := f.must(t, http.StatusCreated, "POST", "/api/v1/tsig-keys",
		`{"principal":"shop","algorithm":"HMAC-SHA512","title":"certbot","allow_cidrs":["192.0.2.0/24"],"expires_in":3600,"server":"192.0.2.53","port":5353}`,
		f.bearer)
	name, _ := r.body["name"].(string)
	sec, _ := r.body["secret"].(string)
	raw, err := base64.StdEncoding.DecodeString(sec)
	if !regexp.MustCompile(`^acmehub-[a-z2-7]{10}\.$`).MatchString(name) || err != nil || len(raw) != 32 ||
		r.body["algorithm"] != "hmac-sha512" || r.body["principal"] != "shop" || r.body["principal_id"] != float64(shopID) ||
		r.body["status"] != "active" || r.body["expires_at"] == nil {
		t.Fatalf("created %s", r.raw)
	}
	forms, _ := r.body["forms"].(map[string]any)
	for form, want := range map[string]string{
		"bind":         `key "` + name + `" {`,
		"certbot":      "dns_rfc2136_server = 192.0.2.53\ndns_rfc2136_port = 5353\n",
		"lego":         "DNSUPDATE_NAMESERVER=192.0.2.53:5353\n",
		"cert_manager": base64.StdEncoding.EncodeToString([]byte(sec)),
	} {
		s, _ := forms[form].(string)
		if !strings.Contains(s, want) {
			t.Errorf("form %s lacks %q:\n%s", form, want, s)
		}
		if form != "cert_manager" && !strings.Contains(s, sec) {
			t.Errorf("form %s lacks the secret", form)
		}
	}

	// Listing and showing: never the secret.
	l := f.must(t, http.StatusOK, "GET", "/api/v1/tsig-keys?principal=all", "", f.bearer)
	keys := list(t, l, "tsig_keys")
	if len(keys) != 1 || keys[0]["name"] != name || strings.Contains(l.raw, sec) || keys[0]["secret"] != nil {
		t.Fatalf("list %s", l.raw)
	}
	g := f.must(t, http.StatusOK, "GET", "/api/v1/tsig-keys/"+strings.ToUpper(strings.TrimSuffix(name, ".")), "", f.bearer)
	if g.body["name"] != name || strings.Contains(g.raw, sec) {
		t.Fatalf("get %s", g.raw)
	}
	// API tokens and TSIG keys are listed apart.
	tl := f.must(t, http.StatusOK, "GET", "/api/v1/tokens?principal=all", "", f.bearer)
	if strings.Contains(tl.raw, name) {
		t.Fatalf("a TSIG key among the tokens: %s", tl.raw)
	}
	f.problem(t, http.StatusNotFound, "not_found", "GET", "/api/v1/tsig-keys/"+f.token.ClientID, "", f.bearer)

	// The owner sees its own key; a TSIG key is no HTTP credential.
	own := f.must(t, http.StatusOK, "GET", "/api/v1/tsig-keys", "", bearer(shopTok))
	if ks := list(t, own, "tsig_keys"); len(ks) != 1 || ks[0]["name"] != name {
		t.Fatalf("own keys %s", own.raw)
	}
	for _, auth := range []func(*http.Request){
		func(r *http.Request) { r.SetBasicAuth(name, sec) },
		func(r *http.Request) { r.Header.Set("X-Client-ID", name); r.Header.Set("X-Client-Secret", sec) },
	} {
		f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/tsig-keys", "", auth)
	}

	d := f.must(t, http.StatusOK, "DELETE", "/api/v1/tsig-keys/"+name, "", f.bearer)
	if d.body["status"] != "revoked" || d.body["revoked_at"] == nil {
		t.Fatalf("revoke %s", d.raw)
	}
	f.checkNoSecretLogged(t, sec)
}

func TestTSIGKeyRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, shopTok := f.newPrincipal(t, "shop", "managed_challenge_consumer", "*.example.org")
	f.newPrincipal(t, "other", "managed_challenge_consumer", "*.example.net")
	for _, tc := range []struct {
		body, code string
		status     int
		auth       func(*http.Request)
	}{
		{`{"algorithm":"hmac-sha3"}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"name":"bad name"}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"roles":["root"]}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"allow_cidrs":["10.0.0.1"]}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"principal":"shop","principal_id":1}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"expires_in":-5}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"port":70000}`, "bad_request", http.StatusBadRequest, f.bearer},
		{`{"secret":"mine"}`, "malformed_json", http.StatusBadRequest, f.bearer},
		{`{"principal":"nobody"}`, "not_found", http.StatusNotFound, f.bearer},
		{`{"principal":"other"}`, "forbidden", http.StatusForbidden, bearer(shopTok)},
		{`{"roles":["admin"]}`, "bad_request", http.StatusBadRequest, bearer(shopTok)},
	} {
		f.problem(t, tc.status, tc.code, "POST", "/api/v1/tsig-keys", tc.body, tc.auth)
	}
	f.must(t, http.StatusCreated, "POST", "/api/v1/tsig-keys", `{"name":"k1.example.org"}`, bearer(shopTok))
	f.problem(t, http.StatusConflict, "conflict", "POST", "/api/v1/tsig-keys", `{"name":"K1.example.org."}`, f.bearer)
	f.problem(t, http.StatusForbidden, "forbidden", "GET", "/api/v1/tsig-keys?principal=all", "", bearer(shopTok))
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", "/api/v1/tsig-keys/nope.example.", "", f.bearer)
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/tsig-keys", "", nil)
	other, _ := secret.NewToken()
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/tsig-keys", "", bearer(other))
}

// checkNoSecretLogged: the access log never holds a key's secret.
func (f *fixture) checkNoSecretLogged(t *testing.T, secrets ...string) {
	t.Helper()
	logs := f.logs.String()
	if logs == "" {
		t.Fatal("no log lines: the check would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret is in the log:\n%s", logs)
		}
	}
}
