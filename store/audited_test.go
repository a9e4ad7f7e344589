package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestAddValueAudited(t *testing.T) {
	t.Parallel()
	db := openTest(t, func(c *Config) { c.MaxValuesPerName = 1 })
	ctx := t.Context()
	const name = "a.acme.example.net."
	ev := AuditEvent{PrincipalID: 7, TokenID: "c1", Action: "challenge.present", Domain: "example.org", Result: "ok"}
	req := AddRequest{Name: name, Value: "v1", TTL: 60, ExpiresAt: future, CreatedBy: "p", Audit: &ev}
	if _, err := db.AddValue(ctx, req); err != nil {
		t.Fatal(err)
	}
	// Refused by the cap: neither the value nor its event is stored.
	req.Value = "v2"
	if _, err := db.AddValue(ctx, req); !errors.Is(err, ErrTooManyValues) {
		t.Fatalf("second value: %v, want ErrTooManyValues", err)
	}
	// A malformed event refuses the write.
	bad := ev
	bad.Action = "Bad Action"
	req.Value, req.Audit = "v1", &bad
	if _, err := db.AddValue(ctx, req); !errors.Is(err, ErrInvalid) {
		t.Fatalf("malformed event: %v, want ErrInvalid", err)
	}
	if got := values(t, db, name); len(got) != 1 || got[0] != "v1" {
		t.Fatalf("values %q, want [v1]", got)
	}
	evs, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].PrincipalID != 7 || evs[0].TokenID != "c1" || evs[0].Action != "challenge.present" || evs[0].At.IsZero() {
		t.Fatalf("events %+v, want the one present", evs)
	}
	if !ev.At.IsZero() {
		t.Fatal("AddValue changed the caller's event")
	}
}

func TestRemoveValueAudited(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const name = "a.acme.example.net."
	add(t, db, name, "v1")
	ev := AuditEvent{Action: "challenge.cleanup", Domain: "example.org", Result: "ok"}
	tests := []struct {
		name    string
		value   string
		ev      AuditEvent
		removed bool
		err     error
	}{
		{"present", "v1", ev, true, nil},
		{"absent", "v1", ev, false, nil},
		{"bad value", "\x00", ev, false, ErrInvalid},
		{"bad event", "v1", AuditEvent{Action: "x", Result: "NOT OK"}, false, ErrInvalid},
	}
	for _, tc := range tests {
		serial, removed, err := db.RemoveValueAudited(ctx, name, tc.value, tc.ev)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || removed != tc.removed {
			t.Fatalf("%s: removed %v err %v, want %v %v", tc.name, removed, err, tc.removed, tc.err)
		}
		if err == nil && serial != serialOf(t, db) {
			t.Fatalf("%s: serial %d, want %d", tc.name, serial, serialOf(t, db))
		}
	}
	evs, err := db.ListAudit(ctx, AuditFilter{Action: "challenge.cleanup"})
	if err != nil || len(evs) != 2 {
		t.Fatalf("events %+v %v, want one per successful clean-up", evs, err)
	}
	if got := values(t, db, name); len(got) != 0 {
		t.Fatalf("values %q", got)
	}
}

func TestGenerationsAtOnce(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	for i, name := range []string{GenTokens, GenConfigs, GenConfigs, "g4", "g5", "g5", "g5"} {
		if _, err := db.BumpGeneration(ctx, name); err != nil {
			t.Fatalf("bump %d: %v", i, err)
		}
	}
	tests := []struct {
		names []string
		want  []int64
	}{
		{nil, nil},
		{[]string{GenConfigs}, []int64{2}},
		{[]string{GenDelegations, GenTokens}, []int64{0, 1}},
		{[]string{GenTokens, GenPrincipals, GenConfigs, GenDelegations}, []int64{1, 0, 2, 0}},
		{[]string{"g5", "g4", GenConfigs, GenTokens, "none", "g5"}, []int64{3, 1, 2, 1, 0, 3}}, // more than are prepared
	}
	for _, tc := range tests {
		got, err := db.Generations(ctx, tc.names...)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Generations(%q) = %v, %v; want %v", tc.names, got, err, tc.want)
		}
		for i, n := range tc.names {
			if g, _ := db.Generation(ctx, n); g != got[i] {
				t.Errorf("Generation(%q) = %d, Generations says %d", n, g, got[i])
			}
		}
	}
}

// TestLateJoiners: writes queued while a batch runs may join it; every
// write is still answered once, with its own outcome, after its commit.
func TestLateJoiners(t *testing.T) {
	t.Parallel()
	db := openTest(t, func(c *Config) { c.MaxValuesPerName = 2 })
	ctx := t.Context()
	const writers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("w%d.acme.example.net.", w)
			for i := range each {
				_, err := db.AddValue(ctx, AddRequest{Name: name, Value: fmt.Sprint("v", i), TTL: 60, ExpiresAt: future})
				switch {
				case i < 2 && err != nil:
					errs <- fmt.Errorf("%s v%d: %w", name, i, err)
				case i >= 2 && !errors.Is(err, ErrTooManyValues):
					errs <- fmt.Errorf("%s v%d: %w, want ErrTooManyValues", name, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		if got := values(t, db, fmt.Sprintf("w%d.acme.example.net.", w)); len(got) != 2 {
			t.Errorf("w%d: values %q", w, got)
		}
	}
	mustIntegrity(t, db)
}
