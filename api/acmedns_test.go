package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// acmeDNSConfig is the managed challenge config of accounts without a
// domain in these tests.
const acmeDNSConfig = "acme-dns"

type adnsOptions struct {
	open      bool   // ACMEDNSOpenRegistration
	path      string // ACMEDNSPath
	publicURL string
}

// newACMEDNSFixture is newFixture with the acme-dns settings: a delegated
// config for domainless accounts (acmeDNSConfig) and delegated configs for
// *.example.org and *.example.net.
func newACMEDNSFixture(tb testing.TB, o adnsOptions) *fixture {
	tb.Helper()
	f := newFixtureWith(tb, func(c *hub.Config) { c.ACMEDNSConfig = acmeDNSConfig }, func(c *api.Config) {
		c.MaxBody = 4096
		c.ACMEDNSPath, c.ACMEDNSOpenRegistration, c.PublicURL = o.path, o.open, o.publicURL
	})
	for name, rule := range map[string]string{acmeDNSConfig: "*.acme-dns.test", "cfg-org": "*.example.org", "cfg-net": "*.example.net"} {
		if _, err := f.db.CreateConfig(tb.Context(), store.ChallengeConfig{Name: name, Provider: store.ProviderDelegated, Rule: rule, CreatedBy: "test"}); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

// adnsLogMu guards the fixtures' log buffers: the server writes the access
// line after the client has its reply.
var adnsLogMu sync.Mutex

type lockedWriter struct{ w io.Writer }

func (l lockedWriter) Write(p []byte) (int, error) {
	adnsLogMu.Lock()
	defer adnsLogMu.Unlock()
	return l.w.Write(p)
}

// with combines request edits.
func with(edits ...func(*http.Request)) func(*http.Request) {
	return func(r *http.Request) {
		for _, e := range edits {
			if e != nil {
				e(r)
			}
		}
	}
}

func header(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }

// basic is HTTP Basic as Go's client sends it for URL userinfo.
func basic(tok secret.Token) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(tok.ClientID, tok.Secret) }
}

// certifyBasic is HTTP Basic as Certify sends it: URL-safe base64 without
// padding.
func certifyBasic(tok secret.Token) func(*http.Request) {
	return header("Authorization", "Basic "+base64.RawURLEncoding.EncodeToString([]byte(tok.ClientID+":"+tok.Secret)))
}

// apiKey is acme-dns's /update credentials.
func apiKey(user, key string) func(*http.Request) {
	return with(header("X-Api-User", user), header("X-Api-Key", key))
}

// regAccount is a /register reply.
type regAccount struct {
	Username   string   `json:"username"`
	Password   string   `json:"password"`
	FullDomain string   `json:"fulldomain"`
	Subdomain  string   `json:"subdomain"`
	AllowFrom  []string `json:"allowfrom"`
}

// regLine is acme-dns's /register reply: one line, its keys in its order.
var regLine = regexp.MustCompile(`^\{"username":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}","password":"[A-Za-z0-9_-]{40}","fulldomain":"([a-z0-9-]+)\.acme\.example\.net","subdomain":"([a-z0-9-]+)","allowfrom":\[[^\n]*\]\}$`)

// register calls /register and checks the reply's exact shape.
func (f *fixture) register(t *testing.T, prefix, body string, edit func(*http.Request)) regAccount {
	t.Helper()
	r := f.must(t, http.StatusCreated, "POST", prefix+"/register", body, edit)
	m := regLine.FindStringSubmatch(r.raw)
	if m == nil || m[1] != m[2] || r.ctype != "application/json" {
		t.Fatalf("register reply is not acme-dns's shape: %s %q", r.ctype, r.raw)
	}
	var a regAccount
	if err := json.Unmarshal([]byte(r.raw), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// acmeValue returns a 43-character base64url value, as ACME makes them.
func acmeValue(i int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "value-%026d", i))
}

// bodyMatches: got is want, or starts with want when want is a prefix
// (does not end in "}").
func bodyMatches(got, want string) bool {
	return got == want || !strings.HasSuffix(want, "}") && strings.HasPrefix(got, want)
}

