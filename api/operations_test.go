package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the operation store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestOps(t *testing.T, cfg opStoreConfig) (*opStore, *fakeClock) {
	t.Helper()
	o := newOpStore(cfg, slog.New(slog.DiscardHandler))
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	o.now = clock.now
	t.Cleanup(func() { _ = o.shutdown(context.Background()) })
	return o, clock
}

// waitFor polls the store until the operation reaches status.
func waitFor(t *testing.T, o *opStore, id, status string) operation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		op, ok := o.get(id)
		if !ok {
			t.Fatalf("operation %s vanished", id)
		}
		if op.Status == status {
			return op
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("operation %s never reached %s", id, status)
	return operation{}
}

func TestOperationLifecycle(t *testing.T) {
	t.Parallel()
	o, clock := newTestOps(t, opStoreConfig{})
	release := make(chan struct{})
	op, err := o.begin(t.Context(), "p1", "the request", func(context.Context) (any, bool) {
		<-release
		return "the result", true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(op.ID) < 26 || op.Status != opPending || op.Request != "the request" || op.Result != nil || op.completed() {
		t.Fatalf("new operation: %+v", op)
	}
	running := waitFor(t, o, op.ID, opRunning)
	if running.Started.IsZero() || !running.Ended.IsZero() {
		t.Fatalf("running operation: %+v", running)
	}
	clock.add(time.Second)
	close(release)
	done := waitFor(t, o, op.ID, opSucceeded)
	if done.Result != "the result" || !done.completed() || !done.Ended.Equal(clock.now()) || !done.Updated.Equal(done.Ended) {
		t.Fatalf("completed operation: %+v", done)
	}

	failed, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) { return "why", false })
	if err != nil {
		t.Fatal(err)
	}
	if op := waitFor(t, o, failed.ID, opFailed); op.Result != "why" {
		t.Fatalf("failed operation: %+v", op)
	}
	panicked, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) { panic("boom") })
	if err != nil {
		t.Fatal(err)
	}
	if op := waitFor(t, o, panicked.ID, opFailed); op.Result != nil {
		t.Fatalf("panicked operation: %+v", op)
	}
	if _, ok := o.get("no-such-id"); ok {
		t.Fatal("unknown id found")
	}
}

func TestOperationIDsAreUnique(t *testing.T) {
	t.Parallel()
	o, _ := newTestOps(t, opStoreConfig{PerOwner: 1000})
	seen := map[string]bool{}
	for range 1000 {
		op, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) { return nil, true })
		if err != nil {
			t.Fatal(err)
		}
		if seen[op.ID] {
			t.Fatalf("id %s issued twice", op.ID)
		}
		seen[op.ID] = true
	}
}

// TestOperationContext: the work outlives the request that started it, is
// bounded by the timeout, and keeps the request's values (its id for logs).
func TestOperationContext(t *testing.T) {
	t.Parallel()
	o, _ := newTestOps(t, opStoreConfig{Timeout: time.Hour})
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "req-1"))
	cancel() // the client has gone
	got := make(chan string, 1)
	if _, err := o.begin(parent, "p1", nil, func(ctx context.Context) (any, bool) {
		deadline, ok := ctx.Deadline()
		if ctx.Err() != nil || !ok || time.Until(deadline) > time.Hour || ctx.Value(key{}) != "req-1" {
			got <- fmt.Sprintf("err %v, deadline %v %v, value %v", ctx.Err(), deadline, ok, ctx.Value(key{}))
		}
		close(got)
		return nil, true
	}); err != nil {
		t.Fatal(err)
	}
	if problem, bad := <-got; bad {
		t.Fatalf("operation context: %s", problem)
	}
}

func TestOperationConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	o, _ := newTestOps(t, opStoreConfig{Workers: 2})
	var running, most atomic.Int32
	release := make(chan struct{})
	var ids []string
	for range 6 {
		op, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil, true
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, op.ID)
	}
	// Two run; the other four stay pending while the two hold their slots.
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	pending := 0
	for _, id := range ids {
		if op, _ := o.get(id); op.Status == opPending {
			pending++
		}
	}
	if running.Load() != 2 || pending != 4 {
		t.Fatalf("%d running, %d pending; want 2 and 4", running.Load(), pending)
	}
	close(release)
	for _, id := range ids {
		waitFor(t, o, id, opSucceeded)
	}
	if most.Load() != 2 {
		t.Fatalf("%d ran at once, want at most 2", most.Load())
	}
}

