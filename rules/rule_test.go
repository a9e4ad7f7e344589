package rules

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // canonical form
		err  string // substring of the error; "" for success
	}{
		{name: "exact", in: "example.org", want: "example.org"},
		{name: "wildcard", in: "*.example.org", want: "*.example.org"},
		{name: "catch-all", in: "*", want: "*"},
		{name: "semicolons", in: "example.org;example.net", want: "example.net, example.org"},
		{name: "commas", in: "example.org,example.net", want: "example.net, example.org"},
		{name: "mixed separators and blanks", in: " example.org ;\t*.example.net , www.example.org\n", want: "*.example.net, example.org, www.example.org"},
		{name: "blank items ignored", in: ";example.org;;, ,", want: "example.org"},
		{name: "case and trailing dot", in: "*.Example.ORG.", want: "*.example.org"},
		{name: "duplicates kept once", in: "example.org; EXAMPLE.org.; example.org", want: "example.org"},
		{name: "unicode and punycode are one pattern", in: "bücher.example, xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "unicode wildcard", in: "*.BÜCHER.example", want: "*.xn--bcher-kva.example"},
		{name: "exact and wildcard of one name differ", in: "*.example.org; example.org", want: "example.org, *.example.org"},
		{name: "catch-all sorts first", in: "example.org, *", want: "*, example.org"},

		{name: "empty", in: "", err: "no patterns"},
		{name: "blank", in: "  ", err: "no patterns"},
		{name: "only separators", in: " ; , ;", err: "no patterns"},
		{name: "partial wildcard", in: "*example.org", err: `"*" is allowed only`},
		{name: "inner wildcard", in: "a.*.example.org", err: `"*" is allowed only`},
		{name: "double star", in: "**.example.org", err: `"*" is allowed only`},
		{name: "star dot", in: "*.", err: `"*." has no domain`},
		{name: "star dot dot", in: "*..", err: `"*." has no domain`},
		{name: "two wildcard labels", in: "*.*.example.org", err: "only the leftmost label"},
		{name: "trailing star", in: "example.*", err: `"*" is allowed only`},
		{name: "one bad item spoils the rule", in: "example.org; a_b.example.org", err: `pattern "a_b.example.org"`},
		{name: "ip", in: "192.0.2.1", err: "IP address"},
		{name: "wildcard ip-like", in: "*.0.2.1", err: "all digits"},
		{name: "invalid punycode", in: "xn--zz.example", err: "internationalised"},
		{name: "space inside", in: "example org", err: "invalid character"},
		{name: "wildcard name too long", in: "*." + strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 60), err: "wildcard name is 254 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(tt.in)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %q; want error containing %q", tt.in, r, tt.err)
				}
				if !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) error = %v; want ErrInvalid containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Fatalf("Parse(%q).String() = %q; want %q", tt.in, got, tt.want)
			}
			r2, err := Parse(r.String())
			if err != nil || !r2.Equal(r) {
				t.Fatalf("Parse(%q) = %q, %v; want it equal to the original", r.String(), r2, err)
			}
		})
	}
}

