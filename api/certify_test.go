package api_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

const (
	pathRequest = "/api/v1/managedchallenge/request"
	pathBegin   = "/api/v1/managedchallenge/requestbegin"
	pathStatus  = "/api/v1/managedchallenge/requeststatus/"
	pathCleanup = "/api/v1/managedchallenge/cleanup"
)

// certifyBody is a request as Certify sends it: PascalCase, credentials in
// the body.
func certifyBody(identifier, key, value string, tok secret.Token) string {
	b, _ := json.Marshal(map[string]string{
		"ChallengeType": "dns-01", "Identifier": identifier, "ResponseKey": key, "ResponseValue": value,
		"AuthKey": tok.ClientID, "AuthSecret": tok.Secret,
	})
	return string(b)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkActionResult checks the exact shape Certify's ActionResult parses.
func checkActionResult(t *testing.T, r response, wantSuccess bool) map[string]any {
	t.Helper()
	if r.status != http.StatusOK || r.ctype != "application/json" {
		t.Fatalf("got %d %s: %s", r.status, r.ctype, r.raw)
	}
	if got := keys(r.body); !slices.Equal(got, []string{"isSuccess", "isWarning", "message", "result"}) {
		t.Fatalf("action result fields %v: %s", got, r.raw)
	}
	if r.body["isSuccess"] != wantSuccess || r.body["isWarning"] != false || r.body["message"] == "" {
		t.Fatalf("action result: %s", r.raw)
	}
	res, _ := r.body["result"].(map[string]any)
	return res
}

func checkProblem(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.ctype != "application/problem+json" || r.body["code"] != code || r.body["status"] != float64(status) {
		t.Fatalf("want a %d %s problem, got %d %s: %s", status, code, r.status, r.ctype, r.raw)
	}
	if d, _ := r.body["detail"].(string); d == "" {
		t.Fatalf("problem without detail: %s", r.raw)
	}
}

func noSecretsLogged(t *testing.T, f *fixture, toks ...secret.Token) {
	t.Helper()
	for _, tok := range toks {
		if strings.Contains(f.logs.String(), tok.Secret) {
			t.Fatal("a secret reached the log")
		}
	}
}

func TestCertifyRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})

	before := time.Now()
	r := f.do(t, "POST", pathRequest, certifyBody("www.example.org", "_acme-challenge.www.example.org", "v-base", tok), nil)
	res := checkActionResult(t, r, true)
	target, _ := res["cnameTarget"].(string)
	if res["recordName"] != "_acme-challenge.www.example.org." || res["value"] != "v-base" || res["domain"] != "www.example.org" ||
		res["managedChallenge"] != "example-org" || !strings.HasSuffix(target, "."+testZone) || res["id"] == "" {
		t.Fatalf("result: %s", r.raw)
	}
	if !strings.Contains(r.body["message"].(string), target) {
		t.Fatalf("the message does not name the CNAME target: %s", r.raw)
	}
	// Clean-up is optional: every value expires on the server (config
	// lifetime, default 1 h) and the result says when.
	exp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(res["expiresAt"]))
	if err != nil || exp.Before(before.Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("expiresAt %v (%v)", res["expiresAt"], err)
	}
	recs, err := f.db.ListValues(t.Context(), target)
	if err != nil || len(recs) != 1 || recs[0].Value != "v-base" || recs[0].ExpiresAt.Sub(exp).Abs() > time.Millisecond { // the store keeps milliseconds
		t.Fatalf("stored: %+v %v", recs, err)
	}

	// The wildcard, camelCase names, a trailing dot and other case in the
	// key, and credentials in the headers instead of the body.
	body := `{"challengeType":"DNS-01","identifier":"*.www.example.org","responseKey":"_ACME-Challenge.WWW.example.org.","responseValue":"v-wild","DateTimePerformed":null,"ManagedCertId":"abc"}`
	r = f.do(t, "POST", pathRequest, body, func(req *http.Request) {
		req.Header.Set("X-Client-ID", tok.ClientID)
		req.Header.Set("X-Client-Secret", tok.Secret)
	})
	if res := checkActionResult(t, r, true); res["cnameTarget"] != target {
		t.Fatalf("wildcard: %s", r.raw)
	}
	// Both forms at once: fine when they agree.
	r = f.do(t, "POST", pathRequest, certifyBody("www.example.org", "_acme-challenge.www.example.org", "v-both", tok), bearer(tok))
	checkActionResult(t, r, true)
	if recs, _ := f.db.ListValues(t.Context(), target); len(recs) != 3 {
		t.Fatalf("values at %s: %+v", target, recs)
	}
	noSecretsLogged(t, f, tok)
}

