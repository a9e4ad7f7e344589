package api

import (
	"context"

	"github.com/acmehub/acmehub/internal/hub"
)

// The admin half of acceptAll: everything is found empty or refused as
// unknown, so decoding and routing are what a test exercises.

func (acceptAll) CreatePrincipal(_ context.Context, _ hub.Grant, req hub.NewPrincipal) (hub.PrincipalInfo, error) {
	return hub.PrincipalInfo{ID: 1, Kind: req.Kind, Name: req.Name}, nil
}
func (acceptAll) ListPrincipals(context.Context, hub.Grant) ([]hub.PrincipalInfo, error) {
	return nil, nil
}
func (acceptAll) GetPrincipal(context.Context, hub.Grant, int64) (hub.PrincipalInfo, error) {
	return hub.PrincipalInfo{}, hub.ErrNotFound
}
func (acceptAll) UpdatePrincipal(context.Context, hub.Grant, int64, hub.PrincipalUpdate) (hub.PrincipalInfo, error) {
	return hub.PrincipalInfo{}, hub.ErrNotFound
}
func (acceptAll) DeletePrincipal(context.Context, hub.Grant, int64) error { return hub.ErrNotFound }
func (acceptAll) AddRole(context.Context, hub.Grant, int64, string, string) (hub.RoleAssignment, error) {
	return hub.RoleAssignment{}, hub.ErrNotFound
}
func (acceptAll) ListRoles(context.Context, hub.Grant, int64) ([]hub.RoleAssignment, error) {
	return nil, hub.ErrNotFound
}
func (acceptAll) RemoveRole(context.Context, hub.Grant, int64, int64) error { return hub.ErrNotFound }
func (acceptAll) CreateToken(context.Context, hub.Grant, hub.TokenRequest) (hub.IssuedToken, error) {
	return hub.IssuedToken{}, hub.ErrForbidden
}
func (acceptAll) ListTokens(context.Context, hub.Grant, int64) ([]hub.TokenInfo, error) {
	return nil, nil
}
func (acceptAll) GetToken(context.Context, hub.Grant, string) (hub.TokenInfo, error) {
	return hub.TokenInfo{}, hub.ErrNotFound
}
func (acceptAll) RevokeToken(context.Context, hub.Grant, string) (hub.TokenInfo, error) {
	return hub.TokenInfo{}, hub.ErrNotFound
}
func (acceptAll) CreateManagedChallenge(_ context.Context, _ hub.Grant, req hub.ManagedChallengeRequest) (hub.ManagedChallenge, error) {
	return hub.ManagedChallenge{ID: 1, Name: req.Name, Rule: req.Rule}, nil
}
func (acceptAll) ListManagedChallenges(context.Context, hub.Grant) ([]hub.ManagedChallenge, error) {
	return nil, nil
}
func (acceptAll) GetManagedChallenge(context.Context, hub.Grant, int64) (hub.ManagedChallenge, error) {
	return hub.ManagedChallenge{}, hub.ErrNotFound
}
func (acceptAll) UpdateManagedChallenge(context.Context, hub.Grant, int64, hub.ManagedChallengeRequest) (hub.ManagedChallenge, error) {
	return hub.ManagedChallenge{}, hub.ErrNotFound
}
func (acceptAll) DeleteManagedChallenge(context.Context, hub.Grant, int64) error {
	return hub.ErrNotFound
}
func (acceptAll) CreateDelegation(context.Context, hub.Grant, string) (hub.Delegation, bool, error) {
	return hub.Delegation{}, false, hub.ErrForbidden
}
func (acceptAll) ListDelegations(context.Context, hub.Grant, hub.DelegationFilter) ([]hub.Delegation, int64, error) {
	return nil, 0, nil
}
func (acceptAll) GetDelegation(context.Context, hub.Grant, string) (hub.Delegation, error) {
	return hub.Delegation{}, hub.ErrNotFound
}
func (acceptAll) DeleteDelegation(context.Context, hub.Grant, string) error { return hub.ErrNotFound }
func (acceptAll) MoveDelegation(context.Context, hub.Grant, string, int64) (hub.Delegation, error) {
	return hub.Delegation{}, hub.ErrNotFound
}
func (acceptAll) ListAudit(context.Context, hub.Grant, hub.AuditQuery) ([]hub.AuditEvent, error) {
	return nil, nil
}
