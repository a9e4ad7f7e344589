package hub

import (
	"fmt"
	"slices"

	"github.com/acmehub/acmehub/rules"
)

// Role is a named set of permissions held by a principal.
type Role string

// The roles of DESIGN.md.
const (
	RoleAdmin             Role = "admin"
	RoleChallengeAdmin    Role = "managed_challenge_admin"
	RoleChallengeConsumer Role = "managed_challenge_consumer"
)

// Roles lists every role, for validation and help texts.
var Roles = []Role{RoleAdmin, RoleChallengeAdmin, RoleChallengeConsumer}

// ParseRole accepts a role name as stored and shown.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("%w: unknown role %q (want one of %v)", ErrInvalid, s, Roles)
	}
	return r, nil
}

// Action is what a request wants to do; roles allow actions.
type Action uint8

// Actions, as in the permission table of DESIGN.md.
const (
	// ActionChallenge: present, clean up and read the status of challenges.
	ActionChallenge Action = iota + 1
	// ActionManageChallenges: managed challenge configs, delegations and
	// stored credentials.
	ActionManageChallenges
	// ActionManageAccess: principals, role assignments, other principals'
	// tokens, settings.
	ActionManageAccess
	// ActionReadAudit: the audit log; how much of it depends on the role
	// (see AuditScope).
	ActionReadAudit
)

// allows is the permission table of DESIGN.md.
var allows = map[Role][]Action{
	RoleAdmin:             {ActionChallenge, ActionManageChallenges, ActionManageAccess, ActionReadAudit},
	RoleChallengeAdmin:    {ActionChallenge, ActionManageChallenges, ActionReadAudit},
	RoleChallengeConsumer: {ActionChallenge, ActionReadAudit},
}

// Allows reports whether the role permits the action.
func (r Role) Allows(a Action) bool { return slices.Contains(allows[r], a) }

// AuditScope is how much of the audit log a role may read.
type AuditScope uint8

// Audit scopes, widest first.
const (
	AuditNone AuditScope = iota
	AuditOwnRequests
	AuditOwnConfigs
	AuditAll
)

// AuditScope returns the role's reach into the audit log.
func (r Role) AuditScope() AuditScope {
	switch r {
	case RoleAdmin:
		return AuditAll
	case RoleChallengeAdmin:
		return AuditOwnConfigs
	case RoleChallengeConsumer:
		return AuditOwnRequests
	}
	return AuditNone
}

// Assignment is one role held by a principal, optionally restricted to
// domains (same pattern syntax as domain match rules; the zero Rule means
// every domain). Restrictions apply to base names, like the rules do.
type Assignment struct {
	Role    Role
	Domains rules.Rule
}

// covers reports whether the assignment reaches base.
func (a Assignment) covers(base string) bool {
	return a.Domains.IsZero() || a.Domains.Allows(base)
}

// Grant is what one authenticated request may use: the principal's role
// assignments after the token's narrowing.
type Grant struct {
	Principal   Principal
	Assignments []Assignment
}

// Narrow keeps only the assignments whose role is in roles; an empty list
// means the token is not narrowed. A token can only lose roles this way,
// never gain one its owner lacks.
func Narrow(assignments []Assignment, roles []Role) []Assignment {
	if len(roles) == 0 {
		return assignments
	}
	var out []Assignment
	for _, a := range assignments {
		if slices.Contains(roles, a.Role) {
			out = append(out, a)
		}
	}
	return out
}

// Allows reports whether some assignment permits the action at all,
// whatever the domain (for admin resources that are not per domain).
func (g Grant) Allows(a Action) bool {
	for _, as := range g.Assignments {
		if as.Role.Allows(a) {
			return true
		}
	}
	return false
}

// AllowsEverywhere reports whether some assignment permits the action
// without a domain restriction (none, or the catch-all *): needed for resources that reach any
// domain, such as upstream credentials.
func (g Grant) AllowsEverywhere(a Action) bool {
	for _, as := range g.Assignments {
		if as.Role.Allows(a) && (as.Domains.IsZero() || as.Domains.AllowsAll()) {
			return true
		}
	}
	return false
}

// AllowsDomain reports whether some assignment both permits the action and
// reaches the base name: scope steps (1) and (2) of DESIGN.md.
func (g Grant) AllowsDomain(a Action, base string) bool {
	for _, as := range g.Assignments {
		if as.Role.Allows(a) && as.covers(base) {
			return true
		}
	}
	return false
}

// ConfigChooser picks the managed challenge config for a base name;
// *rules.Set implements it.
type ConfigChooser interface {
	Choose(base string) (rules.Candidate, rules.Rank, bool)
}

// AuthorizeChallenge applies the scope before choosing the config: the
// grant must allow challenges for base (steps 1 and 2), and only then does
// the best-ranked config matching base decide (step 3). Every refusal is the
// same ErrForbidden, so a caller learns nothing about configs outside its
// scope.
func AuthorizeChallenge(g Grant, base string, configs ConfigChooser) (rules.Candidate, error) {
	if !g.AllowsDomain(ActionChallenge, base) {
		return rules.Candidate{}, ErrForbidden
	}
	c, _, ok := configs.Choose(base)
	if !ok {
		return rules.Candidate{}, ErrForbidden
	}
	return c, nil
}