// TestCertifyRefusals covers the refusals every POST endpoint shares.
func TestCertifyRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	f.config(t, "example-net", "example.net")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	other := f.consumer(t, "other", store.RoleChallengeConsumer, "", store.Token{})
	wrong, _ := secret.NewToken()
	wrong.ClientID = tok.ClientID

	good := func(tok secret.Token) string {
		return certifyBody("www.example.org", "_acme-challenge.www.example.org", "v", tok)
	}
	tests := []struct {
		name   string
		body   string
		auth   func(*http.Request)
		status int
		code   string
	}{
		{"no credentials", certifyBody("www.example.org", "_acme-challenge.www.example.org", "v", secret.Token{}), nil, 401, "unauthenticated"},
		{"wrong secret", good(wrong), nil, 401, "unauthenticated"},
		{"malformed secret", strings.Replace(good(tok), tok.Secret, "nope", 1), nil, 401, "unauthenticated"},
		{"wrong header secret", good(secret.Token{}), func(r *http.Request) {
			r.Header.Set("X-Client-ID", wrong.ClientID)
			r.Header.Set("X-Client-Secret", wrong.Secret)
		}, 401, "unauthenticated"},
		{"body and headers differ", good(tok), bearer(other), 400, "bad_request"},
		{"empty body", "", nil, 400, "malformed_json"},
		{"malformed json", `{"Identifier":`, nil, 400, "malformed_json"},
		{"two objects", good(tok) + good(tok), nil, 400, "malformed_json"},
		{"wrong type", `{"Identifier":5}`, nil, 400, "malformed_json"},
		{"oversized", `{"Identifier":"` + strings.Repeat("a", 2000) + `"}`, nil, 413, "body_too_large"},
		{"http-01", strings.Replace(good(tok), "dns-01", "http-01", 1), nil, 400, "bad_request"},
		{"key of another domain", certifyBody("www.example.org", "_acme-challenge.example.org", "v", tok), nil, 400, "bad_request"},
		{"key without prefix", certifyBody("www.example.org", "www.example.org", "v", tok), nil, 400, "bad_request"},
		{"wildcard key", certifyBody("*.example.org", "_acme-challenge.*.example.org", "v", tok), nil, 400, "bad_request"},
		{"no identifier", certifyBody("", "_acme-challenge.www.example.org", "v", tok), nil, 400, "bad_request"},
		{"bad identifier", certifyBody("not a name", "_acme-challenge.not a name", "v", tok), nil, 400, "bad_request"},
		{"empty value", certifyBody("www.example.org", "_acme-challenge.www.example.org", "", tok), nil, 400, "bad_request"},
		{"outside the scope", certifyBody("example.net", "_acme-challenge.example.net", "v", tok), nil, 403, "forbidden"},
		{"two labels below", certifyBody("a.b.example.org", "_acme-challenge.a.b.example.org", "v", tok), nil, 403, "forbidden"},
	}
	for _, path := range []string{pathRequest, pathBegin, pathCleanup} {
		forbidden := ""
		for _, tc := range tests {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				r := f.do(t, "POST", path, tc.body, tc.auth)
				checkProblem(t, r, tc.status, tc.code)
				if tc.status == 403 {
					// One body for every refusal and endpoint.
					if forbidden != "" && r.raw != forbidden {
						t.Fatalf("403 bodies differ: %s / %s", r.raw, forbidden)
					}
					forbidden = r.raw
				}
			})
		}
	}
	if r := f.do(t, "GET", pathRequest, "", nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET request: %d", r.status)
	}
	recs, err := f.db.ListAll(t.Context(), "", 100)
	if err != nil || len(recs) != 0 {
		t.Fatalf("refused requests stored %+v %v", recs, err)
	}
	// The refusals were audited, the early 403 of requestbegin included.
	events, err := f.db.ListAudit(t.Context(), store.AuditFilter{Action: "challenge.present", Result: "denied", Limit: 100})
	if err != nil || len(events) < 4 {
		t.Fatalf("denied presents audited: %d %v", len(events), err)
	}
	noSecretsLogged(t, f, tok, other, wrong)
}

func TestCertifyRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "", store.Token{})
	wrong, _ := secret.NewToken()
	wrong.ClientID = tok.ClientID
	body := certifyBody("example.org", "_acme-challenge.example.org", "v", wrong)
	var r response
	for range 30 {
		if r = f.do(t, "POST", pathRequest, body, nil); r.status == http.StatusTooManyRequests {
			break
		}
	}
	checkProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.srv.URL+pathBegin, strings.NewReader(body))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("requestbegin while limited: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestCertifyStoreFailure breaks the record table with a trigger in the real
// SQLite file: the DNS update fails, which is 502 with a detail that names
// the request but no internals.
func TestCertifyStoreFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "", store.Token{})
	// Delegations are created before the value: make the domain's first.
	if r := f.do(t, "POST", pathRequest, certifyBody("example.org", "_acme-challenge.example.org", "first", tok), nil); r.status != 200 {
		t.Fatalf("first present: %d %s", r.status, r.raw)
	}
	raw, err := sql.Open("sqlite", f.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	const internals = "simulated failure in /var/lib/acmehub"
	if _, err := raw.ExecContext(t.Context(), `CREATE TRIGGER certify_test_fail BEFORE INSERT ON txt_values
		BEGIN SELECT RAISE(ABORT, '`+internals+`'); END`); err != nil {
		t.Fatal(err)
	}

	r := f.do(t, "POST", pathRequest, certifyBody("example.org", "_acme-challenge.example.org", "second", tok), nil)
	checkProblem(t, r, http.StatusBadGateway, "internal")
	if strings.Contains(r.raw, "simulated") || strings.Contains(r.raw, "txt_values") || !strings.Contains(r.raw, "DNS update failed") {
		t.Fatalf("502 body: %s", r.raw)
	}
	if !strings.Contains(f.logs.String(), internals) {
		t.Fatal("the failure is not in the server log")
	}

	// In the background: a failed operation carrying the same problem.
	op := beginAndWait(t, f, certifyBody("example.org", "_acme-challenge.example.org", "third", tok))
	result, _ := op["result"].(map[string]any)
	p, _ := result["result"].(map[string]any)
	if op["status"] != "failed" || op["isSuccess"] != false || result["isSuccess"] != false ||
		p["status"] != float64(502) || p["code"] != "internal" || strings.Contains(fmt.Sprint(op), "simulated") {
		t.Fatalf("failed operation: %v", op)
	}
	noSecretsLogged(t, f, tok)
}

// beginAndWait starts an operation and polls it, without credentials, until
// it completes.
func beginAndWait(t *testing.T, f *fixture, body string) map[string]any {
	t.Helper()
	r := f.do(t, "POST", pathBegin, body, nil)
	if r.status != http.StatusAccepted || r.ctype != "application/json" {
		t.Fatalf("requestbegin: %d %s", r.status, r.raw)
	}
	id, _ := r.body["id"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s := f.do(t, "GET", pathStatus+id, "", nil)
		if s.status != http.StatusOK {
			t.Fatalf("requeststatus: %d %s", s.status, s.raw)
		}
		if s.body["isCompleted"] == true {
			return s.body
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("operation %s never completed", id)
	return nil
}

func TestCertifyRequestBegin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})

	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.srv.URL+pathBegin,
		strings.NewReader(certifyBody("*.example.org", "_acme-challenge.example.org", "v-begin", tok)))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var op map[string]any
	err = json.NewDecoder(resp.Body).Decode(&op)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("requestbegin: %d %v", resp.StatusCode, err)
	}
	want := []string{"dateCompleted", "dateCreated", "dateLastUpdated", "dateStarted", "id", "isCompleted", "isSuccess", "request", "result", "status"}
	if got := keys(op); !slices.Equal(got, want) {
		t.Fatalf("operation fields %v", got)
	}
	id, _ := op["id"].(string)
	if len(id) < 22 || resp.Header.Get("Location") != pathStatus+id || op["isCompleted"] != false || op["isSuccess"] != false ||
		!slices.Contains([]any{"pending", "running"}, op["status"]) {
		t.Fatalf("accepted operation: %v, Location %q", op, resp.Header.Get("Location"))
	}
	// The echoed request never carries the credentials.
	echo, _ := op["request"].(map[string]any)
	if got := keys(echo); !slices.Equal(got, []string{"challengeType", "identifier", "responseKey", "responseValue"}) || echo["identifier"] != "*.example.org" {
		t.Fatalf("echoed request: %v", echo)
	}

	// Polled without credentials, as Certify does.
	var done map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for done == nil && time.Now().Before(deadline) {
		s := f.do(t, "GET", resp.Header.Get("Location"), "", nil)
		if s.status != http.StatusOK || s.ctype != "application/json" {
			t.Fatalf("requeststatus: %d %s", s.status, s.raw)
		}
		if s.body["isCompleted"] == true {
			done = s.body
		}
		time.Sleep(5 * time.Millisecond)
	}
	result, _ := done["result"].(map[string]any)
	inner, _ := result["result"].(map[string]any)
	if done["status"] != "succeeded" || done["isSuccess"] != true || done["dateCompleted"] == nil || done["dateStarted"] == nil ||
		result["isSuccess"] != true || inner["recordName"] != "_acme-challenge.example.org." || inner["expiresAt"] == nil {
		t.Fatalf("completed operation: %v", done)
	}
	recs, err := f.db.ListValues(t.Context(), inner["cnameTarget"].(string))
	if err != nil || len(recs) != 1 || recs[0].Value != "v-begin" {
		t.Fatalf("stored %+v %v", recs, err)
	}

	for _, bad := range []string{"nosuchoperation", strings.Repeat("A", 26), id + "x"} {
		checkProblem(t, f.do(t, "GET", pathStatus+bad, "", nil), http.StatusNotFound, "not_found")
	}
	noSecretsLogged(t, f, tok)
}

