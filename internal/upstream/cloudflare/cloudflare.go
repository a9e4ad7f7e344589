// Package cloudflare is a value-level upstream driver for Cloudflare DNS,
// speaking the documented v4 REST API (https://api.cloudflare.com/) with
// net/http. It adds and removes single TXT records, so other values at the
// same name stay untouched.
package cloudflare

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
	"sync"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
)

const defaultBaseURL = "https://api.cloudflare.com/client/v4"

// minTTL is the lowest TTL every Cloudflare plan accepts (lego uses it too).
const minTTL = 120

// maxZones bounds the zone-id cache; when full it is emptied, since a
// re-learnt id costs only a few look-ups.
const maxZones = 1000

// perPage and maxPages bound the record listing in Remove: 100 is the
// API's largest page, and the page cap stops a misbehaving server from
// looping us forever.
const (
	perPage  = 100
	maxPages = 100
)

// Record-create error codes meaning the same record is already there.
const (
	codeRecordExists    = 81057
	codeIdenticalRecord = 81058
)

var _ upstream.Driver = (*Driver)(nil)

// Driver writes TXT values through the Cloudflare API.
type Driver struct {
	base     string
	client   *http.Client
	timeout  time.Duration
	dnsAuth  auth // for dns_records calls
	zoneAuth auth // for zone look-ups

	mu    sync.Mutex
	zones map[string]string // fqdn -> zone id, learnt on first use
}

// auth sets one credential's headers on a request.
type auth struct {
	token, email, key string
}

func (a auth) set(h http.Header) {
	if a.token != "" {
		h.Set("Authorization", "Bearer "+a.token)
		return
	}
	h.Set("X-Auth-Email", a.email)
	h.Set("X-Auth-Key", a.key)
}

// New builds a driver from lego's cloudflare fields: CF_DNS_API_TOKEN
// (optionally CF_ZONE_API_TOKEN for zone look-ups), or CF_API_EMAIL and
// CF_API_KEY; each also under its CLOUDFLARE_* alias (CLOUDFLARE_DNS_API_TOKEN,
// CLOUDFLARE_ZONE_API_TOKEN, CLOUDFLARE_EMAIL, CLOUDFLARE_API_KEY).
func New(fields map[string]string, opts upstream.Options) (upstream.Driver, error) {
	return newDriver(fields, opts, defaultBaseURL)
}

// newDriver lets tests point the driver at a fake API.
func newDriver(fields map[string]string, opts upstream.Options, base string) (*Driver, error) {
	get := func(names ...string) (string, string, error) {
		for _, n := range names {
			if v := strings.TrimSpace(fields[n]); v != "" {
				if !printable(v) {
					return "", n, fmt.Errorf("%w: %s has characters a header cannot carry", upstream.ErrConfig, n)
				}
				return v, n, nil
			}
		}
		return "", names[0], nil
	}
	dnsTok, _, err := get("CF_DNS_API_TOKEN", "CLOUDFLARE_DNS_API_TOKEN")
	if err != nil {
		return nil, err
	}
	zoneTok, _, err := get("CF_ZONE_API_TOKEN", "CLOUDFLARE_ZONE_API_TOKEN")
	if err != nil {
		return nil, err
	}
	email, emailName, err := get("CF_API_EMAIL", "CLOUDFLARE_EMAIL")
	if err != nil {
		return nil, err
	}
	key, keyName, err := get("CF_API_KEY", "CLOUDFLARE_API_KEY")
	if err != nil {
		return nil, err
	}

	d := &Driver{
		base: strings.TrimRight(base, "/"),
		client: &http.Client{
			// Never follow a redirect: it would carry the credential
			// headers to whatever host the Location names.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: opts.Timeout,
		zones:   map[string]string{},
	}
	if d.timeout <= 0 {
		d.timeout = 30 * time.Second
	}
	switch {
	case dnsTok != "":
		d.dnsAuth = auth{token: dnsTok}
		d.zoneAuth = d.dnsAuth
		if zoneTok != "" {
			d.zoneAuth = auth{token: zoneTok}
		}
	case email != "" && key != "":
		d.dnsAuth = auth{email: email, key: key}
		d.zoneAuth = d.dnsAuth
	case email != "":
		return nil, fmt.Errorf("%w: %s is missing (needed with %s)", upstream.ErrConfig, keyName, emailName)
	case key != "":
		return nil, fmt.Errorf("%w: %s is missing (needed with %s)", upstream.ErrConfig, emailName, keyName)
	default:
		return nil, fmt.Errorf("%w: CF_DNS_API_TOKEN (or CF_API_EMAIL and CF_API_KEY) is missing", upstream.ErrConfig)
	}
	return d, nil
}

// printable reports whether s is visible ASCII, so it cannot break a header.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// record is the part of a Cloudflare DNS record the driver uses.
type record struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     uint32 `json:"ttl,omitempty"`
}

// Add creates a TXT record holding value at fqdn; an identical record
// already there counts as success.
func (d *Driver) Add(ctx context.Context, fqdn, value string, ttl uint32) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	name := domain(fqdn)
	zone, err := d.zoneID(ctx, name)
	if err != nil {
		return err
	}
	ttl = max(ttl, minTTL)
	body, err := json.Marshal(record{Type: "TXT", Name: name, Content: value, TTL: ttl})
	if err != nil {
		return fmt.Errorf("cloudflare: add %s: %w", name, err)
	}
	err = d.call(ctx, d.dnsAuth, http.MethodPost, "/zones/"+url.PathEscape(zone)+"/dns_records", body, nil)
	var apiErr *apiError
	if errors.As(err, &apiErr) && (apiErr.has(codeIdenticalRecord) || apiErr.has(codeRecordExists)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cloudflare: add TXT %s: %w", name, err)
	}
	return nil
}

