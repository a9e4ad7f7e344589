package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// Principal kinds.
const (
	KindUser = store.PrincipalUser
	KindApp  = store.PrincipalApp
)

// PrincipalInfo is a principal as the admin operations show it.
type PrincipalInfo struct {
	ID          int64
	Kind        string // KindUser or KindApp
	Name        string // unique regardless of ASCII case; cannot change
	Description string
	Enabled     bool // a disabled principal's tokens are all refused
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Roles       []RoleAssignment
}

// RoleAssignment is one role held by a principal.
type RoleAssignment struct {
	ID          int64
	PrincipalID int64
	Role        Role
	// Domains is the canonical domain match rule restricting the role;
	// "" means every domain.
	Domains   string
	CreatedAt time.Time
}

// NewPrincipal asks to create a principal; it is created enabled unless
// Disabled.
type NewPrincipal struct {
	Kind        string // KindUser or KindApp
	Name        string // 1-128 ASCII letters, digits, '.', '_', '@', '-'
	Description string
	Disabled    bool
}

// PrincipalUpdate changes the fields that are not nil.
type PrincipalUpdate struct {
	Description *string
	Enabled     *bool
}

// CreatePrincipal creates a principal (admins only). It holds no roles yet.
func (s *Service) CreatePrincipal(ctx context.Context, g Grant, req NewPrincipal) (PrincipalInfo, error) {
	p, err := s.createPrincipal(ctx, g, req)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "principal.create", Target: principalTarget(p.ID, req.Name),
		Detail: "kind " + req.Kind}, err)
	return p, err
}

func (s *Service) createPrincipal(ctx context.Context, g Grant, req NewPrincipal) (PrincipalInfo, error) {
	if !g.Allows(ActionManageAccess) {
		return PrincipalInfo{}, ErrForbidden
	}
	if req.Kind != KindUser && req.Kind != KindApp {
		return PrincipalInfo{}, fmt.Errorf("%w: kind %q: want %q or %q", ErrInvalid, req.Kind, KindUser, KindApp)
	}
	p, err := s.db.CreatePrincipal(ctx, store.Principal{
		Kind: req.Kind, Name: req.Name, Description: req.Description, Enabled: !req.Disabled,
	})
	if err != nil {
		return PrincipalInfo{}, adminStoreError("create principal", fmt.Sprintf("a principal named %q", req.Name), err)
	}
	return principalInfo(p, nil), nil
}

// ListPrincipals returns every principal with its roles, ordered by name
// (admins only).
func (s *Service) ListPrincipals(ctx context.Context, g Grant) ([]PrincipalInfo, error) {
	if !g.Allows(ActionManageAccess) {
		return nil, ErrForbidden
	}
	ps, err := s.db.ListPrincipals(ctx)
	if err != nil {
		return nil, storeError("list principals", err)
	}
	as, err := s.db.RoleAssignments(ctx, 0)
	if err != nil {
		return nil, storeError("list role assignments", err)
	}
	byPrincipal := make(map[int64][]store.RoleAssignment)
	for _, a := range as {
		byPrincipal[a.PrincipalID] = append(byPrincipal[a.PrincipalID], a)
	}
	out := make([]PrincipalInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, principalInfo(p, byPrincipal[p.ID]))
	}
	return out, nil
}

// GetPrincipal returns one principal with its roles (admins only).
func (s *Service) GetPrincipal(ctx context.Context, g Grant, id int64) (PrincipalInfo, error) {
	if !g.Allows(ActionManageAccess) {
		return PrincipalInfo{}, ErrForbidden
	}
	return s.principal(ctx, id)
}

func (s *Service) principal(ctx context.Context, id int64) (PrincipalInfo, error) {
	if err := positiveID("principal", id); err != nil {
		return PrincipalInfo{}, err
	}
	p, err := s.db.Principal(ctx, id)
	if err != nil {
		return PrincipalInfo{}, adminStoreError("get principal", fmt.Sprintf("principal %d", id), err)
	}
	as, err := s.db.RoleAssignments(ctx, id)
	if err != nil {
		return PrincipalInfo{}, storeError("list role assignments", err)
	}
	return principalInfo(p, as), nil
}

