package api

// The Certify Management Hub managed challenge API, as the
// DNS01.API.CertifyManaged provider of Certify Certificate Manager calls it
// (PROTOCOLS.md section 2):
//
//	POST /api/v1/managedchallenge/request          present at once: 200 action result
//	POST /api/v1/managedchallenge/requestbegin     present in the background: 202 operation
//	GET  /api/v1/managedchallenge/requeststatus/{id}  the operation (no credentials: the id is the capability)
//	POST /api/v1/managedchallenge/cleanup          remove the value: 200 action result
//
// Bodies are Certify's ManagedChallengeRequest; answers use the camelCase
// names ASP.NET gives Certify's ActionResult and ManagedChallengeOperation.
// Credentials travel in the body (AuthKey, AuthSecret: all released clients)
// or in any header form the native API accepts, so they are checked here and
// not by the authenticate middleware.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/rules"
)

const certifyPrefix = "/api/v1/managedchallenge"

// certifyRequest is Certify's ManagedChallengeRequest. encoding/json matches
// names case-insensitively, so Certify's PascalCase and camelCase both
// decode. Unknown fields are ignored, as Certify's own hub (ASP.NET) does:
// the model has optional fields (DateTimePerformed, ManagedCertId, ...)
// that clients may add, and refusing them would break those clients.
type certifyRequest struct {
	ChallengeType string `json:"ChallengeType"`
	Identifier    string `json:"Identifier"`
	ResponseKey   string `json:"ResponseKey"`
	ResponseValue string `json:"ResponseValue"`
	AuthKey       string `json:"AuthKey"`
	AuthSecret    string `json:"AuthSecret"`
}

// certifyRequestEcho is the request as an operation shows it: never the
// credentials.
type certifyRequestEcho struct {
	ChallengeType string `json:"challengeType"`
	Identifier    string `json:"identifier"`
	ResponseKey   string `json:"responseKey"`
	ResponseValue string `json:"responseValue"`
}

// actionResult is Certify's ActionResult. Certify's provider returns it to
// the certificate manager as is, so message is what its user reads.
type actionResult struct {
	IsSuccess bool   `json:"isSuccess"`
	IsWarning bool   `json:"isWarning"`
	Message   string `json:"message"`
	// Result is a certifyChallenge, a certifyCleanup or, for a failed
	// operation, the problem the synchronous call would have answered.
	Result any `json:"result"`
}

// certifyChallenge is the result of a present: where the value lives and
// the CNAME the domain owner adds once.
type certifyChallenge struct {
	ID               string     `json:"id"`
	Domain           string     `json:"domain"`
	RecordName       string     `json:"recordName"`
	CNAMETarget      string     `json:"cnameTarget"`
	ManagedChallenge string     `json:"managedChallenge"`
	Value            string     `json:"value"`
	TTL              uint32     `json:"ttl"`
	ExpiresAt        *time.Time `json:"expiresAt,omitempty"`
}

type certifyCleanup struct {
	Removed int `json:"removed"`
}

// certifyOperation is Certify's ManagedChallengeOperation. The client reads
// id, then polls until isCompleted and returns result (or, without one, an
// action result built from isSuccess).
type certifyOperation struct {
	ID              string             `json:"id"`
	Status          string             `json:"status"`
	Request         certifyRequestEcho `json:"request"`
	Result          any                `json:"result"`
	DateCreated     time.Time          `json:"dateCreated"`
	DateLastUpdated time.Time          `json:"dateLastUpdated"`
	DateStarted     *time.Time         `json:"dateStarted"`
	DateCompleted   *time.Time         `json:"dateCompleted"`
	IsCompleted     bool               `json:"isCompleted"`
	IsSuccess       bool               `json:"isSuccess"`
}

func toCertifyOperation(op operation) certifyOperation {
	out := certifyOperation{
		ID: op.ID, Status: op.Status, Result: op.Result,
		DateCreated: op.Created.UTC(), DateLastUpdated: op.Updated.UTC(),
		IsCompleted: op.completed(), IsSuccess: op.Status == opSucceeded,
	}
	out.Request, _ = op.Request.(certifyRequestEcho)
	if !op.Started.IsZero() {
		t := op.Started.UTC()
		out.DateStarted = &t
	}
	if !op.Ended.IsZero() {
		t := op.Ended.UTC()
		out.DateCompleted = &t
	}
	return out
}

// certifyAPI serves the routes.
type certifyAPI struct {
	a   *API
	ops *opStore
}