// adnsError is acme-dns's error body, byte for byte.
func adnsError(code string) string { return `{"error": "` + code + `"}` }

// TestACMEDNSRegisterClients registers the way each client does and
// checks acme-dns's reply byte for byte where clients parse it.
func TestACMEDNSRegisterClients(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{})
	tests := []struct {
		name, body string
		edit       func(*http.Request)
		allowFrom  []string
	}{
		// nrdcg/goacmedns v0.2 (lego): Encode of a nil *Register.
		{"goacmedns", "null\n", with(basic(f.token), header("Content-Type", "application/json")), []string{}},
		{"goacmedns allowfrom", `{"allowfrom":["192.0.2.0/24"]}` + "\n", with(basic(f.token), header("Content-Type", "application/json")), []string{"192.0.2.0/24"}},
		// goacmedns before v0.2 (cert-manager's copy, Traefik): no tags.
		{"old goacmedns", `{"AllowFrom":["192.0.2.0/24","2001:db8::/32"]}`, basic(f.token), []string{"192.0.2.0/24", "2001:db8::/32"}},
		// certbot's acme-dns-auth.py: no body at all, or json.dumps.
		{"certbot", "", basic(f.token), []string{}},
		{"certbot allowfrom", `{"allowfrom": ["192.0.2.7/32", "[::1]/128"]}`, basic(f.token), []string{"192.0.2.7/32", "::1/128"}},
		// acme.sh: _post "" with curl's form content type.
		{"acme.sh", "", with(basic(f.token), header("Content-Type", "application/x-www-form-urlencoded")), []string{}},
		// Certify's acme-dns provider: StringContent is text/plain.
		{"certify", `{}`, with(certifyBasic(f.token), header("Content-Type", "text/plain; charset=utf-8")), []string{}},
		{"certify allowfrom", `{"allowfrom":["192.0.2.0/24"]}`, with(certifyBasic(f.token), header("Content-Type", "text/plain; charset=utf-8")), []string{"192.0.2.0/24"}},
		{"bearer", "  ", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+f.token.String()) }, []string{}},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.register(t, "", tc.body, tc.edit)
			if !slices.Equal(a.AllowFrom, tc.allowFrom) {
				t.Errorf("allowfrom %q, want %q", a.AllowFrom, tc.allowFrom)
			}
			if seen[a.Subdomain] || seen[a.Username] {
				t.Errorf("subdomain or username reused: %+v", a)
			}
			seen[a.Subdomain], seen[a.Username] = true, true
		})
	}

	// Certify DNS sends the domain as subject: the account is bound at once.
	a := f.register(t, "", `{"subject":"*.example.org"}`, with(certifyBasic(f.token), header("Content-Type", "text/plain; charset=utf-8")))
	r := f.must(t, http.StatusOK, "GET", "/api/v1/acme-dns/accounts/"+a.Username, "", f.bearer)
	if r.body["domain"] != "example.org" || r.body["fulldomain"] != a.FullDomain {
		t.Errorf("account registered with subject *.example.org: %s", r.raw)
	}
}