func TestOperationsFullAndExpiry(t *testing.T) {
	t.Parallel()
	o, clock := newTestOps(t, opStoreConfig{Max: 3, Keep: time.Hour, MinKeep: 2 * time.Minute})
	release := make(chan struct{})
	defer close(release)
	blocked := func(context.Context) (any, bool) { <-release; return nil, true }
	quick := func(context.Context) (any, bool) { return "done", true }

	first, err := o.begin(t.Context(), "p1", nil, quick)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, o, first.ID, opSucceeded)
	clock.add(time.Minute)
	second, err := o.begin(t.Context(), "p1", nil, quick)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, o, second.ID, opSucceeded)
	clock.add(2 * time.Minute) // both completed MinKeep ago or more
	if _, err := o.begin(t.Context(), "p1", nil, blocked); err != nil {
		t.Fatal(err)
	}
	// Full: the oldest completed operation makes room, then the next.
	if _, err := o.begin(t.Context(), "p1", nil, blocked); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.get(first.ID); ok {
		t.Fatal("the oldest completed operation was not dropped")
	}
	if _, ok := o.get(second.ID); !ok {
		t.Fatal("a newer completed operation was dropped")
	}
	if _, err := o.begin(t.Context(), "p1", nil, blocked); err != nil {
		t.Fatal(err)
	}
	// Every slot holds an unfinished operation now.
	if _, err := o.begin(t.Context(), "p1", nil, blocked); !errors.Is(err, errOpsFull) {
		t.Fatalf("begin on a full store: %v", err)
	}

	// Expiry: readable for Keep after completion, then gone.
	o2, clock2 := newTestOps(t, opStoreConfig{Keep: time.Hour})
	op, err := o2.begin(t.Context(), "p1", nil, quick)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, o2, op.ID, opSucceeded)
	clock2.add(time.Hour)
	if _, ok := o2.get(op.ID); !ok {
		t.Fatal("expired too early")
	}
	clock2.add(time.Second)
	if _, ok := o2.get(op.ID); ok {
		t.Fatal("still readable after Keep")
	}
	if _, err := o2.begin(t.Context(), "p1", nil, quick); err != nil {
		t.Fatal(err)
	}
	o2.mu.Lock()
	_, kept := o2.byID[op.ID]
	o2.mu.Unlock()
	if kept {
		t.Fatal("the expired operation was not pruned")
	}
}

// TestOperationsFairness: one owner cannot take every slot, and a busy
// store does not drop another client's result before its next poll.
func TestOperationsFairness(t *testing.T) {
	t.Parallel()
	o, clock := newTestOps(t, opStoreConfig{Max: 4, PerOwner: 2, MinKeep: 2 * time.Minute})
	releases := map[string]chan struct{}{}
	t.Cleanup(func() {
		for _, c := range releases {
			close(c)
		}
	})
	start := func(owner string) (operation, error) {
		release := make(chan struct{})
		op, err := o.begin(t.Context(), owner, nil, func(context.Context) (any, bool) { <-release; return "done", true })
		if err == nil {
			releases[op.ID] = release
		}
		return op, err
	}
	finish := func(id string) {
		close(releases[id])
		delete(releases, id)
		waitFor(t, o, id, opSucceeded)
	}

	a1, err := start("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := start("alice"); !errors.Is(err, errOpsOwnerFull) {
		t.Fatalf("alice's third unfinished operation: %v", err)
	}
	// Another owner is not affected by alice's cap.
	bob, err := start("bob")
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	// A finished operation no longer counts against its owner.
	finish(a1.ID)
	if _, err := start("alice"); err != nil {
		t.Fatalf("alice after one finished: %v", err)
	}
	// Full now (4 held), and both finished operations are young.
	clock.add(time.Minute)
	finish(bob.ID)
	if _, err := start("carol"); !errors.Is(err, errOpsFull) {
		t.Fatalf("full store whose finished operations are young: %v", err)
	}
	clock.add(time.Minute - time.Second)
	if _, err := start("carol"); !errors.Is(err, errOpsFull) {
		t.Fatalf("just before MinKeep: %v", err)
	}
	for _, id := range []string{a1.ID, bob.ID} {
		if _, ok := o.get(id); !ok {
			t.Fatalf("young finished operation %s was dropped", id)
		}
	}
	clock.add(time.Second) // a1 finished MinKeep ago, bob a minute later
	if _, err := start("carol"); err != nil {
		t.Fatalf("after MinKeep: %v", err)
	}
	if _, ok := o.get(a1.ID); ok {
		t.Fatal("the old finished operation was not dropped to make room")
	}
	if _, ok := o.get(bob.ID); !ok {
		t.Fatal("the young finished operation was dropped")
	}
	if _, err := start("dave"); !errors.Is(err, errOpsFull) {
		t.Fatalf("full again, bob's result still young: %v", err)
	}
}

func TestOperationsShutdown(t *testing.T) {
	t.Parallel()
	t.Run("waits", func(t *testing.T) {
		t.Parallel()
		o, _ := newTestOps(t, opStoreConfig{Workers: 1})
		release := make(chan struct{})
		var finished atomic.Int32
		for range 3 { // one running, two pending: all must finish
			if _, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) {
				<-release
				finished.Add(1)
				return nil, true
			}); err != nil {
				t.Fatal(err)
			}
		}
		errc := make(chan error, 1)
		go func() { errc <- o.shutdown(t.Context()) }()
		// New operations are refused as soon as shutdown began.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) { return nil, true })
			if errors.Is(err, errOpsClosed) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("begin during shutdown: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
		select {
		case err := <-errc:
			t.Fatalf("shutdown returned %v before the operations finished", err)
		default:
		}
		close(release)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if finished.Load() != 3 {
			t.Fatalf("%d operations finished, want 3", finished.Load())
		}
	})
	t.Run("gives up and cancels", func(t *testing.T) {
		t.Parallel()
		o, _ := newTestOps(t, opStoreConfig{Timeout: time.Hour})
		cancelled := make(chan struct{})
		if _, err := o.begin(t.Context(), "p1", nil, func(ctx context.Context) (any, bool) {
			<-ctx.Done()
			close(cancelled)
			return nil, false
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := o.shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("shutdown with an ended context: %v", err)
		}
		<-cancelled // the operation's context was cancelled
	})
}
