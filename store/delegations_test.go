package store

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

func TestDelegationZoneChanges(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pushed [][]zone.Change
	db := openTest(t, func(c *Config) {
		c.OnCommit = func(ch []zone.Change) {
			mu.Lock()
			pushed = append(pushed, ch)
			mu.Unlock()
		}
	})
	ctx := t.Context()
	start, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}

	before := gens(t, db)
	d, created, err := db.CreateDelegation(ctx, Delegation{Domain: "Example.ORG.", Name: "k7x2.hub.example.net.", CreatedBy: "alice"})
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	wantBumped(t, db, before, GenDelegations)
	if d.ID <= 0 || d.Domain != "example.org" || d.Label != "k7x2" || d.Name != "k7x2.hub.example.net." ||
		d.CreatedBy != "alice" || d.CreatedAt.IsZero() || d.ConfigID != 0 || !d.LastUsedAt.IsZero() {
		t.Fatalf("created %+v", d)
	}
	s1 := serialOf(t, db)
	if s1 != start.Serial+1 {
		t.Fatalf("serial %d after create, want %d", s1, start.Serial+1)
	}
	wantAdd := []zone.Change{{Serial: s1, Op: zone.OpAddName, Name: d.Name}}
	if j := journal(t, db); !reflect.DeepEqual(j, wantAdd) {
		t.Fatalf("journal %+v, want %+v", j, wantAdd)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil || !slices.Contains(snap.Names, d.Name) {
		t.Fatalf("names %v %v", snap.Names, err)
	}

	// Idempotent by domain, whatever else is asked.
	before = gens(t, db)
	again, created, err := db.CreateDelegation(ctx, Delegation{Domain: "example.org", Name: "other.hub.example.net."})
	if err != nil || created || again != d {
		t.Fatalf("create again: %+v %v %v", again, created, err)
	}
	wantBumped(t, db, before)
	if serialOf(t, db) != s1 {
		t.Fatal("an existing delegation bumped the serial")
	}

	for _, tc := range []struct {
		name string
		d    Delegation
		want error
	}{
		{"label in use", Delegation{Domain: "example.net", Name: "k7x2.hub2.example.net."}, ErrConflict},
		{"wildcard domain", Delegation{Domain: "*.example.net", Name: "a.hub.example.net."}, ErrInvalid},
		{"invalid domain", Delegation{Domain: "exa mple.net", Name: "a.hub.example.net."}, ErrInvalid},
		{"label not the name's first", Delegation{Domain: "example.net", Label: "b", Name: "a.hub.example.net."}, ErrInvalid},
		{"name without zone", Delegation{Domain: "example.net", Name: "a."}, ErrInvalid},
		{"upper-case name", Delegation{Domain: "example.net", Name: "A.hub.example.net."}, ErrInvalid},
		{"unknown config", Delegation{Domain: "example.net", Name: "a.hub.example.net.", ConfigID: 99}, ErrNotFound},
		{"unknown owner", Delegation{Domain: "example.net", Name: "a.hub.example.net.", OwnerPrincipalID: 99}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, serial := gens(t, db), serialOf(t, db)
			if _, _, err := db.CreateDelegation(ctx, tc.d); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantBumped(t, db, before)
			if serialOf(t, db) != serial {
				t.Fatal("a refused delegation changed the zone")
			}
		})
	}

	for _, key := range []string{"k7x2", "K7X2.hub.example.net", "k7x2.hub.example.net."} {
		if got, err := db.DelegationByName(ctx, key); err != nil || got != d {
			t.Fatalf("by name %q: %+v %v", key, got, err)
		}
	}
	if got, err := db.DelegationByDomain(ctx, "EXAMPLE.org"); err != nil || got != d {
		t.Fatalf("by domain: %+v %v", got, err)
	}
	if _, err := db.DelegationByDomain(ctx, "example.net"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent domain: %v", err)
	}
	if _, err := db.DelegationByName(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent label: %v", err)
	}

	// Deleting it removes its values and its name, in one serial.
	add(t, db, d.Name, "v2")
	add(t, db, d.Name, "v1")
	s2 := serialOf(t, db)
	before = gens(t, db)
	if err := db.DeleteDelegation(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenDelegations)
	s3 := serialOf(t, db)
	if s3 != s2+1 {
		t.Fatalf("serial %d after delete, want %d", s3, s2+1)
	}
	changes, err := db.ChangesSince(ctx, s2, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantDel := []zone.Change{
		{Serial: s3, Op: zone.OpRemoveValue, Name: d.Name, Value: "v1"},
		{Serial: s3, Op: zone.OpRemoveValue, Name: d.Name, Value: "v2"},
		{Serial: s3, Op: zone.OpRemoveName, Name: d.Name},
	}
	if !reflect.DeepEqual(changes, wantDel) {
		t.Fatalf("changes %+v, want %+v", changes, wantDel)
	}
	end, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(end.Names, d.Name) || len(end.Values) != 0 {
		t.Fatalf("zone after delete: %+v", end)
	}
	// The journal replays to the same zone, and this process's view got
	// every change through OnCommit.
	all, err := db.ChangesSince(ctx, start.Serial, 0)
	if err != nil {
		t.Fatal(err)
	}
	if replayed, err := apply(start, all); err != nil || !reflect.DeepEqual(replayed, end) {
		t.Fatalf("replay %+v %v, want %+v", replayed, err, end)
	}
	mu.Lock()
	n := len(pushed)
	mu.Unlock()
	if n != 4 {
		t.Fatalf("%d commits pushed, want 4 (create, two adds, delete)", n)
	}
	if err := db.DeleteDelegation(ctx, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	if _, err := db.DelegationByDomain(ctx, "example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted delegation: %v", err)
	}
}