// certifyRoutes registers the Certify Management Hub managed challenge API.
func (a *API) certifyRoutes(r *mux.Router) {
	var oc opStoreConfig
	if p := a.propagation(); p != nil {
		// An operation waits for propagation up to the hub's maximum,
		// after any time spent pending and the write itself.
		oc.Timeout = p.PropagationMaxWait() + defaultOpTimeout
	}
	a.certifyOps = newOpStore(oc, a.log)
	c := &certifyAPI{a: a, ops: a.certifyOps}
	r.HandleFunc(certifyPrefix+"/request", c.request).Methods(http.MethodPost).Name("certify:request")
	r.HandleFunc(certifyPrefix+"/requestbegin", c.begin).Methods(http.MethodPost).Name("certify:requestbegin")
	r.HandleFunc(certifyPrefix+"/requeststatus/{id}", c.status).Methods(http.MethodGet).Name("certify:requeststatus")
	r.HandleFunc(certifyPrefix+"/cleanup", c.cleanup).Methods(http.MethodPost).Name("certify:cleanup")
}

// Shutdown waits for the managed challenge operations running in the
// background (requestbegin) and refuses new ones; call it after the HTTP
// server stopped and before the database closes. When ctx ends first, the
// operations are cancelled and ctx's error returned.
func (a *API) Shutdown(ctx context.Context) error {
	if a.certifyOps == nil {
		return nil
	}
	return a.certifyOps.shutdown(ctx)
}

// certifyCall is an accepted request: authenticated and well-formed.
type certifyCall struct {
	grant hub.Grant
	body  certifyRequest
	base  string // the base domain the identifier names
}

func (c *certifyCall) present(r *http.Request) hub.PresentRequest {
	return hub.PresentRequest{
		Identifier: c.body.Identifier, Type: hub.ChallengeDNS01,
		Value: c.body.ResponseValue, Source: info(r.Context()).source,
	}
}

func (c *certifyCall) echo() certifyRequestEcho {
	return certifyRequestEcho{
		ChallengeType: c.body.ChallengeType, Identifier: c.body.Identifier,
		ResponseKey: c.body.ResponseKey, ResponseValue: c.body.ResponseValue,
	}
}

func (c *certifyAPI) request(w http.ResponseWriter, r *http.Request) {
	call, ok := c.accept(w, r)
	if !ok {
		return
	}
	ch, err := c.a.svc.Present(r.Context(), call.grant, call.present(r))
	if err != nil {
		c.writeError(w, r, err)
		return
	}
	if c.a.propagation() != nil {
		c.a.extendWrite(w, r, certifySyncWait+waitSlack)
	}
	writeJSON(w, http.StatusOK, c.visible(r.Context(), ch, certifySyncWait))
}

// certifySyncWait bounds the synchronous request's wait for propagation:
// well inside the HTTP server's 30 s write timeout. requestbegin waits up
// to the hub's maximum instead: its client polls.
const certifySyncWait = 20 * time.Second

// visible waits up to wait (0 or beyond the hub's maximum: that maximum)
// until every hub nameserver serves the value, and returns the action
// result. A wait that ends first is still a success, with isWarning and the lagging servers in
// the message: the value is stored and some nameservers answer it, Certify
// acts on isSuccess only (and waits its own propagation delay, 60 s, before
// the CA checks), and failing would abort an order that will most likely
// validate. Without propagation checks it returns at once.
func (c *certifyAPI) visible(ctx context.Context, ch hub.Challenge, wait time.Duration) actionResult {
	res := presentedResult(ch)
	if ch.Upstream() {
		res.Message += fmt.Sprintf("; written to the domain's own DNS through provider %s", ch.Provider)
		return res
	}
	p := c.a.propagation()
	if p == nil {
		return res
	}
	if limit := p.PropagationMaxWait(); wait <= 0 || wait > limit {
		wait = limit
	}
	prop, err := p.WaitPropagation(ctx, ch, wait)
	switch {
	case err != nil:
		c.a.log.WarnContext(ctx, "propagation check failed", "req_id", requestID(ctx), "err", err)
		res.IsWarning = true
		res.Message += "; whether every hub nameserver serves it could not be checked"
	case prop.Everywhere:
		res.Message += fmt.Sprintf("; visible on all %d hub nameserver address(es)", len(prop.Servers))
	default:
		lags := hub.Lagging(prop)
		why := make([]string, len(lags))
		for i, l := range lags {
			why[i] = l.String()
		}
		res.IsWarning = true
		res.Message += "; not yet visible on every hub nameserver: " + strings.Join(why, "; ")
	}
	if prop.Detail != "" {
		res.Message += " (" + prop.Detail + ")"
	}
	return res
}

