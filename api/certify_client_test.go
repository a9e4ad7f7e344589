package api_test

// certifyClient sends what Certify Certificate Manager's "Certify Managed
// Challenge API" DNS provider (id DNS01.API.CertifyManaged) sends, read from
// webprofusion/certify:
//
//   - src/Certify.Providers/DNS/CertifyManaged/DnsProviderCertifyManaged.cs:
//     CreateRecord POSTs {base}/api/v1/managedchallenge/requestbegin (an
//     absolute path: any path in the configured base URL is dropped); on
//     404, 405 or 501 it POSTs the same body to .../request and returns the
//     ActionResult it parses. Otherwise it reads the operation's Id and GETs
//     .../requeststatus/{Uri.EscapeDataString(id)} without credentials
//     (only an optional X-Certify-HubAssignedId header) every 5 s until
//     IsCompleted, then returns operation.Result, or an ActionResult made
//     from IsSuccess when there is none; 404 while polling is a failure
//     ("operation ... was not found"). Any other non-2xx answer becomes
//     "<action> failed [<status>]: <ProblemDetails.Detail>". DeleteRecord
//     POSTs the same body to .../cleanup. The HTTP timeout is 20 minutes.
//   - The body is ManagedChallengeRequest serialised by Newtonsoft.Json with
//     NullValueHandling.Ignore: PascalCase ChallengeType ("dns-01"),
//     Identifier (the domain, "*.example.org" for a wildcard), ResponseKey
//     (the record name), ResponseValue, AuthKey, AuthSecret, as
//     application/json; charset=utf-8 (src/Certify.Models/Hub/ManagedChallenge.cs).
//   - Responses are parsed with Newtonsoft, whose names match
//     case-insensitively, into ActionResult {IsSuccess, IsWarning, Message,
//     Result} (src/Certify.Models/Config/ActionResult.cs) and
//     ManagedChallengeOperation {Id, Status, Result, IsCompleted, IsSuccess,
//     ...}; Certify's own hub answers them from
//     src/Certify.Server/Certify.Server.Hub.Api/Controllers/v1/ManagedChallengeController.cs.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

type certifyClient struct {
	base       string // the hub's base URL
	http       *http.Client
	authKey    string
	authSecret string
	poll       time.Duration // Certify: 5 s

	begins, fallbacks, polls int // what the last calls did, for the tests
}

// certifyClientRequest is ManagedChallengeRequest as Newtonsoft writes it:
// field order and names as declared, nulls left out.
type certifyClientRequest struct {
	ChallengeType string
	Identifier    string
	ResponseKey   string
	ResponseValue string
	AuthKey       string
	AuthSecret    string
}

// clientActionResult is ActionResult as Certify reads it.
type clientActionResult struct {
	IsSuccess bool
	IsWarning bool
	Message   string
	Result    json.RawMessage
}

type clientOperation struct {
	ID          string
	Status      string
	Result      *clientActionResult
	IsCompleted bool
	IsSuccess   bool
}

func (c *certifyClient) body(domain, recordName, value string) []byte {
	b, _ := json.Marshal(certifyClientRequest{
		ChallengeType: "dns-01", Identifier: domain, ResponseKey: recordName, ResponseValue: value,
		AuthKey: c.authKey, AuthSecret: c.authSecret,
	})
	return b
}

// send makes one call and returns the status and body.
func (c *certifyClient) send(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// apiFailure is CreateApiFailureResult.
func apiFailure(action string, status int, raw []byte) clientActionResult {
	var p struct{ Detail string }
	if json.Unmarshal(raw, &p) == nil && strings.TrimSpace(p.Detail) != "" {
		return clientActionResult{Message: fmt.Sprintf("%s failed [%d]: %s", action, status, p.Detail)}
	}
	return clientActionResult{Message: fmt.Sprintf("%s failed [%d]: %s", action, status, raw)}
}

func isSuccessStatus(code int) bool { return code >= 200 && code <= 299 }

// CreateRecord is the provider's CreateRecord.
func (c *certifyClient) CreateRecord(ctx context.Context, domain, recordName, value string) (clientActionResult, error) {
	c.begins++
	body := c.body(domain, recordName, value)
	status, raw, err := c.send(ctx, http.MethodPost, "/api/v1/managedchallenge/requestbegin", body)
	if err != nil {
		return clientActionResult{}, err
	}
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		c.fallbacks++
		return c.sendAction(ctx, "/api/v1/managedchallenge/request", "Update", body)
	}
	if !isSuccessStatus(status) {
		return apiFailure("Update", status, raw), nil
	}
	var op clientOperation
	if json.Unmarshal(raw, &op) != nil || strings.TrimSpace(op.ID) == "" {
		return clientActionResult{Message: "Update failed: Managed Challenge API did not return a valid operation id."}, nil
	}
	for {
		status, raw, err := c.send(ctx, http.MethodGet, "/api/v1/managedchallenge/requeststatus/"+url.PathEscape(op.ID), nil)
		if err != nil {
			return clientActionResult{}, err
		}
		c.polls++
		if status == http.StatusNotFound {
			return clientActionResult{Message: fmt.Sprintf("Update failed: Managed challenge operation '%s' was not found.", op.ID)}, nil
		}
		if !isSuccessStatus(status) {
			return apiFailure("Update status", status, raw), nil
		}
		var st clientOperation
		if err := json.Unmarshal(raw, &st); err != nil {
			return clientActionResult{Message: "Update failed: Managed Challenge API returned an invalid operation status response."}, nil
		}
		if !st.IsCompleted {
			select {
			case <-time.After(c.poll):
				continue
			case <-ctx.Done():
				return clientActionResult{}, ctx.Err()
			}
		}
		if st.Result != nil {
			return *st.Result, nil
		}
		return clientActionResult{IsSuccess: st.IsSuccess, Message: "completed without a result"}, nil
	}
}

