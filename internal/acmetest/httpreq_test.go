package acmetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/providers/dns/httpreq"
)

// TestIssueThroughHTTPReq issues a certificate for example.test and
// *.example.test from Pebble with lego and lego's own httpreq DNS provider
// pointed at acmehub's /httpreq endpoints with a consumer token's client id
// and secret, once in default mode and once in RAW mode, the TXT values
// answered by acmehub's DNS server through the domain's _acme-challenge
// CNAME. In default mode lego follows that CNAME itself and names the
// delegation's name in the hub zone as the fqdn; in RAW mode it sends the
// domain and key authorization and the hub computes the value.
func TestIssueThroughHTTPReq(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: end-to-end issuance skipped in -short mode")
	}
	d := startDelegated(t, "traefik")
	hub, tok, target, res, pebble := d.hub, d.tok, d.target, d.res, d.pebble
	endpoint, err := url.Parse(hub.APIURL + "/httpreq")
	if err != nil {
		t.Fatal(err)
	}

	for _, mode := range []string{"", "RAW"} {
		t.Run("mode="+mode, func(t *testing.T) {
			calls := &httpreqRecorder{base: &http.Transport{}, look: func() []string { return txtAt(t, hub.DNSAddr, target) }}
			cfg := httpreq.NewDefaultConfig()
			cfg.Endpoint, cfg.Mode = endpoint, mode
			cfg.Username, cfg.Password = tok.ClientID, tok.Secret
			cfg.PropagationTimeout, cfg.PollingInterval = 30*time.Second, 100*time.Millisecond
			cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: calls}
			provider, err := httpreq.NewDNSProviderConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			cert, err := ObtainCertificate(t, pebble, res.Addr(), provider, "example.test", "*.example.test")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("issued in %v", time.Since(start).Round(time.Millisecond))
			leaf, _ := parseChain(t, cert.Certificate)
			if got := slices.Sorted(slices.Values(leaf.DNSNames)); !slices.Equal(got, []string{"*.example.test", "example.test"}) {
				t.Errorf("SANs %q", got)
			}

			got := calls.list()
			var presented []string
			for _, c := range got {
				if c.status != http.StatusOK {
					t.Errorf("%s %s: %d %s", c.path, c.req, c.status, c.resp)
					continue
				}
				value := c.value()
				if value == "" || !strings.Contains(c.resp, `"`+value+`"`) {
					t.Errorf("%s %s: the answer %s does not echo the value", c.path, c.req, c.resp)
				}
				switch mode {
				case "":
					// lego followed the CNAME: the fqdn is the hub-zone name.
					if f, _ := c.reqField("fqdn"); f != target {
						t.Errorf("%s: fqdn %q, want the delegation's name %q", c.path, f, target)
					}
				case "RAW":
					// A wildcard arrives as its base domain.
					if d, _ := c.reqField("domain"); d != "example.test" {
						t.Errorf("%s: domain %q, want example.test", c.path, d)
					}
				}
				if c.path == "/httpreq/present" {
					presented = append(presented, value)
					if !slices.Contains(c.seen, value) {
						t.Errorf("after presenting %q the hub's DNS serves %q at %s", value, c.seen, target)
					}
				}
			}
			paths := make([]string, len(got))
			for i, c := range got {
				paths[i] = c.path
			}
			slices.Sort(paths)
			if want := []string{"/httpreq/cleanup", "/httpreq/cleanup", "/httpreq/present", "/httpreq/present"}; !slices.Equal(paths, want) {
				t.Errorf("calls %q, want %q", paths, want)
			}
			if len(presented) != 2 || presented[0] == presented[1] {
				t.Errorf("values presented: %q, want two different ones", presented)
			}
			if left := txtAt(t, hub.DNSAddr, target); len(left) != 0 {
				t.Errorf("values left at %s after clean-up: %q", target, left)
			}
		})
	}
}

// httpreqRecorder is lego's HTTP transport to the hub: it records each
// call and, after a successful present, what look returns.
type httpreqRecorder struct {
	base http.RoundTripper
	look func() []string

	mu    sync.Mutex
	calls []httpreqCall
}

type httpreqCall struct {
	path, req, resp string
	status          int
	seen            []string // after a present: the values served
}

func (r *httpreqRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	c := httpreqCall{path: req.URL.Path, req: strings.TrimSpace(string(body)), resp: strings.TrimSpace(string(out)), status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK && strings.HasSuffix(c.path, "/present") {
		c.seen = r.look()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return resp, nil
}

func (r *httpreqRecorder) list() []httpreqCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (c httpreqCall) reqField(key string) (string, bool) {
	var m map[string]string
	if json.Unmarshal([]byte(c.req), &m) != nil {
		return "", false
	}
	v, ok := m[key]
	return v, ok
}

// value is the TXT value the call is about: the request's value, or in
// RAW mode base64url(SHA-256(keyAuth)).
func (c httpreqCall) value() string {
	if v, ok := c.reqField("value"); ok {
		return v
	}
	ka, ok := c.reqField("keyAuth")
	if !ok {
		return ""
	}
	sum := sha256.Sum256([]byte(ka))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
