package hub

import (
	"errors"
	"testing"

	"github.com/acmehub/acmehub/rules"
)

func TestPermissionTable(t *testing.T) {
	t.Parallel()
	want := map[Role]map[Action]bool{
		RoleAdmin:             {ActionChallenge: true, ActionManageChallenges: true, ActionManageAccess: true, ActionReadAudit: true},
		RoleChallengeAdmin:    {ActionChallenge: true, ActionManageChallenges: true, ActionManageAccess: false, ActionReadAudit: true},
		RoleChallengeConsumer: {ActionChallenge: true, ActionManageChallenges: false, ActionManageAccess: false, ActionReadAudit: true},
		Role("nobody"):        {ActionChallenge: false, ActionManageChallenges: false, ActionManageAccess: false, ActionReadAudit: false},
	}
	for role, actions := range want {
		for a, ok := range actions {
			if got := role.Allows(a); got != ok {
				t.Errorf("%s allows action %d: %v, want %v", role, a, got, ok)
			}
		}
	}
	if RoleChallengeConsumer.AuditScope() != AuditOwnRequests || RoleChallengeAdmin.AuditScope() != AuditOwnConfigs || RoleAdmin.AuditScope() != AuditAll {
		t.Error("audit scopes differ from the table")
	}
	if _, err := ParseRole("root"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown role: %v", err)
	}
}

func TestAuthorizeChallenge(t *testing.T) {
	t.Parallel()
	configs, err := rules.NewSet([]rules.Candidate{
		{ID: "wild", Rule: rules.MustParse("*.example.org")},
		{ID: "exact", Rule: rules.MustParse("special.example.org")},
		{ID: "net", Rule: rules.MustParse("example.net")},
	})
	if err != nil {
		t.Fatal(err)
	}
	consumer := func(restrict string) Assignment {
		a := Assignment{Role: RoleChallengeConsumer}
		if restrict != "" {
			a.Domains = rules.MustParse(restrict)
		}
		return a
	}
	tests := []struct {
		name       string
		grant      []Assignment
		narrow     []Role
		base       string
		wantConfig string // "" = forbidden
	}{
		{"consumer, wildcard config, one label below", []Assignment{consumer("")}, nil, "www.example.org", "wild"},
		{"consumer, wildcard config, the base itself", []Assignment{consumer("")}, nil, "example.org", "wild"},
		{"exact config ranks first", []Assignment{consumer("")}, nil, "special.example.org", "exact"},
		{"two labels below: no config", []Assignment{consumer("")}, nil, "a.b.example.org", ""},
		{"label confusion", []Assignment{consumer("")}, nil, "evilexample.org", ""},
		{"no config at all", []Assignment{consumer("")}, nil, "example.com", ""},
		{"restriction allows", []Assignment{consumer("*.example.org")}, nil, "www.example.org", "wild"},
		// Scope first: a config exists for example.net, but this
		// principal's restriction does not reach it.
		{"restriction refuses before the config", []Assignment{consumer("*.example.org")}, nil, "example.net", ""},
		{"one of two assignments reaches", []Assignment{consumer("example.net"), consumer("*.example.org")}, nil, "example.net", "net"},
		{"no role", nil, nil, "www.example.org", ""},
		{"narrowed away", []Assignment{consumer("")}, []Role{RoleAdmin}, "www.example.org", ""},
		{"narrowed to the kept role", []Assignment{{Role: RoleAdmin}, consumer("example.net")}, []Role{RoleChallengeConsumer}, "www.example.org", ""},
		{"admin without restriction", []Assignment{{Role: RoleAdmin}}, nil, "www.example.org", "wild"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := Grant{Assignments: Narrow(tc.grant, tc.narrow)}
			c, err := AuthorizeChallenge(g, tc.base, configs)
			switch {
			case tc.wantConfig == "" && !errors.Is(err, ErrForbidden):
				t.Fatalf("got config %q, err %v; want forbidden", c.ID, err)
			case tc.wantConfig != "" && (err != nil || c.ID != tc.wantConfig):
				t.Fatalf("got config %q, err %v; want %q", c.ID, err, tc.wantConfig)
			}
		})
	}
}

func TestNarrowNeverAdds(t *testing.T) {
	t.Parallel()
	owner := []Assignment{{Role: RoleChallengeConsumer}}
	if got := Narrow(owner, []Role{RoleAdmin, RoleChallengeConsumer}); len(got) != 1 || got[0].Role != RoleChallengeConsumer {
		t.Fatalf("narrowing added or lost roles: %v", got)
	}
	if g := (Grant{Assignments: Narrow(owner, []Role{RoleAdmin})}); g.Allows(ActionManageAccess) || g.Allows(ActionChallenge) {
		t.Fatal("a token narrowed to a role its owner lacks gained rights")
	}
}
