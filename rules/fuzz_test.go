package rules

import (
	"strings"
	"testing"
)

// FuzzRuleMatch checks the invariants of rule matching on any rule and
// name: no panics; canonical forms parse back to the same rule and
// normalise to themselves; a pattern matches only its own name or a name
// exactly one label below it, at a '.' boundary; a rule's rank is its
// best pattern's.
func FuzzRuleMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"example.org", "example.org"},
		{"example.org", "evilexample.org"},
		{"*.example.org", "evilexample.org"},
		{"*.example.org", "a.evilexample.org"},
		{"*.example.org", "example.org.evil.net"},
		{"*.example.org", "a.b.example.org"},
		{"*.example.org", "www.example.org"},
		{"*.Example.ORG.", "WWW.example.org."},
		{"*", "anything.example.net"},
		{"*.www.example.org; www.example.org", "*.www.example.org"},
		{"bücher.example, *.xn--bcher-kva.example", "www.BÜCHER.example"},
		{"xn--zz.example", "xn--zz.example"},
		{"*example.org", "example.org"},
		{"a.*.example.org", "a.b.example.org"},
		{"**.example.org", "*.*.example.org"},
		{"*.", "*."},
		{" ; , ", ""},
		{"192.0.2.1", "192.0.2.1"},
		{"example.org;example.org,EXAMPLE.org.", "_acme-challenge.example.org"},
		{"ab--cd.example", "xn--a-ccb.example"},
		{"*.\u3002", "example.org\u3002"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rule, name string) {
		checkNormalize(t, name)
		r, err := Parse(rule)
		if err != nil {
			return
		}
		if r.IsZero() {
			t.Fatalf("Parse(%q) returned the zero rule", rule)
		}
		r2, err := Parse(r.String())
		if err != nil || !r2.Equal(r) || r2.String() != r.String() {
			t.Fatalf("Parse(%q) = %q; Parse of that = %q, %v", rule, r, r2, err)
		}
		checkMatch(t, r, name)
		if base, _, err := NormalizeIdentifier(name); err == nil {
			checkMatch(t, r, base)
		}
	})
}

func checkNormalize(t *testing.T, name string) {
	t.Helper()
	if isCanonical(name) {
		if n, err := normalizeName(name); err != nil || n != name {
			t.Fatalf("isCanonical(%q) but normalizeName = %q, %v", name, n, err)
		}
	}
	if n, ok := canonical(name); ok {
		if n2, ok2 := canonical(n); !ok2 || n2 != n {
			t.Fatalf("canonical(%q) = %q, canonical of that = %q, %v", name, n, n2, ok2)
		}
	}
	base, _, err := NormalizeIdentifier(name)
	if err != nil {
		return
	}
	if b, w, err := NormalizeIdentifier(base); err != nil || b != base || w {
		t.Fatalf("NormalizeIdentifier(%q) = %q; of that = %q, %v, %v", name, base, b, w, err)
	}
	if b, w, err := NormalizeIdentifier("*." + base); err != nil || b != base || !w {
		t.Fatalf("NormalizeIdentifier(*.%s) = %q, %v, %v", base, b, w, err)
	}
	// Normalised names take the fast path, but for xn-- labels.
	if !isCanonical(base) && !strings.Contains(base, "xn--") {
		t.Fatalf("NormalizeIdentifier(%q) = %q, which isCanonical refuses", name, base)
	}
	if b, err := BaseFromChallengeName(ChallengeName(base)); err != nil || b != base {
		t.Fatalf("BaseFromChallengeName(ChallengeName(%q)) = %q, %v", base, b, err)
	}
}

func checkMatch(t *testing.T, r Rule, name string) {
	t.Helper()
	rk, matched := r.Match(name)
	if r.Allows(name) != matched {
		t.Fatalf("%q: Allows(%q) != Match", r, name)
	}
	n, ok := canonical(name)
	if !ok {
		if matched {
			t.Fatalf("%q matches %q, which is not a valid name", r, name)
		}
		return
	}
	best := Rank(0)
	for _, p := range r.patterns {
		prk, pok := p.match(n)
		// The expected result, worked out without p.match.
		var want Rank
		switch p.kind {
		case exact:
			if n == p.name {
				want = RankExact
			}
		case wildcard:
			if n == p.name {
				want = RankWildcardBase
			} else if rest, found := strings.CutSuffix(n, "."+p.name); found && rest != "" && !strings.Contains(rest, ".") {
				want = RankWildcardChild
			}
		case catchAll:
			want = RankCatchAll
		}
		if pok != (want != 0) || prk != want {
			t.Fatalf("pattern %q on %q = %v, %v; want %v", p, n, prk, pok, want)
		}
		if pok && p.kind != catchAll && n != p.name && !strings.HasSuffix(n, "."+p.name) {
			t.Fatalf("pattern %q matches %q across a label boundary", p, n)
		}
		if pok && (best == 0 || prk < best) {
			best = prk
		}
	}
	if matched != (best != 0) || rk != best {
		t.Fatalf("%q.Match(%q) = %v, %v; best pattern rank %v", r, name, rk, matched, best)
	}
	c, crk, cok := Choose(name, []Candidate{{ID: "x", Rule: r}})
	if cok != matched || crk != rk || cok && c.ID != "x" {
		t.Fatalf("Choose(%q) over %q = %v, %v; Match = %v, %v", name, r, crk, cok, rk, matched)
	}
}
