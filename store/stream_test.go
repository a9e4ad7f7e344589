package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/acmehub/acmehub/internal/zone"
)

// recordingSink is a zone.SnapshotSink that keeps what it gets.
type recordingSink struct {
	growValues, growNames int
	grows                 int
	snap                  zone.Snapshot
}

func (s *recordingSink) Grow(values, names int) {
	s.grows++
	s.growValues, s.growNames = values, names
}

func (s *recordingSink) Value(v zone.Value) { s.snap.Values = append(s.snap.Values, v) }

func (s *recordingSink) Name(name string) { s.snap.Names = append(s.snap.Names, name) }

func compareValues(a, b zone.Value) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

// fillZone writes values to names in an order unrelated to name order (so
// table order is not name order), removes some, and adds value-less names.
func fillZone(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	for round := range 3 {
		for i := range 40 {
			n := (i * 17) % 40
			if (n+round)%3 == 0 {
				continue
			}
			name := fmt.Sprintf("n%02d.acme.example.net.", n)
			if n%5 == 0 {
				name = fmt.Sprintf("x.n%02d.deep.acme.example.net.", n)
			}
			add(t, db, name, fmt.Sprintf("value-%d-%d", 9-round, i))
		}
	}
	for i := range 10 {
		if _, _, err := db.RemoveValue(ctx, fmt.Sprintf("n%02d.acme.example.net.", i*3+1), "value-9-"+fmt.Sprint((i*3+1)*33%40)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"label.acme.example.net.", "n01.acme.example.net.", "a.label.acme.example.net."} {
		if _, _, err := db.AddName(ctx, name, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotSortedAndStreamed(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	fillZone(t, db)
	ctx := t.Context()

	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Values) < 50 || len(snap.Names) != 3 {
		t.Fatalf("snapshot of %d values, %d names", len(snap.Values), len(snap.Names))
	}
	if !slices.IsSortedFunc(snap.Values, compareValues) || !slices.IsSorted(snap.Names) {
		t.Fatalf("snapshot not sorted: %+v", snap)
	}
	for i := 1; i < len(snap.Values); i++ {
		a, b := snap.Values[i-1].Name, snap.Values[i].Name
		if a == b && unsafe.StringData(a) != unsafe.StringData(b) {
			t.Fatalf("values %d and %d of %s do not share the name", i-1, i, a)
		}
	}
	// The journal from serial 1 (the empty zone) leads to the same content.
	changes, err := db.ChangesSince(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := apply(zone.Snapshot{Serial: 1}, changes)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(replayed, snap) {
		t.Fatalf("snapshot %+v\nreplayed journal %+v", snap, replayed)
	}

	var sink recordingSink
	serial, err := db.StreamSnapshot(ctx, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if sink.grows != 1 || sink.growValues != len(snap.Values) || sink.growNames != len(snap.Names) {
		t.Fatalf("Grow called %d times with %d, %d", sink.grows, sink.growValues, sink.growNames)
	}
	sink.snap.Serial = serial
	slices.SortFunc(sink.snap.Values, compareValues)
	if !reflect.DeepEqual(sink.snap, snap) {
		t.Fatalf("streamed %+v\nsnapshot %+v", sink.snap, snap)
	}

	// A view loaded by a follower (streaming) holds what Reset with the
	// Snapshot builds.
	streamed := zone.NewView("acme.example.net.")
	if err := zone.NewFollower(db, streamed, nil, 0).CatchUp(ctx, serial); err != nil {
		t.Fatal(err)
	}
	reset := zone.NewView("acme.example.net.")
	reset.Reset(snap)
	if got, want := streamed.Snapshot(), reset.Snapshot(); !reflect.DeepEqual(got, want) || got.Serial != serial {
		t.Fatalf("streamed view %+v\nreset view %+v", got, want)
	}
	for _, name := range []string{"deep.acme.example.net.", "n02.acme.example.net.", "label.acme.example.net.", "zz.acme.example.net."} {
		if g, w := streamed.Lookup(name), reset.Lookup(name); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: streamed %+v, reset %+v", name, g, w)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.StreamSnapshot(cctx, &recordingSink{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stream: %v", err)
	}
}

// TestStreamSnapshotConsistency is TestSnapshotConsistency for
// StreamSnapshot: under a steady writer every streamed snapshot is whole at
// its serial, and the counts it announces are those it delivers.
func TestStreamSnapshotConsistency(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.AddValue(ctx, AddRequest{Name: fmt.Sprintf("s%d-%d.example.org.", i%37, i/(37*20)), Value: fmt.Sprintf("v%d", i), TTL: 60, ExpiresAt: future}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 50 {
		var sink recordingSink
		serial, err := db.StreamSnapshot(ctx, &sink)
		if err != nil {
			t.Fatal(err)
		}
		if n := int64(len(sink.snap.Values)); n != serial-1 || sink.growValues != len(sink.snap.Values) {
			t.Fatalf("stream at serial %d: %d values, announced %d", serial, n, sink.growValues)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
