package hub

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// The admin operations (principals, role assignments, tokens, managed
// challenge configs, delegations, audit) take the caller's Grant and check
// the permission table of DESIGN.md themselves, like the challenge
// operations do. Every change is audited, allowed or not, and no audit
// event ever holds a secret.

// ErrConflict means the request clashes with what is stored: a name in
// use, a domain match rule that ties with another config, or a change
// that would leave the hub without an admin. The API answers 409.
var ErrConflict = errors.New("conflict")

// AdminStore is what the admin operations need of the store beyond Store;
// *store.DB implements it. The methods' contracts are the store's.
type AdminStore interface {
	CreatePrincipal(ctx context.Context, p store.Principal) (store.Principal, error)
	ListPrincipals(ctx context.Context) ([]store.Principal, error)
	UpdatePrincipal(ctx context.Context, p store.Principal) (store.Principal, error)
	DeletePrincipal(ctx context.Context, id int64) error
	AddRoleAssignment(ctx context.Context, a store.RoleAssignment) (store.RoleAssignment, error)
	RemoveRoleAssignment(ctx context.Context, id int64) error

	CreateToken(ctx context.Context, t store.Token) error
	ListTokens(ctx context.Context, principalID int64) ([]store.Token, error)
	RevokeToken(ctx context.Context, clientID string, at time.Time) error

	Config(ctx context.Context, id int64) (store.ChallengeConfig, error)
	SaveConfigChecked(ctx context.Context, c store.ChallengeConfig, check func(existing []store.ChallengeConfig) error) (store.ChallengeConfig, error)
	DeleteConfig(ctx context.Context, id int64) error

	ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error)
	DeleteDelegation(ctx context.Context, id int64) error
	MoveDelegation(ctx context.Context, id, configID int64) error

	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
}

var _ AdminStore = (*store.DB)(nil)

type sourceKey struct{}

// WithSource returns ctx carrying the remote address of the request, which
// the admin operations write into their audit events. Without it the
// events name no source.
func WithSource(ctx context.Context, source netip.Addr) context.Context {
	return context.WithValue(ctx, sourceKey{}, source)
}

func sourceOf(ctx context.Context) string {
	if a, ok := ctx.Value(sourceKey{}).(netip.Addr); ok && a.IsValid() {
		return a.String()
	}
	return ""
}

// auditAdmin records an admin change (or the refusal of one). ev carries
// what was done to what; the grant, source and result are filled in here.
func (s *Service) auditAdmin(ctx context.Context, g Grant, ev store.AuditEvent, err error) {
	ev.PrincipalID, ev.TokenID, ev.Source = g.Principal.ID, g.Principal.TokenID, sourceOf(ctx)
	ev.Result = "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrForbidden):
		ev.Result = "denied"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound),
		errors.Is(err, ErrUnsupported), errors.Is(err, ErrLimit):
		ev.Result = "refused"
		if ev.Detail != "" {
			ev.Detail += ": "
		}
		ev.Detail += err.Error()
	default:
		ev.Result, ev.Detail = "error", "internal error"
	}
	s.audit(ctx, ev)
}

// adminStoreError is storeError plus the conflict kind; what names the
// thing for the message a conflict shows.
func adminStoreError(op, what string, err error) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %s exists already", ErrConflict, what)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return storeError(op, err)
}

// rolesOf returns the distinct roles of assignments, in the order of Roles.
func rolesOf(as []Assignment) []Role {
	var out []Role
	for _, r := range Roles {
		if slices.ContainsFunc(as, func(a Assignment) bool { return a.Role == r }) {
			out = append(out, r)
		}
	}
	return out
}

// coversRule reports whether the grant may manage every name the rule
// matches: some assignment allowing action must reach each of the rule's
// patterns. An unrestricted assignment reaches all; a restriction reaches
// an exact pattern it allows, and a wildcard or the catch-all only if it
// holds that very pattern (or "*"), since those match names without end.
func (g Grant) coversRule(a Action, r rules.Rule) bool {
	for _, p := range r.Patterns() {
		if !slices.ContainsFunc(g.Assignments, func(as Assignment) bool {
			return as.Role.Allows(a) && restrictionCovers(as.Domains, p)
		}) {
			return false
		}
	}
	return true
}

func restrictionCovers(restriction rules.Rule, p rules.Pattern) bool {
	if restriction.IsZero() {
		return true
	}
	ps := p.String()
	for _, q := range restriction.Patterns() {
		if qs := q.String(); qs == "*" || qs == ps {
			return true
		}
	}
	if ps == "*" || ps[0] == '*' {
		return false
	}
	return restriction.Allows(ps)
}

// positiveID refuses ids that cannot name a stored row.
func positiveID(what string, id int64) error {
	if id <= 0 {
		return fmt.Errorf("%w: %s id %d: want a positive number", ErrInvalid, what, id)
	}
	return nil
}
