package zone

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
)

const testOrigin = "acme.example.net."

func loadedView(tb testing.TB) *View {
	tb.Helper()
	v := NewView(testOrigin)
	v.Reset(Snapshot{})
	return v
}

func txtValues(r LookupResult) []string {
	var out []string
	r.Records(func(rr []byte) { out = append(out, decodeTXT(rr[2:])) })
	return out
}

func mustApply(t *testing.T, v *View, changes ...Change) {
	t.Helper()
	if err := v.Apply(changes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func TestViewUnavailableUntilReset(t *testing.T) {
	t.Parallel()
	v := NewView(testOrigin)
	if got := v.Lookup(testOrigin).Kind; got != KindUnavailable {
		t.Fatalf("before Reset: kind %v, want unavailable", got)
	}
	v.Reset(Snapshot{Serial: 7})
	if got := v.Lookup(testOrigin); got.Kind != KindNoData || got.Serial != 7 {
		t.Fatalf("apex after Reset: %+v", got)
	}
	if got := v.Lookup("nope." + testOrigin).Kind; got != KindNXDomain {
		t.Fatalf("unknown name: %v", got)
	}
}

func TestViewValueSet(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	name := "abc." + testOrigin
	mustApply(t, v,
		Change{Serial: 1, Op: OpAddValue, Name: name, Value: "b-value", TTL: 60},
		Change{Serial: 1, Op: OpAddValue, Name: name, Value: "a-value", TTL: 120},
	)
	r := v.Lookup(name)
	if r.Kind != KindTXT || r.Count != 2 || r.TTL != 60 || r.Serial != 1 {
		t.Fatalf("after two adds: %+v", r)
	}
	if got := txtValues(r); !slices.Equal(got, []string{"a-value", "b-value"}) {
		t.Fatalf("values %q, want sorted set", got)
	}
	// Re-adding refreshes the TTL and does not duplicate.
	mustApply(t, v, Change{Serial: 2, Op: OpAddValue, Name: name, Value: "b-value", TTL: 300})
	if r = v.Lookup(name); r.Count != 2 || r.TTL != 120 {
		t.Fatalf("after TTL refresh: %+v", r)
	}
	mustApply(t, v, Change{Serial: 3, Op: OpRemoveValue, Name: name, Value: "a-value"})
	if r = v.Lookup(name); r.Count != 1 || r.TTL != 300 || !slices.Equal(txtValues(r), []string{"b-value"}) {
		t.Fatalf("after remove: %+v %q", r, txtValues(r))
	}
	// Removing an absent value is a no-op.
	mustApply(t, v, Change{Serial: 4, Op: OpRemoveValue, Name: name, Value: "zzz"})
	mustApply(t, v, Change{Serial: 5, Op: OpRemoveValue, Name: name, Value: "b-value"})
	if r = v.Lookup(name); r.Kind != KindNXDomain {
		t.Fatalf("after removing all values: %v", r.Kind)
	}
	if v.Len() != 0 || v.Serial() != 5 {
		t.Fatalf("Len %d Serial %d", v.Len(), v.Serial())
	}
}

func TestViewLongValueSplit(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	long := string(slices.Repeat([]byte("x"), 300))
	mustApply(t, v, Change{Serial: 1, Op: OpAddValue, Name: "l." + testOrigin, Value: long, TTL: 1})
	r := v.Lookup("l." + testOrigin)
	if got := txtValues(r); len(got) != 1 || got[0] != long {
		t.Fatalf("long value did not round-trip")
	}
	if len(r.RData) != 2+300+2 {
		t.Fatalf("rdata %d bytes, want two character-strings", len(r.RData))
	}
}

func TestViewLimits(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	name := "lim." + testOrigin
	huge := string(slices.Repeat([]byte("x"), MaxWireValueLen+1))
	mustApply(t, v, Change{Serial: 1, Op: OpAddValue, Name: name, Value: huge, TTL: 1})
	if got := v.Lookup(name).Kind; got != KindNXDomain {
		t.Fatalf("a value over MaxWireValueLen was stored: %v", got)
	}
	var changes []Change
	for i := range MaxValuesPerName + 5 {
		changes = append(changes, Change{Serial: 2, Op: OpAddValue, Name: name, Value: fmt.Sprint(i), TTL: 1})
	}
	mustApply(t, v, changes...)
	if got := v.Lookup(name).Count; got != MaxValuesPerName {
		t.Fatalf("%d values stored, want the cap %d", got, MaxValuesPerName)
	}
	// Refreshing an existing value still works at the cap.
	mustApply(t, v, Change{Serial: 3, Op: OpAddValue, Name: name, Value: "0", TTL: 1})
	if v.Serial() != 3 {
		t.Fatal("serial did not advance")
	}
}

func TestViewNamesAndEmptyNonTerminals(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	deep := "x.y.z." + testOrigin
	label := "label." + testOrigin
	mustApply(t, v,
		Change{Serial: 1, Op: OpAddName, Name: label},
		Change{Serial: 2, Op: OpAddValue, Name: deep, Value: "v", TTL: 10},
		Change{Serial: 2, Op: OpAddName, Name: "z." + testOrigin},
		Change{Serial: 3, Op: OpAddValue, Name: "outside.example.org.", Value: "v", TTL: 10},
		Change{Serial: 3, Op: OpAddValue, Name: testOrigin, Value: "apex", TTL: 10},
	)
	tests := []struct {
		name string
		want Kind
	}{
		{testOrigin, KindNoData},
		{label, KindNoData},
		{deep, KindTXT},
		{"y.z." + testOrigin, KindEmptyNonTerminal},
		{"z." + testOrigin, KindNoData},
		{"w.x.y.z." + testOrigin, KindNXDomain},
		{"y." + testOrigin, KindNXDomain},
		{"outside.example.org.", KindNXDomain},
	}
	for _, tc := range tests {
		if got := v.Lookup(tc.name).Kind; got != tc.want {
			t.Errorf("Lookup(%s) = %v, want %v", tc.name, got, tc.want)
		}
		if got := v.LookupBytes([]byte(tc.name)).Kind; got != tc.want {
			t.Errorf("LookupBytes(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if v.Len() != 3 {
		t.Errorf("Len = %d, want 3", v.Len())
	}
	// z stops being a name but stays an ENT; removing the deep value
	// removes the whole branch.
	mustApply(t, v, Change{Serial: 4, Op: OpRemoveName, Name: "z." + testOrigin})
	if got := v.Lookup("z." + testOrigin).Kind; got != KindEmptyNonTerminal {
		t.Errorf("z after RemoveName: %v", got)
	}
	mustApply(t, v, Change{Serial: 5, Op: OpRemoveValue, Name: deep, Value: "v"})
	for _, n := range []string{deep, "y.z." + testOrigin, "z." + testOrigin} {
		if got := v.Lookup(n).Kind; got != KindNXDomain {
			t.Errorf("%s after removing the branch: %v", n, got)
		}
	}
	v.mu.RLock()
	left := len(v.names)
	v.mu.RUnlock()
	if left != 1 {
		t.Errorf("%d map entries left, want 1 (the label): refcounts leak", left)
	}
}

func TestViewApplyGapAndRedelivery(t *testing.T) {
	t.Parallel()
	v := NewView(testOrigin)
	v.Reset(Snapshot{Serial: 10})
	add := func(serial int64, val string) Change {
		return Change{Serial: serial, Op: OpAddValue, Name: "a." + testOrigin, Value: val, TTL: 1}
	}
	tests := []struct {
		name    string
		changes []Change
	}{
		{"starts too late", []Change{add(12, "x")}},
		{"hole inside", []Change{add(11, "x"), add(13, "y")}},
		{"goes back", []Change{add(11, "x"), add(12, "y"), add(11, "z")}},
	}
	for _, tc := range tests {
		if err := v.Apply(tc.changes); !errors.Is(err, ErrGap) {
			t.Errorf("%s: err %v, want ErrGap", tc.name, err)
		}
		if v.Serial() != 10 || v.Lookup("a."+testOrigin).Kind != KindNXDomain {
			t.Fatalf("%s: a failed Apply changed the view", tc.name)
		}
	}
	if err := v.Apply([]Change{add(9, "old"), add(10, "old"), add(11, "x"), add(11, "y"), add(12, "z")}); err != nil {
		t.Fatal(err)
	}
	// Redelivering the same batch is a no-op.
	if err := v.Apply([]Change{add(11, "x"), add(12, "z")}); err != nil {
		t.Fatal(err)
	}
	if got := txtValues(v.Lookup("a." + testOrigin)); !slices.Equal(got, []string{"x", "y", "z"}) || v.Serial() != 12 {
		t.Fatalf("values %q serial %d", got, v.Serial())
	}
}

func TestViewResetAndSnapshot(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	mustApply(t, v, Change{Serial: 1, Op: OpAddValue, Name: "gone." + testOrigin, Value: "v", TTL: 5})
	snap := Snapshot{
		Serial: 42,
		Values: []Value{
			{Name: "b.c." + testOrigin, Value: "2", TTL: 30},
			{Name: "b.c." + testOrigin, Value: "1", TTL: 20},
			{Name: "a." + testOrigin, Value: "v", TTL: 10},
			{Name: "a." + testOrigin, Value: "v", TTL: 11}, // duplicate: last TTL wins
			{Name: "elsewhere.example.org.", Value: "v", TTL: 10},
		},
		Names: []string{"a." + testOrigin, "d." + testOrigin},
	}
	v.Reset(snap)
	if v.Serial() != 42 || v.Len() != 3 {
		t.Fatalf("Serial %d Len %d", v.Serial(), v.Len())
	}
	if got := v.Lookup("gone." + testOrigin).Kind; got != KindNXDomain {
		t.Fatalf("old content survived Reset: %v", got)
	}
	if got := v.Lookup("c." + testOrigin).Kind; got != KindEmptyNonTerminal {
		t.Fatalf("c: %v", got)
	}
	got := v.Snapshot()
	want := Snapshot{
		Serial: 42,
		Values: []Value{
			{Name: "a." + testOrigin, Value: "v", TTL: 11},
			{Name: "b.c." + testOrigin, Value: "1", TTL: 20},
			{Name: "b.c." + testOrigin, Value: "2", TTL: 30},
		},
		Names: []string{"a." + testOrigin, "d." + testOrigin},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Snapshot\n got %+v\nwant %+v", got, want)
	}
	// An added name keeps existing after its values go (it was in Names).
	mustApply(t, v, Change{Serial: 43, Op: OpRemoveValue, Name: "a." + testOrigin, Value: "v"})
	if got := v.Lookup("a." + testOrigin).Kind; got != KindNoData {
		t.Fatalf("a after removing its value: %v", got)
	}
}

// TestViewApplyAtomic checks readers see a whole Apply or none of it.
func TestViewApplyAtomic(t *testing.T) {
	t.Parallel()
	v := loadedView(t)
	name := "atomic." + testOrigin
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := v.Lookup(name)
				if r.Count != 0 && r.Count != 3 {
					t.Errorf("reader saw %d values: a partial Apply", r.Count)
					return
				}
				if (r.Serial%2 == 1) != (r.Count == 3) {
					t.Errorf("serial %d with %d values", r.Serial, r.Count)
					return
				}
			}
		})
	}
	for s := int64(1); s <= 2000; s += 2 {
		mustApply(t, v,
			Change{Serial: s, Op: OpAddValue, Name: name, Value: "1", TTL: 1},
			Change{Serial: s, Op: OpAddValue, Name: name, Value: "2", TTL: 1},
			Change{Serial: s, Op: OpAddValue, Name: name, Value: "3", TTL: 1},
		)
		mustApply(t, v,
			Change{Serial: s + 1, Op: OpRemoveValue, Name: name, Value: "1"},
			Change{Serial: s + 1, Op: OpRemoveValue, Name: name, Value: "2"},
			Change{Serial: s + 1, Op: OpRemoveValue, Name: name, Value: "3"},
		)
	}
	close(stop)
	wg.Wait()
}

