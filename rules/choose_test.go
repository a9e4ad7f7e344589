package rules

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func cands(t *testing.T, rules ...string) []Candidate {
	t.Helper()
	out := make([]Candidate, len(rules))
	for i, r := range rules {
		rule, err := Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = Candidate{ID: fmt.Sprintf("c%d", i), Rule: rule}
	}
	return out
}

func TestChoose(t *testing.T) {
	t.Parallel()
	// One set of configs, one rank per step; none of them tie.
	cs := cands(t,
		"www.example.org",                    // c0
		"*.www.example.org",                  // c1
		"*.example.org",                      // c2
		"*",                                  // c3
		"example.org; api.example.net",       // c4
		"*.example.net, bücher.example",      // c5
		"*.shop.example.net",                 // c6
		"*.xn--bcher-kva.example, localhost", // c7
	)
	tests := []struct {
		base string
		id   string
		rank Rank
	}{
		// rank 1 beats everything else
		{"www.example.org", "c0", RankExact},
		{"example.org", "c4", RankExact},
		{"api.example.net", "c4", RankExact},
		{"BÜCHER.example.", "c5", RankExact},
		{"xn--bcher-kva.example", "c5", RankExact},
		{"localhost", "c7", RankExact},
		// rank 2 beats rank 3 from the parent's wildcard
		{"shop.example.net", "c6", RankWildcardBase},
		{"example.net", "c5", RankWildcardBase},
		// rank 3: one label below
		{"a.www.example.org", "c1", RankWildcardChild},
		{"mail.example.org", "c2", RankWildcardChild},
		{"cart.shop.example.net", "c6", RankWildcardChild},
		{"www.bücher.example", "c7", RankWildcardChild},
		// rank 4: the catch-all, also for names that look like others
		{"a.b.example.org", "c3", RankCatchAll},
		{"a.b.www.example.org", "c3", RankCatchAll},
		{"evilexample.org", "c3", RankCatchAll},
		{"example.org.evil.net", "c3", RankCatchAll},
		{"a.api.example.net", "c3", RankCatchAll},
		{"example.com", "c3", RankCatchAll},
	}
	set, err := NewSet(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			t.Parallel()
			c, rk, ok := Choose(tt.base, cs)
			if !ok || c.ID != tt.id || rk != tt.rank {
				t.Errorf("Choose(%q) = %s, %v, %v; want %s, %v", tt.base, c.ID, rk, ok, tt.id, tt.rank)
			}
			c, rk, ok = set.Choose(tt.base)
			if !ok || c.ID != tt.id || rk != tt.rank {
				t.Errorf("Set.Choose(%q) = %s, %v, %v; want %s, %v", tt.base, c.ID, rk, ok, tt.id, tt.rank)
			}
		})
	}
}

func TestChooseNoMatch(t *testing.T) {
	t.Parallel()
	cs := cands(t, "example.org", "*.example.net")
	set, err := NewSet(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"evilexample.org", "www.example.org", "a.b.example.net", "example.com", "", "*.example.org", "a..b"} {
		if c, rk, ok := Choose(base, cs); ok {
			t.Errorf("Choose(%q) = %s, %v; want no match", base, c.ID, rk)
		}
		if c, rk, ok := set.Choose(base); ok {
			t.Errorf("Set.Choose(%q) = %s, %v; want no match", base, c.ID, rk)
		}
	}
	empty, err := NewSet(nil)
	if err != nil || empty.Len() != 0 {
		t.Fatalf("NewSet(nil) = %v, %v", empty, err)
	}
	if _, _, ok := empty.Choose("example.org"); ok {
		t.Error("empty set chose something")
	}
}

func TestChooseTieEarliestWins(t *testing.T) {
	t.Parallel()
	cs := cands(t, "example.org", "example.org")
	if c, _, _ := Choose("example.org", cs); c.ID != "c0" {
		t.Fatalf("Choose with a tie = %s; want the earliest, c0", c.ID)
	}
}

func TestConflicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing []string
		next     string
		want     []string // "ID pattern name rank" per conflict
	}{
		{name: "same exact", existing: []string{"example.org"}, next: "example.org",
			want: []string{"c0 example.org example.org 1"}},
		{name: "same exact spelled differently", existing: []string{"bücher.example"}, next: "XN--BCHER-KVA.example.",
			want: []string{"c0 xn--bcher-kva.example xn--bcher-kva.example 1"}},
		{name: "same wildcard ties on its base", existing: []string{"*.example.org"}, next: "*.example.org",
			want: []string{"c0 *.example.org example.org 2"}},
		{name: "same wildcard, base taken by one, ties below", existing: []string{"*.example.org, example.org"}, next: "*.example.org",
			want: []string{"c0 *.example.org a.example.org 3"}},
		{name: "same wildcard, children named, ties on another", existing: []string{"*.example.org, example.org, a.example.org, *.b.example.org"}, next: "*.example.org, c.example.org",
			want: []string{"c0 *.example.org d.example.org 3"}},
		{name: "both catch-all", existing: []string{"*"}, next: "*",
			want: []string{"c0 * a.invalid 4"}},
		{name: "both catch-all, others named", existing: []string{"*, a.invalid"}, next: "*, *.b.invalid",
			want: []string{"c0 * c.invalid 4"}},
		{name: "both catch-all, invalid wildcarded", existing: []string{"*, *.invalid"}, next: "*",
			want: []string{"c0 * a 4"}},
		{name: "several patterns and configs", existing: []string{"example.net", "example.org, *.example.org", "*.example.com"}, next: "example.org, *.example.org, example.net",
			want: []string{"c0 example.net example.net 1", "c1 example.org example.org 1", "c1 *.example.org a.example.org 3"}},

		{name: "exact vs wildcard of the same name", existing: []string{"example.org"}, next: "*.example.org"},
		{name: "wildcard vs exact of the same name", existing: []string{"*.example.org"}, next: "example.org"},
		{name: "wildcard vs exact child", existing: []string{"*.example.org"}, next: "www.example.org"},
		{name: "nested wildcards", existing: []string{"*.example.org"}, next: "*.www.example.org"},
		{name: "catch-all vs anything", existing: []string{"*"}, next: "example.org, *.example.org"},
		{name: "lookalike names", existing: []string{"example.org, *.example.org"}, next: "evilexample.org, *.evilexample.org"},
		{name: "different names", existing: []string{"example.org"}, next: "example.net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			existing := cands(t, tt.existing...)
			next := Candidate{ID: "new", Rule: MustParse(tt.next)}
			var got []string
			for _, c := range Conflicts(existing, next) {
				got = append(got, fmt.Sprintf("%s %s %s %d", c.ID, c.Pattern, c.Name, c.Rank))
				checkTie(t, existing, next, c)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Conflicts = %q; want %q", got, tt.want)
			}
			// The set finds the same conflicts, and refuses to hold them.
			set, err := NewSet(existing)
			if err != nil {
				t.Fatal(err)
			}
			if fromSet := set.Conflicts(next); !slices.Equal(fromSet, Conflicts(existing, next)) {
				t.Fatalf("Set.Conflicts = %v; want %v", fromSet, Conflicts(existing, next))
			}
			_, err = NewSet(append(existing, next))
			var ce *ConflictError
			if (err != nil) != (len(tt.want) > 0) || err != nil && (!errors.As(err, &ce) || len(ce.Conflicts) != len(tt.want)) {
				t.Fatalf("NewSet with the new config: %v; want %d conflicts", err, len(tt.want))
			}
		})
	}
}

// checkTie checks that a conflict's example name really ties.
func checkTie(t *testing.T, existing []Candidate, next Candidate, c Conflict) {
	t.Helper()
	i := slices.IndexFunc(existing, func(e Candidate) bool { return e.ID == c.ID })
	ra, okA := existing[i].Rule.Match(c.Name)
	rb, okB := next.Rule.Match(c.Name)
	if !okA || !okB || ra != c.Rank || rb != c.Rank {
		t.Errorf("conflict %v: ranks on %q are %v, %v; want both %v", c, c.Name, ra, rb, c.Rank)
	}
}

func TestConflictsEdit(t *testing.T) {
	t.Parallel()
	existing := cands(t, "example.org", "example.net")
	// Editing c0 keeps its own pattern without conflict with itself.
	edit := Candidate{ID: "c0", Rule: MustParse("example.org, *.example.org")}
	if got := Conflicts(existing, edit); len(got) != 0 {
		t.Fatalf("editing c0: %v", got)
	}
	set, err := NewSet(existing)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Conflicts(edit); len(got) != 0 {
		t.Fatalf("editing c0 against the set: %v", got)
	}
	// But it still may not take c1's pattern.
	edit.Rule = MustParse("example.net")
	if got := Conflicts(existing, edit); len(got) != 1 || got[0].ID != "c1" {
		t.Fatalf("editing c0 to take c1's name: %v", got)
	}
	// A new config without an ID conflicts with everything it shares.
	if got := Conflicts(existing, Candidate{Rule: MustParse("example.org")}); len(got) != 1 {
		t.Fatalf("new config without id: %v", got)
	}
}

func TestNewSetErrors(t *testing.T) {
	t.Parallel()
	_, err := NewSet(cands(t, "example.org, *.example.net", "example.net", "*.example.net, example.org"))
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("NewSet with ties: %v", err)
	}
	want := `conflicting domain match rules: ` +
		`config "c0" and config "c2" both have the pattern "*.example.net", so neither wins for "example.net" (both rank 2, wildcard base); ` +
		`config "c0" and config "c2" both have the pattern "example.org", so neither wins for "example.org" (both rank 1, exact)`
	if err.Error() != want {
		t.Fatalf("error:\n%s\nwant:\n%s", err, want)
	}
	if c := (Conflict{ID: "c0", Pattern: MustParse("*").Patterns()[0], Name: "a.invalid", Rank: RankCatchAll}); !strings.Contains(c.String(), "the new config") {
		t.Fatalf("Conflict.String without OtherID = %q", c)
	}

	dup := cands(t, "example.org", "example.net")
	dup[1].ID = dup[0].ID
	if _, err := NewSet(dup); err == nil || !strings.Contains(err.Error(), `duplicate config id "c0"`) {
		t.Fatalf("NewSet with duplicate ids: %v", err)
	}
	if _, err := NewSet([]Candidate{{ID: "x"}}); err == nil || !strings.Contains(err.Error(), "empty rule") {
		t.Fatalf("NewSet with a zero rule: %v", err)
	}
}

