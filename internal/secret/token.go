package secret

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Token shapes. The prefixes make leaked tokens easy to recognise (secret
// scanners, logs) and tell a client id from a secret at a glance.
const (
	ClientIDPrefix = "ahc_"
	SecretPrefix   = "ahs_"

	clientIDBytes = 20 // 160 bits: unique, not secret
	secretBytes   = 32 // 256 bits: the whole strength of a token

	clientIDLen = len(ClientIDPrefix) + 32 // 20 bytes in base32 = 32 chars, no padding
	secretLen   = len(SecretPrefix) + 43   // 32 bytes in base64url = 43 chars, no padding
)

// ErrMalformedToken reports a token string that does not have the shape
// <client_id>.<secret>. Errors wrapping it never contain the input.
var ErrMalformedToken = errors.New("malformed token")

// Lower-case base32 keeps client ids readable and safe in URLs, headers and
// logs; like base64url it has no '.', ':' or whitespace.
var clientIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token is an API credential: a public client id and a secret.
type Token struct {
	ClientID string
	Secret   string
}

// NewToken returns a fresh token from crypto/rand.
func NewToken() (Token, error) {
	var id [clientIDBytes]byte
	var sec [secretBytes]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	return Token{
		ClientID: ClientIDPrefix + clientIDEncoding.EncodeToString(id[:]),
		Secret:   SecretPrefix + base64.RawURLEncoding.EncodeToString(sec[:]),
	}, nil
}

// String returns the bearer form <client_id>.<secret>. It contains the
// secret: show it once to its owner, never log it.
func (t Token) String() string {
	return t.ClientID + "." + t.Secret
}

// LogValue keeps the secret out of slog output even when a Token is logged
// by mistake.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", t.ClientID), slog.String("secret", "REDACTED"))
}

// GoString keeps the secret out of %#v output.
func (t Token) GoString() string {
	return fmt.Sprintf("secret.Token{ClientID:%q, Secret:REDACTED}", t.ClientID)
}

// Valid reports whether both parts have the shape NewToken produces.
func (t Token) Valid() bool {
	return ValidClientID(t.ClientID) && ValidSecret(t.Secret)
}

// ParseToken parses the bearer form <client_id>.<secret>, checking the
// exact shape of both parts.
func ParseToken(s string) (Token, error) {
	id, sec, ok := strings.Cut(s, ".")
	if !ok {
		return Token{}, fmt.Errorf("parse token: %w: want <client_id>.<secret>", ErrMalformedToken)
	}
	if !ValidClientID(id) {
		return Token{}, fmt.Errorf("parse token: %w: bad client id", ErrMalformedToken)
	}
	if !ValidSecret(sec) {
		return Token{}, fmt.Errorf("parse token: %w: bad secret", ErrMalformedToken)
	}
	return Token{ClientID: id, Secret: sec}, nil
}

// ValidClientID reports whether s has the shape of a client id from NewToken.
func ValidClientID(s string) bool {
	if len(s) != clientIDLen || !strings.HasPrefix(s, ClientIDPrefix) {
		return false
	}
	for _, c := range []byte(s[len(ClientIDPrefix):]) {
		if !isBase32Lower(c) {
			return false
		}
	}
	return true
}

func isBase32Lower(c byte) bool { return 'a' <= c && c <= 'z' || '2' <= c && c <= '7' }

func isBase64URL(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// ValidSecret reports whether s has the shape of a secret from NewToken.
func ValidSecret(s string) bool {
	if len(s) != secretLen || !strings.HasPrefix(s, SecretPrefix) {
		return false
	}
	// The decoder skips '\r' and '\n', so check the alphabet explicitly.
	for _, c := range []byte(s[len(SecretPrefix):]) {
		if !isBase64URL(c) {
			return false
		}
	}
	// Strict rejects non-zero trailing bits, so each secret has exactly one
	// spelling.
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(SecretPrefix):])
	return err == nil && len(b) == secretBytes
}
