package hub

import (
	"testing"

	"github.com/acmehub/acmehub/rules"
)

func TestCoversRule(t *testing.T) {
	t.Parallel()
	grant := func(role Role, domains string) Grant {
		a := Assignment{Role: role}
		if domains != "" {
			a.Domains = rules.MustParse(domains)
		}
		return Grant{Assignments: []Assignment{a}}
	}
	tests := []struct {
		name string
		g    Grant
		rule string
		want bool
	}{
		{"unrestricted", grant(RoleChallengeAdmin, ""), "*", true},
		{"exact within wildcard", grant(RoleChallengeAdmin, "*.example.org"), "www.example.org, example.org", true},
		{"same wildcard", grant(RoleChallengeAdmin, "*.example.org"), "*.example.org", true},
		{"deeper wildcard", grant(RoleChallengeAdmin, "*.example.org"), "*.www.example.org", false},
		{"catch-all", grant(RoleChallengeAdmin, "*.example.org"), "*", false},
		{"outside", grant(RoleChallengeAdmin, "*.example.org"), "example.net", false},
		{"two levels down", grant(RoleChallengeAdmin, "*.example.org"), "a.b.example.org", false},
		{"restricted to all", grant(RoleAdmin, "*"), "*.example.net", true},
		{"consumer", grant(RoleChallengeConsumer, ""), "example.org", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.g.coversRule(ActionManageChallenges, rules.MustParse(tc.rule)); got != tc.want {
				t.Fatalf("coversRule(%q) = %v, want %v", tc.rule, got, tc.want)
			}
		})
	}
}

func TestWithoutPattern(t *testing.T) {
	t.Parallel()
	for rule, want := range map[string]string{
		"www.example.org, *.example.org": "*.example.org",
		"www.example.org":                "",
		"*.www.example.org":              "*.www.example.org", // a wildcard is not the exact pattern
		"example.net; WWW.example.org.":  "example.net",
	} {
		if got := withoutPattern(rule, "www.example.org"); got != want {
			t.Errorf("withoutPattern(%q) = %q, want %q", rule, got, want)
		}
	}
}
