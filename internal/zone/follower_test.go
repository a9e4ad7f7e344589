package zone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource is a map-based Source: a journal of committed changes, of which
// the ones up to trimmed are gone (ErrGap), and the state they lead to.
type fakeSource struct {
	mu      sync.Mutex
	serial  int64
	journal []Change
	trimmed int64
	values  map[string]map[string]uint32
	names   map[string]bool
	fail    error // returned by every method while set

	snapshots atomic.Int32
}

func newFakeSource() *fakeSource {
	return &fakeSource{values: map[string]map[string]uint32{}, names: map[string]bool{}}
}

// commit writes one transaction and returns its changes with their serial.
func (s *fakeSource) commit(changes ...Change) []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serial++
	out := make([]Change, len(changes))
	for i, c := range changes {
		c.Serial = s.serial
		out[i] = c
		switch c.Op {
		case OpAddValue:
			if s.values[c.Name] == nil {
				s.values[c.Name] = map[string]uint32{}
			}
			s.values[c.Name][c.Value] = c.TTL
		case OpRemoveValue:
			delete(s.values[c.Name], c.Value)
		case OpAddName:
			s.names[c.Name] = true
		case OpRemoveName:
			delete(s.names, c.Name)
		}
	}
	s.journal = append(s.journal, out...)
	return out
}

func (s *fakeSource) trim() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trimmed = s.serial
	s.journal = nil
}

func (s *fakeSource) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *fakeSource) Serial(_ context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serial, s.fail
}

func (s *fakeSource) Snapshot(_ context.Context) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return Snapshot{}, s.fail
	}
	s.snapshots.Add(1)
	snap := Snapshot{Serial: s.serial}
	for name, vals := range s.values {
		for v, ttl := range vals {
			snap.Values = append(snap.Values, Value{Name: name, Value: v, TTL: ttl})
		}
	}
	for name := range s.names {
		snap.Names = append(snap.Names, name)
	}
	return snap, nil
}

func (s *fakeSource) ChangesSince(_ context.Context, since int64, maxSerials int) ([]Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	if since < s.trimmed && s.serial > since {
		return nil, fmt.Errorf("changes since %d: %w", since, ErrGap)
	}
	var out []Change
	for _, c := range s.journal {
		if c.Serial > since && c.Serial <= since+int64(maxSerials) {
			out = append(out, c)
		}
	}
	return out, nil
}

func addValue(name, value string) Change {
	return Change{Op: OpAddValue, Name: name + "." + testOrigin, Value: value, TTL: 60}
}

func startFollower(t *testing.T, src Source, poll time.Duration) (*Follower, *View) {
	t.Helper()
	v := NewView(testOrigin)
	f := NewFollower(src, v, nil, poll)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-f.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("follower never became ready")
	}
	return f, v
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestFollowerLoadsAndPolls(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.commit(addValue("before", "v1"))
	_, v := startFollower(t, src, 5*time.Millisecond)
	if v.Serial() != 1 || v.Lookup("before."+testOrigin).Kind != KindTXT {
		t.Fatalf("initial load: serial %d", v.Serial())
	}
	// Another process writes: the poll loop notices.
	src.commit(addValue("later", "v2"), Change{Op: OpAddName, Name: "label." + testOrigin})
	eventually(t, "poll to apply serial 2", func() bool { return v.Serial() == 2 })
	if v.Lookup("later."+testOrigin).Kind != KindTXT || v.Lookup("label."+testOrigin).Kind != KindNoData {
		t.Fatal("polled changes not visible")
	}
	if n := src.snapshots.Load(); n != 1 {
		t.Fatalf("%d snapshot loads, want 1", n)
	}
}

func TestFollowerDeliver(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	f, v := startFollower(t, src, time.Hour) // the poll loop stays out of the way
	for i := range 5 {
		f.Deliver(src.commit(addValue(fmt.Sprint("d", i), "v")))
		if v.Serial() != int64(i+1) {
			t.Fatalf("after Deliver %d: serial %d", i, v.Serial())
		}
	}
	// A commit whose delivery was lost: the next Deliver catches up
	// synchronously from the journal.
	src.commit(addValue("lost", "v"))
	f.Deliver(src.commit(addValue("next", "v")))
	if v.Serial() != 7 || v.Lookup("lost."+testOrigin).Kind != KindTXT {
		t.Fatalf("Deliver after a gap: serial %d", v.Serial())
	}
	// Redelivery is harmless.
	f.Deliver([]Change{{Serial: 7, Op: OpRemoveValue, Name: "next." + testOrigin, Value: "v"}})
	if v.Lookup("next."+testOrigin).Kind != KindTXT {
		t.Fatal("a redelivered (old) change was applied")
	}
	if n := src.snapshots.Load(); n != 1 {
		t.Fatalf("%d snapshot loads, want 1", n)
	}
}

func TestFollowerReloadsOnGap(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	f, v := startFollower(t, src, time.Hour)
	src.commit(addValue("a", "1"))
	src.commit(addValue("b", "1"))
	src.trim() // the journal no longer has serials 1-2
	f.Deliver(src.commit(addValue("c", "1")))
	if v.Serial() != 3 {
		t.Fatalf("serial %d, want 3", v.Serial())
	}
	for _, n := range []string{"a", "b", "c"} {
		if v.Lookup(n+"."+testOrigin).Kind != KindTXT {
			t.Errorf("%s missing after reload", n)
		}
	}
	if n := src.snapshots.Load(); n != 2 {
		t.Fatalf("%d snapshot loads, want 2", n)
	}
}

