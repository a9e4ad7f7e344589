package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Rank says how closely a pattern matches a base name; the lowest wins.
type Rank uint8

// Ranks, best first, for a base name b.
const (
	RankExact         Rank = 1 // the pattern b
	RankWildcardBase  Rank = 2 // the pattern *.b
	RankWildcardChild Rank = 3 // the pattern *.p, b one label below p
	RankCatchAll      Rank = 4 // the pattern *
)

// String returns a short description of the rank, for messages.
func (r Rank) String() string {
	switch r {
	case RankExact:
		return "exact"
	case RankWildcardBase:
		return "wildcard base"
	case RankWildcardChild:
		return "wildcard child"
	case RankCatchAll:
		return "catch-all"
	}
	return "rank(" + strconv.Itoa(int(r)) + ")"
}

// Candidate is a managed challenge config as far as choosing is concerned.
type Candidate struct {
	ID   string // the caller's key for the config; unique within a Set
	Rule Rule
}

// Choose returns the candidate whose rule matches base with the lowest
// rank. Candidates that tie (see Conflicts) should have been refused when
// saved; if they occur anyway the earliest in cands wins. It scans every
// candidate; build a Set to choose often.
func Choose(base string, cands []Candidate) (Candidate, Rank, bool) {
	n, ok := canonical(base)
	if !ok {
		return Candidate{}, 0, false
	}
	best, bestRank := -1, Rank(0)
	for i, c := range cands {
		if rk, ok := c.Rule.match(n); ok && (best < 0 || rk < bestRank) {
			best, bestRank = i, rk
		}
	}
	if best < 0 {
		return Candidate{}, 0, false
	}
	return cands[best], bestRank, true
}

// Conflict says that two configs tie: for Name both rules' best rank is
// Rank, so neither could be chosen. Two rules tie exactly when they share a
// pattern (see the package documentation), so one Pattern describes the
// pair: the same normalised pattern in both.
type Conflict struct {
	ID      string  // the existing config
	OtherID string  // the config being added (next.ID in Conflicts)
	Pattern Pattern // the pattern both rules contain
	Name    string  // a base name on which they tie; "" only in the pathological case the package documentation names
	Rank    Rank    // both rules' best rank for Name
}

// String describes the conflict for an admin: which configs, which
// pattern, and the name on which they tie.
func (c Conflict) String() string {
	other := "the new config"
	if c.OtherID != "" {
		other = fmt.Sprintf("config %q", c.OtherID)
	}
	s := fmt.Sprintf("config %q and %s both have the pattern %q", c.ID, other, c.Pattern)
	if c.Name != "" {
		s += fmt.Sprintf(", so neither wins for %q (both rank %d, %s)", c.Name, c.Rank, c.Rank)
	}
	return s
}

// ConflictError is returned by NewSet when candidates tie.
type ConflictError struct {
	Conflicts []Conflict
}

// Error lists every conflict.
func (e *ConflictError) Error() string {
	var b strings.Builder
	b.WriteString("conflicting domain match rules: ")
	for i, c := range e.Conflicts {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.String())
	}
	return b.String()
}

// Conflicts returns the ties between next and the existing configs, for
// refusing to save next. An existing config with next's ID is skipped, as
// next replaces it, so an edit can pass the full list; a new config may
// have an empty ID. The result is sorted by ID, then pattern.
func Conflicts(existing []Candidate, next Candidate) []Conflict {
	var out []Conflict
	for _, e := range existing {
		if next.ID != "" && e.ID == next.ID {
			continue
		}
		for _, p := range e.Rule.patterns {
			if _, ok := slices.BinarySearchFunc(next.Rule.patterns, p, comparePatterns); ok {
				out = append(out, newConflict(e, next, p))
			}
		}
	}
	sortConflicts(out)
	return out
}

func newConflict(e, next Candidate, p Pattern) Conflict {
	name, rank := exampleTie(e.Rule, next.Rule, p)
	return Conflict{ID: e.ID, OtherID: next.ID, Pattern: p, Name: name, Rank: rank}
}

func sortConflicts(cs []Conflict) {
	slices.SortFunc(cs, func(a, b Conflict) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.OtherID, b.OtherID),
			comparePatterns(a.Pattern, b.Pattern))
	})
}