func TestZeroRule(t *testing.T) {
	t.Parallel()
	var r Rule
	if !r.IsZero() || r.String() != "" || r.Allows("example.org") {
		t.Fatalf("zero Rule: IsZero %v, String %q, Allows %v", r.IsZero(), r, r.Allows("example.org"))
	}
	if MustParse("*").IsZero() {
		t.Fatal("MustParse(*) is zero")
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rule string
		base string
		want Rank // 0: no match
	}{
		{name: "exact", rule: "example.org", base: "example.org", want: RankExact},
		{name: "exact not child", rule: "example.org", base: "www.example.org"},
		{name: "exact not parent", rule: "www.example.org", base: "example.org"},
		{name: "exact suffix without dot", rule: "example.org", base: "evilexample.org"},
		{name: "exact as prefix", rule: "example.org", base: "example.org.evil.net"},
		{name: "wildcard base", rule: "*.example.org", base: "example.org", want: RankWildcardBase},
		{name: "wildcard child", rule: "*.example.org", base: "www.example.org", want: RankWildcardChild},
		{name: "wildcard grandchild", rule: "*.example.org", base: "a.b.example.org"},
		{name: "wildcard suffix without dot", rule: "*.example.org", base: "evilexample.org"},
		{name: "wildcard child without dot", rule: "*.example.org", base: "a.evilexample.org"},
		{name: "wildcard as prefix", rule: "*.example.org", base: "example.org.evil.net"},
		{name: "wildcard parent", rule: "*.www.example.org", base: "example.org"},
		{name: "catch-all", rule: "*", base: "anything.example.net", want: RankCatchAll},
		{name: "catch-all single label", rule: "*", base: "localhost", want: RankCatchAll},
		{name: "best of several", rule: "*, *.example.org, www.example.org", base: "www.example.org", want: RankExact},
		{name: "wildcard beats catch-all", rule: "*, *.example.org", base: "www.example.org", want: RankWildcardChild},
		{name: "base case", rule: "example.org", base: "EXAMPLE.Org", want: RankExact},
		{name: "rule case", rule: "EXAMPLE.Org", base: "example.org", want: RankExact},
		{name: "trailing dot", rule: "example.org.", base: "example.org.", want: RankExact},
		{name: "unicode rule punycode base", rule: "bücher.example", base: "xn--bcher-kva.example", want: RankExact},
		{name: "punycode rule unicode base", rule: "*.xn--bcher-kva.example", base: "www.bücher.example", want: RankWildcardChild},
		{name: "similar-looking unicode", rule: "bucher.example", base: "bücher.example"},
		// The base of *.www.example.org is www.example.org: the caller
		// matches the base, never the wildcard form.
		{name: "wildcard identifier is not a base", rule: "*", base: "*.example.org"},
		{name: "challenge name is not a base", rule: "*", base: "_acme-challenge.example.org"},
		{name: "invalid base", rule: "*", base: "a..b"},
		{name: "ip base", rule: "*", base: "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := MustParse(tt.rule)
			rk, ok := r.Match(tt.base)
			if ok != (tt.want != 0) || rk != tt.want {
				t.Fatalf("%q.Match(%q) = %v, %v; want %v", tt.rule, tt.base, rk, ok, tt.want)
			}
			if got := r.Allows(tt.base); got != ok {
				t.Fatalf("%q.Allows(%q) = %v; Match says %v", tt.rule, tt.base, got, ok)
			}
		})
	}
}

// TestWildcardIdentifierFollowsBase documents that a grant for a name also
// lets its wildcard validate: both use the TXT record at
// _acme-challenge.<base>, so the rule sees the same base.
func TestWildcardIdentifierFollowsBase(t *testing.T) {
	t.Parallel()
	r := MustParse("www.example.org")
	for _, id := range []string{"www.example.org", "*.www.example.org"} {
		base, _, err := NormalizeIdentifier(id)
		if err != nil {
			t.Fatal(err)
		}
		if rk, ok := r.Match(base); !ok || rk != RankExact {
			t.Errorf("rule www.example.org on identifier %q (base %q) = %v, %v; want exact", id, base, rk, ok)
		}
		if !r.Allows(base) {
			t.Errorf("restriction www.example.org does not allow identifier %q", id)
		}
	}
	// And a rule can't grant the wildcard without the name:
	// *.www.example.org's base is www.example.org, not a child of it.
	if rk, ok := MustParse("*.www.example.org").Match("www.example.org"); !ok || rk != RankWildcardBase {
		t.Errorf("*.www.example.org on base www.example.org = %v, %v; want wildcard base", rk, ok)
	}
}

func TestPatterns(t *testing.T) {
	t.Parallel()
	r := MustParse("*.example.org, example.net, *")
	ps := r.Patterns()
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "* example.net *.example.org" {
		t.Fatalf("Patterns() = %q", got)
	}
	ps[0] = Pattern{kind: exact, name: "changed.example"}
	if r.String() != "*, example.net, *.example.org" {
		t.Fatalf("changing the Patterns() result changed the rule: %q", r)
	}
	if rk, ok := ps[2].Match("www.Example.org."); !ok || rk != RankWildcardChild {
		t.Fatalf("Pattern.Match = %v, %v", rk, ok)
	}
}

func TestRuleAllowsAll(t *testing.T) {
	t.Parallel()
	for rule, want := range map[string]bool{"*": true, "example.org; *": true, "*.example.org": false, "example.org": false} {
		r, err := Parse(rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AllowsAll(); got != want {
			t.Errorf("%q: AllowsAll %v, want %v", rule, got, want)
		}
	}
}