// DeleteRecord is the provider's DeleteRecord.
func (c *certifyClient) DeleteRecord(ctx context.Context, domain, recordName, value string) (clientActionResult, error) {
	return c.sendAction(ctx, "/api/v1/managedchallenge/cleanup", "Cleanup", c.body(domain, recordName, value))
}

// sendAction is SendManagedChallengeRequest.
func (c *certifyClient) sendAction(ctx context.Context, path, action string, body []byte) (clientActionResult, error) {
	status, raw, err := c.send(ctx, http.MethodPost, path, body)
	if err != nil {
		return clientActionResult{}, err
	}
	if !isSuccessStatus(status) {
		return apiFailure(action, status, raw), nil
	}
	var res clientActionResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return clientActionResult{}, fmt.Errorf("%s: %w", action, err)
	}
	return res, nil
}

func newCertifyClient(baseURL string, hc *http.Client, tok secret.Token) *certifyClient {
	return &certifyClient{base: baseURL, http: hc, authKey: tok.ClientID, authSecret: tok.Secret, poll: 50 * time.Millisecond}
}

func TestCertifyClientBeginAndPoll(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	c := newCertifyClient(f.srv.URL, f.srv.Client(), tok)

	res, err := c.CreateRecord(t.Context(), "*.www.example.org", "_acme-challenge.www.example.org", "v-client")
	if err != nil || !res.IsSuccess || c.begins != 1 || c.fallbacks != 0 || c.polls < 1 {
		t.Fatalf("create: %+v %v (begins %d, fallbacks %d, polls %d)", res, err, c.begins, c.fallbacks, c.polls)
	}
	var ch struct{ CNAMETarget string }
	if err := json.Unmarshal(res.Result, &ch); err != nil || ch.CNAMETarget == "" {
		t.Fatalf("result %s: %v", res.Result, err)
	}
	if recs, _ := f.db.ListValues(t.Context(), ch.CNAMETarget); len(recs) != 1 || recs[0].Value != "v-client" {
		t.Fatalf("stored %+v", recs)
	}
	res, err = c.DeleteRecord(t.Context(), "*.www.example.org", "_acme-challenge.www.example.org", "v-client")
	if err != nil || !res.IsSuccess {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if recs, _ := f.db.ListValues(t.Context(), ch.CNAMETarget); len(recs) != 0 {
		t.Fatalf("left %+v", recs)
	}

	// Refusals reach Certify's user as the problem's detail.
	res, err = c.CreateRecord(t.Context(), "example.net", "_acme-challenge.example.net", "v")
	if err != nil || res.IsSuccess || !strings.Contains(res.Message, "[403]: no managed challenge allows this") {
		t.Fatalf("outside the scope: %+v %v", res, err)
	}
	// In scope, no config: the operation fails, and its result says why.
	all := f.consumer(t, "all", store.RoleChallengeConsumer, "", store.Token{})
	res, err = newCertifyClient(f.srv.URL, f.srv.Client(), all).CreateRecord(t.Context(), "example.com", "_acme-challenge.example.com", "v")
	if err != nil || res.IsSuccess || !strings.Contains(res.Message, "no managed challenge allows this") {
		t.Fatalf("no config: %+v %v", res, err)
	}
}

// TestCertifyClientFallback: a hub without requestbegin (404, 405 or 501)
// gets the same body on request, served by the real handler.
func TestCertifyClientFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	tok := f.consumer(t, "certify", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			var begins, requests atomic.Int32
			old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/api/v1/managedchallenge/requestbegin":
					begins.Add(1)
					http.Error(w, "no such endpoint", status)
					return
				case "/api/v1/managedchallenge/request":
					requests.Add(1)
				}
				f.srv.Config.Handler.ServeHTTP(w, r)
			})
			srv := httptest.NewServer(old)
			defer srv.Close()
			c := newCertifyClient(srv.URL, srv.Client(), tok)
			value := fmt.Sprintf("v-%d", status)
			res, err := c.CreateRecord(t.Context(), "shop.example.org", "_acme-challenge.shop.example.org", value)
			if err != nil || !res.IsSuccess || begins.Load() != 1 || requests.Load() != 1 || c.fallbacks != 1 || c.polls != 0 {
				t.Fatalf("create: %+v %v (begins %d, requests %d, polls %d)", res, err, begins.Load(), requests.Load(), c.polls)
			}
			var ch struct {
				CNAMETarget string
				Value       string
			}
			if err := json.Unmarshal(res.Result, &ch); err != nil || ch.Value != value {
				t.Fatalf("result %s: %v", res.Result, err)
			}
			found := false
			recs, _ := f.db.ListValues(t.Context(), ch.CNAMETarget)
			for _, r := range recs {
				found = found || r.Value == value
			}
			if !found {
				t.Fatalf("%s not stored: %+v", value, recs)
			}
		})
	}
}

