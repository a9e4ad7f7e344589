package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

const testZone = "acme.example.net."

type fixture struct {
	srv    *httptest.Server
	kr     *secret.Keyring
	db     *store.DB
	token  secret.Token
	dbPath string
	logs   *bytes.Buffer
}

// newFixture runs the real router over the real service and a SQLite file.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil, nil)
}

// newFixtureWith is newFixture with the service's and the API's settings
// edited (either may be nil).
func newFixtureWith(tb testing.TB, hubCfg func(*hub.Config), apiCfg func(*api.Config)) *fixture {
	tb.Helper()
	dbPath := filepath.Join(tb.TempDir(), "hub.db")
	db, err := store.Open(tb.Context(), store.Config{Path: dbPath, MaxValuesPerName: 32})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	key, err := secret.GenerateKey("k1")
	if err != nil {
		tb.Fatal(err)
	}
	kr, err := secret.NewKeyring(key)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := secret.NewToken()
	if err != nil {
		tb.Fatal(err)
	}
	admin, err := db.CreatePrincipal(tb.Context(), store.Principal{Kind: store.PrincipalUser, Name: "admin", Enabled: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := db.AddRoleAssignment(tb.Context(), store.RoleAssignment{PrincipalID: admin.ID, Role: store.RoleAdmin}); err != nil {
		tb.Fatal(err)
	}
	if err := db.CreateToken(tb.Context(), store.Token{ClientID: tok.ClientID, PrincipalID: admin.ID, SecretHash: kr.HashSecret(tok.Secret), Title: "admin"}); err != nil {
		tb.Fatal(err)
	}
	hc := hub.Config{Zone: testZone, DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour}
	if hubCfg != nil {
		hubCfg(&hc)
	}
	svc := hub.New(db, kr, hc)
	logs := &bytes.Buffer{}
	// Debug level: the tests that look for secrets in the logs see all.
	ac := api.Config{MaxBody: 1024, Logger: slog.New(slog.NewJSONHandler(lockedWriter{logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if apiCfg != nil {
		apiCfg(&ac)
	}
	a, err := api.New(svc, ac)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(a)
	tb.Cleanup(srv.Close)
	return &fixture{srv: srv, kr: kr, db: db, token: tok, dbPath: dbPath, logs: logs}
}

type response struct {
	status int
	body   map[string]any
	raw    string
	ctype  string
}

func (f *fixture) do(t *testing.T, method, path, body string, auth func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, raw: string(raw), ctype: resp.Header.Get("Content-Type")}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (f *fixture) bearer(r *http.Request) { r.Header.Set("Authorization", "Bearer "+f.token.String()) }

func TestAuthForms(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name string
		auth func(*http.Request)
		want int
	}{
		{"bearer", f.bearer, http.StatusOK},
		{"headers", func(r *http.Request) {
			r.Header.Set("X-Client-ID", f.token.ClientID)
			r.Header.Set("X-Client-Secret", f.token.Secret)
		}, http.StatusOK},
		{"basic", func(r *http.Request) { r.SetBasicAuth(f.token.ClientID, f.token.Secret) }, http.StatusOK},
		{"none", nil, http.StatusUnauthorized},
		{"wrong secret", func(r *http.Request) {
			other, _ := secret.NewToken()
			r.SetBasicAuth(f.token.ClientID, other.Secret)
		}, http.StatusUnauthorized},
		{"unknown client", func(r *http.Request) {
			other, _ := secret.NewToken()
			r.Header.Set("Authorization", "Bearer "+other.String())
		}, http.StatusUnauthorized},
		{"garbage", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nonsense") }, http.StatusUnauthorized},
	}
	var unauthorizedBody string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "GET", "/api/v1/records", "", tc.auth)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.raw)
			}
			if r.status == http.StatusUnauthorized {
				if r.ctype != "application/problem+json" || r.body["code"] != "unauthenticated" {
					t.Fatalf("not a problem document: %s %s", r.ctype, r.raw)
				}
				// The same body whatever the reason.
				body := fmt.Sprint(r.body["detail"], r.body["code"])
				if unauthorizedBody != "" && body != unauthorizedBody {
					t.Fatalf("401 bodies differ: %q vs %q", body, unauthorizedBody)
				}
				unauthorizedBody = body
			}
		})
	}
}

func TestRecordLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, v := range []string{"one", "two"} {
		r := f.do(t, "POST", "/api/v1/records/abc", `{"value":"`+v+`","ttl":30}`, f.bearer)
		if r.status != http.StatusCreated || r.body["name"] != "abc."+testZone || r.body["ttl"] != float64(30) {
			t.Fatalf("add %s: %d %s", v, r.status, r.raw)
		}
	}
	r := f.do(t, "GET", "/api/v1/records/abc."+testZone, "", f.bearer)
	if got := len(r.body["records"].([]any)); r.status != http.StatusOK || got != 2 {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	r = f.do(t, "DELETE", "/api/v1/records/abc?value=one", "", f.bearer)
	if r.status != http.StatusOK || r.body["removed"] != float64(1) {
		t.Fatalf("remove one: %d %s", r.status, r.raw)
	}
	// Idempotent: removing it again removes nothing and succeeds.
	r = f.do(t, "DELETE", "/api/v1/records/abc?value=one", "", f.bearer)
	if r.status != http.StatusOK || r.body["removed"] != float64(0) {
		t.Fatalf("remove again: %d %s", r.status, r.raw)
	}
	r = f.do(t, "DELETE", "/api/v1/records/abc", "", f.bearer)
	if r.status != http.StatusOK || r.body["removed"] != float64(1) {
		t.Fatalf("remove all: %d %s", r.status, r.raw)
	}
	r = f.do(t, "GET", "/api/v1/records", "", f.bearer)
	if r.status != http.StatusOK || len(r.body["records"].([]any)) != 0 {
		t.Fatalf("list all: %d %s", r.status, r.raw)
	}
}

