package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// acmeAccount is a valid account of owner on delegation id (0: a new one).
func acmeAccount(n int, owner, delegation int64) ACMEDNSAccount {
	return ACMEDNSAccount{
		Username: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), OwnerPrincipalID: owner, DelegationID: delegation,
		PasswordHash: []byte{1, 2}, PasswordSealed: []byte{3, 4}, CreatedBy: "test",
	}
}

func newOwner(t *testing.T, db *DB, name string) Principal {
	t.Helper()
	p, err := db.CreatePrincipal(t.Context(), Principal{Kind: PrincipalApp, Name: name, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestACMEDNSAccountLifecycle(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	owner := newOwner(t, db, "owner")

	// A domainless account makes a domainless delegation, with its name in
	// the zone (journalled).
	g0 := gen(t, db, GenACMEDNS)
	a, created, err := db.CreateACMEDNSAccount(ctx, acmeAccount(1, owner.ID, 0),
		Delegation{Name: "free1.hub.example.net.", CreatedBy: "test"}, 0)
	if err != nil || !created {
		t.Fatalf("create domainless: %+v %v %v", a, created, err)
	}
	if a.Delegation.Domain != "" || a.Delegation.Label != "free1" || a.DelegationID != a.Delegation.ID || a.CreatedAt.IsZero() {
		t.Fatalf("domainless account %+v", a)
	}
	if gen(t, db, GenACMEDNS) != g0+1 {
		t.Fatal("create did not bump the acme_dns generation")
	}
	snap, err := db.Snapshot(ctx)
	if err != nil || !slices.Contains(snap.Names, "free1.hub.example.net.") {
		t.Fatalf("names %v %v", snap.Names, err)
	}
	// NULL domains coexist (UNIQUE holds only for known ones) and read
	// back everywhere delegations are read.
	b, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(2, owner.ID, 0), Delegation{Name: "free2.hub.example.net."}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := db.ListDelegations(ctx, DelegationFilter{})
	if err != nil || len(ds) != 2 || ds[0].Domain != "" || ds[1].Domain != "" {
		t.Fatalf("delegations %+v %v", ds, err)
	}
	if d, err := db.DelegationByName(ctx, "free2"); err != nil || d.Domain != "" {
		t.Fatalf("by name %+v %v", d, err)
	}

	// A second account for a delegated domain shares its delegation.
	d, _, err := db.CreateDelegation(ctx, Delegation{Domain: "example.org", Name: "org.hub.example.net."})
	if err != nil {
		t.Fatal(err)
	}
	c, created, err := db.CreateACMEDNSAccount(ctx, acmeAccount(3, owner.ID, 0), Delegation{Domain: "Example.ORG", Name: "other.hub.example.net."}, 0)
	if err != nil || created || c.DelegationID != d.ID || c.Delegation.Domain != "example.org" {
		t.Fatalf("account for a delegated domain: %+v created %v %v", c, created, err)
	}
	if _, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(4, owner.ID, d.ID), Delegation{}, 0); err != nil {
		t.Fatal(err)
	}

	// The cap counts the owner's accounts.
	if _, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(5, owner.ID, d.ID), Delegation{}, 4); !errors.Is(err, ErrTooManyAccounts) {
		t.Fatalf("over the cap: %v", err)
	}
	if _, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(1, owner.ID, d.ID), Delegation{}, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("username in use: %v", err)
	}
	if _, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(6, owner.ID+100, d.ID), Delegation{}, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown owner: %v", err)
	}
	bad := acmeAccount(7, owner.ID, d.ID)
	bad.Username = "NOT-A-UUID"
	if _, _, err := db.CreateACMEDNSAccount(ctx, bad, Delegation{}, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad username: %v", err)
	}

	// Lists and filters.
	list := func(f ACMEDNSFilter) []string {
		t.Helper()
		as, err := db.ListACMEDNSAccounts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range as {
			out = append(out, a.Username[len(a.Username)-1:])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    ACMEDNSFilter
		want []string
	}{
		{"all", ACMEDNSFilter{}, []string{"1", "2", "3", "4"}},
		{"domain", ACMEDNSFilter{Domain: "example.org"}, []string{"3", "4"}},
		{"bound", ACMEDNSFilter{Bound: true}, []string{"3", "4"}},
		{"delegation", ACMEDNSFilter{DelegationID: a.DelegationID}, []string{"1"}},
		{"page", ACMEDNSFilter{AfterUsername: b.Username, Limit: 1}, []string{"3"}},
		{"other owner", ACMEDNSFilter{OwnerPrincipalID: owner.ID + 100}, nil},
	} {
		if got := list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	// Binding: the domainless delegation gets its domain; again is fine;
	// another domain, or a domain delegated elsewhere, is a conflict.
	gd, ga := gen(t, db, GenDelegations), gen(t, db, GenACMEDNS)
	if err := db.BindACMEDNSDomain(ctx, a.DelegationID, "www.example.net", 0); err != nil {
		t.Fatal(err)
	}
	if gen(t, db, GenDelegations) != gd+1 || gen(t, db, GenACMEDNS) != ga+1 {
		t.Fatal("bind did not bump the generations")
	}
	if got, err := db.DelegationByDomain(ctx, "www.example.net"); err != nil || got.ID != a.DelegationID {
		t.Fatalf("bound delegation %+v %v", got, err)
	}
	if err := db.BindACMEDNSDomain(ctx, a.DelegationID, "WWW.example.net", 0); err != nil {
		t.Fatalf("bind again: %v", err)
	}
	if err := db.BindACMEDNSDomain(ctx, a.DelegationID, "other.example.net", 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("bind to another domain: %v", err)
	}
	if err := db.BindACMEDNSDomain(ctx, b.DelegationID, "example.org", 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("bind to a domain delegated elsewhere: %v", err)
	}

	// Touch is coalesced and written by the writer.
	at := time.UnixMilli(1_800_000_000_000).UTC()
	if err := db.TouchACMEDNSAccount(ctx, c.Username, at); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		got, err := db.ACMEDNSAccountByUsername(ctx, c.Username)
		return err == nil && got.LastUsedAt.Equal(at)
	})

	// Deleting the last account of a domainless delegation removes it and
	// its name; deleting one of a delegated domain keeps the delegation.
	serial := serialOf(t, db)
	got, removed, err := db.DeleteACMEDNSAccount(ctx, b.Username)
	if err != nil || !removed || got.Username != b.Username {
		t.Fatalf("delete domainless: %+v %v %v", got, removed, err)
	}
	if _, err := db.DelegationByName(ctx, "free2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("domainless delegation left: %v", err)
	}
	if serialOf(t, db) <= serial {
		t.Fatal("removing the name did not bump the serial")
	}
	if _, removed, err := db.DeleteACMEDNSAccount(ctx, c.Username); err != nil || removed {
		t.Fatalf("delete on a domain: %v %v", removed, err)
	}
	if _, err := db.DelegationByDomain(ctx, "example.org"); err != nil {
		t.Fatalf("delegation of example.org: %v", err)
	}
	if _, _, err := db.DeleteACMEDNSAccount(ctx, c.Username); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	mustIntegrity(t, db)
}

