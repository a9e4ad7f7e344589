package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	t0 := time.UnixMilli(1_700_000_000_000).UTC() // before the events stamped now
	events := []AuditEvent{
		{At: t0, Source: "192.0.2.1:5000", Action: "auth", Result: "failed_auth", TokenID: "nobody"},
		{At: t0.Add(1 * time.Minute), PrincipalID: 1, TokenID: "c1", Action: "challenge.present", Domain: "example.org", ConfigID: 10, Result: "ok"},
		{At: t0.Add(2 * time.Minute), PrincipalID: 2, TokenID: "c2", Action: "challenge.present", Domain: "example.net", ConfigID: 20, Result: "denied"},
		{At: t0.Add(3 * time.Minute), PrincipalID: 1, TokenID: "c1", Action: "challenge.cleanup", Domain: "example.org", ConfigID: 10, Result: "ok"},
		{At: t0.Add(4 * time.Minute), PrincipalID: 1, Action: "config.update", Target: "config 20", ConfigID: 20, Result: "error", Detail: "boom"},
	}
	for _, e := range events {
		if err := db.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil || len(all) != len(events) {
		t.Fatalf("all: %d %v", len(all), err)
	}
	// Newest first; fields round-trip.
	for i, got := range all {
		want := events[len(events)-1-i]
		want.ID = got.ID
		if got != want {
			t.Fatalf("event %d: %+v, want %+v", i, got, want)
		}
		if i > 0 && got.ID >= all[i-1].ID {
			t.Fatalf("not newest first: %d after %d", got.ID, all[i-1].ID)
		}
	}
	id := func(i int) int64 { return all[len(all)-1-i].ID } // id of events[i]

	for _, tc := range []struct {
		name string
		f    AuditFilter
		want []int64
	}{
		{"since", AuditFilter{Since: t0.Add(3 * time.Minute)}, []int64{id(4), id(3)}},
		{"until", AuditFilter{Until: t0.Add(1 * time.Minute)}, []int64{id(0)}},
		{"principal", AuditFilter{PrincipalID: 1}, []int64{id(4), id(3), id(1)}},
		{"domain", AuditFilter{Domain: "example.org"}, []int64{id(3), id(1)}},
		{"action", AuditFilter{Action: "challenge.present"}, []int64{id(2), id(1)}},
		{"result", AuditFilter{Result: "failed_auth"}, []int64{id(0)}},
		{"configs", AuditFilter{ConfigIDs: []int64{20, 30}}, []int64{id(4), id(2)}},
		{"restricted to no configs", AuditFilter{RestrictConfigs: true}, nil},
		{"combined", AuditFilter{PrincipalID: 1, ConfigIDs: []int64{10}, Action: "challenge.cleanup"}, []int64{id(3)}},
		{"first page", AuditFilter{Limit: 2}, []int64{id(4), id(3)}},
		{"second page", AuditFilter{Limit: 2, BeforeID: id(3)}, []int64{id(2), id(1)}},
		{"last page", AuditFilter{Limit: 2, BeforeID: id(1)}, []int64{id(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.ListAudit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
		})
	}
	if _, err := db.ListAudit(ctx, AuditFilter{Limit: MaxAuditLimit + 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("huge page: %v", err)
	}

	for _, e := range []AuditEvent{
		{Action: "", Result: "ok"},
		{Action: "Challenge Present", Result: "ok"},
		{Action: "auth", Result: ""},
		{Action: "auth", Result: "OK"},
	} {
		if err := db.AppendAudit(ctx, e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", e, err)
		}
	}

	// Long or broken client input is cut, not refused; At defaults to now.
	long := strings.Repeat("é", maxAuditDetail)
	if err := db.AppendAudit(ctx, AuditEvent{Action: "auth", Result: "denied", Detail: long, Domain: "x\xffy"}); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListAudit(ctx, AuditFilter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatal(err)
	}
	if e := got[0]; len(e.Detail) > maxAuditDetail || !utf8.ValidString(e.Detail) || !strings.HasSuffix(e.Detail, "…") ||
		e.Domain != "x\uFFFDy" || time.Since(e.At) > time.Minute {
		t.Fatalf("clipped event: %d bytes, domain %q, at %v", len(e.Detail), e.Domain, e.At)
	}

	// Prune by age.
	n, err := db.PruneAudit(ctx, t0.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d %v, want 2", n, err)
	}
	left, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil || len(left) != 4 || left[len(left)-1].ID != id(2) {
		t.Fatalf("left %+v %v", left, err)
	}
	if n, err := db.PruneAudit(ctx, t0); err != nil || n != 0 {
		t.Fatalf("pruned again %d %v", n, err)
	}
}

func TestAuditConcurrentAppendsAllStored(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Audit rows share batches with zone writes.
				if i%10 == 0 {
					if _, err := db.AddValue(ctx, AddRequest{Name: fmt.Sprintf("w%d.hub.example.net.", w), Value: fmt.Sprint(i),
						ExpiresAt: future}); err != nil {
						errs <- err
					}
				}
				if err := db.AppendAudit(ctx, AuditEvent{PrincipalID: int64(w + 1), Action: "challenge.present", Result: "ok",
					Detail: fmt.Sprint(i)}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		got, err := db.ListAudit(ctx, AuditFilter{PrincipalID: int64(w + 1), Limit: MaxAuditLimit})
		if err != nil || len(got) != each {
			t.Fatalf("writer %d: %d events %v", w, len(got), err)
		}
	}
}

func TestPruneAuditInChunks(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	// Insert more than one chunk directly, as one write.
	old := time.UnixMilli(1_700_000_000_000)
	const n = pruneAuditChunk + 7
	if _, err := db.write(ctx, "seed audit", func(w *wtx) error {
		for i := range n {
			if _, err := w.exec(qInsertAudit, old.UnixMilli()+int64(i), nil, "", "", "auth", "", "", nil, "ok", ""); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, AuditEvent{Action: "auth", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	got, err := db.PruneAudit(ctx, old.Add(time.Hour))
	if err != nil || got != n {
		t.Fatalf("pruned %d %v, want %d", got, err, n)
	}
	if left, err := db.ListAudit(ctx, AuditFilter{}); err != nil || len(left) != 1 {
		t.Fatalf("left %d %v", len(left), err)
	}
}
