package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
)

// failingUpdates is acceptAll whose acme-dns updates and registrations fail
// with err.
type failingUpdates struct {
	acceptAll
	err error
}

func (f failingUpdates) UpdateACMEDNS(context.Context, hub.ACMEDNSUpdate) (string, error) {
	return "", f.err
}

func (f failingUpdates) RegisterACMEDNS(context.Context, hub.Grant, hub.ACMEDNSRegistration) (hub.ACMEDNSAccount, error) {
	return hub.ACMEDNSAccount{}, f.err
}

// TestACMEDNSErrorMapping checks each service error's acme-dns status and
// body; internal errors never show their text.
func TestACMEDNSErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		body   string // exact, or a prefix when it does not end in "}"
		// update, when set, is /update's body where it differs (status 401).
		update string
	}{
		{fmt.Errorf("%w: %w: 10.0.0.0/8 is outside", hub.ErrInvalid, hub.ErrAllowFrom), 400,
			`{"error": "invalid_allowfrom_cidr", "detail": "invalid request: allow-from not within the token's allow-list: 10.0.0.0/8 is outside"}`, ""},
		{fmt.Errorf("%w: %w: empty", hub.ErrInvalid, hub.ErrBadTXT), 400, `{"error": "bad_txt"}`, ""},
		{fmt.Errorf("%w: something", hub.ErrInvalid), 400, `{"error": "bad_request", "detail": "invalid request: something"}`, ""},
		{hub.ErrUnauthenticated, 401, `{"error": "forbidden"}`, ""},
		{hub.ErrRateLimited, 429, `{"error": "rate_limited", "detail": "`, ""},
		{fmt.Errorf("%w: no config", hub.ErrForbidden), 403, `{"error": "forbidden", "detail": "no managed challenge allows this within the token's scope"}`,
			`{"error": "forbidden"}`},
		{fmt.Errorf("%w: 32 values", hub.ErrLimit), 403, `{"error": "limit_reached", "detail": "limit reached: 32 values"}`, ""},
		{fmt.Errorf("%w: set acme-dns-config", hub.ErrUnsupported), 503, `{"error": "acme_dns_not_configured", "detail": "not supported: set acme-dns-config"}`, ""},
		{errors.New("sqlite: disk I/O error at /secret/path"), 500, `{"error": "db_error", "detail": "internal error; see the server log for request `, ""},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			t.Parallel()
			a, err := New(failingUpdates{err: tc.err}, Config{MaxBody: 1024})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := secret.NewToken()
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/update", "/register"} {
				if path == "/register" && errors.Is(tc.err, hub.ErrUnauthenticated) {
					continue // acceptAll authenticates everyone
				}
				req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"subdomain":"abc","txt":"x"}`))
				req.Header.Set("X-Api-User", "u")
				req.Header.Set("X-Api-Key", "k")
				req.SetBasicAuth(tok.ClientID, tok.Secret)
				w := httptest.NewRecorder()
				a.ServeHTTP(w, req)
				got, status, body := w.Body.String(), tc.status, tc.body
				if path == "/update" && tc.update != "" {
					status, body = http.StatusUnauthorized, tc.update
				}
				if w.Code != status || got != body && (strings.HasSuffix(body, "}") || !strings.HasPrefix(got, body)) {
					t.Errorf("%s: %d %q, want %d %q", path, w.Code, got, status, body)
				}
				if strings.Contains(got, "/secret/path") {
					t.Errorf("%s: internal error text leaked: %q", path, got)
				}
				if tc.status == 429 && w.Header().Get("Retry-After") == "" {
					t.Errorf("%s: 429 without Retry-After", path)
				}
			}
		})
	}
}

// TestACMEDNSUpdateReplyEscapes checks the reply stays JSON for values that
// need escaping, and is acme-dns's bytes for ACME's values.
func TestACMEDNSUpdateReplyEscapes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0": `"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"`,
		`a"b\c`: `"a\"b\\c"`,
		"a\x01": `"a\u0001"`,
	} {
		if got := jsonString(in); got != want {
			t.Errorf("jsonString(%q) = %s, want %s", in, got, want)
		}
	}
}