// Remove deletes the TXT records at fqdn whose content is value, and no
// others; none there is success.
func (d *Driver) Remove(ctx context.Context, fqdn, value string) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	name := domain(fqdn)
	zone, err := d.zoneID(ctx, name)
	if err != nil {
		return err
	}
	// Collect every match across all pages first: deleting while paging
	// would shift later records onto pages already read.
	var ids []string
	for page := 1; ; page++ {
		if page > maxPages {
			return fmt.Errorf("cloudflare: list TXT %s: more than %d pages of records", name, maxPages)
		}
		q := url.Values{"type": {"TXT"}, "name": {name}, "per_page": {fmt.Sprint(perPage)}, "page": {fmt.Sprint(page)}}
		var recs []record
		info, err := d.callInfo(ctx, d.dnsAuth, http.MethodGet, "/zones/"+url.PathEscape(zone)+"/dns_records?"+q.Encode(), nil, &recs)
		if err != nil {
			return fmt.Errorf("cloudflare: list TXT %s: %w", name, err)
		}
		for _, r := range recs {
			// Compared here rather than with a content= filter: Cloudflare may
			// hand TXT content back wrapped in quotes.
			if r.Type == "TXT" && strings.EqualFold(r.Name, name) && strings.Trim(r.Content, `"`) == value {
				ids = append(ids, r.ID)
			}
		}
		if info.lastPage(page, len(recs)) {
			break
		}
	}
	for _, id := range ids {
		err := d.call(ctx, d.dnsAuth, http.MethodDelete, "/zones/"+url.PathEscape(zone)+"/dns_records/"+url.PathEscape(id), nil, nil)
		if err != nil {
			var apiErr *apiError
			if errors.As(err, &apiErr) && apiErr.status == http.StatusNotFound {
				continue // removed meanwhile
			}
			return fmt.Errorf("cloudflare: delete TXT %s: %w", name, err)
		}
	}
	return nil
}

// zoneID finds the zone holding name by asking for each parent in turn.
func (d *Driver) zoneID(ctx context.Context, name string) (string, error) {
	d.mu.Lock()
	id, ok := d.zones[name]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	labels := strings.Split(name, ".")
	for i := 0; i < len(labels)-1; i++ {
		candidate := strings.Join(labels[i:], ".")
		var zones []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		q := url.Values{"name": {candidate}}
		if err := d.call(ctx, d.zoneAuth, http.MethodGet, "/zones?"+q.Encode(), nil, &zones); err != nil {
			return "", fmt.Errorf("cloudflare: find zone for %s: %w", name, err)
		}
		for _, z := range zones {
			if strings.EqualFold(z.Name, candidate) && z.ID != "" {
				d.mu.Lock()
				if len(d.zones) >= maxZones {
					clear(d.zones)
				}
				d.zones[name] = z.ID
				d.mu.Unlock()
				return z.ID, nil
			}
		}
	}
	return "", fmt.Errorf("cloudflare: no zone found for %s in this account", name)
}

// apiError is a failed API answer: the HTTP status and Cloudflare's errors.
type apiError struct {
	status int
	errs   []apiMessage
}

type apiMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "http %d", e.status)
	for _, m := range e.errs {
		msg := m.Message
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		fmt.Fprintf(&b, "; %d %s", m.Code, msg)
	}
	return b.String()
}

func (e *apiError) has(code int) bool {
	for _, m := range e.errs {
		if m.Code == code {
			return true
		}
	}
	return false
}

// resultInfo is the envelope's paging summary for list calls.
type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalPages int `json:"total_pages"`
}

// lastPage reports whether page (which held n records) was the last one.
// Without total_pages, a short or empty page ends the listing.
func (ri *resultInfo) lastPage(page, n int) bool {
	if n == 0 {
		return true
	}
	if ri != nil && ri.TotalPages > 0 {
		return page >= ri.TotalPages
	}
	return n < perPage
}

// call sends one request and decodes the envelope's result into out.
// Errors carry the status and Cloudflare's messages, never the request's
// headers (so never a credential).
func (d *Driver) call(ctx context.Context, a auth, method, path string, body []byte, out any) error {
	_, err := d.callInfo(ctx, a, method, path, body, out)
	return err
}

// callInfo is call that also returns the envelope's result_info (nil when absent).
func (d *Driver) callInfo(ctx context.Context, a auth, method, path string, body []byte, out any) (*resultInfo, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, rd)
	if err != nil {
		return nil, err
	}
	a.set(req.Header)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		// *url.Error holds the URL (no secret in it) and the cause.
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	var env struct {
		Success bool            `json:"success"`
		Errors  []apiMessage    `json:"errors"`
		Result  json.RawMessage `json:"result"`
		Info    *resultInfo     `json:"result_info"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		if resp.StatusCode/100 != 2 {
			return nil, &apiError{status: resp.StatusCode}
		}
		return nil, fmt.Errorf("http %d: answer is not the API's JSON", resp.StatusCode)
	}
	if !env.Success || resp.StatusCode/100 != 2 {
		return nil, &apiError{status: resp.StatusCode, errs: env.Errors}
	}
	if out != nil && len(env.Result) > 0 {
		if err := json.Unmarshal(env.Result, out); err != nil {
			return nil, fmt.Errorf("decode result: %w", err)
		}
	}
	return env.Info, nil
}

// domain turns an fqdn into the dotless lower-case name the API uses.
func domain(fqdn string) string {
	return strings.ToLower(strings.TrimSuffix(fqdn, "."))
}