func TestDelegationOfExistingName(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	// A name already in the zone (a version-1 label) gets no second
	// OpAddName.
	if _, _, err := db.AddName(ctx, "old.hub.example.net.", "v1"); err != nil {
		t.Fatal(err)
	}
	s := serialOf(t, db)
	if _, created, err := db.CreateDelegation(ctx, Delegation{Domain: "example.org", Name: "old.hub.example.net."}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if serialOf(t, db) != s {
		t.Fatal("delegating an existing name bumped the serial")
	}
}

func TestListMoveTouchDelegations(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	cfg, err := db.CreateConfig(ctx, ChallengeConfig{Name: "a", Provider: ProviderDelegated, Rule: "*"})
	if err != nil {
		t.Fatal(err)
	}
	owner := mustPrincipal(t, db, "acct")
	var ds []Delegation
	for i, in := range []Delegation{
		{Domain: "example.org", Name: "l1.hub.example.net.", ConfigID: cfg.ID},
		{Domain: "www.example.org", Name: "l2.hub.example.net.", OwnerPrincipalID: owner.ID},
		{Domain: "badexample.org", Name: "l3.hub.example.net."},
		{Domain: "example.net", Name: "l4.hub.example.net.", ConfigID: cfg.ID},
	} {
		d, _, err := db.CreateDelegation(ctx, in)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		ds = append(ds, d)
	}
	ids := func(list []Delegation) []int64 {
		var out []int64
		for _, d := range list {
			out = append(out, d.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    DelegationFilter
		want []int64
	}{
		{"all", DelegationFilter{}, ids(ds)},
		{"by config", DelegationFilter{ConfigID: cfg.ID}, []int64{ds[0].ID, ds[3].ID}},
		{"unbound", DelegationFilter{Unbound: true}, []int64{ds[1].ID, ds[2].ID}},
		{"by owner", DelegationFilter{OwnerPrincipalID: owner.ID}, []int64{ds[1].ID}},
		{"under a domain, whole labels", DelegationFilter{Under: "Example.org"}, []int64{ds[0].ID, ds[1].ID}},
		{"first page", DelegationFilter{Limit: 3}, ids(ds[:3])},
		{"next page", DelegationFilter{Limit: 3, AfterID: ds[2].ID}, ids(ds[3:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.ListDelegations(ctx, tc.f)
			if err != nil || !slices.Equal(ids(got), tc.want) {
				t.Fatalf("got %v %v, want %v", ids(got), err, tc.want)
			}
		})
	}
	if _, err := db.ListDelegations(ctx, DelegationFilter{Unbound: true, ConfigID: cfg.ID}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("contradictory filter: %v", err)
	}

	before, serial := gens(t, db), serialOf(t, db)
	if err := db.MoveDelegation(ctx, ds[2].ID, cfg.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenDelegations)
	if serialOf(t, db) != serial {
		t.Fatal("moving a delegation changed the zone")
	}
	if got, _ := db.DelegationByDomain(ctx, "badexample.org"); got.ConfigID != cfg.ID {
		t.Fatalf("moved: %+v", got)
	}
	if err := db.MoveDelegation(ctx, ds[2].ID, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.DelegationByDomain(ctx, "badexample.org"); got.ConfigID != 0 {
		t.Fatalf("unbound: %+v", got)
	}
	if err := db.MoveDelegation(ctx, ds[2].ID, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("move to an unknown config: %v", err)
	}
	if err := db.MoveDelegation(ctx, 999, cfg.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("move an unknown delegation: %v", err)
	}

	before = gens(t, db)
	used := time.UnixMilli(1_800_000_000_000).UTC()
	if err := db.TouchDelegation(ctx, ds[0].ID, used.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.TouchDelegation(ctx, ds[0].ID, used); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(ctx, "flush", "1"); err != nil { // a later write waits for the touches
		t.Fatal(err)
	}
	if got, _ := db.DelegationByDomain(ctx, "example.org"); !got.LastUsedAt.Equal(used) {
		t.Fatalf("last used %v, want %v", got.LastUsedAt, used)
	}
	wantBumped(t, db, before)
}

func TestDelegationTouchFlushedOnClose(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/hub.db"
	db, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := db.CreateDelegation(t.Context(), Delegation{Domain: "example.org", Name: "l.hub.example.net."})
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_000).UTC()
	if err := db.TouchDelegation(t.Context(), d.ID, at); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest2(t, path)
	if got, _ := db.DelegationByDomain(t.Context(), "example.org"); !got.LastUsedAt.Equal(at) {
		t.Fatalf("last used %v", got.LastUsedAt)
	}
}

func TestCountValuesBy(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	add(t, db, "a.hub.example.net.", "1")
	add(t, db, "b.hub.example.net.", "2")
	if n, err := db.CountValuesBy(ctx, "test"); err != nil || n != 2 {
		t.Fatalf("count %d %v", n, err)
	}
	if n, err := db.CountValuesBy(ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("count of nobody %d %v", n, err)
	}
}
