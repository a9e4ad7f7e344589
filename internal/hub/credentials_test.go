package hub

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"

	_ "modernc.org/sqlite"
)

// credValue is distinctive so that finding it anywhere is a leak.
const credValue = "zq-SECRET-VALUE-7f3e9a1c-never-stored"

func createCred(t *testing.T, ts *testService, g Grant, name string) Credential {
	t.Helper()
	c, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: name, Provider: "cloudflare",
		Fields: map[string]string{"CF_DNS_API_TOKEN": credValue + name, "CF_ZONE_API_TOKEN": "other"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCredentialSealedAtRest(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	c := createCred(t, ts, g, "cf")
	if strings.Join(c.Fields, ",") != "CF_DNS_API_TOKEN,CF_ZONE_API_TOKEN" || c.Fingerprint == "" || c.Generation != 1 {
		t.Fatalf("created %+v", c)
	}
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(ts.path + suffix)
		if err != nil && suffix == "" {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	// The field names are stored in clear: finding them proves the bytes
	// read are where the row landed.
	if !bytes.Contains(all, []byte("CF_DNS_API_TOKEN")) || bytes.Contains(all, []byte("SECRET-VALUE")) {
		t.Fatal("plaintext value in the database files (or the row is not in them)")
	}
	// The audit log names fields, never values.
	evs, err := ts.db.ListAudit(t.Context(), store.AuditFilter{Action: "credential.create"})
	if err != nil || len(evs) != 1 || strings.Contains(evs[0].Detail, "SECRET") || !strings.Contains(evs[0].Detail, "CF_DNS_API_TOKEN") {
		t.Fatalf("audit %+v, %v", evs, err)
	}
	prov, fields, err := ts.svc.OpenCredential(t.Context(), c.ID)
	if err != nil || prov != "cloudflare" || fields["CF_DNS_API_TOKEN"] != credValue+"cf" || len(fields) != 2 {
		t.Fatalf("open: %q %d fields, %v", prov, len(fields), err)
	}
}

func TestCredentialFailsClosed(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	a, b := createCred(t, ts, g, "a"), createCred(t, ts, g, "b")
	rawDB, err := sql.Open("sqlite", "file:"+ts.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rawDB.Close() })
	raw := func(id int64) []byte {
		var blob []byte
		if err := rawDB.QueryRow(`SELECT sealed FROM upstream_credentials WHERE id = ?`, id).Scan(&blob); err != nil {
			t.Fatal(err)
		}
		return blob
	}
	set := func(id int64, blob []byte) {
		if _, err := rawDB.Exec(`UPDATE upstream_credentials SET sealed = ? WHERE id = ?`, blob, id); err != nil {
			t.Fatal(err)
		}
	}
	mustFail := func(what string, id int64) {
		t.Helper()
		_, fields, err := ts.svc.OpenCredential(t.Context(), id)
		if !errors.Is(err, secret.ErrSealBroken) || fields != nil {
			t.Fatalf("%s: open gave %d fields, err %v; want ErrSealBroken", what, len(fields), err)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("%s: error leaks a value: %v", what, err)
		}
	}
	orig := raw(a.ID)
	tampered := bytes.Clone(orig)
	tampered[len(tampered)-20] ^= 1
	set(a.ID, tampered)
	mustFail("tampered", a.ID)

	set(a.ID, raw(b.ID)) // b's blob moved to a's row
	mustFail("moved", a.ID)

	set(a.ID, orig)
	if _, _, err := ts.svc.OpenCredential(t.Context(), a.ID); err != nil {
		t.Fatalf("restored blob: %v", err)
	}
	other, err := secret.GenerateKey("k1") // same id, other key
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := secret.NewKeyring(other)
	if err != nil {
		t.Fatal(err)
	}
	ts.svc = New(ts.db, wrong, ts.svc.cfg)
	mustFail("wrong key", a.ID)
}

func TestCredentialRotateReseal(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	c := createCred(t, ts, g, "cf")
	kr2, err := ts.kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	n, err := ResealAll(t.Context(), ts.db, kr2)
	if err != nil || n != 1 {
		t.Fatalf("reseal: %d, %v", n, err)
	}
	after, err := ts.db.CredentialByID(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := secret.SealedKeyID(after.Sealed); id != kr2.CurrentID() || id == ts.kr.CurrentID() {
		t.Fatalf("sealed with %q after rotation, want %q", id, kr2.CurrentID())
	}
	if got := credentialOf(after).Fingerprint; got != c.Fingerprint {
		t.Fatalf("fingerprint changed on reseal: %s -> %s", c.Fingerprint, got)
	}
	// The rotated keyring opens it; the old one alone no longer does.
	ts.svc = New(ts.db, kr2, ts.svc.cfg)
	if _, f, err := ts.svc.OpenCredential(t.Context(), c.ID); err != nil || f["CF_DNS_API_TOKEN"] != credValue+"cf" {
		t.Fatalf("open after rotation: %v", err)
	}
	// A second credential made under the new key, and an old one still
	// under k1, both open with the rotated keyring.
	ts.svc = New(ts.db, ts.kr, ts.svc.cfg)
	old := createCred(t, ts, g, "old")
	ts.svc = New(ts.db, kr2, ts.svc.cfg)
	if _, _, err := ts.svc.OpenCredential(t.Context(), old.ID); err != nil {
		t.Fatalf("open k1 blob with rotated keyring: %v", err)
	}
	// Rerunning reseals only what is not under the current key yet.
	if n, err := ResealAll(t.Context(), ts.db, kr2); err != nil || n != 1 {
		t.Fatalf("second reseal: %d, %v", n, err)
	}
	// A keyring missing the old key aborts the reseal and changes nothing.
	kr3, err := secret.NewKeyring(mustKey(t, "k9"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ResealAll(t.Context(), ts.db, kr3); !errors.Is(err, secret.ErrSealBroken) {
		t.Fatalf("reseal with a foreign key: %v", err)
	}
}

func mustKey(t *testing.T, id string) secret.Key {
	t.Helper()
	k, err := secret.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCredentialAccessAndLifecycle(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	consumer := Grant{Principal: Principal{ID: ts.principal.ID, Name: "consumer"}, Assignments: []Assignment{{Role: RoleChallengeConsumer}}}
	if _, err := ts.svc.CreateCredential(t.Context(), consumer, CredentialRequest{Name: "x", Provider: "cloudflare",
		Fields: map[string]string{"A": "b"}}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("consumer create: %v", err)
	}
	c := createCred(t, ts, g, "cf")
	if _, err := ts.svc.ListCredentials(t.Context(), consumer); !errors.Is(err, ErrForbidden) {
		t.Fatalf("consumer list: %v", err)
	}
	if err := ts.svc.DeleteCredential(t.Context(), consumer, c.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("consumer delete: %v", err)
	}
	// Credentials reach any domain: a challenge admin restricted to some
	// domains may not manage them.
	restricted := Grant{Principal: Principal{ID: ts.principal.ID, Name: "org-admin"},
		Assignments: []Assignment{{Role: RoleChallengeAdmin, Domains: rules.MustParse("*.example.org")}}}
	if _, err := ts.svc.ListCredentials(t.Context(), restricted); !errors.Is(err, ErrForbidden) {
		t.Fatalf("restricted challenge admin list: %v", err)
	}
	if _, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: "CF", Provider: "cloudflare",
		Fields: map[string]string{"CF_API_KEY": "b", "CF_API_EMAIL": "c"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	// Checked against the provider catalogue; errors never quote values.
	for what, req := range map[string]CredentialRequest{
		"unknown field":    {Name: "e", Provider: "cloudflare", Fields: map[string]string{"NOPE": credValue}},
		"only optional":    {Name: "e", Provider: "cloudflare", Fields: map[string]string{"CLOUDFLARE_TTL": credValue}},
		"unknown provider": {Name: "e", Provider: "no-such-provider", Fields: map[string]string{"CF_API_KEY": credValue}},
		"empty value":      {Name: "e", Provider: "cloudflare", Fields: map[string]string{"CF_API_KEY": ""}},
	} {
		_, err := ts.svc.CreateCredential(t.Context(), g, req)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("%s: %v", what, err)
		}
	}
	if _, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: "e", Provider: "cloudflare"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no fields: %v", err)
	}
	r, err := ts.svc.ReplaceCredentialFields(t.Context(), g, c.ID, map[string]string{"CF_DNS_API_TOKEN": "new"})
	if err != nil || r.Generation != 2 || r.Fingerprint == c.Fingerprint || strings.Join(r.Fields, ",") != "CF_DNS_API_TOKEN" {
		t.Fatalf("replace: %+v, %v", r, err)
	}
	if _, f, err := ts.svc.OpenCredential(t.Context(), c.ID); err != nil || f["CF_DNS_API_TOKEN"] != "new" || len(f) != 1 {
		t.Fatalf("open replaced: %v", err)
	}
	// Referenced by a config: refused, naming it.
	cfg, err := ts.db.CreateConfig(t.Context(), store.ChallengeConfig{Name: "up", Provider: "cloudflare", CredentialID: c.ID, Rule: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.svc.DeleteCredential(t.Context(), g, c.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "up") {
		t.Fatalf("delete in use: %v", err)
	}
	if err := ts.db.DeleteConfig(t.Context(), cfg.ID); err != nil {
		t.Fatal(err)
	}
	if err := ts.svc.DeleteCredential(t.Context(), g, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.svc.GetCredential(t.Context(), g, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

// rotate-key reseals acme-dns passwords too, and the account still
// authenticates its updates with the rotated keyring.
func TestResealACMEDNSPasswords(t *testing.T) {
	ts := newACMEDNSService(t, nil)
	a := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	kr2, err := ts.kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ResealAll(t.Context(), ts.db, kr2); err != nil || n != 1 {
		t.Fatalf("reseal: %d, %v", n, err)
	}
	acc, err := ts.db.ACMEDNSAccountByUsername(t.Context(), a.Username)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := secret.SealedKeyID(acc.PasswordSealed); id != kr2.CurrentID() {
		t.Fatalf("password sealed with %q after rotation", id)
	}
	pw, err := kr2.Open(acc.PasswordSealed, acmeDNSSealAD(a.Username))
	if err != nil || string(pw) != a.Password {
		t.Fatalf("open resealed password: %v", err)
	}
	ts.svc = New(ts.db, kr2, ts.svc.cfg)
	if err := ts.update(a, strings.Repeat("x", 43)); err != nil {
		t.Fatalf("update after rotation: %v", err)
	}
}