// TestCertifyRulesEnforced: a token restricted to *.example.org writes
// nothing for example.net through any endpoint, and a domain within the
// scope that no managed challenge matches fails in the background.
func TestCertifyRulesEnforced(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	f.config(t, "example-net", "example.net")
	tok := f.consumer(t, "shop", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	netBody := certifyBody("example.net", "_acme-challenge.example.net", "v", tok)
	for _, path := range []string{pathRequest, pathBegin, pathCleanup} {
		checkProblem(t, f.do(t, "POST", path, netBody, nil), http.StatusForbidden, "forbidden")
	}
	if recs, _ := f.db.ListAll(t.Context(), "", 10); len(recs) != 0 {
		t.Fatalf("stored %+v", recs)
	}

	// Within an unrestricted scope, but no config matches example.com: the
	// operation is accepted and fails with the same 403 problem.
	anyTok := f.consumer(t, "any", store.RoleChallengeConsumer, "", store.Token{})
	op := beginAndWait(t, f, certifyBody("example.com", "_acme-challenge.example.com", "v", anyTok))
	result, _ := op["result"].(map[string]any)
	p, _ := result["result"].(map[string]any)
	msg, _ := result["message"].(string)
	if op["status"] != "failed" || result["isSuccess"] != false || p["status"] != float64(403) || p["code"] != "forbidden" ||
		!strings.HasPrefix(msg, "Update failed: ") {
		t.Fatalf("operation: %v", op)
	}
	checkProblem(t, f.do(t, "POST", pathRequest, certifyBody("example.com", "_acme-challenge.example.com", "v", anyTok), nil), http.StatusForbidden, "forbidden")
}

func TestCertifyCleanup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	body := certifyBody("*.shop.example.org", "_acme-challenge.shop.example.org", "v1", tok)
	// Removing what was never presented succeeds.
	if res := checkActionResult(t, f.do(t, "POST", pathCleanup, body, nil), true); res["removed"] != float64(0) {
		t.Fatalf("clean-up before present: %v", res)
	}
	res := checkActionResult(t, f.do(t, "POST", pathRequest, body, nil), true)
	target := res["cnameTarget"].(string)
	for _, want := range []float64{1, 0} {
		if res := checkActionResult(t, f.do(t, "POST", pathCleanup, body, nil), true); res["removed"] != want {
			t.Fatalf("clean-up: %v, want removed %v", res, want)
		}
	}
	if recs, _ := f.db.ListValues(t.Context(), target); len(recs) != 0 {
		t.Fatalf("left %+v", recs)
	}
}

// blockingPresent holds every Present until release is closed.
type blockingPresent struct {
	api.Service
	started chan struct{}
	release chan struct{}
}

func (b blockingPresent) Present(ctx context.Context, g hub.Grant, req hub.PresentRequest) (hub.Challenge, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return hub.Challenge{}, ctx.Err()
	}
	return b.Service.Present(ctx, g, req)
}

