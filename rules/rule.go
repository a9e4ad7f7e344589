package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

type kind uint8

// The order of the kinds is the order of patterns in a rule's canonical
// form (after the catch-all, by name).
const (
	catchAll kind = iota
	exact
	wildcard
)

// Pattern is one normalised item of a Rule: an exact name, a wildcard
// *.<name>, or the catch-all *. The zero Pattern is the catch-all; Patterns
// come from Rule.Patterns.
type Pattern struct {
	kind kind
	name string // exact: the name; wildcard: the name after "*."; catch-all: ""
}

// String returns the canonical form: example.org, *.example.org or *.
func (p Pattern) String() string {
	switch p.kind {
	case exact:
		return p.name
	case wildcard:
		return "*." + p.name
	default:
		return "*"
	}
}

// Match reports whether the pattern matches the base name, and with which
// rank. base is normalised first; a base that is not a valid name (a
// wildcard identifier or a challenge name among them) matches nothing.
func (p Pattern) Match(base string) (Rank, bool) {
	n, ok := canonical(base)
	if !ok {
		return 0, false
	}
	return p.match(n)
}

// match matches a canonical name. A wildcard never crosses a label
// boundary: it matches its own name and names exactly one label below,
// compared whole, so evilexample.org matches neither example.org nor
// *.example.org.
func (p Pattern) match(n string) (Rank, bool) {
	switch p.kind {
	case exact:
		if n == p.name {
			return RankExact, true
		}
	case wildcard:
		if n == p.name {
			return RankWildcardBase, true
		}
		if parent(n) == p.name {
			return RankWildcardChild, true
		}
	case catchAll:
		return RankCatchAll, true
	}
	return 0, false
}

// parent returns n without its first label, or "" for a one-label name
// (no pattern names the root, so "" matches nothing).
func parent(n string) string {
	if i := strings.IndexByte(n, '.'); i >= 0 {
		return n[i+1:]
	}
	return ""
}

func parsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{kind: catchAll}, nil
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		if slices.Contains(unicodeDots, rest) || rest == "" {
			return Pattern{}, errors.New(`"*." has no domain after it; use "*" alone to match every domain`)
		}
		if strings.Contains(rest, "*") {
			return Pattern{}, errors.New(`only the leftmost label may be "*"`)
		}
		n, err := normalizeName(rest)
		if err != nil {
			return Pattern{}, err
		}
		if len(n)+2 > maxName {
			return Pattern{}, fmt.Errorf("wildcard name is %d bytes; the limit is %d", len(n)+2, maxName)
		}
		return Pattern{kind: wildcard, name: n}, nil
	}
	if strings.Contains(s, "*") {
		return Pattern{}, errors.New(`"*" is allowed only alone or as the whole leftmost label, as in "*.example.org"`)
	}
	n, err := normalizeName(s)
	if err != nil {
		return Pattern{}, err
	}
	return Pattern{kind: exact, name: n}, nil
}

func comparePatterns(a, b Pattern) int {
	if a.kind == catchAll || b.kind == catchAll {
		return cmp.Compare(a.kind, b.kind)
	}
	return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.kind, b.kind))
}

// Rule is a parsed domain match rule: a set of patterns. The zero Rule has
// no patterns and matches nothing; Parse never returns it. A Rule is
// immutable and safe for concurrent use.
type Rule struct {
	patterns []Pattern // sorted by comparePatterns, no duplicates
}

// Parse parses a domain match rule: patterns separated by ';' or ',', with
// blanks around them and blank items ignored. A pattern is
//
//	example.org    that name only
//	*.example.org  example.org and names exactly one label below it
//	*              every name (the only catch-all)
//
// Names are case-insensitive, a trailing dot is ignored and Unicode names
// are normalised to A-labels. Patterns that are equal after normalisation
// (Example.org and example.org., bücher.example and xn--bcher-kva.example)
// are kept once: a rule is a set, and a repeat changes no match.
//
// A rule with no patterns, a '*' anywhere but alone or as the whole
// leftmost label, a name with an underscore and an IP address are refused.
func Parse(s string) (Rule, error) {
	var ps []Pattern
	for item := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ';' || r == ',' }) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parsePattern(item)
		if err != nil {
			return Rule{}, &inputError{op: "parse rule pattern", input: item, err: err}
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return Rule{}, &inputError{op: "parse rule", input: s,
			err: errors.New(`no patterns; use "*" to match every domain`)}
	}
	slices.SortFunc(ps, comparePatterns)
	return Rule{patterns: slices.Compact(ps)}, nil
}

// MustParse is Parse for rules known to be valid, such as constants in
// tests; it panics on error.
func MustParse(s string) Rule {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

// String returns the canonical form: the normalised patterns, sorted and
// joined with ", ". Parse(r.String()) returns a rule Equal to r.
func (r Rule) String() string {
	var b strings.Builder
	for i, p := range r.patterns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Patterns returns the rule's patterns in canonical order.
func (r Rule) Patterns() []Pattern {
	return slices.Clone(r.patterns)
}

// IsZero reports whether r is the zero Rule, which matches nothing.
func (r Rule) IsZero() bool {
	return len(r.patterns) == 0
}

// Equal reports whether r and o have the same patterns.
func (r Rule) Equal(o Rule) bool {
	return slices.Equal(r.patterns, o.patterns)
}

// Match returns the best (lowest) rank among the rule's patterns that
// match base, used to choose among configs. base is normalised first; a
// base that is not a valid name matches nothing.
func (r Rule) Match(base string) (Rank, bool) {
	n, ok := canonical(base)
	if !ok {
		return 0, false
	}
	return r.match(n)
}

func (r Rule) match(n string) (Rank, bool) {
	best := Rank(0)
	for _, p := range r.patterns {
		if rk, ok := p.match(n); ok && (best == 0 || rk < best) {
			best = rk
		}
	}
	return best, best != 0
}

// AllowsAll reports whether the rule holds the catch-all pattern *.
func (r Rule) AllowsAll() bool {
	for _, p := range r.Patterns() {
		if p.kind == catchAll {
			return true
		}
	}
	return false
}

// Allows reports whether any pattern matches base, whatever its rank: the
// check for a role assignment's domain restrictions, which use the rule
// syntax and, like config choice, the base name. A restriction example.org
// therefore allows the identifiers example.org and *.example.org.
func (r Rule) Allows(base string) bool {
	_, ok := r.Match(base)
	return ok
}
