package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

func sortSnapshot(s *zone.Snapshot) {
	slices.SortFunc(s.Values, func(a, b zone.Value) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Value, b.Value))
	})
	slices.Sort(s.Names)
}

func TestOpenSetsPragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"NORMAL", "FULL"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, func(c *Config) { c.Synchronous = strings.ToLower(mode); c.ReadConns = 3 })
			want := map[string]int{"NORMAL": 1, "FULL": 2}[mode]
			ctx := t.Context()
			// Hold every read connection at once so each is checked.
			var conns []interface{ Close() error }
			for range 3 {
				c, err := db.r.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				var mode string
				var fk, syn, busy int
				if err := c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
					t.Fatal(err)
				}
				if err := c.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
					t.Fatal(err)
				}
				if err := c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syn); err != nil {
					t.Fatal(err)
				}
				if err := c.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
					t.Fatal(err)
				}
				if mode != "wal" || fk != 1 || syn != want || busy != 5000 {
					t.Errorf("read conn: journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d", mode, fk, syn, busy)
				}
			}
			for _, c := range conns {
				_ = c.Close()
			}
			var syn int
			if err := db.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syn); err != nil || syn != want {
				t.Errorf("write conn synchronous=%d err=%v", syn, err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no path", Config{}},
		{"query in path", Config{Path: "a?b"}},
		{"bad synchronous", Config{Path: "x", Synchronous: "OFF"}},
		{"negative cap", Config{Path: "x", MaxValuesPerName: -1}},
		{"negative journal age", Config{Path: "x", JournalMaxAge: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Open(t.Context(), tc.cfg); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Open: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestValueSet(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	const name = "_acme-challenge.example.org."
	s0 := serialOf(t, db)
	s1 := add(t, db, name, "domain-value")
	s2 := add(t, db, name, "wildcard-value")
	add(t, db, "other.example.net.", "x")
	if s0 >= s1 || s1 >= s2 {
		t.Fatalf("serials %d %d %d not increasing", s0, s1, s2)
	}
	if got := values(t, db, name); !reflect.DeepEqual(got, []string{"domain-value", "wildcard-value"}) {
		t.Fatalf("values = %v", got)
	}
	recs, err := db.ListValues(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.Name != name || r.TTL != 60 || r.CreatedBy != "test" || r.CreatedAt.IsZero() ||
		r.ExpiresAt.UnixMilli() != future.UnixMilli() {
		t.Fatalf("record = %+v", r)
	}
	if got := values(t, db, "nothing.example.org."); got != nil {
		t.Fatalf("values of absent name = %v", got)
	}
}

func TestListAllPages(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("n%d.example.org.", i)
		for j := range 3 {
			v := fmt.Sprintf("v%d", j)
			add(t, db, name, v)
			want = append(want, name+" "+v)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		recs, err := db.ListAll(t.Context(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			if pages != 4 {
				t.Errorf("%d pages, want 4", pages)
			}
			break
		}
		if len(recs) > 6 {
			t.Fatalf("page of %d records for 2 names", len(recs))
		}
		for _, r := range recs {
			got = append(got, r.Name+" "+r.Value)
		}
		after = recs[len(recs)-1].Name
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages = %v\nwant %v", got, want)
	}
	if _, err := db.ListAll(t.Context(), "", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("limit 0: %v", err)
	}
}

func TestCapPerName(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	const name = "full.example.org."
	for i := range DefaultMaxValuesPerName {
		add(t, db, name, fmt.Sprintf("value-%02d", i))
	}
	before := serialOf(t, db)
	journalLen := len(journal(t, db))
	_, err := db.AddValue(t.Context(), AddRequest{Name: name, Value: "value-33", TTL: 60, ExpiresAt: future})
	if !errors.Is(err, ErrTooManyValues) {
		t.Fatalf("33rd value: %v, want ErrTooManyValues", err)
	}
	if !strings.Contains(err.Error(), "32 values") || !strings.Contains(err.Error(), name) {
		t.Errorf("message %q should name the name and the cap", err)
	}
	if got := len(values(t, db, name)); got != 32 {
		t.Fatalf("%d values stored, want 32", got)
	}
	if s := serialOf(t, db); s != before {
		t.Fatalf("serial moved %d -> %d on a refused write", before, s)
	}
	if n := len(journal(t, db)); n != journalLen {
		t.Fatalf("journal grew on a refused write")
	}
	// Refreshing a value already there is not a new value.
	if _, err := db.AddValue(t.Context(), AddRequest{Name: name, Value: "value-00", TTL: 90, ExpiresAt: future}); err != nil {
		t.Fatalf("refresh at the cap: %v", err)
	}
	// Another name is unaffected.
	add(t, db, "other.example.org.", "value-33")
}

func TestCapPerCreator(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	req := AddRequest{TTL: 60, ExpiresAt: future, CreatedBy: "alice", MaxPerCreator: 2}
	for i := range 2 {
		req.Name, req.Value = fmt.Sprintf("n%d.example.org.", i), "v"
		if _, err := db.AddValue(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	req.Name = "n9.example.org."
	if _, err := db.AddValue(t.Context(), req); !errors.Is(err, ErrTooManyValues) {
		t.Fatalf("third value of alice: %v", err)
	}
	req.CreatedBy = "bob"
	if _, err := db.AddValue(t.Context(), req); err != nil {
		t.Fatalf("bob: %v", err)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	const name = "r.example.org."
	s1 := add(t, db, name, "v")
	created := mustList(t, db, name)[0].CreatedAt
	later := future.Add(time.Hour)
	s2, err := db.AddValue(t.Context(), AddRequest{Name: name, Value: "v", TTL: 300, ExpiresAt: later, CreatedBy: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if s2 != s1+1 {
		t.Fatalf("refresh serial %d, want %d", s2, s1+1)
	}
	recs := mustList(t, db, name)
	if len(recs) != 1 || recs[0].TTL != 300 || recs[0].ExpiresAt.UnixMilli() != later.UnixMilli() ||
		recs[0].CreatedBy != "test" || !recs[0].CreatedAt.Equal(created) {
		t.Fatalf("after refresh: %+v", recs)
	}
	j := journal(t, db)
	if last := j[len(j)-1]; last != (zone.Change{Serial: s2, Op: zone.OpAddValue, Name: name, Value: "v", TTL: 300}) {
		t.Fatalf("journal row %+v", last)
	}
}

func mustList(t *testing.T, db *DB, name string) []Record {
	t.Helper()
	recs, err := db.ListValues(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRemove(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const name = "rm.example.org."
	add(t, db, name, "a")
	add(t, db, name, "b")
	s := add(t, db, name, "c")

	s1, removed, err := db.RemoveValue(ctx, name, "b")
	if err != nil || !removed || s1 != s+1 {
		t.Fatalf("remove b: serial %d removed %v err %v", s1, removed, err)
	}
	if got := values(t, db, name); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Fatalf("values = %v", got)
	}
	s2, removed, err := db.RemoveValue(ctx, name, "b")
	if err != nil || removed || s2 != s1 {
		t.Fatalf("remove absent: serial %d (was %d) removed %v err %v", s2, s1, removed, err)
	}
	s3, n, err := db.RemoveAllValues(ctx, name)
	if err != nil || n != 2 || s3 != s1+1 {
		t.Fatalf("remove all: serial %d n %d err %v", s3, n, err)
	}
	if got := values(t, db, name); got != nil {
		t.Fatalf("values = %v", got)
	}
	s4, n, err := db.RemoveAllValues(ctx, name)
	if err != nil || n != 0 || s4 != s3 {
		t.Fatalf("remove all of nothing: serial %d n %d err %v", s4, n, err)
	}
	j := journal(t, db)
	want := []zone.Change{
		{Serial: s1, Op: zone.OpRemoveValue, Name: name, Value: "b"},
		{Serial: s3, Op: zone.OpRemoveValue, Name: name, Value: "a"},
		{Serial: s3, Op: zone.OpRemoveValue, Name: name, Value: "c"},
	}
	if got := j[len(j)-3:]; !reflect.DeepEqual(got, want) {
		t.Fatalf("journal tail %+v\nwant %+v", got, want)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const label = "abc123.hub.example.net."
	s1, added, err := db.AddName(ctx, label, "admin")
	if err != nil || !added {
		t.Fatalf("add name: %v %v", added, err)
	}
	if s, added, err := db.AddName(ctx, label, "admin"); err != nil || added || s != s1 {
		t.Fatalf("add again: serial %d added %v err %v", s, added, err)
	}
	add(t, db, label, "v1")
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(snap.Names, []string{label}) || len(snap.Values) != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	s3, removed, err := db.RemoveName(ctx, label)
	if err != nil || !removed {
		t.Fatalf("remove name: %v %v", removed, err)
	}
	if s, removed, err := db.RemoveName(ctx, label); err != nil || removed || s != s3 {
		t.Fatalf("remove again: %d %v %v", s, removed, err)
	}
	j := journal(t, db)
	want := []zone.Change{
		{Serial: s1, Op: zone.OpAddName, Name: label},
		{Serial: s1 + 1, Op: zone.OpAddValue, Name: label, Value: "v1", TTL: 60},
		{Serial: s3, Op: zone.OpRemoveValue, Name: label, Value: "v1"},
		{Serial: s3, Op: zone.OpRemoveName, Name: label},
	}
	if !reflect.DeepEqual(j, want) {
		t.Fatalf("journal %+v\nwant %+v", j, want)
	}
	if snap, _ := db.Snapshot(ctx); len(snap.Names)+len(snap.Values) != 0 {
		t.Fatalf("snapshot after removal %+v", snap)
	}
}

func TestInvalidInputStoresNothing(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ok := AddRequest{Name: "ok.example.org.", Value: "v", TTL: 60, ExpiresAt: future}
	for _, tc := range []struct {
		name string
		edit func(*AddRequest)
	}{
		{"no trailing dot", func(r *AddRequest) { r.Name = "ok.example.org" }},
		{"upper case", func(r *AddRequest) { r.Name = "OK.example.org." }},
		{"root", func(r *AddRequest) { r.Name = "." }},
		{"empty label", func(r *AddRequest) { r.Name = "a..example.org." }},
		{"long label", func(r *AddRequest) { r.Name = strings.Repeat("a", 64) + ".example.org." }},
		{"space in name", func(r *AddRequest) { r.Name = "a b.example.org." }},
		{"empty value", func(r *AddRequest) { r.Value = "" }},
		{"long value", func(r *AddRequest) { r.Value = strings.Repeat("v", 256) }},
		{"control in value", func(r *AddRequest) { r.Value = "a\nb" }},
		{"non-ascii value", func(r *AddRequest) { r.Value = "é" }},
		{"ttl too big", func(r *AddRequest) { r.TTL = 1 << 31 }},
		{"no expiry", func(r *AddRequest) { r.ExpiresAt = time.Time{} }},
		{"control in creator", func(r *AddRequest) { r.CreatedBy = "a\x00b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			if _, err := db.AddValue(t.Context(), req); !errors.Is(err, ErrInvalid) {
				t.Fatalf("AddValue: %v, want ErrInvalid", err)
			}
		})
	}
	if _, _, err := db.RemoveValue(t.Context(), "x.example.org", "v"); !errors.Is(err, ErrInvalid) {
		t.Errorf("RemoveValue bad name: %v", err)
	}
	if _, _, err := db.AddName(t.Context(), "X.example.org.", ""); !errors.Is(err, zone.ErrBadName) {
		t.Errorf("AddName bad name: %v", err)
	}
	if snap, _ := db.Snapshot(t.Context()); len(snap.Values) != 0 || snap.Serial != 1 {
		t.Fatalf("something was stored: %+v", snap)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	base := time.Now().Truncate(time.Millisecond)
	for i, exp := range []time.Duration{-time.Second, 10 * time.Second, 0, time.Hour} {
		if _, err := db.AddValue(ctx, AddRequest{Name: "sw.example.org.", Value: fmt.Sprintf("v%d", i), TTL: 60, ExpiresAt: base.Add(exp)}); err != nil {
			t.Fatal(err)
		}
	}
	before := serialOf(t, db)
	// Reads never filter by the clock: expired values are listed until swept.
	if got := values(t, db, "sw.example.org."); len(got) != 4 {
		t.Fatalf("before sweep: %v", got)
	}
	serial, n, err := db.Sweep(ctx, base)
	if err != nil || n != 2 || serial != before+1 {
		t.Fatalf("sweep: serial %d (was %d) removed %d err %v", serial, before, n, err)
	}
	if got := values(t, db, "sw.example.org."); !reflect.DeepEqual(got, []string{"v1", "v3"}) {
		t.Fatalf("after sweep: %v", got)
	}
	j := journal(t, db)
	want := []zone.Change{
		{Serial: serial, Op: zone.OpRemoveValue, Name: "sw.example.org.", Value: "v0"},
		{Serial: serial, Op: zone.OpRemoveValue, Name: "sw.example.org.", Value: "v2"},
	}
	if !reflect.DeepEqual(j[len(j)-2:], want) {
		t.Fatalf("journal tail %+v", j[len(j)-2:])
	}
	if s, n, err := db.Sweep(ctx, base); err != nil || n != 0 || s != serial {
		t.Fatalf("empty sweep: serial %d removed %d err %v", s, n, err)
	}
	if s, n, err := db.Sweep(ctx, base.Add(2*time.Hour)); err != nil || n != 2 || s != serial+1 {
		t.Fatalf("late sweep: serial %d removed %d err %v", s, n, err)
	}
}

func TestSweepManyInChunks(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	// Inserted directly: thousands of AddValue calls would only slow the test.
	if _, err := db.w.Exec(`WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
		INSERT INTO txt_values (name, value, ttl, created_at, expires_at) SELECT 'n' || i || '.example.org.', 'v', 1, 1, 1 FROM seq`,
		sweepChunk+10); err != nil {
		t.Fatal(err)
	}
	before := serialOf(t, db)
	serial, n, err := db.Sweep(ctx, time.Now())
	if err != nil || n != sweepChunk+10 || serial != before+2 {
		t.Fatalf("sweep: serial %d (was %d) removed %d err %v", serial, before, n, err)
	}
}

func TestRunSweeper(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	if err := db.RunSweeper(t.Context(), 11*time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("11s interval: %v", err)
	}
	if _, err := db.AddValue(t.Context(), AddRequest{Name: "x.example.org.", Value: "v", ExpiresAt: time.Now().Add(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- db.RunSweeper(ctx, 20*time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(values(t, db, "x.example.org.")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("sweeper did not remove the expired value")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSerialStrictlyIncreasing(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	prev := serialOf(t, db)
	for i := range 20 {
		s := add(t, db, "inc.example.org.", fmt.Sprintf("v%d", i%5))
		if s != prev+1 {
			t.Fatalf("write %d: serial %d after %d", i, s, prev)
		}
		prev = s
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := openTest(t, func(c *Config) { c.Synchronous = "FULL" })
	const writers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			prev := int64(0)
			for i := range each {
				s, err := db.AddValue(context.Background(), AddRequest{
					Name: fmt.Sprintf("w%d-%d.example.org.", g, i/10), Value: fmt.Sprintf("v%d", i), TTL: 60, ExpiresAt: future})
				if err != nil {
					errs <- err
					return
				}
				if s <= prev {
					errs <- fmt.Errorf("writer %d: serial %d after %d", g, s, prev)
					return
				}
				prev = s
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	snap, err := db.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Values) != writers*each {
		t.Fatalf("%d values, want %d", len(snap.Values), writers*each)
	}
	// The journal replays to the same zone.
	changes, err := db.ChangesSince(t.Context(), 1, int(snap.Serial))
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := apply(zone.Snapshot{Serial: 1}, changes)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(replayed, snap) {
		t.Fatalf("journal replay differs from snapshot")
	}
	t.Logf("%d writes in %d serials", writers*each, snap.Serial-1)
	mustIntegrity(t, db)
}

// waitQueued waits until n requests sit in the writer's queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(db.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(db.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatchWithOneFailingRequest(t *testing.T) {
	t.Parallel()
	// The OnCommit hook holds the writer after the second commit so the
	// following requests queue up and run as one batch.
	hold := make(chan struct{})
	var commits [][]zone.Change
	db := openTest(t, func(c *Config) {
		c.MaxValuesPerName = 2
		c.OnCommit = func(ch []zone.Change) {
			commits = append(commits, ch)
			if len(commits) == 2 {
				<-hold
			}
		}
	})
	ctx := t.Context()
	add(t, db, "full.example.org.", "a")
	firstDone := make(chan int64)
	go func() { firstDone <- add(t, db, "full.example.org.", "b") }()
	// Wait until the writer is held inside the hook of the second commit.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := serialOf(t, db)
		if s == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second write did not commit")
		}
		time.Sleep(time.Millisecond)
	}
	type result struct {
		i      int
		serial int64
		err    error
	}
	cancelled, cancel := context.WithCancel(ctx)
	results := make(chan result, 4)
	reqs := []AddRequest{
		{Name: "ok1.example.org.", Value: "x"},
		{Name: "full.example.org.", Value: "c"}, // third value: refused
		{Name: "cancelled.example.org.", Value: "x"},
		{Name: "ok2.example.org.", Value: "x"},
	}
	for i, r := range reqs {
		r.TTL, r.ExpiresAt = 60, future
		c := ctx
		if i == 2 {
			c = cancelled
		}
		go func() {
			s, err := db.AddValue(c, r)
			results <- result{i, s, err}
		}()
		waitQueued(t, db, i+1)
	}
	cancel()
	res2 := <-results // the cancelled caller returns at once
	if res2.i != 2 || !errors.Is(res2.err, context.Canceled) {
		t.Fatalf("cancelled request: %+v", res2)
	}
	close(hold)
	if s := <-firstDone; s != 3 {
		t.Fatalf("held write serial %d", s)
	}
	got := map[int]result{}
	for range 3 {
		r := <-results
		got[r.i] = r
	}
	if got[0].err != nil || got[3].err != nil || got[0].serial != 4 || got[3].serial != 4 {
		t.Fatalf("good requests: %+v %+v", got[0], got[3])
	}
	if !errors.Is(got[1].err, ErrTooManyValues) {
		t.Fatalf("failing request: %+v", got[1])
	}
	if v := values(t, db, "full.example.org."); !reflect.DeepEqual(v, []string{"a", "b"}) {
		t.Fatalf("full name holds %v", v)
	}
	if v := values(t, db, "cancelled.example.org."); v != nil {
		t.Fatalf("cancelled request was stored: %v", v)
	}
	if len(commits) != 3 || len(commits[2]) != 2 || commits[2][0].Name != "ok1.example.org." || commits[2][1].Name != "ok2.example.org." {
		t.Fatalf("commits %+v", commits)
	}
}

func TestOnCommitOrderAndBeforeAck(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []int64
	var latest int64
	db := openTest(t, func(c *Config) {
		c.OnCommit = func(ch []zone.Change) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range ch {
				if c.Serial != ch[0].Serial {
					t.Errorf("one call mixes serials %d and %d", ch[0].Serial, c.Serial)
				}
			}
			seen = append(seen, ch[0].Serial)
			latest = ch[0].Serial
		}
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				s := add(t, db, fmt.Sprintf("g%d-%d.example.org.", g, i/10), fmt.Sprintf("v%d", i))
				mu.Lock()
				if latest < s {
					t.Errorf("acknowledged serial %d before OnCommit saw it (latest %d)", s, latest)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			t.Fatalf("OnCommit serials out of order: %v", seen)
		}
	}
	if seen[len(seen)-1] != serialOf(t, db) {
		t.Fatalf("last OnCommit serial %d, store at %d", seen[len(seen)-1], serialOf(t, db))
	}
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	db, err := Open(t.Context(), Config{Path: t.TempDir() + "/x.db"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := db.AddValue(t.Context(), AddRequest{Name: "a.example.org.", Value: "v", ExpiresAt: future}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// Two DBs on one file stand in for the server and the admin CLI writing at
// the same time: serials stay contiguous and the journal replays to the zone.
func TestTwoProcessesWriting(t *testing.T) {
	t.Parallel()
	a := openTest(t, nil)
	b := openTest2(t, a.cfg.Path)
	var wg sync.WaitGroup
	for i, db := range []*DB{a, b} {
		for g := range 4 {
			wg.Go(func() {
				for j := range 20 {
					if _, err := db.AddValue(context.Background(), AddRequest{
						Name: fmt.Sprintf("p%d-g%d-%d.example.org.", i, g, j/10), Value: fmt.Sprintf("v%d", j), TTL: 60, ExpiresAt: future}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	snap, err := b.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Values) != 2*4*20 {
		t.Fatalf("%d values", len(snap.Values))
	}
	changes, err := a.ChangesSince(t.Context(), 1, int(snap.Serial))
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := apply(zone.Snapshot{Serial: 1}, changes)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(replayed, snap) {
		t.Fatal("journal replay differs from snapshot")
	}
}
