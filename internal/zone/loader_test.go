package zone

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// referenceReset is View.Reset as it was before the Loader: values grouped
// by name in a temporary map, then entries, then counts and ancestors. The
// Loader must build exactly the same content.
func referenceReset(v *View, s Snapshot) (map[string]*entry, int) {
	names := make(map[string]*entry, len(s.Names)+len(s.Values))
	get := func(name string) *entry {
		e := names[name]
		if e == nil {
			e = &entry{}
			names[name] = e
		}
		return e
	}
	byName := make(map[string][]valueTTL)
	for _, val := range s.Values {
		name := strings.ToLower(val.Name)
		if v.below(name) {
			if vals, ok := insertValue(byName[name], val.Value, val.TTL); ok {
				byName[name] = vals
			}
		}
	}
	for name, vals := range byName {
		get(name).setValues(vals)
	}
	for _, name := range s.Names {
		if name = strings.ToLower(name); v.below(name) {
			get(name).added = true
		}
	}
	var existing []string
	for name, e := range names {
		if e.exists() {
			existing = append(existing, name)
		}
	}
	for _, name := range existing {
		v.eachAncestor(name, func(a string) { get(a).children++ })
	}
	return names, len(existing)
}

// sameContent compares a view's content with a reference build, entry by
// entry, and the answers to every name involved.
func sameContent(t *testing.T, v *View, want map[string]*entry, wantCount int, serial int64) {
	t.Helper()
	v.mu.RLock()
	got, count, loaded, gotSerial := v.names, v.count, v.loaded, v.serial
	v.mu.RUnlock()
	if !loaded || gotSerial != serial || count != wantCount || len(got) != len(want) {
		t.Fatalf("loaded %v serial %d count %d entries %d, want serial %d count %d entries %d",
			loaded, gotSerial, count, len(got), serial, wantCount, len(want))
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			t.Fatalf("%s: missing", name)
		}
		if !bytes.Equal(g.buf, w.buf) || g.ttl != w.ttl || g.count != w.count || g.added != w.added || g.children != w.children {
			t.Fatalf("%s: entry %+v, want %+v", name, *g, *w)
		}
	}
}

// randomSnapshot makes a snapshot that exercises every path of a load:
// several values per name (duplicates with other TTLs included), names
// both with values and in Names, deep names (empty non-terminals), upper
// case, names outside the zone and the apex, values the wire cannot carry,
// and a name over MaxValuesPerName.
func randomSnapshot(r *rand.Rand, n int) Snapshot {
	s := Snapshot{Serial: r.Int64N(1000)}
	name := func() string {
		switch k := r.IntN(20); {
		case k == 0:
			return testOrigin
		case k == 1:
			return fmt.Sprintf("n%d.example.org.", r.IntN(5))
		case k == 2:
			return fmt.Sprintf("N%d.Deep.%s", r.IntN(n), testOrigin)
		case k < 6:
			return fmt.Sprintf("n%d.deep.%s", r.IntN(n), testOrigin)
		case k < 8:
			return fmt.Sprintf("x.n%d.deep.%s", r.IntN(n), testOrigin)
		default:
			return fmt.Sprintf("n%d.%s", r.IntN(n), testOrigin)
		}
	}
	for range 4 * n {
		val := Value{Name: name(), Value: fmt.Sprintf("v%d", r.IntN(4)), TTL: uint32(r.IntN(3) * 60)}
		switch r.IntN(50) {
		case 0:
			val.Value = strings.Repeat("x", MaxWireValueLen+1)
		case 1:
			val.Value = ""
		case 2:
			val.Value = strings.Repeat("y", 300) // two character-strings
		}
		s.Values = append(s.Values, val)
	}
	for range n / 2 {
		s.Names = append(s.Names, name())
	}
	for i := range MaxValuesPerName + 3 {
		s.Values = append(s.Values, Value{Name: "full." + testOrigin, Value: fmt.Sprintf("%04d", i), TTL: 1})
	}
	return s
}

