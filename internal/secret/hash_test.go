package secret

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	t.Parallel()
	kr := newTestKeyring(t, "k1")
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	h := kr.HashSecret(tok.Secret)
	if strings.Contains(string(h), tok.Secret) {
		t.Fatal("hash contains the secret")
	}
	if !kr.VerifySecret(tok.Secret, h) {
		t.Fatal("right secret rejected")
	}
	if string(kr.HashSecret(tok.Secret)) != string(h) {
		t.Fatal("hash is not deterministic")
	}
	other, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []string{other.Secret, "", tok.Secret[:len(tok.Secret)-1], tok.Secret + "x", strings.ToUpper(tok.Secret)} {
		if kr.VerifySecret(wrong, h) {
			t.Fatalf("wrong secret accepted")
		}
	}
	// Another key file's hash of the same secret does not verify.
	if kr.VerifySecret(tok.Secret, newTestKeyring(t, "k1").HashSecret(tok.Secret)) {
		t.Fatal("hash from another key verified")
	}
	for i := range h {
		bad := append([]byte(nil), h...)
		bad[i] ^= 0x01
		if kr.VerifySecret(tok.Secret, bad) {
			t.Fatalf("hash with byte %d flipped verified", i)
		}
	}
	if kr.NeedsRehash(h) {
		t.Fatal("fresh hash needs rehash")
	}
}

// TestVerifyUnknownClientID checks that every way of having no usable
// stored hash fails and takes the same path as a wrong secret: the same
// HMAC over the same input, hence the same allocations. Not parallel:
// AllocsPerRun forbids it.
func TestVerifyUnknownClientID(t *testing.T) {
	kr := newTestKeyring(t, "k1")
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	otherHash := kr.HashSecret("something else")
	unknownKey := append([]byte{hashVersion, 2, 'k', '9'}, otherHash[4:]...)
	cases := map[string][]byte{
		"nil":          nil,
		"dummy":        kr.DummyHash(),
		"empty":        {},
		"short":        otherHash[:10],
		"bad version":  append([]byte{9}, otherHash[1:]...),
		"unknown key":  unknownKey,
		"wrong secret": otherHash,
	}
	for name, stored := range cases {
		if kr.VerifySecret(tok.Secret, stored) {
			t.Fatalf("%s: verified", name)
		}
	}
	want := testing.AllocsPerRun(100, func() { kr.VerifySecret(tok.Secret, otherHash) })
	for name, stored := range cases {
		got := testing.AllocsPerRun(100, func() { kr.VerifySecret(tok.Secret, stored) })
		if got != want {
			t.Errorf("%s: %v allocs, wrong secret %v: not the same path", name, got, want)
		}
	}
	// DummyHash is a copy: changing it changes nothing.
	d := kr.DummyHash()
	clear(d)
	if string(kr.DummyHash()) == string(d) {
		t.Fatal("DummyHash returned the internal slice")
	}
}

func TestHashAcrossRotation(t *testing.T) {
	t.Parallel()
	old := newTestKeyring(t, "k1")
	h := old.HashSecret("s")
	rotated, err := old.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.VerifySecret("s", h) {
		t.Fatal("old hash fails after rotation")
	}
	if !rotated.NeedsRehash(h) {
		t.Fatal("old hash does not need rehash")
	}
	h2 := rotated.HashSecret("s")
	if rotated.NeedsRehash(h2) || !rotated.VerifySecret("s", h2) {
		t.Fatal("rehash under current key failed")
	}
	if old.VerifySecret("s", h2) {
		t.Fatal("old keyring verified a hash of a key it lacks")
	}
}

func TestKeyCheck(t *testing.T) {
	t.Parallel()
	kr := newTestKeyring(t, "k1")
	check := kr.CheckValue()
	if check != kr.CheckValue() {
		t.Fatal("CheckValue not stable")
	}
	if !strings.HasPrefix(check, "v1:k1:") {
		t.Fatalf("check value %q lacks version and key id", check)
	}
	if err := kr.VerifyCheck(check); err != nil {
		t.Fatalf("right key: %v", err)
	}

	rotated, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := rotated.VerifyCheck(check); err != nil {
		t.Fatalf("rotated keyring rejects old check: %v", err)
	}
	if err := kr.VerifyCheck(rotated.CheckValue()); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("check from rotated key: err = %v, want ErrKeyNotFound", err)
	}

	tests := []struct {
		name    string
		kr      *Keyring
		stored  string
		wantErr error
	}{
		{"other key file same id", newTestKeyring(t, "k1"), check, ErrWrongKey},
		{"other key file other id", newTestKeyring(t, "k7"), check, ErrKeyNotFound},
		{"empty", kr, "", ErrBadCheckValue},
		{"garbage", kr, "hello", ErrBadCheckValue},
		{"bad version", kr, "v2" + check[2:], ErrBadCheckValue},
		{"bad key id", kr, "v1:K 1:" + check[6:], ErrBadCheckValue},
		{"short mac", kr, check[:len(check)-2], ErrBadCheckValue},
		{"extra part", kr, check + ":x", ErrBadCheckValue},
		{"flipped mac", kr, check[:len(check)-3] + flipB64(check[len(check)-3]) + check[len(check)-2:], ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.kr.VerifyCheck(tt.stored); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func flipB64(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func BenchmarkHashSecret(b *testing.B) {
	kr := newTestKeyring(b, "k1")
	tok, err := NewToken()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		kr.HashSecret(tok.Secret)
	}
}

func BenchmarkVerifySecret(b *testing.B) {
	kr := newTestKeyring(b, "k1")
	tok, err := NewToken()
	if err != nil {
		b.Fatal(err)
	}
	h := kr.HashSecret(tok.Secret)
	b.Run("right", func(b *testing.B) {
		for b.Loop() {
			kr.VerifySecret(tok.Secret, h)
		}
	})
	b.Run("unknown client id", func(b *testing.B) {
		for b.Loop() {
			kr.VerifySecret(tok.Secret, nil)
		}
	})
}

func BenchmarkHashAndVerify(b *testing.B) {
	kr := newTestKeyring(b, "k1")
	tok, err := NewToken()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !kr.VerifySecret(tok.Secret, kr.HashSecret(tok.Secret)) {
			b.Fatal("verify failed")
		}
	}
}
