package secret

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	kr := newTestKeyring(t, "k1")
	ad := []byte("tsig_keys/42")
	for _, pt := range [][]byte{{}, []byte("x"), []byte("upstream api token"), bytes.Repeat([]byte{0xab}, 4096)} {
		blob, err := kr.Seal(pt, ad)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 4 && bytes.Contains(blob, pt) {
			t.Fatal("blob contains the plaintext")
		}
		got, err := kr.Open(blob, ad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatal("round trip changed the plaintext")
		}
		if id, err := SealedKeyID(blob); err != nil || id != "k1" {
			t.Fatalf("SealedKeyID = %q, %v", id, err)
		}
	}
	a, _ := kr.Seal([]byte("same"), ad)
	b, _ := kr.Seal([]byte("same"), ad)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal: nonce not random")
	}
	if _, err := kr.Seal([]byte("x"), nil); err == nil {
		t.Fatal("Seal accepted empty additional data")
	}
}

// TestOpenTampered flips bits in every byte of a blob; each must fail
// closed with ErrSealBroken and no plaintext.
func TestOpenTampered(t *testing.T) {
	t.Parallel()
	kr := newTestKeyring(t, "k1", "k2")
	ad := []byte("tsig_keys/42")
	blob, err := kr.Seal([]byte("hmac-sha256 secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(blob)
			bad[i] ^= mask
			pt, err := kr.Open(bad, ad)
			if !errors.Is(err, ErrSealBroken) || pt != nil {
				t.Fatalf("byte %d ^ %#x: Open = %q, %v; want ErrSealBroken", i, mask, pt, err)
			}
		}
	}
	// Every truncation, and appended bytes.
	for n := range len(blob) {
		if pt, err := kr.Open(blob[:n], ad); !errors.Is(err, ErrSealBroken) || pt != nil {
			t.Fatalf("truncated to %d: Open = %q, %v", n, pt, err)
		}
	}
	if _, err := kr.Open(append(bytes.Clone(blob), 0), ad); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("extended: err = %v", err)
	}
	// Relabelling the blob as sealed by the other key in the ring fails too:
	// the key id is authenticated.
	relabel := bytes.Clone(blob)
	relabel[3] = '2'
	if _, err := kr.Open(relabel, ad); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("relabelled: err = %v", err)
	}
}

func TestOpenWrongBinding(t *testing.T) {
	t.Parallel()
	kr := newTestKeyring(t, "k1")
	blob, err := kr.Seal([]byte("secret"), []byte("tsig_keys/42"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range []string{"tsig_keys/43", "tsig_keys/4", "tsig_keys/420", "credentials/42", ""} {
		if pt, err := kr.Open(blob, []byte(ad)); !errors.Is(err, ErrSealBroken) || pt != nil {
			t.Fatalf("ad %q: Open = %q, %v; want ErrSealBroken", ad, pt, err)
		}
	}
}

func TestOpenWrongKeyring(t *testing.T) {
	t.Parallel()
	ad := []byte("credentials/1")
	blob, err := newTestKeyring(t, "k1").Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	for name, kr := range map[string]*Keyring{
		"same id other key": newTestKeyring(t, "k1"),
		"unknown id":        newTestKeyring(t, "k2"),
	} {
		if pt, err := kr.Open(blob, ad); !errors.Is(err, ErrSealBroken) || pt != nil {
			t.Fatalf("%s: Open = %q, %v; want ErrSealBroken", name, pt, err)
		}
	}
}

func TestSealRotation(t *testing.T) {
	t.Parallel()
	ad := []byte("credentials/7")
	old := newTestKeyring(t, "k1")
	blob, err := old.Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := old.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if rotated.CurrentID() == "k1" {
		t.Fatal("rotation kept the old current key")
	}
	if pt, err := rotated.Open(blob, ad); err != nil || string(pt) != "secret" {
		t.Fatalf("old blob after rotation: %q, %v", pt, err)
	}
	// New seals use the new key, which the old keyring cannot open.
	fresh, err := rotated.Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := SealedKeyID(fresh); id != rotated.CurrentID() {
		t.Fatalf("sealed with %q, want current %q", id, rotated.CurrentID())
	}
	if _, err := old.Open(fresh, ad); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("old keyring opened a new blob: %v", err)
	}

	moved, err := rotated.Reseal(blob, ad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := SealedKeyID(moved); id != rotated.CurrentID() {
		t.Fatalf("resealed with %q, want %q", id, rotated.CurrentID())
	}
	if pt, err := rotated.Open(moved, ad); err != nil || string(pt) != "secret" {
		t.Fatalf("resealed blob: %q, %v", pt, err)
	}
	// Only the new key is needed now.
	newOnly, err := NewKeyring(Key{ID: rotated.keys[0].id, Bytes: rotated.keys[0].master})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newOnly.Open(moved, ad); err != nil {
		t.Fatalf("new key alone cannot open resealed blob: %v", err)
	}
	if _, err := newOnly.Open(blob, ad); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("new key alone opened the old blob: %v", err)
	}
	// Resealing a current blob changes nothing; wrong ad or damage fails.
	again, err := rotated.Reseal(moved, ad)
	if err != nil || !bytes.Equal(again, moved) {
		t.Fatalf("Reseal of a current blob = changed %v, %v", !bytes.Equal(again, moved), err)
	}
	if _, err := rotated.Reseal(blob, []byte("credentials/8")); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("Reseal with wrong ad: %v", err)
	}
	if _, err := rotated.Reseal(moved, []byte("credentials/8")); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("Reseal of current blob with wrong ad: %v", err)
	}
}

func TestSealedKeyIDMalformed(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, {1}, {2, 0}, {1, 5, 'k'}} {
		if _, err := SealedKeyID(b); !errors.Is(err, ErrSealBroken) {
			t.Fatalf("SealedKeyID(%v): err = %v", b, err)
		}
	}
}