func TestLookupBytesDoesNotAllocate(t *testing.T) {
	v := loadedView(t)
	mustApply(t, v, Change{Serial: 1, Op: OpAddValue, Name: "abcdefghijklmnopqrstuvwxyz0123456789." + testOrigin, Value: "v", TTL: 1})
	key := []byte("abcdefghijklmnopqrstuvwxyz0123456789." + testOrigin)
	if n := testing.AllocsPerRun(1000, func() {
		if v.LookupBytes(key).Kind != KindTXT {
			panic("miss")
		}
	}); n != 0 {
		t.Fatalf("LookupBytes: %v allocs per run, want 0", n)
	}
}

// acmeValue is shaped like a real DNS-01 value: 43 bytes of base64url.
const acmeValue = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"

func populate(n int) Snapshot {
	s := Snapshot{Serial: 1, Values: make([]Value, 0, n)}
	for i := range n {
		s.Values = append(s.Values, Value{
			Name:  fmt.Sprintf("%08x-1b2c-4d5e-8f90-a1b2c3d4e5f6.%s", i, testOrigin),
			Value: acmeValue, TTL: 60,
		})
	}
	return s
}

// BenchmarkViewMemory reports the heap held by a view of 100,000 names with
// one ACME-sized value each (uuid labels, like acme-dns subdomains).
func BenchmarkViewMemory(b *testing.B) {
	const n = 100_000
	snap := populate(n)
	var perName float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v := NewView(testOrigin)
		v.Reset(snap)
		runtime.GC()
		runtime.ReadMemStats(&after)
		perName = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(v)
	}
	b.ReportMetric(perName, "bytes/name")
}

func BenchmarkLookupBytes(b *testing.B) {
	v := NewView(testOrigin)
	snap := populate(100_000)
	v.Reset(snap)
	key := []byte(snap.Values[777].Name)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v.LookupBytes(key).Kind != KindTXT {
				b.Fatal("miss")
			}
		}
	})
}

func BenchmarkApply(b *testing.B) {
	v := NewView(testOrigin)
	v.Reset(populate(100_000))
	serial := v.Serial()
	b.ReportAllocs()
	for b.Loop() {
		serial++
		if err := v.Apply([]Change{{Serial: serial, Op: OpAddValue, Name: "bench." + testOrigin, Value: fmt.Sprint(serial % 32), TTL: 60}}); err != nil {
			b.Fatal(err)
		}
	}
}
