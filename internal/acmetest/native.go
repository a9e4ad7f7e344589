package acmetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

// NativeProviderConfig configures a NativeProvider.
type NativeProviderConfig struct {
	// BaseURL is acmehub's API, e.g. "http://127.0.0.1:8555". Required.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>": the bearer form
	// "<client id>.<secret>" (secret.Token.String). Required.
	Token string
	// HTTPClient makes the API calls; nil means a client without a proxy.
	HTTPClient *http.Client
	// RequestTimeout bounds each API call that lego makes (Present,
	// CleanUp); 0 means 10 s.
	RequestTimeout time.Duration
	// PropagationTimeout and PollingInterval are what lego's pre-check
	// waits for the value to appear and how often it looks; 0 means 30 s
	// and 100 ms (the hub's DNS answers a value as soon as the API returns).
	PropagationTimeout, PollingInterval time.Duration
}

// NativeProvider is a lego DNS-01 challenge.Provider that uses acmehub's
// native challenge API, the way a client holding only a consumer token
// would: Present sends POST /api/v1/challenges with the domain lego names
// as the identifier and the key authorization, so the hub computes the
// value (Present checks it equals dns01.GetChallengeInfo's) and creates the
// domain's delegation on first use; CleanUp sends
// POST /api/v1/challenges/cleanup with the same identifier and the value.
// lego names the base domain for a wildcard identifier too, so a domain
// and its wildcard share one name in the hub zone, where both values live
// at once. Which name that is the hub decides: see Present's
// Challenge.CNAMETarget.
//
// lego's Present and CleanUp take no context, so each call is bounded by
// RequestTimeout and cannot be cancelled. dns01.GetChallengeInfo follows
// the _acme-challenge CNAME through lego's recursive nameservers: call
// Present and CleanUp through ObtainCertificate, which points them at the
// test's Resolver. Publish and Remove make the same calls with a context
// and are for tests that drive the API directly. Safe for concurrent use.
type NativeProvider struct {
	api apiClient
}

var (
	_ challenge.Provider        = (*NativeProvider)(nil)
	_ challenge.ProviderTimeout = (*NativeProvider)(nil)
)

// NewNativeProvider checks cfg and returns a provider.
func NewNativeProvider(cfg NativeProviderConfig) (*NativeProvider, error) {
	api, errs := newAPIClient(cfg.BaseURL, cfg.Token, cfg.HTTPClient, cfg.RequestTimeout, cfg.PropagationTimeout, cfg.PollingInterval)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("native provider: %w", err)
	}
	return &NativeProvider{api: api}, nil
}

// PresentRequest is the body of POST /api/v1/challenges.
type PresentRequest struct {
	// Identifier: "example.org", "*.example.org",
	// "_acme-challenge.example.org" or the delegation's name in the hub zone.
	Identifier string `json:"identifier"`
	// Value is the TXT value; or give KeyAuthorization and the hub
	// computes it.
	Value            string `json:"value,omitempty"`
	KeyAuthorization string `json:"key_authorization,omitempty"`
}

// Challenge is a challenge as the native API returns it.
type Challenge struct {
	ID          string     `json:"id"`
	Domain      string     `json:"domain"`       // the base domain
	RecordName  string     `json:"record_name"`  // "_acme-challenge.<domain>."
	CNAMETarget string     `json:"cname_target"` // the delegation's name in the hub zone
	Config      string     `json:"managed_challenge"`
	Provider    string     `json:"provider"`
	Value       string     `json:"value"`
	TTL         uint32     `json:"ttl"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Status      string     `json:"status"` // "published" or "absent"
}

// APIError is an API answer with an unexpected status.
type APIError struct {
	Method, Path string
	Status       int
	Code         string // the problem document's stable code, if any
	Body         string // at most 4 KiB of the body
}

func (e *APIError) Error() string {
	return fmt.Sprintf("native provider: %s %s: status %d (%s): %s", e.Method, e.Path, e.Status, e.Code, e.Body)
}

// Publish presents a value: POST /api/v1/challenges.
func (p *NativeProvider) Publish(ctx context.Context, req PresentRequest) (Challenge, error) {
	var ch Challenge
	if err := p.call(ctx, "/api/v1/challenges", req, http.StatusCreated, &ch); err != nil {
		return Challenge{}, err
	}
	return ch, nil
}

// Remove cleans up one value: POST /api/v1/challenges/cleanup. It returns
// how many values the hub removed (0 when the value was not there).
func (p *NativeProvider) Remove(ctx context.Context, identifier, value string) (int, error) {
	var out struct {
		Removed int `json:"removed"`
	}
	body := map[string]string{"identifier": identifier, "value": value}
	if err := p.call(ctx, "/api/v1/challenges/cleanup", body, http.StatusOK, &out); err != nil {
		return 0, err
	}
	return out.Removed, nil
}

// Present publishes the DNS-01 value for domain through the hub, which
// computes it from keyAuth. Implements challenge.Provider.
func (p *NativeProvider) Present(domain, _, keyAuth string) error {
	want := dns01.GetChallengeInfo(domain, keyAuth).Value
	ctx, cancel := context.WithTimeout(context.Background(), p.api.requestTimeout)
	defer cancel()
	ch, err := p.Publish(ctx, PresentRequest{Identifier: domain, KeyAuthorization: keyAuth})
	if err != nil {
		return err
	}
	if ch.Value != want {
		return fmt.Errorf("native provider: present %s: the hub published %q, lego expects %q", domain, ch.Value, want)
	}
	return nil
}

// CleanUp removes the value Present published. Implements challenge.Provider.
func (p *NativeProvider) CleanUp(domain, _, keyAuth string) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.api.requestTimeout)
	defer cancel()
	_, err := p.Remove(ctx, domain, dns01.GetChallengeInfo(domain, keyAuth).Value)
	return err
}

// Timeout tells lego how long to wait for propagation and how often to
// check. Implements challenge.ProviderTimeout.
func (p *NativeProvider) Timeout() (timeout, interval time.Duration) {
	return p.api.timeout()
}

// call POSTs in as JSON to path and decodes the answer into out, or returns
// an *APIError when the status is not want.
func (p *NativeProvider) call(ctx context.Context, path string, in any, want int, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("native provider: POST %s: %w", path, err)
	}
	status, msg, err := p.api.do(ctx, http.MethodPost, path, bytes.NewReader(body), 64<<10)
	if err != nil {
		return fmt.Errorf("native provider: POST %s: %w", path, err)
	}
	if status != want {
		e := &APIError{Method: http.MethodPost, Path: path, Status: status, Body: strings.TrimSpace(string(msg[:min(len(msg), 4096)]))}
		var prob struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(msg, &prob) == nil {
			e.Code = prob.Code
		}
		return e
	}
	if err := json.Unmarshal(msg, out); err != nil {
		return fmt.Errorf("native provider: POST %s: decode the answer: %w", path, err)
	}
	return nil
}