// TestCertifyShutdown: Shutdown waits for an operation running in the
// background, and requestbegin refuses new ones meanwhile with 501, so
// Certify falls back to request.
func TestCertifyShutdown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "all", "*")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "", store.Token{})
	svc := blockingPresent{
		Service: hub.New(f.db, f.kr, hub.Config{Zone: testZone, DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour}),
		started: make(chan struct{}, 1), release: make(chan struct{}),
	}
	a, err := api.New(svc, api.Config{MaxBody: 1024, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	g := &fixture{srv: srv, db: f.db, logs: f.logs}

	r := g.do(t, "POST", pathBegin, certifyBody("example.org", "_acme-challenge.example.org", "v", tok), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("requestbegin: %d %s", r.status, r.raw)
	}
	<-svc.started // the operation is running, and the request has ended
	shutdown := make(chan error, 1)
	go func() { shutdown <- a.Shutdown(t.Context()) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+pathBegin,
			strings.NewReader(certifyBody("example.org", "_acme-challenge.example.org", "w", tok)))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusNotImplemented {
			break
		}
		if resp.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("requestbegin during shutdown: %d", resp.StatusCode)
		}
		<-svc.started // accepted before shutdown began: it runs too
		time.Sleep(time.Millisecond)
	}
	if s := g.do(t, "GET", pathStatus+r.body["id"].(string), "", nil); s.body["status"] != "running" {
		t.Fatalf("operation during shutdown: %s", s.raw)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while an operation was running", err)
	default:
	}
	close(svc.release)
	if err := <-shutdown; err != nil {
		t.Fatal(err)
	}
	// Finished, not cancelled: the value is published and the operation
	// still readable.
	if s := g.do(t, "GET", pathStatus+r.body["id"].(string), "", nil); s.body["status"] != "succeeded" {
		t.Fatalf("operation after shutdown: %s", s.raw)
	}
	if recs, _ := f.db.ListAll(t.Context(), "", 10); len(recs) == 0 {
		t.Fatal("the value was not published")
	}
}

// TestCertifyStatusNotLogged: the operation id is the capability to read
// the operation, so the access log shows the requeststatus path without it.
func TestCertifyStatusNotLogged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	r := f.do(t, "POST", pathBegin, certifyBody("example.org", "_acme-challenge.example.org", "v", tok), nil)
	id, _ := r.body["id"].(string)
	if r.status != http.StatusAccepted || id == "" {
		t.Fatalf("requestbegin: %d %s", r.status, r.raw)
	}
	for _, path := range []string{pathStatus + id, strings.ToUpper(pathStatus) + id, pathStatus + id + "/x"} {
		f.do(t, "GET", path, "", nil)
	}
	if s := f.do(t, "GET", pathStatus+id, "", nil); s.status != http.StatusOK {
		t.Fatalf("requeststatus: %d %s", s.status, s.raw)
	}
	logs := f.logs.String()
	if strings.Contains(logs, id) {
		t.Fatalf("the operation id is in the log:\n%s", logs)
	}
	if n := strings.Count(logs, `"path":"`+pathStatus+`{id}"`); n != 4 {
		t.Fatalf("%d access lines for requeststatus, want 4:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"path":"`+pathBegin+`"`) {
		t.Fatalf("other paths are logged as they are:\n%s", logs)
	}
}

// permissivePresent accepts every Present, as a hub that forgot its scope
// check would.
type permissivePresent struct{ api.Service }

func (permissivePresent) Present(context.Context, hub.Grant, hub.PresentRequest) (hub.Challenge, error) {
	return hub.Challenge{Value: "written"}, nil
}

// TestCertifyBeginOutsideScope: requestbegin refuses a domain outside the
// token's scope itself and never starts an operation for it, even if the
// hub's own check were missing.
func TestCertifyBeginOutsideScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	svc := permissivePresent{hub.New(f.db, f.kr, hub.Config{Zone: testZone, DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour})}
	a, err := api.New(svc, api.Config{MaxBody: 1024, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	g := &fixture{srv: srv, db: f.db}
	if r := g.do(t, "POST", pathBegin, certifyBody("example.net", "_acme-challenge.example.net", "v", tok), nil); r.status != http.StatusForbidden || r.body["code"] != "forbidden" {
		t.Fatalf("outside the scope: %d %s", r.status, r.raw)
	}
	if r := g.do(t, "POST", pathBegin, certifyBody("example.org", "_acme-challenge.example.org", "v", tok), nil); r.status != http.StatusAccepted {
		t.Fatalf("inside the scope: %d %s", r.status, r.raw)
	}
}
