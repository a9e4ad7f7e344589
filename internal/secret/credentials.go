package secret

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
)

// Header names of the native and Certify credential form.
const (
	HeaderClientID     = "X-Client-ID"
	HeaderClientSecret = "X-Client-Secret"
)

// Errors from ExtractCredentials. They never contain the credential.
var (
	ErrNoCredentials        = errors.New("no credentials")
	ErrMalformedCredentials = errors.New("malformed credentials")
)

// maxAuthLen bounds the Authorization value we decode; real ones are ~100
// bytes, and the bound keeps a hostile header from costing anything.
const maxAuthLen = 4096

// CredentialsFromRequest returns the token a request carries and whether it
// carried a well-formed one. See ExtractCredentials for the forms accepted.
func CredentialsFromRequest(r *http.Request) (Token, bool) {
	t, err := ExtractCredentials(r)
	return t, err == nil
}

// ExtractCredentials returns the token a request carries, in the first of
// these forms present:
//
//  1. X-Client-ID and X-Client-Secret headers (native and Certify);
//  2. Authorization: Bearer <client_id>.<secret>;
//  3. Authorization: Basic with the client id as user and the secret as
//     password, decoded leniently (see ParseBasicAuth).
//
// The headers win over Authorization so that a reverse proxy's own
// Authorization header does not shadow them. A form that is present but
// malformed yields ErrMalformedCredentials rather than falling through to
// the next one; no form at all yields ErrNoCredentials.
//
// Only the shape is checked here: the caller still verifies the secret.
func ExtractCredentials(r *http.Request) (Token, error) {
	ids, secs := r.Header.Values(HeaderClientID), r.Header.Values(HeaderClientSecret)
	if len(ids) > 0 || len(secs) > 0 {
		// Repeated headers are ambiguous: refuse instead of picking one.
		if len(ids) != 1 || len(secs) != 1 {
			return Token{}, ErrMalformedCredentials
		}
		t := Token{ClientID: strings.TrimSpace(ids[0]), Secret: strings.TrimSpace(secs[0])}
		if !t.Valid() {
			return Token{}, ErrMalformedCredentials
		}
		return t, nil
	}

	auths := r.Header.Values("Authorization")
	switch {
	case len(auths) == 0:
		return Token{}, ErrNoCredentials
	case len(auths) > 1:
		return Token{}, ErrMalformedCredentials
	}
	auth := auths[0]
	if len(auth) > maxAuthLen {
		return Token{}, ErrMalformedCredentials
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(auth), " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		t, err := ParseToken(strings.TrimSpace(rest))
		if err != nil {
			return Token{}, ErrMalformedCredentials
		}
		return t, nil
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := ParseBasicAuth(auth)
		t := Token{ClientID: user, Secret: pass}
		if !ok || !t.Valid() {
			return Token{}, ErrMalformedCredentials
		}
		return t, nil
	}
	return Token{}, ErrMalformedCredentials
}

// BasicAuth is a lenient http.Request.BasicAuth: see ParseBasicAuth.
func BasicAuth(r *http.Request) (user, pass string, ok bool) {
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return "", "", false
	}
	return ParseBasicAuth(auths[0])
}

// ParseBasicAuth parses an Authorization header value of scheme Basic
// (case-insensitive). Unlike net/http it accepts the credentials in standard
// or URL-safe base64, each with or without padding: Certify sends URL-safe
// base64 without padding. The user name ends at the first ':' (RFC 7617);
// the password may contain ':'.
func ParseBasicAuth(auth string) (user, pass string, ok bool) {
	if len(auth) > maxAuthLen {
		return "", "", false
	}
	scheme, rest, found := strings.Cut(strings.TrimSpace(auth), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, ok := decodeBase64Lenient(strings.TrimSpace(rest))
	if !ok {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return user, pass, true
}

// decodeBase64Lenient decodes standard or URL-safe base64, padded or not.
// The two alphabets differ only in "+/" versus "-_", so at most one of the
// two raw decodings can succeed on a string that uses either pair.
func decodeBase64Lenient(s string) ([]byte, bool) {
	// Padding carries no information; drop up to two '=' and decode raw.
	for range 2 {
		s = strings.TrimSuffix(s, "=")
	}
	if s == "" {
		return nil, false
	}
	// The decoders skip '\r' and '\n'; a header value should have neither.
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}