func TestACMEDNSRegisterErrors(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{})
	_, netTok := f.newPrincipal(t, "net-only", "managed_challenge_consumer", "*.example.net")
	wrong, _ := secret.NewToken()
	tests := []struct {
		name, body string
		edit       func(*http.Request)
		status     int
		want       string // exact body, or a prefix when it does not end in "}"
	}{
		{"malformed", `{"allowfrom":`, basic(f.token), 400, adnsError("malformed_json_payload")},
		{"allowfrom not a list", `{"allowfrom":"192.0.2.0/24"}`, basic(f.token), 400, adnsError("malformed_json_payload")},
		{"bad cidr", `{"allowfrom":["192.0.2.0/33"]}`, basic(f.token), 400, adnsError("invalid_allowfrom_cidr")},
		{"not a cidr", `{"allowfrom":["example.org"]}`, basic(f.token), 400, adnsError("invalid_allowfrom_cidr")},
		{"no token", `{}`, nil, 401, `{"error": "forbidden", "detail": "registration needs a hub token`},
		{"wrong secret", `{}`, basic(secret.Token{ClientID: f.token.ClientID, Secret: wrong.Secret}), 401, adnsError("forbidden")},
		{"garbage basic", `{}`, header("Authorization", "Basic !!!"), 401, `{"error": "forbidden", "detail": "`},
		{"subject out of scope", `{"subject":"example.org"}`, basic(netTok), 403, `{"error": "forbidden", "detail": "`},
		{"subject without config", `{"subject":"example.com"}`, basic(f.token), 403, `{"error": "forbidden", "detail": "`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.must(t, tc.status, "POST", "/register", tc.body, tc.edit)
			if r.ctype != "application/json" || !bodyMatches(r.raw, tc.want) {
				t.Fatalf("body %s %q, want %q", r.ctype, r.raw, tc.want)
			}
		})
	}
	n, err := f.db.ListAll(t.Context(), "", 100)
	if err != nil || len(n) != 0 {
		t.Fatalf("values after refused registrations: %v %v", n, err)
	}
}

// TestACMEDNSUpdateClients sends /update the way each client does; every
// value stays live (no two-value ring) and the reply is acme-dns's.
func TestACMEDNSUpdateClients(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{})
	a := f.register(t, "", "", basic(f.token))
	tests := []struct {
		name string
		body func(v string) string
		edit func(*http.Request)
	}{
		{"goacmedns", func(v string) string { return `{"subdomain":"` + a.Subdomain + `","txt":"` + v + `"}` + "\n" },
			with(header("Content-Type", "application/json"), basic(f.token))},
		{"old goacmedns", func(v string) string { return `{"SubDomain":"` + a.Subdomain + `","Txt":"` + v + `"}` },
			header("Content-Type", "application/json")},
		{"acme.sh", func(v string) string { return `{"subdomain":"` + a.Subdomain + `", "txt": "` + v + `"}` },
			header("Content-Type", "application/x-www-form-urlencoded")},
		{"certbot", func(v string) string { return `{"subdomain": "` + a.Subdomain + `", "txt": "` + v + `"}` },
			header("Content-Type", "application/json")},
		{"caddy", func(v string) string { return `{"subdomain":"` + a.Subdomain + `","txt":"` + v + `"}` },
			header("Content-Type", "application/json")},
		{"certify", func(v string) string { return `{"subdomain":"` + a.Subdomain + `","txt":"` + v + `"}` },
			header("Content-Type", "text/plain; charset=utf-8")},
		{"upper-case subdomain", func(v string) string { return `{"subdomain":"` + strings.ToUpper(a.Subdomain) + `","txt":"` + v + `"}` }, nil},
		// Basic credentials that do not verify are ignored: X-Api-* decide.
		{"stray basic", func(v string) string { return `{"subdomain":"` + a.Subdomain + `","txt":"` + v + `"}` },
			header("Authorization", "Basic Zm9vOmJhcg==")},
	}
	var values []string
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := acmeValue(i)
			r := f.must(t, http.StatusOK, "POST", "/update", tc.body(v), with(tc.edit, apiKey(a.Username, a.Password)))
			if want := `{"txt": "` + v + `"}`; r.raw != want || r.ctype != "application/json" {
				t.Fatalf("reply %s %q, want %q", r.ctype, r.raw, want)
			}
			values = append(values, v)
		})
	}
	// Many more updates: every value stays until it expires.
	for i := len(tests); i < 30; i++ {
		v := acmeValue(i)
		f.must(t, http.StatusOK, "POST", "/update", `{"subdomain":"`+a.Subdomain+`","txt":"`+v+`"}`, apiKey(a.Username, a.Password))
		values = append(values, v)
	}
	recs, err := f.db.ListValues(t.Context(), a.FullDomain+".")
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, rec := range recs {
		stored = append(stored, rec.Value)
		if !rec.ExpiresAt.After(time.Now()) || rec.ExpiresAt.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("value %s expires at %v", rec.Value, rec.ExpiresAt)
		}
	}
	slices.Sort(stored)
	slices.Sort(values)
	if !slices.Equal(stored, values) {
		t.Fatalf("live values at %s:\n%q\nwant every one of\n%q", a.FullDomain, stored, values)
	}
}