// TestBadInputStoresNothing sends every kind of bad request and checks the
// error and that the zone is still empty.
func TestBadInputStoresNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"malformed json", "/api/v1/records/abc", `{"value":`, 400, "malformed_json"},
		{"empty body", "/api/v1/records/abc", ``, 400, "malformed_json"},
		{"unknown field", "/api/v1/records/abc", `{"value":"x","extra":1}`, 400, "malformed_json"},
		{"two values", "/api/v1/records/abc", `{"value":"x"}{"value":"y"}`, 400, "malformed_json"},
		{"wrong type", "/api/v1/records/abc", `{"value":5}`, 400, "malformed_json"},
		{"oversized body", "/api/v1/records/abc", `{"value":"` + strings.Repeat("a", 2000) + `"}`, 413, "body_too_large"},
		{"outside the zone", "/api/v1/records/abc.example.org.", `{"value":"x"}`, 400, "bad_request"},
		{"the apex", "/api/v1/records/" + testZone, `{"value":"x"}`, 400, "bad_request"},
		{"bad label", "/api/v1/records/a%20b", `{"value":"x"}`, 400, "bad_request"},
		{"value over 255 bytes", "/api/v1/records/abc", `{"value":"` + strings.Repeat("a", 256) + `"}`, 400, "bad_request"},
		{"control character", "/api/v1/records/abc", `{"value":"a\u0007b"}`, 400, "bad_request"},
		{"newline", "/api/v1/records/abc", `{"value":"a\nb"}`, 400, "bad_request"},
		{"empty value", "/api/v1/records/abc", `{"value":""}`, 400, "bad_request"},
		{"negative ttl", "/api/v1/records/abc", `{"value":"x","ttl":-1}`, 400, "bad_request"},
		{"lifetime too long", "/api/v1/records/abc", `{"value":"x","lifetime":100000000}`, 400, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "POST", tc.path, tc.body, f.bearer)
			if r.status != tc.status || r.body["code"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if r.ctype != "application/problem+json" || r.body["detail"] == "" {
				t.Fatalf("not a problem document with a detail: %s", r.raw)
			}
		})
	}
	recs, err := f.db.ListAll(t.Context(), "", 100)
	if err != nil || len(recs) != 0 {
		t.Fatalf("bad input stored something: %v %v", recs, err)
	}
}

func TestValueCapPerName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 32 {
		if r := f.do(t, "POST", "/api/v1/records/cap", fmt.Sprintf(`{"value":"v%02d"}`, i), f.bearer); r.status != http.StatusCreated {
			t.Fatalf("value %d: %d %s", i, r.status, r.raw)
		}
	}
	r := f.do(t, "POST", "/api/v1/records/cap", `{"value":"v32"}`, f.bearer)
	if r.status != http.StatusConflict || r.body["code"] != "limit_reached" || !strings.Contains(r.body["detail"].(string), "32") {
		t.Fatalf("33rd value: %d %s", r.status, r.raw)
	}
	recs, _ := f.db.ListValues(t.Context(), "cap."+testZone)
	if len(recs) != 32 {
		t.Fatalf("%d values stored, want 32", len(recs))
	}
	// Refreshing an existing value is not a new one.
	if r := f.do(t, "POST", "/api/v1/records/cap", `{"value":"v05"}`, f.bearer); r.status != http.StatusCreated {
		t.Fatalf("refresh at the cap: %d %s", r.status, r.raw)
	}
}

func TestHealthReadyAndUnknownRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if r := f.do(t, "GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if r := f.do(t, "GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", "/nope", "", nil); r.status != 404 || r.body["code"] != "not_found" {
		t.Fatalf("unknown route: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "PUT", "/api/v1/records/abc", "", f.bearer); r.status != 405 {
		t.Fatalf("wrong method: %d %s", r.status, r.raw)
	}
	_ = f.db.Close()
	if r := f.do(t, "GET", "/readyz", "", nil); r.status != 503 || r.body["code"] != "not_ready" {
		t.Fatalf("readyz with the database closed: %d %s", r.status, r.raw)
	}
}

// TestNoSecretAtRest checks that neither the database files nor the logs
// hold the token's secret.
func TestNoSecretAtRest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.do(t, "POST", "/api/v1/records/abc", `{"value":"x"}`, f.bearer)
	f.do(t, "GET", "/api/v1/records", "", func(r *http.Request) { r.SetBasicAuth(f.token.ClientID, f.token.Secret+"x") })
	_ = f.db.Close()
	for _, p := range []string{f.dbPath, f.dbPath + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(f.token.Secret)) || bytes.Contains(b, []byte(strings.TrimPrefix(f.token.Secret, "ahs_"))) {
			t.Fatalf("%s holds the token secret", p)
		}
	}
	if strings.Contains(f.logs.String(), f.token.Secret) {
		t.Fatal("the logs hold the token secret")
	}
	if !strings.Contains(f.logs.String(), f.token.ClientID) {
		t.Fatal("the access log should name the token id")
	}
}