func sortValues(vals []Value) {
	slices.SortStableFunc(vals, func(a, b Value) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
}

// TestResetMatchesReference loads random snapshots, in their random order
// and sorted as the store delivers them, and checks the content is exactly
// what the former Reset built.
func TestResetMatchesReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 200 {
		s := randomSnapshot(r, 1+r.IntN(60))
		if i%2 == 1 {
			sortValues(s.Values) // stable: duplicates keep their order
		}
		v := loadedView(t)
		mustApply(t, v, Change{Serial: 1, Op: OpAddValue, Name: "old." + testOrigin, Value: "v", TTL: 1})
		v.Reset(s)
		want, count := referenceReset(v, s)
		sameContent(t, v, want, count, s.Serial)
	}
}

// TestLoaderAnyOrder feeds a Loader values and names interleaved in random
// order, as a SnapshotStreamer may, and checks it builds what Reset does.
func TestLoaderAnyOrder(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 5))
	for range 200 {
		s := randomSnapshot(r, 1+r.IntN(60))
		type item struct {
			val  Value
			name string
		}
		var items []item
		for _, val := range s.Values {
			items = append(items, item{val: val})
		}
		for _, n := range s.Names {
			items = append(items, item{name: n})
		}
		// The reference gets the values in the same new order: the last of
		// duplicate values wins.
		r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		var reordered Snapshot
		for _, it := range items {
			if it.name != "" {
				reordered.Names = append(reordered.Names, it.name)
			} else {
				reordered.Values = append(reordered.Values, it.val)
			}
		}
		v := NewView(testOrigin)
		l := v.NewLoader()
		l.Grow(r.IntN(10), 0) // a hint may be wrong
		for _, it := range items {
			if it.name != "" {
				l.Name(it.name)
			} else {
				l.Value(it.val)
			}
		}
		l.Commit(s.Serial)
		want, count := referenceReset(v, Snapshot{Values: reordered.Values, Names: reordered.Names})
		sameContent(t, v, want, count, s.Serial)
	}
}

// TestLoaderKeepsServingUntilCommit checks a load in progress is invisible
// and a committed view still answers and applies changes (entries from the
// loader's chunks included) without touching RRsets readers hold.
func TestLoaderKeepsServingUntilCommit(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	a, b := "a."+testOrigin, "b."+testOrigin
	mustApply(t, v, Change{Serial: 1, Op: OpAddValue, Name: a, Value: "old", TTL: 1})
	l := v.NewLoader()
	l.Grow(2, 0)
	l.Value(Value{Name: a, Value: "new", TTL: 5})
	l.Value(Value{Name: b, Value: "new", TTL: 5})
	if got := txtValues(v.Lookup(a)); !slices.Equal(got, []string{"old"}) || v.Serial() != 1 {
		t.Fatalf("before Commit: %q serial %d", got, v.Serial())
	}
	if v.Lookup(b).Kind != KindNXDomain {
		t.Fatal("before Commit: b is visible")
	}
	l.Commit(9)
	ra, rb := v.Lookup(a), v.Lookup(b)
	if !slices.Equal(txtValues(ra), []string{"new"}) || !slices.Equal(txtValues(rb), []string{"new"}) || ra.Serial != 9 || v.Len() != 2 {
		t.Fatalf("after Commit: %q %q serial %d len %d", txtValues(ra), txtValues(rb), ra.Serial, v.Len())
	}
	held := bytes.Clone(ra.RData)
	mustApply(t, v,
		Change{Serial: 10, Op: OpAddValue, Name: a, Value: "more", TTL: 5},
		Change{Serial: 10, Op: OpRemoveValue, Name: b, Value: "new"},
	)
	if !bytes.Equal(ra.RData, held) {
		t.Fatal("Apply modified an RRset a reader holds")
	}
	if got := txtValues(v.Lookup(a)); !slices.Equal(got, []string{"more", "new"}) || v.Lookup(b).Kind != KindNXDomain || v.Len() != 1 {
		t.Fatalf("after Apply: %q, b %v, len %d", got, v.Lookup(b).Kind, v.Len())
	}
}
