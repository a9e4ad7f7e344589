package acmetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// apiClient is what the test harness's lego providers share: where the
// hub's API is, the bearer token, and the timeouts lego asks about.
type apiClient struct {
	baseURL, token     string
	http               *http.Client
	requestTimeout     time.Duration // each call lego makes (no context)
	propagationTimeout time.Duration // lego's pre-check: how long it waits
	pollingInterval    time.Duration // and how often it looks
}

// newAPIClient checks the shared settings and fills in the defaults: 10 s
// per call, lego waits 30 s looking every 100 ms (the hub's DNS answers a
// value as soon as the API returns), a client without a proxy.
func newAPIClient(baseURL, token string, hc *http.Client, request, propagation, polling time.Duration) (apiClient, []error) {
	var errs []error
	if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("base url %q: want http(s)://host:port", baseURL))
	}
	if token == "" {
		errs = append(errs, errors.New("token: empty"))
	}
	if request < 0 || propagation < 0 || polling < 0 {
		errs = append(errs, errors.New("timeouts: negative"))
	}
	c := apiClient{baseURL: strings.TrimRight(baseURL, "/"), token: token, http: hc,
		requestTimeout: request, propagationTimeout: propagation, pollingInterval: polling}
	if c.requestTimeout == 0 {
		c.requestTimeout = 10 * time.Second
	}
	if c.propagationTimeout == 0 {
		c.propagationTimeout = 30 * time.Second
	}
	if c.pollingInterval == 0 {
		c.pollingInterval = 100 * time.Millisecond
	}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	return c, errs
}

// timeout is challenge.ProviderTimeout's answer.
func (c apiClient) timeout() (timeout, interval time.Duration) {
	return c.propagationTimeout, c.pollingInterval
}

// do sends one authenticated request (body as JSON when not nil) and
// returns the status and up to limit bytes of the answer.
func (c apiClient) do(ctx context.Context, method, path string, body io.Reader, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, msg, nil
}
