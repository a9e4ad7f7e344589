package store

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestDelegationCheckRoundTrip(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	d, _, err := db.CreateDelegation(ctx, Delegation{Domain: "example.org", Name: "k7x2.hub.example.net."})
	if err != nil {
		t.Fatal(err)
	}
	if d.Check != (DelegationCheck{}) {
		t.Fatalf("new delegation has a check: %+v", d.Check)
	}
	gensBefore := gens(t, db)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	first := DelegationCheck{State: "missing", Detail: "add it", Evidence: `{"nameservers":[]}`, CheckedAt: t0}
	prev, now, err := db.RecordDelegationCheck(ctx, d.ID, first)
	if err != nil {
		t.Fatal(err)
	}
	want := first
	want.Since = t0
	if prev != (DelegationCheck{}) || now != want {
		t.Fatalf("first: prev %+v now %+v, want %+v", prev, now, want)
	}
	wantBumped(t, db, gensBefore) // nothing cached depends on checks
	got, err := db.DelegationByDomain(ctx, "example.org")
	if err != nil || got.Check != want {
		t.Fatalf("read back %+v %v, want %+v", got.Check, err, want)
	}

	// The same state later keeps Since; a new one moves it.
	same := DelegationCheck{State: "missing", Detail: "still", CheckedAt: t0.Add(time.Hour)}
	if prev, now, err = db.RecordDelegationCheck(ctx, d.ID, same); err != nil || prev != want || now.Since != t0 || now.Evidence != "" {
		t.Fatalf("same state: prev %+v now %+v %v", prev, now, err)
	}
	changed := DelegationCheck{State: "ok", Detail: "fine", CheckedAt: t0.Add(2 * time.Hour)}
	if _, now, err = db.RecordDelegationCheck(ctx, d.ID, changed); err != nil || now.Since != changed.CheckedAt {
		t.Fatalf("changed: %+v %v", now, err)
	}
	// An older result that finishes late is not stored.
	late := DelegationCheck{State: "unreachable", CheckedAt: t0.Add(90 * time.Minute)}
	if prev, now, err = db.RecordDelegationCheck(ctx, d.ID, late); err != nil || now != prev || now.State != "ok" {
		t.Fatalf("late: prev %+v now %+v %v", prev, now, err)
	}

	if _, _, err := db.RecordDelegationCheck(ctx, d.ID+100, changed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, _, err := db.RecordDelegationCheck(ctx, d.ID, DelegationCheck{CheckedAt: t0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no state: %v", err)
	}
	mustIntegrity(t, db)
}

func TestListDelegationsByCheck(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	ids := map[string]int64{}
	for _, dom := range []string{"a.example.org", "b.example.org", "c.example.org", "d.example.org"} {
		d, _, err := db.CreateDelegation(ctx, Delegation{Domain: dom, Name: dom[:1] + ".hub.example.net."})
		if err != nil {
			t.Fatal(err)
		}
		ids[dom] = d.ID
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	record := func(dom, state string, at time.Time) {
		t.Helper()
		if _, _, err := db.RecordDelegationCheck(ctx, ids[dom], DelegationCheck{State: state, CheckedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	record("a.example.org", "ok", t0.Add(2*time.Minute))
	record("b.example.org", "missing", t0.Add(time.Minute))
	record("c.example.org", "missing", t0.Add(3*time.Minute))

	domains := func(ds []Delegation) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Domain)
		}
		return out
	}
	for _, tc := range []struct {
		state string
		want  []string
	}{
		{"missing", []string{"b.example.org", "c.example.org"}},
		{"ok", []string{"a.example.org"}},
		{CheckUnchecked, []string{"d.example.org"}},
		{"conflict", nil},
	} {
		ds, err := db.ListDelegations(ctx, DelegationFilter{CheckState: tc.state})
		if err != nil || !reflect.DeepEqual(domains(ds), tc.want) {
			t.Errorf("state %s: %v %v, want %v", tc.state, domains(ds), err, tc.want)
		}
	}

	counts, err := db.CountDelegationChecks(ctx)
	if want := map[string]int{"ok": 1, "missing": 2, CheckUnchecked: 1}; err != nil || !reflect.DeepEqual(counts, want) {
		t.Fatalf("counts %v %v, want %v", counts, err, want)
	}

	// Never checked first, then the oldest; only those before the cut.
	ds, err := db.DelegationsToCheck(ctx, t0.Add(150*time.Second), 10)
	if want := []string{"d.example.org", "b.example.org", "a.example.org"}; err != nil || !reflect.DeepEqual(domains(ds), want) {
		t.Fatalf("to check: %v %v, want %v", domains(ds), err, want)
	}
	if ds, err := db.DelegationsToCheck(ctx, time.Now(), 2); err != nil || len(ds) != 2 {
		t.Fatalf("limit: %v %v", domains(ds), err)
	}

	// Unused: last use, else creation, before the cut.
	if err := db.TouchDelegation(ctx, ids["a.example.org"], time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Serial(ctx); err != nil { // any read; touches are written by the next batch
		t.Fatal(err)
	}
	add(t, db, "flush.hub.example.net.", "v") // a write flushes the touches
	ds, err = db.ListDelegations(ctx, DelegationFilter{UsedBefore: time.Now().Add(time.Minute)})
	if want := []string{"b.example.org", "c.example.org", "d.example.org"}; err != nil || !reflect.DeepEqual(domains(ds), want) {
		t.Fatalf("unused: %v %v, want %v", domains(ds), err, want)
	}
	if ds, err := db.ListDelegations(ctx, DelegationFilter{UsedBefore: time.Now().Add(-24 * time.Hour)}); err != nil || len(ds) != 0 {
		t.Fatalf("unused a day ago: %v %v", domains(ds), err)
	}
}

func TestCountValues(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	add(t, db, "a.hub.example.net.", "1")
	add(t, db, "a.hub.example.net.", "2")
	add(t, db, "b.hub.example.net.", "1")
	if n, err := db.CountValues(t.Context()); err != nil || n != 3 {
		t.Fatalf("%d %v", n, err)
	}
}

// TestMigration0004KeepsDelegations: a delegation made at version 3 reads
// as never checked after the migration, and can be checked.
func TestMigration0004KeepsDelegations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v3.db")
	old := buildAt(t, path, 3)
	if _, err := old.Exec(`INSERT INTO delegations (domain, label, name, created_at, created_by) VALUES ('example.org', 'k7', 'k7.hub.example.net.', 1000, 'x')`); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	d, err := db.DelegationByDomain(t.Context(), "example.org")
	if err != nil || d.Check != (DelegationCheck{}) || d.CreatedBy != "x" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, now, err := db.RecordDelegationCheck(t.Context(), d.ID, DelegationCheck{State: "ok", CheckedAt: time.Now()}); err != nil || now.State != "ok" {
		t.Fatalf("%+v %v", now, err)
	}
}
