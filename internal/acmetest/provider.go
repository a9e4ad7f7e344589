package acmetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

// HubProviderConfig configures a HubProvider.
type HubProviderConfig struct {
	// BaseURL is acmehub's API, e.g. "http://127.0.0.1:8555". Required.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>". Required.
	Token string
	// Names maps a domain (no trailing dot, no "*." prefix) to the name
	// that holds its challenge values in the hub zone: a label ("abc123") or
	// an absolute name inside the zone ("abc123.acme.test."), the target of
	// the domain's _acme-challenge CNAME. Required.
	Names map[string]string
	// HTTPClient makes the API calls; nil means a client without a proxy.
	HTTPClient *http.Client
	// RequestTimeout bounds each API call; 0 means 10 s.
	RequestTimeout time.Duration
	// PropagationTimeout and PollingInterval are what lego's pre-check
	// waits for the value to appear and how often it looks; 0 means 30 s
	// and 100 ms (the hub's DNS answers a value as soon as the API returns).
	PropagationTimeout, PollingInterval time.Duration
}

// HubProvider is a lego DNS-01 challenge.Provider that publishes values
// through acmehub's native record API: Present adds the value
// (POST /api/v1/records/{name}), CleanUp removes that one value
// (DELETE /api/v1/records/{name}?value=...). A domain and its wildcard map
// to the same name, where both values live at once.
//
// lego's Present and CleanUp take no context, so each call is bounded by
// RequestTimeout and cannot be cancelled. Present computes the value with
// dns01.GetChallengeInfo, which also follows the _acme-challenge CNAME
// through lego's recursive nameservers: call it through ObtainCertificate,
// which points them at the test's Resolver. Safe for concurrent use.
type HubProvider struct {
	api   apiClient
	names map[string]string // domain -> name in the hub zone
}

var (
	_ challenge.Provider        = (*HubProvider)(nil)
	_ challenge.ProviderTimeout = (*HubProvider)(nil)
)

// NewHubProvider checks cfg and returns a provider.
func NewHubProvider(cfg HubProviderConfig) (*HubProvider, error) {
	api, errs := newAPIClient(cfg.BaseURL, cfg.Token, cfg.HTTPClient, cfg.RequestTimeout, cfg.PropagationTimeout, cfg.PollingInterval)
	if len(cfg.Names) == 0 {
		errs = append(errs, errors.New("names: no domain mapped to a hub name"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("hub provider: %w", err)
	}
	return &HubProvider{api: api, names: copyMap(cfg.Names)}, nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(strings.TrimSuffix(k, "."))] = v
	}
	return out
}

// Present publishes the DNS-01 value for domain. Implements challenge.Provider.
func (p *HubProvider) Present(domain, _, keyAuth string) error {
	name, err := p.name(domain)
	if err != nil {
		return err
	}
	value := dns01.GetChallengeInfo(domain, keyAuth).Value
	body, err := json.Marshal(map[string]string{"value": value})
	if err != nil {
		return fmt.Errorf("present %s: %w", domain, err)
	}
	return p.call(http.MethodPost, "/api/v1/records/"+url.PathEscape(name), bytes.NewReader(body), http.StatusCreated)
}

// CleanUp removes the value Present published. Implements challenge.Provider.
func (p *HubProvider) CleanUp(domain, _, keyAuth string) error {
	name, err := p.name(domain)
	if err != nil {
		return err
	}
	value := dns01.GetChallengeInfo(domain, keyAuth).Value
	path := "/api/v1/records/" + url.PathEscape(name) + "?value=" + url.QueryEscape(value)
	return p.call(http.MethodDelete, path, nil, http.StatusOK)
}

// Timeout tells lego how long to wait for propagation and how often to
// check. Implements challenge.ProviderTimeout.
func (p *HubProvider) Timeout() (timeout, interval time.Duration) {
	return p.api.timeout()
}

func (p *HubProvider) name(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(domain, "*."), "."))
	name, ok := p.names[d]
	if !ok {
		return "", fmt.Errorf("hub provider: no hub name for domain %q", domain)
	}
	return name, nil
}

func (p *HubProvider) call(method, path string, body io.Reader, want int) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.api.requestTimeout)
	defer cancel()
	status, msg, err := p.api.do(ctx, method, path, body, 4096)
	if err != nil {
		return fmt.Errorf("hub provider: %s %s: %w", method, path, err)
	}
	if status != want {
		return fmt.Errorf("hub provider: %s %s: status %d, want %d: %s", method, path, status, want, strings.TrimSpace(string(msg)))
	}
	return nil
}
