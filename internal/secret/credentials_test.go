package secret

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExtractCredentials(t *testing.T) {
	t.Parallel()
	// A token's "id:secret" is 84 ASCII bytes from an alphabet whose base64
	// never holds '+' or '/', so the four spellings below coincide; they
	// still must all parse. TestParseBasicAuth covers strings where they
	// differ.
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	userpass := []byte(tok.ClientID + ":" + tok.Secret)
	basic := func(enc *base64.Encoding) string { return "Basic " + enc.EncodeToString(userpass) }

	tests := []struct {
		name    string
		headers [][2]string
		want    Token
		wantErr error
	}{
		{"headers", [][2]string{{HeaderClientID, tok.ClientID}, {HeaderClientSecret, tok.Secret}}, tok, nil},
		{"headers lower-case names", [][2]string{{"x-client-id", tok.ClientID}, {"x-client-secret", tok.Secret}}, tok, nil},
		{"headers with spaces", [][2]string{{HeaderClientID, " " + tok.ClientID + " "}, {HeaderClientSecret, tok.Secret + "\t"}}, tok, nil},
		{"bearer", [][2]string{{"Authorization", "Bearer " + tok.String()}}, tok, nil},
		{"bearer lower-case scheme", [][2]string{{"Authorization", "bearer " + tok.String()}}, tok, nil},
		{"bearer extra spaces", [][2]string{{"Authorization", "Bearer   " + tok.String() + " "}}, tok, nil},
		{"basic std padded", [][2]string{{"Authorization", basic(base64.StdEncoding)}}, tok, nil},
		{"basic std unpadded", [][2]string{{"Authorization", basic(base64.RawStdEncoding)}}, tok, nil},
		{"basic url-safe padded", [][2]string{{"Authorization", basic(base64.URLEncoding)}}, tok, nil},
		{"basic url-safe unpadded (Certify)", [][2]string{{"Authorization", basic(base64.RawURLEncoding)}}, tok, nil},
		{"basic upper-case scheme", [][2]string{{"Authorization", "BASIC " + base64.StdEncoding.EncodeToString(userpass)}}, tok, nil},
		{"headers win over authorization", [][2]string{
			{HeaderClientID, tok.ClientID}, {HeaderClientSecret, tok.Secret},
			{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("proxy:user"))},
		}, tok, nil},

		{"none", nil, Token{}, ErrNoCredentials},
		{"only client id header", [][2]string{{HeaderClientID, tok.ClientID}}, Token{}, ErrMalformedCredentials},
		{"only secret header", [][2]string{{HeaderClientSecret, tok.Secret}}, Token{}, ErrMalformedCredentials},
		{"repeated client id header", [][2]string{{HeaderClientID, tok.ClientID}, {HeaderClientID, other.ClientID}, {HeaderClientSecret, tok.Secret}}, Token{}, ErrMalformedCredentials},
		{"bad header secret does not fall through", [][2]string{
			{HeaderClientID, tok.ClientID}, {HeaderClientSecret, "nope"},
			{"Authorization", "Bearer " + tok.String()},
		}, Token{}, ErrMalformedCredentials},
		{"header parts swapped", [][2]string{{HeaderClientID, tok.Secret}, {HeaderClientSecret, tok.ClientID}}, Token{}, ErrMalformedCredentials},
		{"bearer malformed", [][2]string{{"Authorization", "Bearer " + tok.ClientID}}, Token{}, ErrMalformedCredentials},
		{"bearer empty", [][2]string{{"Authorization", "Bearer"}}, Token{}, ErrMalformedCredentials},
		{"bearer colon form", [][2]string{{"Authorization", "Bearer " + tok.ClientID + ":" + tok.Secret}}, Token{}, ErrMalformedCredentials},
		{"basic not base64", [][2]string{{"Authorization", "Basic !!!"}}, Token{}, ErrMalformedCredentials},
		{"basic no colon", [][2]string{{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(tok.ClientID+tok.Secret))}}, Token{}, ErrMalformedCredentials},
		{"basic wrong shape", [][2]string{{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("user:pass"))}}, Token{}, ErrMalformedCredentials},
		{"basic trailing junk", [][2]string{{"Authorization", "Basic " + base64.StdEncoding.EncodeToString(userpass) + "-"}}, Token{}, ErrMalformedCredentials},
		{"unknown scheme", [][2]string{{"Authorization", "Digest " + tok.String()}}, Token{}, ErrMalformedCredentials},
		{"two authorization headers", [][2]string{{"Authorization", "Bearer " + tok.String()}, {"Authorization", "Bearer " + other.String()}}, Token{}, ErrMalformedCredentials},
		{"huge authorization", [][2]string{{"Authorization", "Bearer " + strings.Repeat("a", 5000)}}, Token{}, ErrMalformedCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/api/v1/x", nil)
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			got, err := ExtractCredentials(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got client id %q, want %q", got.ClientID, tt.want.ClientID)
			}
			if err != nil && strings.Contains(err.Error(), tok.Secret) {
				t.Fatal("error contains the secret")
			}
			got2, ok := CredentialsFromRequest(r)
			if ok != (tt.wantErr == nil) || got2 != tt.want {
				t.Fatalf("CredentialsFromRequest = %v, want %v", ok, tt.wantErr == nil)
			}
		})
	}
}

