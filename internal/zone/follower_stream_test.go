package zone

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// streamingSource is a fakeSource that also implements SnapshotStreamer,
// in reverse order, and can fail half-way through a stream.
type streamingSource struct {
	*fakeSource
	streams  atomic.Int32
	failHalf atomic.Bool
}

var errStreamCut = errors.New("connection lost mid-stream")

func (s *streamingSource) StreamSnapshot(ctx context.Context, sink SnapshotSink) (int64, error) {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	s.streams.Add(1)
	sink.Grow(len(snap.Values), len(snap.Names))
	for i := len(snap.Names) - 1; i >= 0; i-- {
		sink.Name(snap.Names[i])
	}
	for i := len(snap.Values) - 1; i >= 0; i-- {
		if s.failHalf.Load() && i == len(snap.Values)/2 {
			return 0, errStreamCut
		}
		sink.Value(snap.Values[i])
	}
	return snap.Serial, nil
}

func TestFollowerStreamsSnapshots(t *testing.T) {
	t.Parallel()
	src := &streamingSource{fakeSource: newFakeSource()}
	for i := range 20 {
		src.commit(addValue(fmt.Sprintf("n%d.deep", i%7), fmt.Sprint("v", i)),
			Change{Op: OpAddName, Name: fmt.Sprintf("label%d.%s", i%3, testOrigin)})
	}
	f, v := startFollower(t, src, time.Hour)
	if src.streams.Load() != 1 {
		t.Fatalf("%d streams, want 1", src.streams.Load())
	}
	// The same content as a Reset with the source's Snapshot.
	snap, _ := src.Snapshot(t.Context())
	want := NewView(testOrigin)
	want.Reset(snap)
	if got, w := fmt.Sprint(v.Snapshot()), fmt.Sprint(want.Snapshot()); got != w || v.Len() != want.Len() {
		t.Fatalf("streamed view\n%s\nwant\n%s", got, w)
	}
	if v.Lookup("deep."+testOrigin).Kind != KindEmptyNonTerminal {
		t.Fatal("empty non-terminal missing after a streamed load")
	}

	// A stream cut half-way leaves the view as it was; the retry reloads.
	src.commit(addValue("a", "1"))
	src.commit(addValue("b", "1"))
	src.trim()
	src.failHalf.Store(true)
	f.Deliver(src.commit(addValue("c", "1")))
	if v.Serial() != 20 || v.Lookup("n0.deep."+testOrigin).Kind != KindTXT || v.Lookup("a."+testOrigin).Kind != KindNXDomain {
		t.Fatalf("after a failed stream: serial %d", v.Serial())
	}
	src.failHalf.Store(false)
	if err := f.CatchUp(t.Context(), 23); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c", "n6.deep"} {
		if v.Lookup(n+"."+testOrigin).Kind != KindTXT {
			t.Errorf("%s missing after the reload", n)
		}
	}
}

func TestFollowerFailedFirstStreamIsNotReady(t *testing.T) {
	t.Parallel()
	src := &streamingSource{fakeSource: newFakeSource()}
	src.commit(addValue("a", "1"), addValue("b", "1"))
	src.failHalf.Store(true)
	v := NewView(testOrigin)
	f := NewFollower(src, v, nil, time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := f.CatchUp(ctx, 1); err == nil {
		t.Fatal("CatchUp succeeded on a stream that always fails")
	}
	select {
	case <-f.Ready():
		t.Fatal("ready after a failed stream")
	default:
	}
	if v.Loaded() || v.Lookup("a."+testOrigin).Kind != KindUnavailable {
		t.Fatal("a failed stream left content in the view")
	}
	src.failHalf.Store(false)
	if err := f.CatchUp(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if v.Lookup("a."+testOrigin).Kind != KindTXT || v.Lookup("b."+testOrigin).Kind != KindTXT {
		t.Fatal("content missing after the stream recovered")
	}
}
