package store

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/acmehub/acmehub/rules"
)

// gen reads a generation counter.
func gen(tb testing.TB, db *DB, name string) int64 {
	tb.Helper()
	g, err := db.Generation(tb.Context(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// gens reads every access-model generation counter.
func gens(tb testing.TB, db *DB) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, n := range []string{GenTokens, GenPrincipals, GenConfigs, GenDelegations} {
		out[n] = gen(tb, db, n)
	}
	return out
}

// wantBumped checks that exactly the named generations moved by one since
// before.
func wantBumped(tb testing.TB, db *DB, before map[string]int64, bumped ...string) {
	tb.Helper()
	after := gens(tb, db)
	for n, g := range before {
		want := g
		for _, b := range bumped {
			if b == n {
				want++
			}
		}
		if after[n] != want {
			tb.Errorf("generation %q: %d, want %d (before %v, after %v)", n, after[n], want, before, after)
		}
	}
}

func mustPrincipal(tb testing.TB, db *DB, name string) Principal {
	tb.Helper()
	p, err := db.CreatePrincipal(tb.Context(), Principal{Kind: PrincipalUser, Name: name, Enabled: true})
	if err != nil {
		tb.Fatalf("create principal %s: %v", name, err)
	}
	return p
}

func TestPrincipals(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()

	before := gens(t, db)
	p, err := db.CreatePrincipal(ctx, Principal{Kind: PrincipalApp, Name: "CI-Bot", Description: "builds", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenPrincipals)
	if p.ID <= 0 || p.Kind != PrincipalApp || p.Name != "CI-Bot" || p.Description != "builds" || !p.Enabled ||
		p.CreatedAt.IsZero() || !p.UpdatedAt.Equal(p.CreatedAt) {
		t.Fatalf("created %+v", p)
	}
	if got, err := db.Principal(ctx, p.ID); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("by id: %+v %v, want %+v", got, err, p)
	}
	if got, err := db.PrincipalByName(ctx, "ci-bot"); err != nil || got.ID != p.ID {
		t.Fatalf("by name in other case: %+v %v", got, err)
	}

	for _, tc := range []struct {
		name string
		p    Principal
		want error
	}{
		{"same name in other case", Principal{Kind: PrincipalUser, Name: "ci-BOT"}, ErrConflict},
		{"unknown kind (schema CHECK)", Principal{Kind: "robot", Name: "r2"}, ErrInvalid},
		{"empty name", Principal{Kind: PrincipalUser}, ErrInvalid},
		{"name with space", Principal{Kind: PrincipalUser, Name: "a b"}, ErrInvalid},
		{"name starting with a dot", Principal{Kind: PrincipalUser, Name: ".a"}, ErrInvalid},
		{"control character in description", Principal{Kind: PrincipalUser, Name: "d", Description: "a\nb"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := gens(t, db)
			if _, err := db.CreatePrincipal(ctx, tc.p); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantBumped(t, db, before)
		})
	}

	alice := mustPrincipal(t, db, "alice@example.org")
	if list, err := db.ListPrincipals(ctx); err != nil || len(list) != 2 || list[0].ID != alice.ID || list[1].ID != p.ID {
		t.Fatalf("list (by name): %+v %v", list, err)
	}

	before = gens(t, db)
	upd, err := db.UpdatePrincipal(ctx, Principal{ID: p.ID, Name: "ignored", Kind: PrincipalUser, Description: "deploys", Enabled: false})
	if err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenPrincipals)
	if upd.Name != "CI-Bot" || upd.Kind != PrincipalApp || upd.Description != "deploys" || upd.Enabled ||
		!upd.CreatedAt.Equal(p.CreatedAt) || upd.UpdatedAt.Before(p.UpdatedAt) {
		t.Fatalf("updated %+v", upd)
	}
	if _, err := db.UpdatePrincipal(ctx, Principal{ID: 999}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update absent: %v", err)
	}

	before = gens(t, db)
	if err := db.DeletePrincipal(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenPrincipals, GenTokens)
	if _, err := db.Principal(ctx, p.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted principal: %v", err)
	}
	if _, err := db.PrincipalByName(ctx, "CI-Bot"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted principal by name: %v", err)
	}
	if err := db.DeletePrincipal(ctx, p.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	// Ids are never reused, even the highest one.
	if err := db.DeletePrincipal(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if again := mustPrincipal(t, db, "alice@example.org"); again.ID <= alice.ID {
		t.Fatalf("id %d reused after %d", again.ID, alice.ID)
	}
}

func TestRoleAssignments(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	p := mustPrincipal(t, db, "alice")
	q := mustPrincipal(t, db, "bob")

	// Every role the store knows is accepted by the schema.
	for _, r := range knownRoles {
		if _, err := db.AddRoleAssignment(ctx, RoleAssignment{PrincipalID: q.ID, Role: r}); err != nil {
			t.Fatalf("role %s: %v", r, err)
		}
	}

	before := gens(t, db)
	a, err := db.AddRoleAssignment(ctx, RoleAssignment{PrincipalID: p.ID, Role: RoleChallengeConsumer, Domains: "WWW.Example.org.; *.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenPrincipals)
	if want := rules.MustParse("www.example.org, *.example.net").String(); a.Domains != want || a.ID <= 0 ||
		a.PrincipalID != p.ID || a.Role != RoleChallengeConsumer || a.CreatedAt.IsZero() {
		t.Fatalf("assignment %+v, want domains %q", a, want)
	}

	for _, tc := range []struct {
		name string
		a    RoleAssignment
		want error
	}{
		{"unknown role (schema CHECK)", RoleAssignment{PrincipalID: p.ID, Role: "superuser"}, ErrInvalid},
		{"same rule spelt otherwise", RoleAssignment{PrincipalID: p.ID, Role: RoleChallengeConsumer, Domains: "*.EXAMPLE.net, www.example.org"}, ErrConflict},
		{"unknown principal", RoleAssignment{PrincipalID: 999, Role: RoleAdmin}, ErrNotFound},
		{"invalid rule", RoleAssignment{PrincipalID: p.ID, Role: RoleAdmin, Domains: "*example.org"}, ErrInvalid},
		{"rule without patterns", RoleAssignment{PrincipalID: p.ID, Role: RoleAdmin, Domains: " ; "}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := gens(t, db)
			if _, err := db.AddRoleAssignment(ctx, tc.a); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantBumped(t, db, before)
		})
	}

	all, err := db.AddRoleAssignment(ctx, RoleAssignment{PrincipalID: p.ID, Role: RoleChallengeConsumer})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.RoleAssignments(ctx, p.ID)
	if err != nil || len(got) != 2 || got[0].ID != all.ID || got[1] != a {
		t.Fatalf("assignments of %d: %+v %v", p.ID, got, err)
	}
	if every, err := db.RoleAssignments(ctx, 0); err != nil || len(every) != 2+len(knownRoles) {
		t.Fatalf("all assignments: %d %v", len(every), err)
	}
	if none, err := db.RoleAssignments(ctx, 999); err != nil || len(none) != 0 {
		t.Fatalf("assignments of an unknown principal: %+v %v", none, err)
	}

	before = gens(t, db)
	if err := db.RemoveRoleAssignment(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenPrincipals)
	if err := db.RemoveRoleAssignment(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove again: %v", err)
	}

	// Deleting a principal deletes its assignments.
	if err := db.DeletePrincipal(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	if left, err := db.RoleAssignments(ctx, q.ID); err != nil || len(left) != 0 {
		t.Fatalf("assignments after delete: %+v %v", left, err)
	}
}

func TestTokenFields(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	p := mustPrincipal(t, db, "alice")

	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	before := gens(t, db)
	err := db.CreateToken(ctx, Token{
		ClientID: "c1", PrincipalID: p.ID, SecretHash: []byte{1, 2}, Title: "laptop", Description: "certbot on the laptop",
		Roles:      []string{RoleChallengeConsumer, RoleAdmin, RoleChallengeConsumer},
		AllowCIDRs: []string{"2001:db8::/32", "192.0.2.0/24", "10.0.0.0/8", "192.0.2.0/24"},
		ExpiresAt:  exp,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenTokens)
	got, err := db.TokenByClientID(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := Token{
		ClientID: "c1", PrincipalID: p.ID, SecretHash: []byte{1, 2}, Title: "laptop", Name: "laptop",
		Description: "certbot on the laptop",
		Roles:       []string{RoleAdmin, RoleChallengeConsumer},
		AllowCIDRs:  []string{"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"},
		CreatedAt:   got.CreatedAt, ExpiresAt: exp.UTC(),
	}
	if got.CreatedAt.IsZero() || !reflect.DeepEqual(got, want) {
		t.Fatalf("token\n%+v\nwant\n%+v", got, want)
	}

	// Not narrowed, any source; and a legacy token without a principal.
	if err := db.CreateToken(ctx, Token{ClientID: "c2", PrincipalID: p.ID, SecretHash: []byte{3}}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateToken(ctx, Token{ClientID: "legacy", SecretHash: []byte{4}, Name: "old", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	if tok, err := db.TokenByClientID(ctx, "c2"); err != nil || tok.Roles != nil || tok.AllowCIDRs != nil {
		t.Fatalf("plain token %+v %v", tok, err)
	}
	if tok, err := db.TokenByClientID(ctx, "legacy"); err != nil || tok.PrincipalID != 0 || tok.Title != "old" || tok.Role != "admin" {
		t.Fatalf("legacy token %+v %v", tok, err)
	}

	for _, tc := range []struct {
		name string
		tok  Token
		want error
	}{
		{"unknown role", Token{ClientID: "x", PrincipalID: p.ID, SecretHash: []byte{1}, Roles: []string{"root"}}, ErrInvalid},
		{"host bits set", Token{ClientID: "x", PrincipalID: p.ID, SecretHash: []byte{1}, AllowCIDRs: []string{"10.0.0.1/8"}}, ErrInvalid},
		{"bare address", Token{ClientID: "x", PrincipalID: p.ID, SecretHash: []byte{1}, AllowCIDRs: []string{"10.0.0.1"}}, ErrInvalid},
		{"no owner", Token{ClientID: "x", SecretHash: []byte{1}}, ErrInvalid},
		{"unknown principal", Token{ClientID: "x", PrincipalID: 999, SecretHash: []byte{1}}, ErrNotFound},
		{"client id in use", Token{ClientID: "c1", PrincipalID: p.ID, SecretHash: []byte{1}}, ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := gens(t, db)
			if err := db.CreateToken(ctx, tc.tok); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantBumped(t, db, before)
		})
	}

	list, err := db.ListTokens(ctx, p.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("tokens of %d: %+v %v", p.ID, list, err)
	}
	for _, tok := range list {
		if tok.SecretHash != nil {
			t.Fatalf("listing holds a secret hash: %+v", tok)
		}
	}
	if list[0].ClientID != "c1" || !reflect.DeepEqual(list[0].Roles, want.Roles) || !reflect.DeepEqual(list[0].AllowCIDRs, want.AllowCIDRs) {
		t.Fatalf("listed %+v", list[0])
	}
	if all, err := db.ListTokens(ctx, 0); err != nil || len(all) != 3 {
		t.Fatalf("all tokens: %d %v", len(all), err)
	}

	revoked := time.UnixMilli(1_800_000_000_000).UTC()
	before = gens(t, db)
	if err := db.RevokeToken(ctx, "c1", revoked); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenTokens)
	if err := db.RevokeToken(ctx, "c1", revoked.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if tok, _ := db.TokenByClientID(ctx, "c1"); !tok.RevokedAt.Equal(revoked) {
		t.Fatalf("revoked at %v, want the first revocation %v", tok.RevokedAt, revoked)
	}
	if err := db.RevokeToken(ctx, "nobody", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke absent: %v", err)
	}

	// The owner's deletion takes its tokens; the legacy token stays.
	if err := db.DeletePrincipal(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenByClientID(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token of a deleted principal: %v", err)
	}
	if n, err := db.CountTokens(ctx); err != nil || n != 1 {
		t.Fatalf("tokens left: %d %v", n, err)
	}
}

func TestDeletePrincipalUnownsDelegations(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	p := mustPrincipal(t, db, "acme-dns-account")
	d, _, err := db.CreateDelegation(ctx, Delegation{Domain: "example.org", Name: "abc.hub.example.net.", OwnerPrincipalID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	before, serial := gens(t, db), serialOf(t, db)
	if err := db.DeletePrincipal(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenPrincipals, GenTokens, GenDelegations)
	got, err := db.DelegationByDomain(ctx, "example.org")
	if err != nil || got.ID != d.ID || got.OwnerPrincipalID != 0 {
		t.Fatalf("delegation after its owner went: %+v %v", got, err)
	}
	if serialOf(t, db) != serial {
		t.Fatal("deleting a principal changed the zone")
	}
}