// UpdatePrincipal changes a principal's description or enabled flag
// (admins only). Disabling refuses every token of the principal at once.
// Disabling the last enabled admin is refused with ErrConflict.
func (s *Service) UpdatePrincipal(ctx context.Context, g Grant, id int64, u PrincipalUpdate) (PrincipalInfo, error) {
	p, err := s.updatePrincipal(ctx, g, id, u)
	detail := ""
	if u.Enabled != nil {
		detail = "enabled " + strconv.FormatBool(*u.Enabled)
	}
	if u.Description != nil {
		detail = joinDetail(detail, "description changed")
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "principal.update", Target: principalTarget(id, p.Name), Detail: detail}, err)
	return p, err
}

func (s *Service) updatePrincipal(ctx context.Context, g Grant, id int64, u PrincipalUpdate) (PrincipalInfo, error) {
	if !g.Allows(ActionManageAccess) {
		return PrincipalInfo{}, ErrForbidden
	}
	cur, err := s.principal(ctx, id)
	if err != nil {
		return PrincipalInfo{}, err
	}
	next := store.Principal{ID: id, Kind: cur.Kind, Name: cur.Name, Description: cur.Description, Enabled: cur.Enabled}
	if u.Description != nil {
		next.Description = *u.Description
	}
	if u.Enabled != nil {
		next.Enabled = *u.Enabled
	}
	if cur.Enabled && !next.Enabled {
		if err := s.keepAnAdmin(ctx, func(p int64, _ store.RoleAssignment) bool { return p == id }); err != nil {
			return cur, err
		}
	}
	p, err := s.db.UpdatePrincipal(ctx, next)
	if err != nil {
		return cur, adminStoreError("update principal", fmt.Sprintf("principal %d", id), err)
	}
	return principalInfo(p, assignmentsOf(cur)), nil
}

// DeletePrincipal deletes a principal with its role assignments and tokens
// (admins only). Deleting the last enabled admin is refused with
// ErrConflict.
func (s *Service) DeletePrincipal(ctx context.Context, g Grant, id int64) error {
	name, err := s.deletePrincipal(ctx, g, id)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "principal.delete", Target: principalTarget(id, name)}, err)
	return err
}

func (s *Service) deletePrincipal(ctx context.Context, g Grant, id int64) (string, error) {
	if !g.Allows(ActionManageAccess) {
		return "", ErrForbidden
	}
	cur, err := s.principal(ctx, id)
	if err != nil {
		return "", err
	}
	if err := s.keepAnAdmin(ctx, func(p int64, _ store.RoleAssignment) bool { return p == id }); err != nil {
		return cur.Name, err
	}
	if err := s.db.DeletePrincipal(ctx, id); err != nil {
		return cur.Name, adminStoreError("delete principal", fmt.Sprintf("principal %d", id), err)
	}
	return cur.Name, nil
}

// AddRole gives a principal a role (admins only), restricted to the
// domains a domain match rule allows ("" for every domain). The rule is
// stored canonical; the same role with the same restriction twice is
// ErrConflict.
func (s *Service) AddRole(ctx context.Context, g Grant, principalID int64, role, domains string) (RoleAssignment, error) {
	a, err := s.addRole(ctx, g, principalID, role, domains)
	detail := "role " + role
	if a.Domains != "" {
		detail += " for " + a.Domains
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "role.add", Target: principalTarget(principalID, ""), Detail: detail}, err)
	return a, err
}

func (s *Service) addRole(ctx context.Context, g Grant, principalID int64, role, domains string) (RoleAssignment, error) {
	if !g.Allows(ActionManageAccess) {
		return RoleAssignment{}, ErrForbidden
	}
	if err := positiveID("principal", principalID); err != nil {
		return RoleAssignment{}, err
	}
	r, err := ParseRole(role)
	if err != nil {
		return RoleAssignment{}, err
	}
	canonical := ""
	if domains != "" {
		rule, err := rules.Parse(domains)
		if err != nil {
			return RoleAssignment{}, fmt.Errorf("%w: domains: %w", ErrInvalid, err)
		}
		canonical = rule.String()
	}
	a, err := s.db.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: principalID, Role: string(r), Domains: canonical})
	if err != nil {
		what := fmt.Sprintf("principal %d", principalID)
		if errors.Is(err, store.ErrConflict) {
			what = fmt.Sprintf("the role %s with the same domain restriction for principal %d", r, principalID)
		}
		return RoleAssignment{}, adminStoreError("add role", what, err)
	}
	return roleAssignment(a), nil
}

// ListRoles returns a principal's role assignments (admins only).
func (s *Service) ListRoles(ctx context.Context, g Grant, principalID int64) ([]RoleAssignment, error) {
	if !g.Allows(ActionManageAccess) {
		return nil, ErrForbidden
	}
	p, err := s.principal(ctx, principalID)
	if err != nil {
		return nil, err
	}
	return p.Roles, nil
}