// exampleTie finds a name on which a and b, which share p, tie. For an
// exact name it is the name. For *.q it is q, unless one rule has q exactly,
// then a child of q that neither rule names exactly or as a wildcard base.
// For * it is a name no other pattern of either rule matches. Each pattern
// rules out at most one candidate name, so len(a)+len(b)+1 tries suffice,
// unless q is so close to the 253-byte limit that the short labels tried
// run out: then Name is "" and the conflict still stands, erring towards
// refusing an absurd config.
func exampleTie(a, b Rule, p Pattern) (string, Rank) {
	tie := func(n string, want Rank) bool {
		ra, _ := a.match(n)
		rb, _ := b.match(n)
		return ra == want && rb == want
	}
	tries := len(a.patterns) + len(b.patterns) + 1
	fresh := func(parent string, want Rank) string {
		for i := range tries {
			const letters = "abcdefghijklmnopqrstuvwxyz"
			l := letters[i%26 : i%26+1]
			if i >= 26 {
				l += strconv.Itoa(i / 26)
			}
			n := l
			if parent != "" {
				n += "." + parent
			}
			if len(n) <= maxName && tie(n, want) {
				return n
			}
		}
		return ""
	}
	switch p.kind {
	case exact:
		return p.name, RankExact
	case wildcard:
		if tie(p.name, RankWildcardBase) {
			return p.name, RankWildcardBase
		}
		return fresh(p.name, RankWildcardChild), RankWildcardChild
	default:
		if n := fresh("invalid", RankCatchAll); n != "" {
			return n, RankCatchAll
		}
		return fresh("", RankCatchAll), RankCatchAll
	}
}

// Set chooses among configs in time independent of their number: exact
// and wildcard patterns are indexed by name, so Choose does at most three
// map lookups. It is immutable and safe for concurrent use; build a new Set
// when configs change.
type Set struct {
	cands    []Candidate
	exact    map[string]int // name -> index in cands
	wildcard map[string]int // q of *.q -> index in cands
	catchAll int            // index in cands, or -1
}

// NewSet indexes cands. It refuses (with a *ConflictError) candidates that
// tie, and refuses duplicate IDs and zero rules.
func NewSet(cands []Candidate) (*Set, error) {
	s := &Set{
		cands:    slices.Clone(cands),
		exact:    make(map[string]int),
		wildcard: make(map[string]int),
		catchAll: -1,
	}
	ids := make(map[string]struct{}, len(cands))
	var conflicts []Conflict
	for i, c := range s.cands {
		if _, dup := ids[c.ID]; dup {
			return nil, fmt.Errorf("build rule set: duplicate config id %q", c.ID)
		}
		ids[c.ID] = struct{}{}
		if c.Rule.IsZero() {
			return nil, fmt.Errorf("build rule set: config %q has an empty rule", c.ID)
		}
		for _, p := range c.Rule.patterns {
			if j, ok := s.slot(p); ok {
				conflicts = append(conflicts, newConflict(s.cands[j], c, p))
				continue
			}
			s.put(p, i)
		}
	}
	if len(conflicts) > 0 {
		sortConflicts(conflicts)
		return nil, &ConflictError{Conflicts: conflicts}
	}
	return s, nil
}

func (s *Set) slot(p Pattern) (int, bool) {
	switch p.kind {
	case exact:
		i, ok := s.exact[p.name]
		return i, ok
	case wildcard:
		i, ok := s.wildcard[p.name]
		return i, ok
	default:
		return s.catchAll, s.catchAll >= 0
	}
}

func (s *Set) put(p Pattern, i int) {
	switch p.kind {
	case exact:
		s.exact[p.name] = i
	case wildcard:
		s.wildcard[p.name] = i
	default:
		s.catchAll = i
	}
}

// Len returns the number of candidates.
func (s *Set) Len() int { return len(s.cands) }

// Choose returns the candidate whose rule matches base with the lowest
// rank, as the package-level Choose does. base is normalised first; a base
// that is not a valid name matches nothing.
func (s *Set) Choose(base string) (Candidate, Rank, bool) {
	n, ok := canonical(base)
	if !ok {
		return Candidate{}, 0, false
	}
	if i, ok := s.exact[n]; ok {
		return s.cands[i], RankExact, true
	}
	if i, ok := s.wildcard[n]; ok {
		return s.cands[i], RankWildcardBase, true
	}
	if p := parent(n); p != "" {
		if i, ok := s.wildcard[p]; ok {
			return s.cands[i], RankWildcardChild, true
		}
	}
	if s.catchAll >= 0 {
		return s.cands[s.catchAll], RankCatchAll, true
	}
	return Candidate{}, 0, false
}

// Conflicts is the package-level Conflicts against the set's candidates,
// in time independent of their number.
func (s *Set) Conflicts(next Candidate) []Conflict {
	var out []Conflict
	for _, p := range next.Rule.patterns {
		if i, ok := s.slot(p); ok && (next.ID == "" || s.cands[i].ID != next.ID) {
			out = append(out, newConflict(s.cands[i], next, p))
		}
	}
	sortConflicts(out)
	return out
}
