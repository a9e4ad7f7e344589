package store

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

// openMigrated closes the raw database and opens it with the store, which
// migrates it to the latest version.
func openMigrated(t *testing.T, raw interface{ Close() error }, path string) *DB {
	t.Helper()
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	return openTest2(t, path)
}

func TestMigration0002LinksTokensToAdmin(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v1.db")
	old := buildAt(t, path, 1) // testdata/seed/0001.sql: token "seedclient", role admin
	if _, err := old.Exec(`INSERT INTO api_tokens (client_id, secret_hash, name, role, created_at, expires_at, revoked_at, last_used_at) VALUES
		('consumer', X'01', 'ci', 'managed_challenge_consumer', 1700000000000, 4102444800000, NULL, 1700000005000),
		('oldadmin', X'02', '', 'admin', 1700000000000, NULL, 1700000009000, NULL),
		('weird', X'03', 'w', 'operator', 1700000000000, NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	db := openMigrated(t, old, path)
	ctx := t.Context()

	admin, err := db.PrincipalByName(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if admin.Kind != PrincipalUser || !admin.Enabled || admin.CreatedAt.IsZero() {
		t.Fatalf("admin principal %+v", admin)
	}
	if list, err := db.ListPrincipals(ctx); err != nil || len(list) != 1 {
		t.Fatalf("principals %+v %v", list, err)
	}
	as, err := db.RoleAssignments(ctx, admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, a := range as {
		if a.Domains != "" {
			t.Fatalf("restricted assignment %+v", a)
		}
		roles = append(roles, a.Role)
	}
	if want := []string{RoleAdmin, RoleChallengeConsumer}; !slices.Equal(roles, want) {
		t.Fatalf("admin's roles %v, want %v (one per known token role)", roles, want)
	}

	boot, err := db.TokenByClientID(ctx, "seedclient")
	if err != nil {
		t.Fatal(err)
	}
	want := Token{
		ClientID: "seedclient", PrincipalID: admin.ID, SecretHash: []byte{0x00, 0x11, 0x22, 0x33},
		Title: "bootstrap", Name: "bootstrap", Role: RoleAdmin, Roles: []string{RoleAdmin},
		CreatedAt: time.UnixMilli(1_700_000_000_000).UTC(),
	}
	if !reflect.DeepEqual(boot, want) {
		t.Fatalf("bootstrap token\n%+v\nwant\n%+v", boot, want)
	}
	// Each token keeps exactly its old role and its times.
	for _, tc := range []struct {
		id      string
		roles   []string
		revoked bool
	}{
		{"consumer", []string{RoleChallengeConsumer}, false},
		{"oldadmin", []string{RoleAdmin}, true},
		{"weird", []string{"operator"}, true}, // an unknown role never authorised anything: revoked
	} {
		tok, err := db.TokenByClientID(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if tok.PrincipalID != admin.ID || !slices.Equal(tok.Roles, tc.roles) || tok.RevokedAt.IsZero() == tc.revoked {
			t.Errorf("token %s: %+v", tc.id, tok)
		}
	}
	if tok, _ := db.TokenByClientID(ctx, "consumer"); !tok.LastUsedAt.Equal(time.UnixMilli(1_700_000_005_000)) ||
		!tok.ExpiresAt.Equal(time.UnixMilli(4_102_444_800_000)) {
		t.Errorf("consumer token times %+v", tok)
	}
	if tok, _ := db.TokenByClientID(ctx, "oldadmin"); !tok.RevokedAt.Equal(time.UnixMilli(1_700_000_009_000)) {
		t.Errorf("revocation time changed: %v", tok.RevokedAt)
	}
	if g := gen(t, db, GenTokens); g != 4 {
		t.Fatalf("tokens generation %d, want 3 + 1", g)
	}
	// The zone went through untouched.
	if s := serialOf(t, db); s != 42 {
		t.Fatalf("serial %d", s)
	}
	// Deleting the admin principal takes the migrated tokens.
	if err := db.DeletePrincipal(ctx, admin.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CountTokens(ctx); err != nil || n != 0 {
		t.Fatalf("%d tokens left %v", n, err)
	}
}

func TestMigration0002WithoutTokensCreatesNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v1.db")
	old := openRaw(t, path)
	if err := migrate(t.Context(), old, migrations, 1); err != nil {
		t.Fatal(err)
	}
	db := openMigrated(t, old, path)
	if list, err := db.ListPrincipals(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("principals %+v %v", list, err)
	}
	if as, err := db.RoleAssignments(t.Context(), 0); err != nil || len(as) != 0 {
		t.Fatalf("assignments %+v %v", as, err)
	}
	if g := gen(t, db, GenTokens); g != 0 {
		t.Fatalf("tokens generation %d", g)
	}
	if empty, err := db.IsEmpty(t.Context()); err != nil || !empty {
		t.Fatalf("empty %v %v", empty, err)
	}
}

func TestSeed0002ReadsBack(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v2.db")
	db := openMigrated(t, buildAt(t, path, 2), path)
	ctx := t.Context()
	if list, err := db.ListPrincipals(ctx); err != nil || len(list) != 3 {
		t.Fatalf("principals %+v %v", list, err)
	}
	tok, err := db.TokenByClientID(ctx, "seedapp")
	if err != nil || !slices.Equal(tok.Roles, []string{RoleChallengeConsumer}) ||
		!slices.Equal(tok.AllowCIDRs, []string{"192.0.2.0/24", "2001:db8::/32"}) {
		t.Fatalf("seed token %+v %v", tok, err)
	}
	cfgs, err := db.ListConfigs(ctx)
	if err != nil || len(cfgs) != 2 || cfgs[0].TTL != time.Minute || cfgs[0].Lifetime != time.Hour {
		t.Fatalf("configs %+v %v", cfgs, err)
	}
	d, err := db.DelegationByName(ctx, "d1")
	if err != nil || d.Domain != "example.net" || d.ConfigID != cfgs[0].ID {
		t.Fatalf("delegation %+v %v", d, err)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil || !slices.Contains(snap.Names, d.Name) {
		t.Fatalf("names %v %v", snap.Names, err)
	}
	if ev, err := db.ListAudit(ctx, AuditFilter{}); err != nil || len(ev) != 2 {
		t.Fatalf("audit %+v %v", ev, err)
	}
}
