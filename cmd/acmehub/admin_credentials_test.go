package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

const cliCredValue = "cli-SECRET-4b8e2f90-never-printed"

func TestCredentialCLI(t *testing.T) {
	dir := t.TempDir()
	valFile := filepath.Join(dir, "token.txt")
	if err := os.WriteFile(valFile, []byte(cliCredValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var created api.CredentialJSON
	cliJSON(t, dir, &created, "credential", "create", "--name", "cf", "--provider", "cloudflare",
		"--field-file", "CF_DNS_API_TOKEN="+valFile, "--field", "CF_ZONE_API_TOKEN=zone-"+cliCredValue)
	if created.ID == 0 || strings.Join(created.Fields, ",") != "CF_DNS_API_TOKEN,CF_ZONE_API_TOKEN" {
		t.Fatalf("created %+v", created)
	}
	var outputs []string
	outputs = append(outputs, mustCLI(t, dir, "credential", "list"), mustCLI(t, dir, "credential", "show", "cf"),
		mustCLI(t, dir, "credential", "list", "--json"), mustCLI(t, dir, "audit", "list"))
	if !strings.Contains(outputs[0], "cf") || !strings.Contains(outputs[1], "CF_DNS_API_TOKEN") {
		t.Fatalf("list/show:\n%s\n%s", outputs[0], outputs[1])
	}
	bad := runCLI(t, dir, "credential", "create", "--name", "x", "--provider", "cloudflare", "--field", "NOPE="+cliCredValue)
	if bad.err == nil || !strings.Contains(bad.err.Error(), "NOPE") {
		t.Fatalf("unknown field accepted: %v", bad.err)
	}
	outputs = append(outputs, bad.stdout, bad.stderr, bad.err.Error())

	// rotate-key: the key file gains k2 and keeps k1; the credential is
	// resealed under k2 and opens with the new file.
	rot := runCLI(t, dir, "credential", "rotate-key")
	if rot.err != nil || !strings.Contains(rot.stdout, "resealed 1") {
		t.Fatalf("rotate-key: %v\n%s%s", rot.err, rot.stdout, rot.stderr)
	}
	outputs = append(outputs, rot.stdout, rot.stderr)
	for _, o := range outputs {
		if strings.Contains(o, "SECRET") {
			t.Fatalf("a value was printed:\n%s", o)
		}
	}
	kr, err := secret.LoadKeyFile(filepath.Join(dir, "acmehub.key"))
	if err != nil || strings.Join(kr.IDs(), ",") != "k2,k1" {
		t.Fatalf("key file after rotation: %v %v", kr, err)
	}
	db, err := store.Open(t.Context(), store.Config{Path: filepath.Join(dir, "acmehub.db")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.CredentialByName(t.Context(), "cf")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := secret.SealedKeyID(c.Sealed); id != "k2" {
		t.Fatalf("sealed with %q after rotation", id)
	}
	_, fields, err := hub.New(db, kr, hub.Config{Zone: "acme.example.net."}).OpenCredential(t.Context(), c.ID)
	if err != nil || fields["CF_DNS_API_TOKEN"] != cliCredValue || fields["CF_ZONE_API_TOKEN"] != "zone-"+cliCredValue {
		t.Fatalf("open after rotation: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The CLI still opens the database with the rotated file (key check moved).
	mustCLI(t, dir, "credential", "show", "cf")
	mustCLI(t, dir, "credential", "delete", "cf")
	data, err := os.ReadFile(filepath.Join(dir, "acmehub.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("SECRET")) {
		t.Fatal("a value is in the database file in clear")
	}
}

// rotate-key refuses while another process (here: a store.Open, as serve
// holds) has the database open, before touching the key file.
func TestCredentialRotateKeyRefusedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, dir, "credential", "list") // creates the database and key file
	keyFile := filepath.Join(dir, "acmehub.key")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), store.Config{Path: filepath.Join(dir, "acmehub.db")})
	if err != nil {
		t.Fatal(err)
	}
	rot := runCLI(t, dir, "credential", "rotate-key")
	if rot.err == nil || !strings.Contains(rot.err.Error(), "stop acmehub serve (and other acmehub commands) first") {
		t.Fatalf("rotate-key while open: %v\n%s", rot.err, rot.stdout)
	}
	after, err := os.ReadFile(keyFile)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("key file changed by a refused rotate-key (%v)", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Once the database is free it runs (and leaves the lock free again).
	if rot := runCLI(t, dir, "credential", "rotate-key"); rot.err != nil {
		t.Fatalf("rotate-key: %v", rot.err)
	}
	mustCLI(t, dir, "credential", "list")
}
