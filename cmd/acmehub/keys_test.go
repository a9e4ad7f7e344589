package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

func openTestDB(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestKeyFileBelongsToItsDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath, keyPath := filepath.Join(dir, "hub.db"), filepath.Join(dir, "hub.key")
	db := openTestDB(t, dbPath)

	// A new database creates its key file, mode 0600.
	kr, err := openKeyring(t.Context(), db, keyPath, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	// Opening again finds the same key.
	again, err := openKeyring(t.Context(), db, keyPath, dbPath)
	if err != nil || again.CheckValue() != kr.CheckValue() {
		t.Fatalf("reopen: %v", err)
	}
	// A missing key file for a database that has one: a clear error, and no
	// new key file is made.
	moved := keyPath + ".moved"
	if err := os.Rename(keyPath, moved); err != nil {
		t.Fatal(err)
	}
	_, err = openKeyring(t.Context(), db, keyPath, dbPath)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a key file was created for an existing database")
	}
	// Another database's key: refused.
	otherKey := filepath.Join(dir, "other.key")
	if _, err := secret.CreateKeyFile(otherKey); err != nil {
		t.Fatal(err)
	}
	_, err = openKeyring(t.Context(), db, otherKey, dbPath)
	if err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestBootstrapAdminOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := openTestDB(t, filepath.Join(dir, "hub.db"))
	kr, err := openKeyring(t.Context(), db, filepath.Join(dir, "hub.key"), "hub.db")
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	var stdout bytes.Buffer
	created, err := bootstrapAdmin(t.Context(), db, kr, &stdout, tokenFile)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	if stdout.Len() != 0 {
		t.Fatal("the token went to a non-terminal stdout")
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := secret.ParseToken(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := db.TokenByClientID(t.Context(), tok.ClientID)
	if err != nil || !kr.VerifySecret(tok.Secret, stored.SecretHash) || stored.Role != "admin" {
		t.Fatalf("stored token: %+v %v", stored, err)
	}
	// Later starts create nothing.
	created, err = bootstrapAdmin(t.Context(), db, kr, &stdout, filepath.Join(dir, "token2"))
	if err != nil || created {
		t.Fatalf("second start: %v %v", created, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "token2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("second start wrote a token file")
	}
}