// RemoveRole removes one of a principal's role assignments (admins only);
// tokens lose the role at once. Removing the last enabled admin's admin
// role is refused with ErrConflict.
func (s *Service) RemoveRole(ctx context.Context, g Grant, principalID, assignmentID int64) error {
	a, err := s.removeRole(ctx, g, principalID, assignmentID)
	detail := fmt.Sprintf("assignment %d", assignmentID)
	if a.Role != "" {
		detail += ": role " + string(a.Role)
		if a.Domains != "" {
			detail += " for " + a.Domains
		}
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "role.remove", Target: principalTarget(principalID, ""), Detail: detail}, err)
	return err
}

func (s *Service) removeRole(ctx context.Context, g Grant, principalID, assignmentID int64) (RoleAssignment, error) {
	if !g.Allows(ActionManageAccess) {
		return RoleAssignment{}, ErrForbidden
	}
	if err := positiveID("role assignment", assignmentID); err != nil {
		return RoleAssignment{}, err
	}
	p, err := s.principal(ctx, principalID)
	if err != nil {
		return RoleAssignment{}, err
	}
	var found RoleAssignment
	for _, a := range p.Roles {
		if a.ID == assignmentID {
			found = a
		}
	}
	if found.ID == 0 {
		return RoleAssignment{}, fmt.Errorf("%w: principal %d has no role assignment %d", ErrNotFound, principalID, assignmentID)
	}
	if err := s.keepAnAdmin(ctx, func(_ int64, a store.RoleAssignment) bool { return a.ID == assignmentID }); err != nil {
		return found, err
	}
	if err := s.db.RemoveRoleAssignment(ctx, assignmentID); err != nil {
		return found, adminStoreError("remove role", fmt.Sprintf("role assignment %d", assignmentID), err)
	}
	return found, nil
}

// keepAnAdmin refuses a change after which no enabled principal would hold
// the admin role, when one does now: nobody could manage access any more.
// gone reports which principals (by id) or assignments the change removes.
// The check and the change are separate writes, so two concurrent changes
// can still remove the last two admins; the CLI can repair that.
func (s *Service) keepAnAdmin(ctx context.Context, gone func(principalID int64, a store.RoleAssignment) bool) error {
	ps, err := s.db.ListPrincipals(ctx)
	if err != nil {
		return storeError("list principals", err)
	}
	as, err := s.db.RoleAssignments(ctx, 0)
	if err != nil {
		return storeError("list role assignments", err)
	}
	enabled := make(map[int64]bool, len(ps))
	for _, p := range ps {
		enabled[p.ID] = p.Enabled
	}
	before, after := map[int64]bool{}, map[int64]bool{}
	for _, a := range as {
		if a.Role != string(RoleAdmin) || !enabled[a.PrincipalID] {
			continue
		}
		before[a.PrincipalID] = true
		if !gone(a.PrincipalID, a) {
			after[a.PrincipalID] = true
		}
	}
	if len(before) > 0 && len(after) == 0 {
		return fmt.Errorf("%w: this would leave no enabled principal with the admin role", ErrConflict)
	}
	return nil
}

func principalInfo(p store.Principal, as []store.RoleAssignment) PrincipalInfo {
	out := PrincipalInfo{
		ID: p.ID, Kind: p.Kind, Name: p.Name, Description: p.Description, Enabled: p.Enabled,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Roles: make([]RoleAssignment, 0, len(as)),
	}
	for _, a := range as {
		out.Roles = append(out.Roles, roleAssignment(a))
	}
	return out
}

func roleAssignment(a store.RoleAssignment) RoleAssignment {
	return RoleAssignment{ID: a.ID, PrincipalID: a.PrincipalID, Role: Role(a.Role), Domains: a.Domains, CreatedAt: a.CreatedAt}
}

func assignmentsOf(p PrincipalInfo) []store.RoleAssignment {
	out := make([]store.RoleAssignment, len(p.Roles))
	for i, a := range p.Roles {
		out[i] = store.RoleAssignment{ID: a.ID, PrincipalID: a.PrincipalID, Role: string(a.Role), Domains: a.Domains, CreatedAt: a.CreatedAt}
	}
	return out
}

func principalTarget(id int64, name string) string {
	t := "principal:" + strconv.FormatInt(id, 10)
	if id == 0 {
		t = "principal"
	}
	if name != "" {
		t += " (" + name + ")"
	}
	return t
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