func TestACMEDNSUpdateErrors(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{})
	a := f.register(t, "", "", basic(f.token))
	b := f.register(t, "", "", basic(f.token))
	remote := f.register(t, "", `{"allowfrom":["192.0.2.0/24"]}`, basic(f.token))
	other, _ := secret.NewToken()
	upd := func(sub, v string) string { return `{"subdomain":"` + sub + `","txt":"` + v + `"}` }
	v := acmeValue(1)
	tests := []struct {
		name, body string
		edit       func(*http.Request)
		status     int
		want       string
	}{
		{"wrong key", upd(a.Subdomain, v), apiKey(a.Username, other.Secret[:40]), 401, adnsError("forbidden")},
		{"unknown user", upd(a.Subdomain, v), apiKey("6f1d0cb4-6c0b-4cf3-9b5b-3d2d39e1a3a0", a.Password), 401, adnsError("forbidden")},
		{"no key", upd(a.Subdomain, v), header("X-Api-User", a.Username), 401, adnsError("forbidden")},
		{"no headers", upd(a.Subdomain, v), basic(f.token), 401, adnsError("forbidden")},
		// A's credentials never write B's label.
		{"other account's subdomain", upd(b.Subdomain, v), apiKey(a.Username, a.Password), 401, adnsError("forbidden")},
		{"b's key for a", upd(a.Subdomain, v), apiKey(b.Username, b.Password), 401, adnsError("forbidden")},
		{"source not allowed", upd(remote.Subdomain, v), apiKey(remote.Username, remote.Password), 401, adnsError("forbidden")},
		{"empty txt", upd(a.Subdomain, ""), apiKey(a.Username, a.Password), 400, adnsError("bad_txt")},
		{"control character", upd(a.Subdomain, `a\u0001b`), apiKey(a.Username, a.Password), 400, adnsError("bad_txt")},
		{"malformed", `{"subdomain":`, apiKey(a.Username, a.Password), 400, adnsError("malformed_json_payload")},
		{"empty body", ``, apiKey(a.Username, a.Password), 400, adnsError("malformed_json_payload")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.must(t, tc.status, "POST", "/update", tc.body, tc.edit)
			if r.raw != tc.want || r.ctype != "application/json" {
				t.Fatalf("body %s %q, want %q", r.ctype, r.raw, tc.want)
			}
		})
	}
	for _, acct := range []regAccount{a, b, remote} {
		if recs, err := f.db.ListValues(t.Context(), acct.FullDomain+"."); err != nil || len(recs) != 0 {
			t.Errorf("values at %s after refused updates: %v %v", acct.FullDomain, recs, err)
		}
	}
}