// TestTiesBruteForce checks the tie theorem of the package documentation
// (configs tie on some name exactly when they share a pattern) by brute
// force: patterns over the labels a and b, up to two deep, and names over
// a, b and z up to three deep, so every pattern has a child that no
// pattern names. It also checks Set.Choose against Choose.
func TestTiesBruteForce(t *testing.T) {
	t.Parallel()
	var names []string
	var grow func(n string, depth int)
	grow = func(n string, depth int) {
		for _, l := range []string{"a", "b", "z"} {
			m := l
			if n != "" {
				m += "." + n
			}
			names = append(names, m)
			if depth < 3 {
				grow(m, depth+1)
			}
		}
	}
	grow("", 1)
	patterns := []string{"*"}
	for _, n := range names {
		if !strings.Contains(n, "z") && strings.Count(n, ".") < 2 {
			patterns = append(patterns, n, "*."+n)
		}
	}
	if len(patterns) != 13 || len(names) != 39 {
		t.Fatalf("universe: %d patterns, %d names", len(patterns), len(names))
	}

	rng := rand.New(rand.NewPCG(1, 2))
	randomRule := func() Rule {
		var ps []string
		for len(ps) == 0 {
			for _, p := range patterns {
				if rng.IntN(5) == 0 {
					ps = append(ps, p)
				}
			}
		}
		return MustParse(strings.Join(ps, ";"))
	}
	// Every rule of one or two patterns against every other, then random
	// larger rules.
	var small []Rule
	for i, p := range patterns {
		small = append(small, MustParse(p))
		for _, q := range patterns[i+1:] {
			small = append(small, MustParse(p+","+q))
		}
	}
	type pair struct{ a, b Rule }
	var pairs []pair
	for _, a := range small {
		for _, b := range small {
			pairs = append(pairs, pair{a, b})
		}
	}
	for range 20000 {
		pairs = append(pairs, pair{randomRule(), randomRule()})
	}

	semantic := func(a, b Rule) bool {
		for _, n := range names {
			ra, okA := a.Match(n)
			rb, okB := b.Match(n)
			if okA && okB && ra == rb {
				return true
			}
		}
		return false
	}
	var conflicting, fine int
	for _, p := range pairs {
		existing := []Candidate{{ID: "a", Rule: p.a}}
		next := Candidate{ID: "b", Rule: p.b}
		cs := Conflicts(existing, next)
		if len(cs) > 0 {
			conflicting++
		} else {
			fine++
		}
		if got, want := len(cs) > 0, semantic(p.a, p.b); got != want {
			t.Fatalf("rules %q and %q: Conflicts says %v (%v), brute force says %v", p.a, p.b, got, cs, want)
		}
		for _, c := range cs {
			checkTie(t, existing, next, c)
		}
		set, err := NewSet(append(existing, next))
		if (err == nil) != (len(cs) == 0) {
			t.Fatalf("rules %q and %q: NewSet error %v with %d conflicts", p.a, p.b, err, len(cs))
		}
		if err != nil {
			continue
		}
		both := append(existing, next)
		for _, n := range names {
			c1, r1, ok1 := Choose(n, both)
			c2, r2, ok2 := set.Choose(n)
			if c1.ID != c2.ID || r1 != r2 || ok1 != ok2 {
				t.Fatalf("rules %q and %q on %q: Choose %s %v %v, Set.Choose %s %v %v", p.a, p.b, n, c1.ID, r1, ok1, c2.ID, r2, ok2)
			}
		}
	}
	// Both outcomes must be well represented for the check to mean much.
	if conflicting < 1000 || fine < 1000 {
		t.Fatalf("%d conflicting and %d fine pairs", conflicting, fine)
	}
}

// TestConflictNoExampleName covers the gap in the tie theorem: a wildcard
// so long that only one-letter children fit, all of them named.
func TestConflictNoExampleName(t *testing.T) {
	t.Parallel()
	q := strings.Repeat(strings.Repeat("q", 63)+".", 3) + strings.Repeat("q", 59) // 251 bytes
	ps := []string{"*." + q, q}
	for c := 'a'; c <= 'z'; c++ {
		ps = append(ps, string(c)+"."+q)
	}
	existing := []Candidate{{ID: "a", Rule: MustParse(strings.Join(ps, ";"))}}
	got := Conflicts(existing, Candidate{ID: "b", Rule: MustParse("*." + q)})
	if len(got) != 1 || got[0].Name != "" || got[0].Rank != RankWildcardChild {
		t.Fatalf("Conflicts = %v; want one with no example name", got)
	}
	if s := got[0].String(); strings.Contains(s, "neither wins") {
		t.Fatalf("Conflict.String() = %q claims a name", s)
	}
}