// holdingPresent holds every Present whose value starts with "hold" until
// release is closed, so a test can keep operations unfinished.
type holdingPresent struct {
	api.Service
	release chan struct{}
}

func (h holdingPresent) Present(ctx context.Context, g hub.Grant, req hub.PresentRequest) (hub.Challenge, error) {
	if strings.HasPrefix(req.Value, "hold") {
		select {
		case <-h.release:
		case <-ctx.Done():
			return hub.Challenge{}, ctx.Err()
		}
	}
	return h.Service.Present(ctx, g, req)
}

// TestCertifyClientFallbackWhenBusy: when requestbegin cannot take an
// operation (the caller's cap, or a store full of unfinished and young
// finished operations), it answers 501, so the client falls back to request
// and the order goes on. Another principal keeps its background requests.
func TestCertifyClientFallbackWhenBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.config(t, "example-org", "*.example.org")
	alice := f.consumer(t, "alice", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	bob := f.consumer(t, "bob", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	svc := holdingPresent{
		Service: hub.New(f.db, f.kr, hub.Config{Zone: testZone, DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour}),
		release: make(chan struct{}),
	}
	a, err := api.New(svc, api.Config{MaxBody: 1024, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	api.SetCertifyOpsLimits(a, 0, 1) // one unfinished operation per principal
	srv := httptest.NewServer(a)
	defer srv.Close()
	defer close(svc.release) // before srv.Close: the held operation ends
	g := &fixture{srv: srv, db: f.db}

	if r := g.do(t, "POST", pathBegin, certifyBody("example.org", "_acme-challenge.example.org", "hold-alice", alice), nil); r.status != http.StatusAccepted {
		t.Fatalf("alice's first requestbegin: %d %s", r.status, r.raw)
	}
	// Alice is at her cap: 501 with a problem naming the fallback.
	r := g.do(t, "POST", pathBegin, certifyBody("example.org", "_acme-challenge.example.org", "v", alice), nil)
	if r.status != http.StatusNotImplemented || r.ctype != "application/problem+json" || r.body["code"] != "not_implemented" ||
		!strings.Contains(fmt.Sprint(r.body["detail"]), "/api/v1/managedchallenge/request") {
		t.Fatalf("requestbegin over the cap: %d %s %s", r.status, r.ctype, r.raw)
	}

	stored := func(res clientActionResult, value string) {
		t.Helper()
		var ch struct{ CNAMETarget, Value string }
		if err := json.Unmarshal(res.Result, &ch); err != nil || ch.Value != value {
			t.Fatalf("result %s: %v", res.Result, err)
		}
		recs, _ := f.db.ListValues(t.Context(), ch.CNAMETarget)
		for _, rec := range recs {
			if rec.Value == value {
				return
			}
		}
		t.Fatalf("%s not stored: %+v", value, recs)
	}
	ca := newCertifyClient(srv.URL, srv.Client(), alice)
	res, err := ca.CreateRecord(t.Context(), "www.example.org", "_acme-challenge.www.example.org", "v-alice")
	if err != nil || !res.IsSuccess || ca.fallbacks != 1 || ca.polls != 0 {
		t.Fatalf("alice over her cap: %+v %v (fallbacks %d, polls %d)", res, err, ca.fallbacks, ca.polls)
	}
	stored(res, "v-alice")

	// Bob is not affected by alice's cap.
	cb := newCertifyClient(srv.URL, srv.Client(), bob)
	res, err = cb.CreateRecord(t.Context(), "shop.example.org", "_acme-challenge.shop.example.org", "v-bob")
	if err != nil || !res.IsSuccess || cb.fallbacks != 0 || cb.polls < 1 {
		t.Fatalf("bob: %+v %v (fallbacks %d, polls %d)", res, err, cb.fallbacks, cb.polls)
	}
	stored(res, "v-bob")

	// The store is full now: alice's held operation and bob's finished
	// one, too young to drop. Bob falls back too.
	api.SetCertifyOpsLimits(a, 2, 0)
	res, err = cb.CreateRecord(t.Context(), "shop.example.org", "_acme-challenge.shop.example.org", "v-bob-2")
	if err != nil || !res.IsSuccess || cb.fallbacks != 1 {
		t.Fatalf("bob on a full store: %+v %v (fallbacks %d)", res, err, cb.fallbacks)
	}
	stored(res, "v-bob-2")
}
