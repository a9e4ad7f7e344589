package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Token secrets are hashed with HMAC-SHA256 under a subkey of the key file,
// not with bcrypt or argon2: the secrets are 256 random bits, so a slow hash
// adds no strength, and on the request path it would let anyone stall the
// server by sending bad tokens. The key means a stolen database alone does
// not even allow checking a guessed secret.
//
// Stored hash layout: version (1) | len(key id) (1) | key id | HMAC (32).
// The key id lets a hash made before a rotation still verify.
const hashVersion = 1

// HashSecret returns the keyed hash of secret under the current key, for
// storing instead of the secret.
func (kr *Keyring) HashSecret(secret string) []byte {
	e := kr.keys[0]
	out := make([]byte, 0, 1+len(e.hdr)+sha256.Size)
	out = append(out, hashVersion)
	out = append(out, e.hdr...)
	return append(out, e.mac(secret)...)
}

func (e *keyEntry) mac(secret string) []byte {
	m := hmac.New(sha256.New, e.hashKey)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// VerifySecret reports whether secret matches storedHash, in constant time.
//
// When the client id is unknown, callers must still call VerifySecret, with
// a nil storedHash (or DummyHash()), and treat the result as false: a nil,
// malformed or unknown-key hash is verified against the dummy hash, so an
// unknown client id costs the same as a wrong secret and timing does not
// tell which client ids exist.
func (kr *Keyring) VerifySecret(secret string, storedHash []byte) bool {
	e, want, ok := kr.parseHash(storedHash)
	if !ok {
		e, want, _ = kr.parseHash(kr.dummy)
	}
	got := e.mac(secret)
	return subtle.ConstantTimeCompare(got, want) == 1 && ok
}

// DummyHash returns a hash that no secret matches (it is the hash of a
// random secret that was thrown away). See VerifySecret.
func (kr *Keyring) DummyHash() []byte {
	return append([]byte(nil), kr.dummy...)
}

// NeedsRehash reports whether storedHash was not made with the current key
// (or is malformed). After a successful VerifySecret, callers can store
// HashSecret(secret) again so that old keys can eventually be retired.
func (kr *Keyring) NeedsRehash(storedHash []byte) bool {
	e, _, ok := kr.parseHash(storedHash)
	return !ok || e != kr.keys[0]
}

func (kr *Keyring) parseHash(h []byte) (*keyEntry, []byte, bool) {
	if len(h) < 2 || h[0] != hashVersion {
		return nil, nil, false
	}
	n := int(h[1])
	if len(h) != 2+n+sha256.Size {
		return nil, nil, false
	}
	e, ok := kr.byID[string(h[2:2+n])]
	if !ok {
		return nil, nil, false
	}
	return e, h[2+n:], true
}

// Errors from VerifyCheck.
var (
	// ErrWrongKey: the key the check value names is in the key file but is
	// a different key, so the key file belongs to another database.
	ErrWrongKey = errors.New("key file does not belong to this database")
	// ErrKeyNotFound: the key the check value names is not in the key file,
	// e.g. an old key file from before a rotation, or another database's.
	ErrKeyNotFound = errors.New("key file lacks the key this database was made with")
	// ErrBadCheckValue: the stored check value is not one CheckValue makes.
	ErrBadCheckValue = errors.New("malformed key check value")
)

const (
	checkPrefix = "v1"
	checkLabel  = "acmehub key check v1"
)

// CheckValue returns a value to store in the database once, so that a later
// start can tell whether a key file belongs to it (VerifyCheck). It names
// the current key id and holds an HMAC of a fixed label under a subkey used
// for nothing else, so it reveals nothing about the key. It is the same on
// every call for the same key.
func (kr *Keyring) CheckValue() string {
	e := kr.keys[0]
	return checkPrefix + ":" + e.id + ":" + base64.RawURLEncoding.EncodeToString(e.checkMAC())
}

func (e *keyEntry) checkMAC() []byte {
	m := hmac.New(sha256.New, e.checkKey)
	m.Write([]byte(checkLabel))
	return m.Sum(nil)
}

// VerifyCheck checks a value from CheckValue against the keyring. It returns
// nil if the keyring holds the key that made it (current or not: after a
// rotation, store CheckValue() again once every value is resealed), and
// otherwise an error wrapping ErrWrongKey, ErrKeyNotFound or
// ErrBadCheckValue.
func (kr *Keyring) VerifyCheck(stored string) error {
	parts := strings.Split(stored, ":")
	if len(parts) != 3 || parts[0] != checkPrefix || !validKeyID(parts[1]) {
		return fmt.Errorf("verify key check: %w", ErrBadCheckValue)
	}
	want, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("verify key check: %w", ErrBadCheckValue)
	}
	e, ok := kr.byID[parts[1]]
	if !ok {
		return fmt.Errorf("verify key check: key %q: %w", parts[1], ErrKeyNotFound)
	}
	if !hmac.Equal(e.checkMAC(), want) {
		return fmt.Errorf("verify key check: key %q: %w", parts[1], ErrWrongKey)
	}
	return nil
}
