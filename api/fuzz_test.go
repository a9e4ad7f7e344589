package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
)

// acceptAll is a Service that authenticates everyone and stores nothing, so
// the fuzzer exercises only decoding and validation in this package.
type acceptAll struct{}

func (acceptAll) Authenticate(context.Context, secret.Token, netip.Addr) (hub.Grant, error) {
	return hub.Grant{Principal: hub.Principal{TokenID: "fuzz"}}, nil
}

func (acceptAll) Present(_ context.Context, _ hub.Grant, r hub.PresentRequest) (hub.Challenge, error) {
	return hub.Challenge{Domain: r.Identifier, Value: r.Value}, nil
}

func (acceptAll) Cleanup(context.Context, hub.Grant, string, string, netip.Addr) (int, error) {
	return 0, nil
}

func (acceptAll) CleanupByID(context.Context, hub.Grant, string, netip.Addr) (int, error) {
	return 0, nil
}

func (acceptAll) Status(context.Context, hub.Grant, string) (hub.Challenge, error) {
	return hub.Challenge{}, nil
}

func (acceptAll) SetValue(_ context.Context, _ hub.Grant, r hub.SetRequest) (hub.Record, error) {
	return hub.Record{Name: r.Name, Value: r.Value}, nil
}

func (acceptAll) RemoveValue(context.Context, hub.Grant, string, string) (int, error) { return 0, nil }
func (acceptAll) RemoveName(context.Context, hub.Grant, string) (int, error)          { return 0, nil }
func (acceptAll) Values(context.Context, hub.Grant, string) ([]hub.Record, error)     { return nil, nil }
func (acceptAll) AllValues(context.Context, hub.Grant, string, int) ([]hub.Record, error) {
	return nil, nil
}
func (acceptAll) Ready(context.Context) error { return nil }

// FuzzDecodeSetRequest: any body gets a 201 or a 4xx problem document,
// never a 5xx or a panic.
func FuzzDecodeSetRequest(f *testing.F) {
	for _, s := range []string{`{"value":"abc"}`, `{"value":"x","ttl":60,"lifetime":3600}`, `{`, ``, `null`, `[]`,
		`{"value":"x"}{}`, `{"ttl":-1}`, `{"value":"\u0000"}`, strings.Repeat("[", 5000)} {
		f.Add(s)
	}
	a, err := New(acceptAll{}, Config{MaxBody: 4096})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := secret.NewToken()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/records/abc", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.String())
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
		case rec.Code == http.StatusUnauthorized:
			t.Fatal("the fuzzer must get past authentication")
		case rec.Code >= 400 && rec.Code < 500:
			var p problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code == "" || p.Status != rec.Code {
				t.Fatalf("status %d without a problem document: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
	})
}