func TestParseBasicAuth(t *testing.T) {
	t.Parallel()
	// Lengths 1, 2 and 0 mod 3 exercise both padding lengths and none;
	// "?>?" encodes to "Pz4/" / "Pz4_", which needs the right alphabet.
	tests := []struct {
		name       string
		user, pass string
	}{
		{"two pad", "u", "p"},
		{"one pad", "us", "p"},
		{"no pad", "use", "pa"},
		{"alphabet", "?>?", "??>>"},
		{"colon in password", "user", "a:b:c"},
		{"empty password", "user", ""},
		{"empty user", "", "pass"},
		{"utf-8", "ünï", "cødé"},
	}
	encs := map[string]*base64.Encoding{
		"std": base64.StdEncoding, "raw std": base64.RawStdEncoding,
		"url": base64.URLEncoding, "raw url": base64.RawURLEncoding,
	}
	for _, tt := range tests {
		for en, enc := range encs {
			t.Run(tt.name+"/"+en, func(t *testing.T) {
				t.Parallel()
				h := "Basic " + enc.EncodeToString([]byte(tt.user+":"+tt.pass))
				u, p, ok := ParseBasicAuth(h)
				if !ok || u != tt.user || p != tt.pass {
					t.Fatalf("ParseBasicAuth(%q) = %q, %q, %v", h, u, p, ok)
				}
				r := httptest.NewRequest(http.MethodPost, "/register", nil)
				r.Header.Set("Authorization", h)
				u, p, ok = BasicAuth(r)
				if !ok || u != tt.user || p != tt.pass {
					t.Fatalf("BasicAuth = %q, %q, %v", u, p, ok)
				}
			})
		}
	}

	// Whatever net/http's client sends for URL credentials must parse.
	r := httptest.NewRequest(http.MethodPost, "/register", nil)
	r.SetBasicAuth("ahc_id", "pa:ss")
	if u, p, ok := BasicAuth(r); !ok || u != "ahc_id" || p != "pa:ss" {
		t.Fatalf("BasicAuth after SetBasicAuth = %q, %q, %v", u, p, ok)
	}

	for _, bad := range []string{
		"", "Basic", "Basic ", "Basic =", "Basic ===", "Bearer dXNlcjpwYXNz",
		"Basic dXNlcnBhc3M",      // "userpass": no colon
		"Basic dXNlcjpw\nYXNz",   // newline inside
		"Basic dXNlcjpwYXNz====", // too much padding
		"Basic a",                // one char cannot decode
		"Basic Pz4/Pz4_",         // mixed alphabets
		"BasicdXNlcjpwYXNz",
	} {
		if u, p, ok := ParseBasicAuth(bad); ok {
			t.Errorf("ParseBasicAuth(%q) = %q, %q, true; want false", bad, u, p)
		}
	}
}