func TestACMEDNSOpenRegistration(t *testing.T) {
	t.Parallel()
	closed := newACMEDNSFixture(t, adnsOptions{})
	closed.must(t, http.StatusUnauthorized, "POST", "/register", "", nil)

	f := newACMEDNSFixture(t, adnsOptions{open: true, path: "/acme-dns"})
	a := f.register(t, "/acme-dns", "", nil)
	r := f.must(t, http.StatusOK, "GET", "/api/v1/acme-dns/accounts/"+a.Username, "", f.bearer)
	if r.body["owner"] != "acme-dns-public" || r.body["domain"] != nil {
		t.Errorf("open account: %s", r.raw)
	}
	v := acmeValue(7)
	r = f.must(t, http.StatusOK, "POST", "/acme-dns/update", `{"subdomain":"`+a.Subdomain+`","txt":"`+v+`"}`, apiKey(a.Username, a.Password))
	if r.raw != `{"txt": "`+v+`"}` {
		t.Errorf("update through an open account: %q", r.raw)
	}
	// A subject is ignored without a token: open accounts never get a domain.
	f.register(t, "/acme-dns", `{"subject":"example.org"}`, nil)
	// Bad credentials are not open registration.
	f.must(t, http.StatusUnauthorized, "POST", "/acme-dns/register", "", basic(secret.Token{ClientID: f.token.ClientID, Secret: "x"}))
	for range 3 {
		f.register(t, "/acme-dns", "", nil)
	}
	// Five from this network; the sixth waits. A token still works.
	r = f.must(t, http.StatusTooManyRequests, "POST", "/acme-dns/register", "", nil)
	if !strings.HasPrefix(r.raw, `{"error": "rate_limited"`) {
		t.Errorf("rate limited: %q", r.raw)
	}
	f.register(t, "/acme-dns", "", basic(f.token))
	// The root has no acme-dns routes when the prefix is set.
	f.must(t, http.StatusNotFound, "POST", "/register", "", nil)
}

func TestACMEDNSHealth(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "/acme-dns"} {
		f := newACMEDNSFixture(t, adnsOptions{path: prefix + "/"})
		for _, m := range []string{"GET", "HEAD"} {
			if r := f.do(t, m, prefix+"/health", "", nil); r.status != http.StatusOK || r.raw != "" {
				t.Errorf("%s %s/health: %d %q", m, prefix, r.status, r.raw)
			}
		}
		f.must(t, http.StatusMethodNotAllowed, "GET", prefix+"/register", "", nil)
	}
}

// TestACMEDNSStorage drives lego's HTTP account storage as lego does:
// Fetch (404), /register, Put (200, never 201), Fetch and FetchAll.
func TestACMEDNSStorage(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{path: "/adns"})
	_, orgTok := f.newPrincipal(t, "shop", "managed_challenge_consumer", "*.example.org")
	_, netTok := f.newPrincipal(t, "other", "managed_challenge_consumer", "*.example.net")
	lego := func(tok secret.Token) func(*http.Request) {
		return with(basic(tok), header("Accept", "application/json"))
	}
	base := "/api/v1/acme-dns/storage"

	f.problem(t, http.StatusNotFound, "not_found", "GET", base+"/example.org", "", lego(orgTok))
	a := f.register(t, "/adns", "null\n", with(basic(orgTok), header("Content-Type", "application/json")))
	// goacmedns sets server_url to its base URL, userinfo included; the hub
	// ignores it and answers with its own.
	put, _ := json.Marshal(map[string]string{"fulldomain": a.FullDomain, "subdomain": a.Subdomain, "username": a.Username,
		"password": a.Password, "server_url": "http://" + orgTok.ClientID + ":" + orgTok.Secret + "@hub/adns"})
	r := f.must(t, http.StatusOK, "POST", base+"/example.org", string(put)+"\n", with(lego(orgTok), header("Content-Type", "application/json")))
	if strings.Contains(r.raw, orgTok.Secret) {
		t.Errorf("put echoes the token secret: %s", r.raw)
	}
	wantAcct := map[string]any{"fulldomain": a.FullDomain, "subdomain": a.Subdomain, "username": a.Username,
		"password": a.Password, "server_url": f.srv.URL + "/adns"}
	for _, d := range []string{"example.org", "*.example.org", "EXAMPLE.org."} {
		r := f.must(t, http.StatusOK, "GET", base+"/"+d, "", lego(orgTok))
		if fmt.Sprint(r.body) != fmt.Sprint(wantAcct) {
			t.Errorf("fetch %s: %s, want %v", d, r.raw, wantAcct)
		}
	}
	r = f.must(t, http.StatusOK, "GET", base, "", lego(orgTok))
	var all map[string]map[string]string
	if err := json.Unmarshal([]byte(r.raw), &all); err != nil || len(all) != 1 || all["example.org"]["username"] != a.Username {
		t.Errorf("fetch all: %s", r.raw)
	}
	// Binding again is fine; the account then works for example.org.
	f.must(t, http.StatusOK, "POST", base+"/example.org", string(put), lego(orgTok))
	f.must(t, http.StatusOK, "POST", "/adns/update", `{"subdomain":"`+a.Subdomain+`","txt":"`+acmeValue(1)+`"}`, apiKey(a.Username, a.Password))

	// The rules: out of the token's scope, another principal's account,
	// another domain for a bound account, a wrong password.
	f.problem(t, http.StatusForbidden, "forbidden", "POST", base+"/example.net", string(put), lego(orgTok))
	f.problem(t, http.StatusForbidden, "forbidden", "GET", base+"/example.net", "", lego(orgTok))
	if r := f.do(t, "GET", base+"/example.org", "", lego(netTok)); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
		t.Errorf("another principal fetches example.org: %d %s", r.status, r.raw)
	}
	r = f.must(t, http.StatusOK, "GET", base, "", lego(netTok))
	if strings.TrimSpace(r.raw) != "{}" {
		t.Errorf("another principal's list: %s", r.raw)
	}
	b := f.register(t, "/adns", "", basic(netTok))
	putB, _ := json.Marshal(map[string]string{"username": b.Username, "password": b.Password, "subdomain": b.Subdomain, "fulldomain": b.FullDomain})
	if r := f.do(t, "POST", base+"/b.example.org", string(putB), lego(orgTok)); r.status < 400 {
		t.Errorf("bound another principal's account: %d %s", r.status, r.raw)
	}
	f.problem(t, http.StatusConflict, "conflict", "POST", base+"/www.example.org", string(put), lego(orgTok))
	wrongPut := strings.Replace(string(put), a.Password, strings.Repeat("x", 40), 1)
	if r := f.do(t, "POST", base+"/shop.example.org", wrongPut, lego(orgTok)); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden && r.status != http.StatusNotFound {
		t.Errorf("bind with a wrong password: %d %s", r.status, r.raw)
	}
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", base+"/example.org", "", nil)
	f.problem(t, http.StatusBadRequest, "malformed_json", "POST", base+"/example.org", `{"username":`, lego(orgTok))
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", base+"/example.org", `{}`, lego(orgTok))
	f.checkNoPasswordLogged(t, a.Password, b.Password)
}

