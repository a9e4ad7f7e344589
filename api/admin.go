package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// AccessService manages principals, their role assignments and API
// tokens. Every method checks the grant against the permission table;
// refusals wrap hub.ErrForbidden, clashes hub.ErrConflict, unknown ids
// hub.ErrNotFound, bad input hub.ErrInvalid.
type AccessService interface {
	CreatePrincipal(ctx context.Context, g hub.Grant, req hub.NewPrincipal) (hub.PrincipalInfo, error)
	ListPrincipals(ctx context.Context, g hub.Grant) ([]hub.PrincipalInfo, error)
	GetPrincipal(ctx context.Context, g hub.Grant, id int64) (hub.PrincipalInfo, error)
	UpdatePrincipal(ctx context.Context, g hub.Grant, id int64, u hub.PrincipalUpdate) (hub.PrincipalInfo, error)
	DeletePrincipal(ctx context.Context, g hub.Grant, id int64) error

	AddRole(ctx context.Context, g hub.Grant, principalID int64, role, domains string) (hub.RoleAssignment, error)
	ListRoles(ctx context.Context, g hub.Grant, principalID int64) ([]hub.RoleAssignment, error)
	RemoveRole(ctx context.Context, g hub.Grant, principalID, assignmentID int64) error

	// CreateToken returns the new token's secret, the only time it exists
	// outside the client.
	CreateToken(ctx context.Context, g hub.Grant, req hub.TokenRequest) (hub.IssuedToken, error)
	// ListTokens lists a principal's tokens; principalID 0 lists all.
	ListTokens(ctx context.Context, g hub.Grant, principalID int64) ([]hub.TokenInfo, error)
	GetToken(ctx context.Context, g hub.Grant, clientID string) (hub.TokenInfo, error)
	RevokeToken(ctx context.Context, g hub.Grant, clientID string) (hub.TokenInfo, error)
}

// ChallengeAdminService manages managed challenge configs and delegations,
// with the same error contract as AccessService.
type ChallengeAdminService interface {
	CreateManagedChallenge(ctx context.Context, g hub.Grant, req hub.ManagedChallengeRequest) (hub.ManagedChallenge, error)
	ListManagedChallenges(ctx context.Context, g hub.Grant) ([]hub.ManagedChallenge, error)
	GetManagedChallenge(ctx context.Context, g hub.Grant, id int64) (hub.ManagedChallenge, error)
	UpdateManagedChallenge(ctx context.Context, g hub.Grant, id int64, req hub.ManagedChallengeRequest) (hub.ManagedChallenge, error)
	DeleteManagedChallenge(ctx context.Context, g hub.Grant, id int64) error

	CreateDelegation(ctx context.Context, g hub.Grant, domain string) (d hub.Delegation, created bool, err error)
	ListDelegations(ctx context.Context, g hub.Grant, f hub.DelegationFilter) (ds []hub.Delegation, nextAfter int64, err error)
	GetDelegation(ctx context.Context, g hub.Grant, domain string) (hub.Delegation, error)
	DeleteDelegation(ctx context.Context, g hub.Grant, domain string) error
	MoveDelegation(ctx context.Context, g hub.Grant, domain string, configID int64) (hub.Delegation, error)
}

// AuditService reads the audit log within the grant's audit scope.
type AuditService interface {
	ListAudit(ctx context.Context, g hub.Grant, q hub.AuditQuery) ([]hub.AuditEvent, error)
}

// codeConflict is the stable problem code of a 409 from the admin API.
const codeConflict = "conflict"

// forbiddenAdmin is the one 403 detail of the admin endpoints that are not
// about a domain.
const forbiddenAdmin = "the token's roles do not allow this"

// adminContext carries the request's source address to the service for
// the audit log.
func adminContext(r *http.Request) context.Context {
	return hub.WithSource(r.Context(), info(r.Context()).source)
}

// adminError is writeError plus the admin API's conflict kind and its own
// 403 detail (forbidden; "" keeps writeError's).
func (a *API) adminError(w http.ResponseWriter, r *http.Request, err error, forbidden string) {
	switch {
	case errors.Is(err, hub.ErrConflict):
		writeProblem(w, http.StatusConflict, codeConflict, err.Error())
	case errors.Is(err, hub.ErrForbidden) && forbidden != "":
		writeProblem(w, http.StatusForbidden, codeForbidden, forbidden)
	default:
		a.writeError(w, r, err)
	}
}

// pathID reads a positive id from the path; on failure it answers 400.
func pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(mux.Vars(r)[name], 10, 64)
	if err != nil || id <= 0 {
		writeProblem(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("%s in the path must be a positive whole number", name))
		return 0, false
	}
	return id, true
}

// query reads optional query parameters, remembering the first error.
type query struct {
	v   url.Values
	err error
}

func (q *query) fail(name, want string) {
	if q.err == nil {
		q.err = fmt.Errorf("%w: query parameter %s: want %s", hub.ErrInvalid, name, want)
	}
}

func (q *query) id(name string) int64 {
	s := q.v.Get(name)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		q.fail(name, "a positive whole number")
	}
	return n
}

func (q *query) limit(name string, most int) int {
	s := q.v.Get(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		q.fail(name, fmt.Sprintf("a whole number from 1 to %d", most))
	}
	return n
}

func (q *query) bool(name string) bool {
	s := q.v.Get(name)
	if s == "" {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.fail(name, "true or false")
	}
	return b
}

func (q *query) time(name string) time.Time {
	s := q.v.Get(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		q.fail(name, "an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t
}

// seconds converts a JSON number of seconds; the range is what the store
// keeps (0 to 2^31-1).
func seconds(name string, n int64) (time.Duration, error) {
	if n < 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%w: %s must be whole seconds from 0 to %d", hub.ErrInvalid, name, math.MaxInt32)
	}
	return time.Duration(n) * time.Second, nil
}

// optTime is nil for the zero time, so "never" is an absent field.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
