package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/rules"
)

func TestConfigs(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()

	before := gens(t, db)
	c, err := db.CreateConfig(ctx, ChallengeConfig{
		Name: "Org", Provider: ProviderDelegated, Rule: "WWW.example.org; *.example.org.",
		TTL: time.Minute, Lifetime: time.Hour, CreatedBy: "alice",
	})
	if err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenConfigs)
	if c.ID <= 0 || c.ChallengeType != ChallengeDNS01 || c.Rule != rules.MustParse("www.example.org, *.example.org").String() ||
		c.TTL != time.Minute || c.Lifetime != time.Hour || c.CreatedBy != "alice" || c.CredentialID != 0 ||
		c.CreatedAt.IsZero() || !c.UpdatedAt.Equal(c.CreatedAt) {
		t.Fatalf("created %+v", c)
	}
	if got, err := db.Config(ctx, c.ID); err != nil || got != c {
		t.Fatalf("by id: %+v %v", got, err)
	}
	if got, err := db.ConfigByName(ctx, "org"); err != nil || got != c {
		t.Fatalf("by name in other case: %+v %v", got, err)
	}
	if _, err := db.Config(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent: %v", err)
	}

	for _, tc := range []struct {
		name string
		c    ChallengeConfig
		want error
	}{
		{"name in use", ChallengeConfig{Name: "ORG", Provider: "delegated", Rule: "*"}, ErrConflict},
		{"unknown challenge type (schema CHECK)", ChallengeConfig{Name: "h", ChallengeType: "http-01", Provider: "delegated", Rule: "*"}, ErrInvalid},
		{"empty rule", ChallengeConfig{Name: "e", Provider: "delegated"}, ErrInvalid},
		{"bad rule", ChallengeConfig{Name: "e", Provider: "delegated", Rule: "a.*.example.org"}, ErrInvalid},
		{"bad provider", ChallengeConfig{Name: "e", Provider: "Cloud Flare", Rule: "*"}, ErrInvalid},
		{"fractional ttl", ChallengeConfig{Name: "e", Provider: "delegated", Rule: "*", TTL: 1500 * time.Millisecond}, ErrInvalid},
		{"negative lifetime", ChallengeConfig{Name: "e", Provider: "delegated", Rule: "*", Lifetime: -time.Second}, ErrInvalid},
		{"id given to create", ChallengeConfig{ID: 5, Name: "e", Provider: "delegated", Rule: "*"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := gens(t, db)
			if _, err := db.CreateConfig(ctx, tc.c); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantBumped(t, db, before)
		})
	}

	other, err := db.CreateConfig(ctx, ChallengeConfig{Name: "catch-all", Provider: "cloudflare", CredentialID: 7, Rule: "*"})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := db.ListConfigs(ctx); err != nil || len(list) != 2 || list[0] != c || list[1] != other {
		t.Fatalf("list: %+v %v", list, err)
	}

	before = gens(t, db)
	upd := c
	upd.Name, upd.Rule, upd.TTL, upd.CreatedBy = "org2", "example.org", 0, "ignored"
	got, err := db.UpdateConfig(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenConfigs)
	if got.Name != "org2" || got.Rule != "example.org" || got.TTL != 0 || got.CreatedBy != "alice" ||
		!got.CreatedAt.Equal(c.CreatedAt) || got.UpdatedAt.Before(c.UpdatedAt) {
		t.Fatalf("updated %+v", got)
	}
	if _, err := db.UpdateConfig(ctx, ChallengeConfig{ID: 999, Name: "x", Provider: "delegated", Rule: "*"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update absent: %v", err)
	}
	if _, err := db.UpdateConfig(ctx, ChallengeConfig{ID: other.ID, Name: "ORG2", Provider: "delegated", Rule: "*"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("rename onto another: %v", err)
	}

	// Deleting a config unbinds its delegations (they stay in the zone).
	d, _, err := db.CreateDelegation(ctx, Delegation{Domain: "example.org", Name: "abc.hub.example.net.", ConfigID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	before, serial := gens(t, db), serialOf(t, db)
	if err := db.DeleteConfig(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenConfigs, GenDelegations)
	if got, err := db.DelegationByDomain(ctx, "example.org"); err != nil || got.ID != d.ID || got.ConfigID != 0 {
		t.Fatalf("delegation of a deleted config: %+v %v", got, err)
	}
	if serialOf(t, db) != serial {
		t.Fatal("deleting a config changed the zone")
	}
	if err := db.DeleteConfig(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	before = gens(t, db)
	if err := db.DeleteConfig(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenConfigs)
	if again, err := db.CreateConfig(ctx, ChallengeConfig{Name: "again", Provider: "delegated", Rule: "*"}); err != nil || again.ID <= other.ID {
		t.Fatalf("id reused: %+v %v", again, err)
	}
}

var errTie = errors.New("tie")

// refuseTies is the service's check: no two configs with equal-rank
// patterns.
func refuseTies(next ChallengeConfig) func([]ChallengeConfig) error {
	return func(existing []ChallengeConfig) error {
		cands := make([]rules.Candidate, len(existing))
		for i, e := range existing {
			cands[i] = rules.Candidate{ID: strconv.FormatInt(e.ID, 10), Rule: rules.MustParse(e.Rule)}
		}
		next := rules.Candidate{ID: strconv.FormatInt(next.ID, 10), Rule: rules.MustParse(next.Rule)}
		if next.ID == "0" {
			next.ID = ""
		}
		if cs := rules.Conflicts(cands, next); len(cs) > 0 {
			return fmt.Errorf("%w: %s", errTie, cs[0])
		}
		return nil
	}
}

func TestSaveConfigCheckedIsAtomic(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	for round := range 20 {
		// In even rounds the writer is held until both saves are queued,
		// so they share one transaction: the second check must see the
		// first save although it is not committed yet.
		var release func()
		if round%2 == 0 {
			release = holdWriter(t, db)
		}
		rule := fmt.Sprintf("*.r%d.example.org", round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				c := ChallengeConfig{Name: fmt.Sprintf("r%d-%d", round, i), Provider: "delegated", Rule: rule}
				<-start
				_, errs[i] = db.SaveConfigChecked(ctx, c, refuseTies(c))
			})
		}
		close(start)
		if release != nil {
			waitQueued(t, db, 2)
			release()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, errTie):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of 2 conflicting saves won (%v)", round, won, errs)
		}
	}
	list, err := db.ListConfigs(ctx)
	if err != nil || len(list) != 20 {
		t.Fatalf("%d configs %v", len(list), err)
	}
	if gen(t, db, GenConfigs) != 20 {
		t.Fatalf("configs generation %d after 20 saves", gen(t, db, GenConfigs))
	}

	// An update is checked against the others, not against itself.
	c := list[0]
	c.Rule += ", www.example.net"
	if _, err := db.SaveConfigChecked(ctx, c, refuseTies(c)); err != nil {
		t.Fatalf("update keeping its own pattern: %v", err)
	}
	c.Rule = list[1].Rule
	if _, err := db.SaveConfigChecked(ctx, c, refuseTies(c)); !errors.Is(err, errTie) {
		t.Fatalf("update onto another's pattern: %v", err)
	}
	// A panicking check fails its save, and the writer lives on.
	if _, err := db.SaveConfigChecked(ctx, ChallengeConfig{Name: "p", Provider: "delegated", Rule: "*"},
		func([]ChallengeConfig) error { panic("boom") }); err == nil {
		t.Fatal("panicking check saved")
	}
	if _, err := db.CreateConfig(ctx, ChallengeConfig{Name: "p", Provider: "delegated", Rule: "*"}); err != nil {
		t.Fatal(err)
	}
}

// holdWriter blocks the writer goroutine until the returned func is
// called, so that writes queued meanwhile commit in one batch.
func holdWriter(tb testing.TB, db *DB) (release func()) {
	tb.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = db.write(context.Background(), "hold", func(*wtx) error {
			close(entered)
			<-gate
			return nil
		})
	}()
	<-entered
	return sync.OnceFunc(func() { close(gate) })
}