func TestACMEDNSCascades(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	owner, keep := newOwner(t, db, "owner"), newOwner(t, db, "keep")
	free, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(1, owner.ID, 0), Delegation{Name: "free.hub.example.net."}, 0)
	if err != nil {
		t.Fatal(err)
	}
	org, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(2, owner.ID, 0), Delegation{Domain: "example.org", Name: "org.hub.example.net."}, 0)
	if err != nil {
		t.Fatal(err)
	}
	kept, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(3, keep.ID, org.DelegationID), Delegation{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	net, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(4, keep.ID, 0), Delegation{Domain: "example.net", Name: "net.hub.example.net."}, 0)
	if err != nil {
		t.Fatal(err)
	}

	// Deleting the owner deletes its accounts and its domainless label;
	// a delegation with a domain stays, with the other owner's account.
	ga := gen(t, db, GenACMEDNS)
	if err := db.DeletePrincipal(ctx, owner.ID); err != nil {
		t.Fatal(err)
	}
	if gen(t, db, GenACMEDNS) <= ga {
		t.Fatal("principal delete did not bump the acme_dns generation")
	}
	for _, u := range []string{free.Username, org.Username} {
		if _, err := db.ACMEDNSAccountByUsername(ctx, u); !errors.Is(err, ErrNotFound) {
			t.Fatalf("account %s survived its owner: %v", u, err)
		}
	}
	if _, err := db.DelegationByName(ctx, "free"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("orphan domainless delegation: %v", err)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil || slices.Contains(snap.Names, "free.hub.example.net.") || !slices.Contains(snap.Names, "org.hub.example.net.") {
		t.Fatalf("names %v %v", snap.Names, err)
	}
	if _, err := db.ACMEDNSAccountByUsername(ctx, kept.Username); err != nil {
		t.Fatal(err)
	}

	// Deleting a delegation deletes its accounts.
	ga = gen(t, db, GenACMEDNS)
	if err := db.DeleteDelegation(ctx, net.DelegationID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ACMEDNSAccountByUsername(ctx, net.Username); !errors.Is(err, ErrNotFound) {
		t.Fatalf("account survived its delegation: %v", err)
	}
	if gen(t, db, GenACMEDNS) <= ga {
		t.Fatal("delegation delete did not bump the acme_dns generation")
	}
	mustIntegrity(t, db)
}

// TestMigration0003KeepsDelegations: delegations survive the rebuild with
// their ids, a deleted id is not reused, and the new schema takes
// domainless delegations and accounts.
func TestMigration0003KeepsDelegations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v2.db")
	old := buildAt(t, path, 2) // testdata/seed/0002.sql: delegation d1 of example.net
	if _, err := old.Exec(`INSERT INTO delegations (domain, label, name, created_at) VALUES ('gone.example.org', 'gone', 'gone.hub.example.net.', 1)`); err != nil {
		t.Fatal(err)
	}
	var goneID int64
	if err := old.QueryRow(`DELETE FROM delegations WHERE label = 'gone' RETURNING id`).Scan(&goneID); err != nil {
		t.Fatal(err)
	}
	db := openMigrated(t, old, path)
	ctx := t.Context()
	d, err := db.DelegationByDomain(ctx, "example.net")
	if err != nil || d.Label != "d1" || d.ConfigID == 0 || d.CreatedBy != "seed" {
		t.Fatalf("seed delegation %+v %v", d, err)
	}
	owner := newOwner(t, db, "owner")
	a, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(1, owner.ID, 0), Delegation{Name: "new.hub.example.net."}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.DelegationID <= goneID {
		t.Fatalf("new delegation id %d reuses one at or below the deleted %d", a.DelegationID, goneID)
	}
	mustIntegrity(t, db)
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestACMEDNSCredential: /update's one read brings the owner and its
// roles as they are now; an unknown username is ErrNotFound.
func TestACMEDNSCredential(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	owner := newOwner(t, db, "owner")
	other := newOwner(t, db, "other")
	r1, err := db.AddRoleAssignment(ctx, RoleAssignment{PrincipalID: owner.ID, Role: RoleChallengeConsumer, Domains: "*.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddRoleAssignment(ctx, RoleAssignment{PrincipalID: other.ID, Role: RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	a, _, err := db.CreateACMEDNSAccount(ctx, acmeAccount(1, owner.ID, 0), Delegation{Name: "free1.hub.example.net."}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.ACMEDNSCredentialByUsername(ctx, a.Username)
	if err != nil {
		t.Fatal(err)
	}
	if c.Account.Username != a.Username || c.Account.Delegation.Name != "free1.hub.example.net." || !c.OwnerFound ||
		c.Owner.ID != owner.ID || c.Owner.Name != "owner" || !c.Owner.Enabled || c.Owner.Kind != PrincipalApp || c.Owner.CreatedAt.IsZero() {
		t.Fatalf("credential %+v", c)
	}
	if len(c.OwnerRoles) != 1 || c.OwnerRoles[0].ID != r1.ID || c.OwnerRoles[0].Role != RoleChallengeConsumer ||
		c.OwnerRoles[0].Domains != r1.Domains || c.OwnerRoles[0].PrincipalID != owner.ID || !c.OwnerRoles[0].CreatedAt.Equal(r1.CreatedAt) {
		t.Fatalf("owner's roles %+v, want %+v", c.OwnerRoles, r1)
	}
	// Without roles: none, and the owner as it is now.
	if err := db.RemoveRoleAssignment(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	owner.Enabled = false
	if _, err := db.UpdatePrincipal(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if c, err = db.ACMEDNSCredentialByUsername(ctx, a.Username); err != nil || len(c.OwnerRoles) != 0 || c.Owner.Enabled {
		t.Fatalf("after the change: %+v %v", c, err)
	}
	if _, err := db.ACMEDNSCredentialByUsername(ctx, "00000000-0000-4000-8000-000000000099"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown username: %v", err)
	}
}

func TestACMEDNSAccountInvalid(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	owner := newOwner(t, db, "owner")
	_, _, err := db.CreateACMEDNSAccount(t.Context(), acmeAccount(1, owner.ID, -1), Delegation{}, 0)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "delegation id") || strings.Contains(err.Error(), "owning principal") {
		t.Fatalf("negative delegation id: %v", err)
	}
	_, _, err = db.CreateACMEDNSAccount(t.Context(), acmeAccount(1, 0, 0), Delegation{Name: "x.hub.example.net."}, 0)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "an owning principal is required") {
		t.Fatalf("no owner: %v", err)
	}
}