// TestACMEDNSAccounts is the admin resource: an admin creates an account
// for a client that never registers (cert-manager, Caddy).
func TestACMEDNSAccounts(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{publicURL: "https://hub.example.net/"})
	_, orgTok := f.newPrincipal(t, "shop", "managed_challenge_consumer", "*.example.org")
	bearer := func(tok secret.Token) func(*http.Request) { return header("Authorization", "Bearer "+tok.String()) }

	r := f.must(t, http.StatusCreated, "POST", "/api/v1/acme-dns/accounts", `{"domain":"example.org","owner":"shop","allowfrom":["192.0.2.0/24"]}`, f.bearer)
	user, _ := r.body["username"].(string)
	pass, _ := r.body["password"].(string)
	if len(pass) != 40 || r.body["domain"] != "example.org" || r.body["owner"] != "shop" || r.body["server_url"] != "https://hub.example.net" ||
		r.body["cname"] != "_acme-challenge.example.org. CNAME "+r.body["fulldomain"].(string)+"." ||
		fmt.Sprint(r.body["allowfrom"]) != "[192.0.2.0/24]" || r.body["managed_challenge"] != "cfg-org" {
		t.Fatalf("created: %s", r.raw)
	}
	r = f.must(t, http.StatusOK, "GET", "/api/v1/acme-dns/accounts/"+user, "", f.bearer)
	if _, ok := r.body["password"]; ok {
		t.Errorf("password shown without reveal: %s", r.raw)
	}
	r = f.must(t, http.StatusOK, "GET", "/api/v1/acme-dns/accounts/"+user+"?reveal=true", "", f.bearer)
	if r.body["password"] != pass {
		t.Errorf("reveal: %s", r.raw)
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/acme-dns/accounts/"+user+"?reveal=maybe", "", f.bearer)

	// Lists: filters, no passwords, consumers see their own.
	for _, tc := range []struct {
		query string
		auth  func(*http.Request)
		n     int
	}{
		{"", f.bearer, 1}, {"?owner=shop", f.bearer, 1}, {"?owner=admin", f.bearer, 0},
		{"?domain=example.org", f.bearer, 1}, {"?domain=example.net", f.bearer, 0}, {"", bearer(orgTok), 1},
	} {
		r := f.must(t, http.StatusOK, "GET", "/api/v1/acme-dns/accounts"+tc.query, "", tc.auth)
		if got := list(t, r, "accounts"); len(got) != tc.n || strings.Contains(r.raw, pass) {
			t.Errorf("list %s: %s, want %d accounts without passwords", tc.query, r.raw, tc.n)
		}
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "GET", "/api/v1/acme-dns/accounts?limit=0", "", f.bearer)

	// The consumer's scope: not for example.net, and not for others.
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/acme-dns/accounts", `{"domain":"example.net"}`, bearer(orgTok))
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/acme-dns/accounts", `{"domain":"example.org","allowfrom":["nope"]}`, f.bearer)
	f.problem(t, http.StatusBadRequest, "malformed_json", "POST", "/api/v1/acme-dns/accounts", `{"domain":"example.org","extra":1}`, f.bearer)
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/acme-dns/accounts", "", nil)

	// The account updates from its allowed network only; delete ends it.
	f.must(t, http.StatusUnauthorized, "POST", "/update", `{"subdomain":"`+r.body["subdomain"].(string)+`","txt":"`+acmeValue(2)+`"}`, apiKey(user, pass))
	f.must(t, http.StatusNoContent, "DELETE", "/api/v1/acme-dns/accounts/"+user, "", f.bearer)
	f.problem(t, http.StatusNotFound, "not_found", "GET", "/api/v1/acme-dns/accounts/"+user, "", f.bearer)
	f.problem(t, http.StatusNotFound, "not_found", "DELETE", "/api/v1/acme-dns/accounts/"+user, "", f.bearer)
	f.checkNoPasswordLogged(t, pass)
}

