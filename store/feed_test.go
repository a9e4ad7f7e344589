package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

func TestChangesSince(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	if ch, err := db.ChangesSince(ctx, 1, 10); err != nil || ch != nil {
		t.Fatalf("at the latest serial: %v %v", ch, err)
	}
	if _, err := db.ChangesSince(ctx, 0, 10); !errors.Is(err, zone.ErrGap) {
		t.Fatalf("before the first journalled serial: %v", err)
	}
	if _, err := db.ChangesSince(ctx, 5, 10); !errors.Is(err, zone.ErrGap) {
		t.Fatalf("ahead of the store: %v", err)
	}
	add(t, db, "a.example.org.", "1")                   // serial 2
	add(t, db, "a.example.org.", "2")                   // 3
	_, _, _ = db.RemoveAllValues(ctx, "a.example.org.") // 4: two rows
	add(t, db, "b.example.org.", "1")                   // 5

	all, err := db.ChangesSince(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []zone.Change{
		{Serial: 2, Op: zone.OpAddValue, Name: "a.example.org.", Value: "1", TTL: 60},
		{Serial: 3, Op: zone.OpAddValue, Name: "a.example.org.", Value: "2", TTL: 60},
		{Serial: 4, Op: zone.OpRemoveValue, Name: "a.example.org.", Value: "1"},
		{Serial: 4, Op: zone.OpRemoveValue, Name: "a.example.org.", Value: "2"},
		{Serial: 5, Op: zone.OpAddValue, Name: "b.example.org.", Value: "1", TTL: 60},
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("changes %+v", all)
	}
	// Whole serials only: serial 4's two rows come together.
	for _, tc := range []struct {
		since int64
		max   int
		want  []zone.Change
	}{
		{1, 1, want[:1]},
		{2, 2, want[1:4]},
		{3, 1, want[2:4]},
		{4, 5, want[4:]},
	} {
		got, err := db.ChangesSince(ctx, tc.since, tc.max)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("since %d max %d: %+v %v", tc.since, tc.max, got, err)
		}
	}
}

