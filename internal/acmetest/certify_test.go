package acmetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"

	"github.com/acmehub/acmehub/internal/secret"
)

// TestIssueThroughCertifyAPI issues a certificate for example.test and
// *.example.test from Pebble with lego, the DNS-01 values published through
// acmehub's Certify managed challenge API by a lego provider that calls it
// as Certify's DNS01.API.CertifyManaged provider does (credentials in a
// PascalCase body, requestbegin, then polling requeststatus without
// credentials; see api/certify_client_test.go for the source read).
func TestIssueThroughCertifyAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: end-to-end issuance skipped in -short mode")
	}
	buildBinaries(t)

	hub := StartHub(t, HubConfig{Zone: "acme.test."})
	p := &certifyProvider{base: hub.APIURL, tok: hub.Consumer(t, "certify", "*.example.test"), poll: 50 * time.Millisecond}

	// The owner adds the CNAME once: learn its target from a throwaway
	// present, then remove that value.
	res, err := p.call(t.Context(), "/api/v1/managedchallenge/request", "example.test", "_acme-challenge.example.test", "acmetest-setup")
	if err != nil {
		t.Fatal(err)
	}
	var ch struct{ CNAMETarget string }
	if err := json.Unmarshal(res.Result, &ch); err != nil || !strings.HasSuffix(ch.CNAMETarget, ".acme.test.") {
		t.Fatalf("cnameTarget %q: %v", ch.CNAMETarget, err)
	}
	if _, err := p.call(t.Context(), "/api/v1/managedchallenge/cleanup", "example.test", "_acme-challenge.example.test", "acmetest-setup"); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(t)
	r.Forward("acme.test.", hub.DNSAddr)
	r.SetRecords(domainZone(t, "example.test", ch.CNAMETarget)...)
	pebble := StartPebble(t, r.Addr())

	cert, err := ObtainCertificate(t, pebble, r.Addr(), p, "example.test", "*.example.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := parseChain(t, cert.Certificate)
	if len(leaf.DNSNames) != 2 {
		t.Fatalf("SANs %q", leaf.DNSNames)
	}
	if p.polls.Load() == 0 {
		t.Error("the provider never polled an operation")
	}
	if got := txtAt(t, hub.DNSAddr, ch.CNAMETarget); len(got) != 0 {
		t.Errorf("values left at %s after clean-up: %q", ch.CNAMETarget, got)
	}
}

// certifyProvider is a lego challenge.Provider speaking like Certify.
type certifyProvider struct {
	base  string
	tok   secret.Token
	poll  time.Duration
	polls atomic.Int32
}

var _ challenge.Provider = (*certifyProvider)(nil)

type certifyResult struct {
	IsSuccess bool
	Message   string
	Result    json.RawMessage
}

func (p *certifyProvider) Present(domain, _, keyAuth string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info := dns01.GetChallengeInfo(domain, keyAuth)
	body := p.body(domain, "_acme-challenge."+strings.TrimPrefix(domain, "*."), info.Value)
	status, raw, err := p.send(ctx, http.MethodPost, "/api/v1/managedchallenge/requestbegin", body)
	if err != nil {
		return err
	}
	if status != http.StatusAccepted {
		return fmt.Errorf("requestbegin: %d %s", status, raw)
	}
	var op struct{ ID string }
	if err := json.Unmarshal(raw, &op); err != nil || op.ID == "" {
		return fmt.Errorf("requestbegin: no operation id in %s", raw)
	}
	for {
		status, raw, err := p.send(ctx, http.MethodGet, "/api/v1/managedchallenge/requeststatus/"+url.PathEscape(op.ID), nil)
		if err != nil {
			return err
		}
		p.polls.Add(1)
		var st struct {
			IsCompleted bool
			Result      *certifyResult
		}
		if status != http.StatusOK || json.Unmarshal(raw, &st) != nil {
			return fmt.Errorf("requeststatus: %d %s", status, raw)
		}
		if st.IsCompleted {
			if st.Result == nil || !st.Result.IsSuccess {
				return fmt.Errorf("operation failed: %s", raw)
			}
			return nil
		}
		select {
		case <-time.After(p.poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *certifyProvider) CleanUp(domain, _, keyAuth string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info := dns01.GetChallengeInfo(domain, keyAuth)
	_, err := p.call(ctx, "/api/v1/managedchallenge/cleanup", domain, "_acme-challenge."+strings.TrimPrefix(domain, "*."), info.Value)
	return err
}

// call posts a request and returns its action result, failing unless it
// succeeded.
func (p *certifyProvider) call(ctx context.Context, path, identifier, key, value string) (certifyResult, error) {
	status, raw, err := p.send(ctx, http.MethodPost, path, p.body(identifier, key, value))
	if err != nil {
		return certifyResult{}, err
	}
	var res certifyResult
	if status != http.StatusOK || json.Unmarshal(raw, &res) != nil || !res.IsSuccess {
		return res, fmt.Errorf("%s: %d %s", path, status, raw)
	}
	return res, nil
}

func (p *certifyProvider) body(identifier, key, value string) []byte {
	b, _ := json.Marshal(struct{ ChallengeType, Identifier, ResponseKey, ResponseValue, AuthKey, AuthSecret string }{
		"dns-01", identifier, key, value, p.tok.ClientID, p.tok.Secret,
	})
	return b
}

func (p *certifyProvider) send(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}