// checkNoPasswordLogged fails if a password (or the admin token's secret)
// reached the log.
func (f *fixture) checkNoPasswordLogged(t *testing.T, passwords ...string) {
	t.Helper()
	adnsLogMu.Lock()
	logs := f.logs.String()
	adnsLogMu.Unlock()
	if !strings.Contains(logs, "http request") {
		t.Fatal("no access log lines: the check proves nothing")
	}
	for _, p := range append(passwords, f.token.Secret) {
		if p != "" && strings.Contains(logs, p) {
			t.Fatalf("a secret is in the log")
		}
	}
}

// registerTB registers an account with the admin token, for benchmarks.
func (f *fixture) registerTB(tb testing.TB) regAccount {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodPost, f.srv.URL+"/register", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.SetBasicAuth(f.token.ClientID, f.token.Secret)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var a regAccount
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusCreated {
		tb.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	return a
}

// BenchmarkACMEDNSUpdate measures /update through the real router, service
// and SQLite file over HTTP on loopback, from 16 concurrent clients, each
// with its own account cycling through 32 values (so most updates refresh
// a live value, which is still one store write).
func BenchmarkACMEDNSUpdate(b *testing.B) {
	f := newACMEDNSFixture(b, adnsOptions{})
	const clients = 16
	accts := make(chan regAccount, clients)
	for range clients {
		accts <- f.registerTB(b)
	}
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		a := <-accts
		client := f.srv.Client()
		for i := 0; pb.Next(); i++ {
			body := `{"subdomain":"` + a.Subdomain + `","txt":"` + acmeValue(i%32) + `"}`
			req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, f.srv.URL+"/update", strings.NewReader(body))
			req.Header.Set("X-Api-User", a.Username)
			req.Header.Set("X-Api-Key", a.Password)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("update: %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}
