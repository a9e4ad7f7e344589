package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// newTestKeyring returns a keyring of fresh random keys with the given ids.
func newTestKeyring(tb testing.TB, ids ...string) *Keyring {
	tb.Helper()
	keys := make([]Key, len(ids))
	for i, id := range ids {
		k, err := GenerateKey(id)
		if err != nil {
			tb.Fatal(err)
		}
		keys[i] = k
	}
	kr, err := NewKeyring(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

func TestNewKeyringRejects(t *testing.T) {
	t.Parallel()
	k1, err := GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys []Key
	}{
		{"none", nil},
		{"duplicate id", []Key{k1, k1}},
		{"empty id", []Key{{ID: "", Bytes: k1.Bytes}}},
		{"bad id", []Key{{ID: "k 1", Bytes: k1.Bytes}}},
		{"upper-case id", []Key{{ID: "K1", Bytes: k1.Bytes}}},
		{"long id", []Key{{ID: strings.Repeat("k", 33), Bytes: k1.Bytes}}},
		{"zero key", []Key{{ID: "k1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewKeyring(tt.keys...); err == nil {
				t.Fatal("NewKeyring succeeded")
			}
		})
	}
	if _, err := GenerateKey("a:b"); err == nil {
		t.Fatal("GenerateKey accepted id with ':'")
	}
}

func TestKeyFileCreateLoad(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "acmehub.key")
	created, err := CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("key file mode = %04o, want 0600", perm)
		}
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.CurrentID() != "k1" || !slices.Equal(loaded.IDs(), []string{"k1"}) {
		t.Fatalf("loaded ids %v", loaded.IDs())
	}
	// Same key: what one hashes and seals, the other verifies and opens.
	if !loaded.VerifySecret("s", created.HashSecret("s")) {
		t.Fatal("loaded keyring does not verify the created keyring's hash")
	}
	blob, err := created.Seal([]byte("pt"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := loaded.Open(blob, []byte("ad")); err != nil || string(pt) != "pt" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if loaded.CheckValue() != created.CheckValue() {
		t.Fatal("check values differ")
	}
}

func TestCreateKeyFileRefusesOverwrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "acmehub.key")
	if _, err := CreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateKeyFile: err = %v, want fs.ErrExist", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("key file changed")
	}
	if _, err := CreateKeyFile(filepath.Join(t.TempDir(), "missing", "acmehub.key")); err == nil {
		t.Fatal("CreateKeyFile in a missing directory succeeded")
	}
}

func TestLoadKeyFileRejects(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", KeySize)))
	zero := base64.StdEncoding.EncodeToString(make([]byte, KeySize))
	short := base64.StdEncoding.EncodeToString(make([]byte, KeySize-1))
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"only comments", "# nothing\n\n"},
		{"one field", "k1\n"},
		{"three fields", "k1 " + key + " extra\n"},
		{"bad base64", "k1 " + key[:10] + "!" + key[11:] + "\n"},
		{"unpadded", "k1 " + strings.TrimRight(key, "=") + "\n"},
		{"short key", "k1 " + short + "\n"},
		{"zero key", "k1 " + zero + "\n"},
		{"bad id", "k:1 " + key + "\n"},
		{"duplicate id", "k1 " + key + "\nk1 " + key + "\n"},
		{"binary", "\x00\x01\x02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "acmehub.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyFile(path)
			if !errors.Is(err, ErrBadKeyFile) {
				t.Fatalf("err = %v, want ErrBadKeyFile", err)
			}
			if strings.Contains(err.Error(), key[:10]) {
				t.Fatalf("error quotes key material: %v", err)
			}
		})
	}

	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "acmehub.key")
		big := "k1 " + key + "\n" + strings.Repeat("#\n", maxKeyFileSize)
		if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(path); !errors.Is(err, ErrBadKeyFile) {
			t.Fatalf("err = %v, want ErrBadKeyFile", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		_, err := LoadKeyFile(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		if _, err := LoadKeyFile(t.TempDir()); !errors.Is(err, ErrBadKeyFile) {
			t.Fatalf("err = %v, want ErrBadKeyFile", err)
		}
	})
	t.Run("permissions", func(t *testing.T) {
		t.Parallel()
		if runtime.GOOS == "windows" {
			t.Skip("no Unix permission bits")
		}
		for _, mode := range []os.FileMode{0o644, 0o604, 0o620, 0o666} {
			path := filepath.Join(t.TempDir(), "acmehub.key")
			if err := os.WriteFile(path, []byte("k1 "+key+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadKeyFile(path); !errors.Is(err, ErrBadKeyFile) {
				t.Errorf("mode %04o: err = %v, want ErrBadKeyFile", mode, err)
			}
		}
		// Group-readable is how root:acmehub 0640 deployments work.
		path := filepath.Join(t.TempDir(), "acmehub.key")
		if err := os.WriteFile(path, []byte("# c\n\n  k1 "+key+"  \n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(path); err != nil {
			t.Fatalf("mode 0640: %v", err)
		}
	})
}

func TestRotateAndReplaceKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "acmehub.key")
	old, err := CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := old.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rotated.IDs(), []string{"k2", "k1"}) {
		t.Fatalf("rotated ids %v, want [k2 k1]", rotated.IDs())
	}
	if err := ReplaceKeyFile(path, rotated); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(loaded.IDs(), []string{"k2", "k1"}) {
		t.Fatalf("loaded ids %v", loaded.IDs())
	}
	if !loaded.VerifySecret("s", old.HashSecret("s")) || !loaded.VerifySecret("s", rotated.HashSecret("s")) {
		t.Fatal("replaced key file lost a key")
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("replaced key file mode = %04o, want 0600", perm)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := ReplaceKeyFile(filepath.Join(t.TempDir(), "nope"), rotated); err == nil {
		t.Fatal("ReplaceKeyFile created a missing file")
	}
	again, err := loaded.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if again.CurrentID() != "k3" {
		t.Fatalf("second rotation id %q, want k3", again.CurrentID())
	}
}

func TestKeyringNotPrinted(t *testing.T) {
	t.Parallel()
	kr := newTestKeyring(t, "k1")
	master := base64.StdEncoding.EncodeToString(kr.keys[0].master[:])
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, kr)
		if strings.Contains(out, master) || strings.Contains(out, fmt.Sprintf("%d", kr.keys[0].master[:4])) {
			t.Fatalf("%s prints key material: %s", verb, out)
		}
	}
}

func TestSubkeysDiffer(t *testing.T) {
	t.Parallel()
	e := newTestKeyring(t, "k1").keys[0]
	seal, err := derive(e.master[:], purposeSeal)
	if err != nil {
		t.Fatal(err)
	}
	all := [][]byte{e.master[:], e.hashKey, e.checkKey, seal}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if string(all[i]) == string(all[j]) {
				t.Fatalf("subkeys %d and %d are equal", i, j)
			}
		}
	}
}