// begin is requestbegin: checks at once, the DNS update in the background.
func (c *certifyAPI) begin(w http.ResponseWriter, r *http.Request) {
	call, ok := c.accept(w, r)
	if !ok {
		return
	}
	// Outside the token's scope is known now and cheaply, from the grant
	// alone: refuse at once instead of starting an operation bound to fail.
	// The refusal goes through the hub, which applies the same check first,
	// audits the refusal and writes nothing. Whether a managed challenge
	// config matches is decided in the background; a refusal there is a
	// failed operation whose result is the same 403 problem.
	if !call.grant.AllowsDomain(hub.ActionChallenge, call.base) {
		_, err := c.a.svc.Present(r.Context(), call.grant, call.present(r))
		if err == nil { // cannot happen, but never start the operation
			err = hub.ErrForbidden
		}
		c.writeError(w, r, err)
		return
	}
	req := call.present(r)
	owner := strconv.FormatInt(call.grant.Principal.ID, 10)
	op, err := c.ops.beginSteps(r.Context(), owner, call.echo(), func(ctx context.Context) (any, bool, opFunc) {
		ch, err := c.a.svc.Present(ctx, call.grant, req)
		if err != nil {
			p := c.problemFor(ctx, err)
			return actionResult{Message: "Update failed: " + p.Detail, Result: p}, false, nil
		}
		// Complete only once every hub nameserver serves the value (or
		// the wait, bounded by the operation's own timeout, ends). The
		// wait is a second step: it does not hold one of the workers
		// that do DNS updates, and the hub bounds waits per principal.
		return nil, true, func(ctx context.Context) (any, bool) { return c.visible(ctx, ch, 0), true }
	})
	switch {
	case errors.Is(err, errOpsFull), errors.Is(err, errOpsOwnerFull), errors.Is(err, errOpsClosed):
		// Certify falls back to the synchronous request on 404, 405 and
		// 501 only; a 503 would fail the order.
		writeProblem(w, http.StatusNotImplemented, codeUnsupported,
			"background requests are not available now; use "+certifyPrefix+"/request")
		return
	case err != nil:
		c.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", certifyPrefix+"/requeststatus/"+op.ID)
	writeJSON(w, http.StatusAccepted, toCertifyOperation(op))
}

// status needs no credentials: Certify's provider polls without any, and
// the operation id (130 random bits) is the capability.
func (c *certifyAPI) status(w http.ResponseWriter, r *http.Request) {
	op, ok := c.ops.get(mux.Vars(r)["id"])
	if !ok {
		writeProblem(w, http.StatusNotFound, codeNotFound,
			"no such operation: unknown, expired, or lost when the hub restarted")
		return
	}
	writeJSON(w, http.StatusOK, toCertifyOperation(op))
}

func (c *certifyAPI) cleanup(w http.ResponseWriter, r *http.Request) {
	call, ok := c.accept(w, r)
	if !ok {
		return
	}
	n, err := c.a.svc.Cleanup(r.Context(), call.grant, call.body.Identifier, call.body.ResponseValue, info(r.Context()).source)
	if err != nil {
		c.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, actionResult{
		IsSuccess: true,
		Message:   fmt.Sprintf("Cleanup: %s :: %s (%d value(s) removed)", call.body.ResponseKey, call.body.ResponseValue, n),
		Result:    certifyCleanup{Removed: n},
	})
}

func presentedResult(ch hub.Challenge) actionResult {
	res := certifyChallenge{
		ID: ch.ID, Domain: ch.Domain, RecordName: ch.RecordName, CNAMETarget: ch.Target,
		ManagedChallenge: ch.Config, Value: ch.Value, TTL: ch.TTL,
	}
	if ch.Live {
		exp := ch.ExpiresAt.UTC()
		res.ExpiresAt = &exp
	}
	return actionResult{
		IsSuccess: true,
		Message: fmt.Sprintf("Updated: %s :: %s (served by the hub at %s; the domain needs %s CNAME %s)",
			ch.RecordName, ch.Value, ch.Target, ch.RecordName, ch.Target),
		Result: res,
	}
}

// accept decodes, authenticates and validates a request. It answers the
// client itself and returns false when the request goes no further.
func (c *certifyAPI) accept(w http.ResponseWriter, r *http.Request) (*certifyCall, bool) {
	var body certifyRequest
	if !decodeLenient(w, r, &body, "a managed challenge request") {
		return nil, false
	}
	cred, err := certifyCredentials(r, body)
	if err != nil {
		c.writeError(w, r, err)
		return nil, false
	}
	g, err := c.a.svc.Authenticate(r.Context(), cred, info(r.Context()).source)
	if err != nil {
		if !errors.Is(err, hub.ErrUnauthenticated) && !errors.Is(err, hub.ErrRateLimited) {
			c.a.log.ErrorContext(r.Context(), "authentication failed", "req_id", requestID(r.Context()), "err", err)
			err = hub.ErrUnauthenticated
		}
		c.writeError(w, r, err)
		return nil, false
	}
	info(r.Context()).tokenID = g.Principal.TokenID
	base, err := validateCertify(body)
	if err != nil {
		c.writeError(w, r, err)
		return nil, false
	}
	return &certifyCall{grant: g, body: body, base: base}, true
}

// certifyCredentials takes the token from the body (AuthKey, AuthSecret) or
// from the headers (X-Client-ID and X-Client-Secret, or the native forms).
// Both at once must agree: two different tokens in one request are a client
// bug, answered 400 rather than guessing which one was meant.
func certifyCredentials(r *http.Request, body certifyRequest) (secret.Token, error) {
	fromBody := secret.Token{ClientID: strings.TrimSpace(body.AuthKey), Secret: strings.TrimSpace(body.AuthSecret)}
	hasBody := fromBody != secret.Token{}
	fromHeader, err := secret.ExtractCredentials(r)
	hasHeader := !errors.Is(err, secret.ErrNoCredentials)
	switch {
	case hasBody && hasHeader && (err != nil || fromHeader != fromBody):
		return secret.Token{}, fmt.Errorf("%w: the credentials in the body and in the headers differ; send one of them", hub.ErrInvalid)
	case hasBody:
		if !fromBody.Valid() {
			return secret.Token{}, hub.ErrUnauthenticated
		}
		return fromBody, nil
	case hasHeader && err == nil:
		return fromHeader, nil
	}
	return secret.Token{}, hub.ErrUnauthenticated
}

// validateCertify checks the request and returns the base domain its
// identifier names. ResponseKey must be the record name of that identifier:
// a client may not name one domain and write another's record.
func validateCertify(b certifyRequest) (string, error) {
	if b.ChallengeType != "" && !strings.EqualFold(b.ChallengeType, hub.ChallengeDNS01) {
		return "", fmt.Errorf("%w: ChallengeType %q: only dns-01 is supported", hub.ErrInvalid, b.ChallengeType)
	}
	if strings.TrimSpace(b.Identifier) == "" {
		return "", fmt.Errorf("%w: Identifier is required", hub.ErrInvalid)
	}
	base, _, err := rules.NormalizeIdentifier(strings.TrimSpace(b.Identifier))
	if err != nil {
		return "", fmt.Errorf("%w: Identifier: %w", hub.ErrInvalid, err)
	}
	keyBase, err := rules.BaseFromChallengeName(strings.TrimSpace(b.ResponseKey))
	if err != nil || keyBase != base {
		return "", fmt.Errorf("%w: ResponseKey must be _acme-challenge.%s", hub.ErrInvalid, base)
	}
	if err := zone.ValidateValue(b.ResponseValue); err != nil {
		return "", fmt.Errorf("%w: ResponseValue: %w", hub.ErrInvalid, err)
	}
	return base, nil
}

// problemFor is errorProblem for Certify: an error of no known kind means
// the DNS update itself failed, which Certify's hub answers 502 Bad Gateway.
// The error is logged with the request id; the detail names only the id.
func (c *certifyAPI) problemFor(ctx context.Context, err error) problem {
	p, internal := errorProblem(err)
	if internal {
		id := requestID(ctx)
		c.a.log.ErrorContext(ctx, "managed challenge request failed", "req_id", id, "err", err)
		p.Status, p.Title = http.StatusBadGateway, http.StatusText(http.StatusBadGateway)
		p.Detail = "the DNS update failed; see the server log for request " + id
	}
	return p
}

func (c *certifyAPI) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := c.problemFor(r.Context(), err)
	if p.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	writeProblem(w, p.Status, p.Code, p.Detail)
}
