package secret

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// ReplaceKeyFile keeps the old file's permission bits (a group the
// operator allowed to read the key keeps reading it).
func TestReplaceKeyFileKeepsMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("secret: Unix permission bits only")
	}
	path := filepath.Join(t.TempDir(), "acmehub.key")
	kr, err := CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	next, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := ReplaceKeyFile(path, next); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode after replace %v, want 0640", st.Mode().Perm())
	}
	if got, err := LoadKeyFile(path); err != nil || got.CurrentID() != next.CurrentID() {
		t.Fatalf("replaced file: %v, %v", got, err)
	}
}