func TestJournalPruning(t *testing.T) {
	t.Parallel()
	db := openTest(t, func(c *Config) { c.JournalMaxRows = 3 })
	ctx := t.Context()
	for i := range 5 {
		add(t, db, "p.example.org.", fmt.Sprintf("v%d", i)) // serials 2..6
	}
	n, err := db.PruneJournal(ctx, time.Now())
	if err != nil || n != 2 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if _, err := db.ChangesSince(ctx, 2, 10); !errors.Is(err, zone.ErrGap) {
		t.Fatalf("pruned serial: %v", err)
	}
	if ch, err := db.ChangesSince(ctx, 3, 10); err != nil || len(ch) != 3 {
		t.Fatalf("kept serials: %v %v", ch, err)
	}
	// By age: everything is old, but the latest serial's rows stay.
	_, _, _ = db.RemoveAllValues(ctx, "p.example.org.") // serial 7, five rows
	if _, err := db.PruneJournal(ctx, time.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	j := journal(t, db)
	if len(j) != 5 || j[0].Serial != 7 {
		t.Fatalf("journal after age pruning: %+v", j)
	}
	if ch, err := db.ChangesSince(ctx, 6, 10); err != nil || len(ch) != 5 {
		t.Fatalf("latest serial: %v %v", ch, err)
	}
}

func TestSnapshotConsistency(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	// One sequential writer: every serial after 1 adds exactly one value, so
	// a snapshot at serial s must hold exactly s-1 values.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.AddValue(ctx, AddRequest{Name: fmt.Sprintf("s%d.example.org.", i/20), Value: fmt.Sprintf("v%d", i), TTL: 60, ExpiresAt: future}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var last zone.Snapshot
	for range 50 {
		snap, err := db.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(snap.Values)) != snap.Serial-1 {
			t.Fatalf("snapshot at serial %d holds %d values", snap.Serial, len(snap.Values))
		}
		// Following the journal from the previous snapshot reaches this one.
		if last.Serial != 0 && snap.Serial > last.Serial {
			ch, err := db.ChangesSince(ctx, last.Serial, int(snap.Serial-last.Serial))
			if err != nil {
				t.Fatal(err)
			}
			next, err := apply(last, ch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(next, snap) {
				t.Fatalf("journal from %d does not reach snapshot %d", last.Serial, snap.Serial)
			}
		}
		last = snap
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}

func TestGenerations(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	if g, err := db.Generation(ctx, "configs"); err != nil || g != 0 {
		t.Fatalf("never bumped: %d %v", g, err)
	}
	for want := int64(1); want <= 3; want++ {
		g, err := db.BumpGeneration(ctx, "configs")
		if err != nil || g != want {
			t.Fatalf("bump: %d %v", g, err)
		}
	}
	if g, _ := db.Generation(ctx, "configs"); g != 3 {
		t.Fatalf("generation %d", g)
	}
	s := serialOf(t, db)
	if err := db.CreateToken(ctx, Token{ClientID: "c1", SecretHash: []byte{1}, Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	if g, _ := db.Generation(ctx, GenTokens); g != 1 {
		t.Fatalf("tokens generation %d after create", g)
	}
	if serialOf(t, db) != s {
		t.Fatal("a token write bumped the zone serial")
	}
	// A refused write bumps nothing.
	if err := db.CreateToken(ctx, Token{ClientID: "c1", SecretHash: []byte{1}, Role: "admin"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate token: %v", err)
	}
	if g, _ := db.Generation(ctx, GenTokens); g != 1 {
		t.Fatalf("tokens generation %d after a refused create", g)
	}
}

func TestSerialArithmetic(t *testing.T) {
	t.Parallel()
	if SerialPublished(1<<32+5) != 5 || SerialPublished(42) != 42 {
		t.Fatal("SerialPublished is not mod 2^32")
	}
	for _, tc := range []struct {
		a, b uint32
		less bool
	}{
		{1, 2, true},
		{2, 1, false},
		{5, 5, false},
		{0xFFFFFFFF, 0, true}, // wrap-around
		{0xFFFFFF00, 0x10, true},
		{0x10, 0xFFFFFF00, false},
		{0, 1<<31 - 1, true},
		{0, 1 << 31, false}, // exactly half-way: undefined, neither is less
		{1 << 31, 0, false},
	} {
		if got := SerialLess(tc.a, tc.b); got != tc.less {
			t.Errorf("SerialLess(%#x, %#x) = %v", tc.a, tc.b, got)
		}
	}
	// A restore's jump keeps the new serial newer after wrapping.
	old := int64(1<<32 - 10)
	if !SerialLess(SerialPublished(old), SerialPublished(old+restoreMaxJump)) {
		t.Fatal("maximum restore jump is not seen as newer")
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	if _, err := db.TokenByClientID(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent token: %v", err)
	}
	if err := db.CreateToken(ctx, Token{ClientID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token without hash or role: %v", err)
	}
	exp := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond)
	tok := Token{ClientID: "cid", SecretHash: []byte{0xde, 0xad}, Name: "bootstrap", Role: "admin", ExpiresAt: exp}
	if err := db.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := db.TokenByClientID(ctx, "cid")
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientID != "cid" || string(got.SecretHash) != "\xde\xad" || got.Name != "bootstrap" || got.Role != "admin" ||
		!got.ExpiresAt.Equal(exp) || got.CreatedAt.IsZero() || !got.RevokedAt.IsZero() || !got.LastUsedAt.IsZero() {
		t.Fatalf("token %+v", got)
	}
	if n, err := db.CountTokens(ctx); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	used := time.Now().Truncate(time.Millisecond)
	if err := db.TouchToken(ctx, "cid", used.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := db.TouchToken(ctx, "cid", used); err != nil {
		t.Fatal(err)
	}
	// Touches are written by a later batch: any write waits for them.
	if err := db.SetMeta(ctx, "flush", "1"); err != nil {
		t.Fatal(err)
	}
	got, _ = db.TokenByClientID(ctx, "cid")
	if !got.LastUsedAt.Equal(used) {
		t.Fatalf("last used %v, want %v", got.LastUsedAt, used)
	}
	if g, _ := db.Generation(ctx, GenTokens); g != 1 {
		t.Fatalf("touch bumped the tokens generation to %d", g)
	}
}

func TestTouchFlushedOnClose(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/hub.db"
	db, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateToken(t.Context(), Token{ClientID: "c", SecretHash: []byte{1}, Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_000)
	if err := db.TouchToken(t.Context(), "c", at); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest2(t, path)
	if tok, _ := db.TokenByClientID(t.Context(), "c"); !tok.LastUsedAt.Equal(at) {
		t.Fatalf("last used %v", tok.LastUsedAt)
	}
}

func openTest2(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestMetaAndIsEmpty(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		fill func(db *DB) error
	}{
		{"token", func(db *DB) error {
			return db.CreateToken(ctx, Token{ClientID: "c", SecretHash: []byte{1}, Role: "admin"})
		}},
		{"value", func(db *DB) error {
			_, err := db.AddValue(ctx, AddRequest{Name: "a.example.org.", Value: "v", ExpiresAt: future})
			return err
		}},
		{"name", func(db *DB) error { _, _, err := db.AddName(ctx, "a.example.org.", ""); return err }},
		{"key check", func(db *DB) error { return db.SetMeta(ctx, MetaKeyCheck, "abc") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, nil)
			if empty, err := db.IsEmpty(ctx); err != nil || !empty {
				t.Fatalf("fresh database: empty=%v err=%v", empty, err)
			}
			if err := tc.fill(db); err != nil {
				t.Fatal(err)
			}
			if empty, err := db.IsEmpty(ctx); err != nil || empty {
				t.Fatalf("after %s: empty=%v err=%v", tc.name, empty, err)
			}
		})
	}
	db := openTest(t, nil)
	if _, err := db.Meta(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := db.SetMeta(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Meta(ctx, "k"); err != nil || got != v {
			t.Fatalf("meta = %q %v", got, err)
		}
	}
	if _, err := db.Meta(ctx, "created_at"); err != nil {
		t.Fatalf("created_at: %v", err)
	}
	if empty, _ := db.IsEmpty(ctx); !empty {
		t.Fatal("other meta keys made the database non-empty")
	}
}
