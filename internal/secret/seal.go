package secret

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrSealBroken reports a sealed blob that cannot be opened: tampered with,
// bound to other additional data (another row or purpose), sealed with a
// key this keyring lacks or does not match, or not a sealed blob at all.
// Open returns no plaintext with it.
var ErrSealBroken = errors.New("sealed value cannot be opened")

// Sealed blob layout, XChaCha20-Poly1305 under the key's seal subkey:
//
//	version (1) | len(key id) (1) | key id | nonce (24) | ciphertext+tag
//
// The header up to the key id is authenticated along with the caller's
// additional data, so changing the version or key id breaks the seal too.
// Random 24-byte nonces make nonce reuse negligible without a counter.
const sealVersion = 1

// Seal encrypts plaintext under the current key. ad binds the blob to where
// it is stored, e.g. "tsig_keys/42" (table/row id, plus purpose if a row
// holds several): Open must be given the same ad, so a blob copied to
// another row does not open. ad must not be empty.
func (kr *Keyring) Seal(plaintext, ad []byte) ([]byte, error) {
	if len(ad) == 0 {
		return nil, errors.New("seal: empty additional data")
	}
	e := kr.keys[0]
	hdr := 1 + len(e.hdr)
	blob := make([]byte, hdr+chacha20poly1305.NonceSizeX, hdr+chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	blob[0] = sealVersion
	copy(blob[1:], e.hdr)
	nonce := blob[hdr:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	//nolint:gosec // G407 false positive: the nonce was just filled from crypto/rand
	return e.aead.Seal(blob, nonce, plaintext, sealAD(blob[:hdr], ad)), nil
}

// Open decrypts a blob from Seal with the key it names. ad must equal the
// one given to Seal. Any failure returns an error wrapping ErrSealBroken
// and no plaintext.
func (kr *Keyring) Open(blob, ad []byte) ([]byte, error) {
	e, hdr, err := kr.sealKey(blob)
	if err != nil {
		return nil, err
	}
	if len(blob) < hdr+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("open sealed value: %w: too short", ErrSealBroken)
	}
	nonce := blob[hdr : hdr+chacha20poly1305.NonceSizeX]
	pt, err := e.aead.Open(nil, nonce, blob[hdr+chacha20poly1305.NonceSizeX:], sealAD(blob[:hdr], ad))
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", ErrSealBroken)
	}
	return pt, nil
}

// Reseal opens blob and seals it again under the current key with the same
// ad, for rotate-key. A blob already sealed with the current key is
// returned unchanged (after checking that it opens), so rerunning a
// rotation rewrites nothing twice.
func (kr *Keyring) Reseal(blob, ad []byte) ([]byte, error) {
	pt, err := kr.Open(blob, ad)
	if err != nil {
		return nil, fmt.Errorf("reseal: %w", err)
	}
	defer clear(pt)
	if id, _ := sealHeader(blob); id == kr.CurrentID() {
		return blob, nil
	}
	out, err := kr.Seal(pt, ad)
	if err != nil {
		return nil, fmt.Errorf("reseal: %w", err)
	}
	return out, nil
}

// SealedKeyID returns the id of the key a blob says it was sealed with,
// without opening it (the id is only authenticated by Open). rotate-key
// can use it to find blobs still sealed with an old key.
func SealedKeyID(blob []byte) (string, error) {
	id, ok := sealHeader(blob)
	if !ok {
		return "", fmt.Errorf("sealed key id: %w: bad header", ErrSealBroken)
	}
	return id, nil
}

func sealHeader(blob []byte) (id string, ok bool) {
	if len(blob) < 2 || blob[0] != sealVersion || len(blob) < 2+int(blob[1]) {
		return "", false
	}
	return string(blob[2 : 2+int(blob[1])]), true
}

// sealKey parses the blob header and returns the key it names and the
// header length.
func (kr *Keyring) sealKey(blob []byte) (*keyEntry, int, error) {
	id, ok := sealHeader(blob)
	if !ok {
		return nil, 0, fmt.Errorf("open sealed value: %w: bad header", ErrSealBroken)
	}
	e, ok := kr.byID[id]
	if !ok {
		return nil, 0, fmt.Errorf("open sealed value: %w: unknown key id", ErrSealBroken)
	}
	return e, 2 + len(id), nil
}

// sealAD is the AEAD additional data: the blob header, then the caller's
// ad. The header encodes its own length, so the split is unambiguous.
func sealAD(hdr, ad []byte) []byte {
	out := make([]byte, 0, len(hdr)+len(ad))
	out = append(out, hdr...)
	return append(out, ad...)
}