func TestFollowerSourceErrorsKeepServing(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.commit(addValue("a", "1"))
	_, v := startFollower(t, src, 2*time.Millisecond)
	src.setFail(errors.New("database is locked"))
	src.mu.Lock()
	src.serial++ // as if a write happened that we cannot read yet
	src.journal = append(src.journal, Change{Serial: src.serial, Op: OpAddValue, Name: "b." + testOrigin, Value: "1", TTL: 60})
	src.values["b."+testOrigin] = map[string]uint32{"1": 60}
	src.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	if v.Lookup("a."+testOrigin).Kind != KindTXT || v.Serial() != 1 {
		t.Fatal("view stopped serving while the source failed")
	}
	src.setFail(nil)
	eventually(t, "recovery", func() bool { return v.Serial() == 2 })
}

func TestFollowerSerialGoesBack(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.commit(addValue("a", "1"))
	src.commit(addValue("b", "1"))
	_, v := startFollower(t, src, 2*time.Millisecond)
	// A restore from an older backup without moving the serial forward.
	restored := newFakeSource()
	restored.commit(addValue("r", "1"))
	src.mu.Lock()
	src.serial, src.journal, src.values, src.names = restored.serial, restored.journal, restored.values, restored.names
	src.mu.Unlock()
	eventually(t, "reload after the serial went back", func() bool {
		return v.Serial() == 1 && v.Lookup("r."+testOrigin).Kind == KindTXT
	})
	if v.Lookup("a."+testOrigin).Kind != KindNXDomain {
		t.Fatal("old content survived")
	}
}

func TestFollowerConcurrentDeliverAndPoll(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	f, v := startFollower(t, src, time.Millisecond)
	var wg sync.WaitGroup
	var deliverMu sync.Mutex // Deliver is called in commit order, like the store's writer does
	const writers, perWriter = 4, 100
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				deliverMu.Lock()
				changes := src.commit(addValue(fmt.Sprintf("w%d-%d", w, i), "v"))
				// Every third commit is "lost" in process: only the poll
				// loop or the next Deliver's catch-up brings it.
				if i%3 != 0 {
					f.Deliver(changes)
					if v.Serial() < changes[0].Serial {
						t.Errorf("Deliver returned before serial %d was visible", changes[0].Serial)
					}
				}
				deliverMu.Unlock()
				f.Notify()
			}
		})
	}
	wg.Wait()
	eventually(t, "all serials", func() bool { return v.Serial() == writers*perWriter })
	if v.Len() != writers*perWriter {
		t.Fatalf("Len %d", v.Len())
	}
	if n := src.snapshots.Load(); n != 1 {
		t.Fatalf("%d snapshot loads, want 1", n)
	}
}

func TestFollowerCatchUp(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	f, v := startFollower(t, src, time.Hour)
	src.commit(addValue("a", "1"))
	src.commit(addValue("b", "1"))
	if err := f.CatchUp(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if v.Serial() != 2 {
		t.Fatalf("serial %d", v.Serial())
	}
	// A serial the source does not have yet: wait until it does or ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if err := f.CatchUp(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CatchUp to a future serial: %v", err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		src.commit(addValue("c", "1"))
	}()
	if err := f.CatchUp(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
}

func TestFollowerDeliverBeforeRun(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.commit(addValue("a", "1"))
	v := NewView(testOrigin)
	f := NewFollower(src, v, nil, 0)
	f.Deliver(src.commit(addValue("b", "1")))
	select {
	case <-f.Ready():
	default:
		t.Fatal("not ready after a Deliver that loaded the snapshot")
	}
	got := v.Snapshot()
	var names []string
	for _, val := range got.Values {
		names = append(names, val.Name)
	}
	if got.Serial != 2 || !slices.Equal(names, []string{"a." + testOrigin, "b." + testOrigin}) {
		t.Fatalf("snapshot %+v", got)
	}
}

func TestFollowerInitialLoadRetries(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.setFail(errors.New("not yet"))
	v := NewView(testOrigin)
	f := NewFollower(src, v, nil, time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	time.Sleep(10 * time.Millisecond)
	if v.Loaded() {
		t.Fatal("loaded from a failing source")
	}
	src.setFail(nil)
	select {
	case <-f.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("never loaded after the source recovered")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollowerLogsFailuresSparingly(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	var logs syncBuffer
	v := NewView(testOrigin)
	f := NewFollower(src, v, slog.New(slog.NewTextHandler(&logs, nil)), time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	<-f.Ready()
	src.setFail(errors.New("connection refused"))
	time.Sleep(50 * time.Millisecond) // about 50 failing polls
	src.setFail(nil)
	eventually(t, "recovery line", func() bool { return bytes.Contains([]byte(logs.String()), []byte("reachable again")) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count([]byte(logs.String()), []byte("level=WARN")); n != 1 {
		t.Fatalf("%d warnings for one outage, want 1:\n%s", n, logs.String())
	}
}
