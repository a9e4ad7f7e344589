package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/acmehub/acmehub/internal/hub"
)

// PrincipalJSON is a principal on the wire.
type PrincipalJSON struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Enabled     bool       `json:"enabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	Roles       []RoleJSON `json:"roles"`
}

// RoleJSON is a role assignment on the wire; domains "" means every
// domain.
type RoleJSON struct {
	ID          int64     `json:"id"`
	PrincipalID int64     `json:"principal_id"`
	Role        string    `json:"role"`
	Domains     string    `json:"domains"`
	CreatedAt   time.Time `json:"created_at"`
}

// createPrincipalRequest is the body of POST /api/v1/principals; enabled
// defaults to true.
type createPrincipalRequest struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Enabled     *bool  `json:"enabled"`
}

// updatePrincipalRequest is the body of PATCH /api/v1/principals/{id}:
// absent fields stay as they are.
type updatePrincipalRequest struct {
	Description *string `json:"description"`
	Enabled     *bool   `json:"enabled"`
}

// addRoleRequest is the body of POST /api/v1/principals/{id}/roles.
type addRoleRequest struct {
	Role    string `json:"role"`
	Domains string `json:"domains"`
}

// ToPrincipalJSON is a principal in its wire form (shared with the CLI's --json).
func ToPrincipalJSON(p hub.PrincipalInfo) PrincipalJSON {
	out := PrincipalJSON{
		ID: p.ID, Kind: p.Kind, Name: p.Name, Description: p.Description, Enabled: p.Enabled,
		CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(), Roles: make([]RoleJSON, 0, len(p.Roles)),
	}
	for _, r := range p.Roles {
		out.Roles = append(out.Roles, ToRoleJSON(r))
	}
	return out
}

// ToRoleJSON is a role assignment in its wire form.
func ToRoleJSON(r hub.RoleAssignment) RoleJSON {
	return RoleJSON{ID: r.ID, PrincipalID: r.PrincipalID, Role: string(r.Role), Domains: r.Domains, CreatedAt: r.CreatedAt.UTC()}
}

func (a *API) createPrincipal(w http.ResponseWriter, r *http.Request) {
	var body createPrincipalRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	p, err := a.svc.CreatePrincipal(adminContext(r), grant(r.Context()), hub.NewPrincipal{
		Kind: body.Kind, Name: body.Name, Description: body.Description, Disabled: body.Enabled != nil && !*body.Enabled,
	})
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.Header().Set("Location", "/api/v1/principals/"+strconv.FormatInt(p.ID, 10))
	writeJSON(w, http.StatusCreated, ToPrincipalJSON(p))
}

func (a *API) listPrincipals(w http.ResponseWriter, r *http.Request) {
	ps, err := a.svc.ListPrincipals(adminContext(r), grant(r.Context()))
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	out := make([]PrincipalJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, ToPrincipalJSON(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"principals": out})
}

func (a *API) getPrincipal(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	p, err := a.svc.GetPrincipal(adminContext(r), grant(r.Context()), id)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToPrincipalJSON(p))
}

func (a *API) updatePrincipal(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var body updatePrincipalRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	p, err := a.svc.UpdatePrincipal(adminContext(r), grant(r.Context()), id, hub.PrincipalUpdate{
		Description: body.Description, Enabled: body.Enabled,
	})
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToPrincipalJSON(p))
}

func (a *API) deletePrincipal(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if err := a.svc.DeletePrincipal(adminContext(r), grant(r.Context()), id); err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) addRole(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var body addRoleRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	ra, err := a.svc.AddRole(adminContext(r), grant(r.Context()), id, body.Role, body.Domains)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.Header().Set("Location", "/api/v1/principals/"+strconv.FormatInt(id, 10)+"/roles/"+strconv.FormatInt(ra.ID, 10))
	writeJSON(w, http.StatusCreated, ToRoleJSON(ra))
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	rs, err := a.svc.ListRoles(adminContext(r), grant(r.Context()), id)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	out := make([]RoleJSON, 0, len(rs))
	for _, ra := range rs {
		out = append(out, ToRoleJSON(ra))
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": out})
}

func (a *API) removeRole(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	rid, ok := pathID(w, r, "rid")
	if !ok {
		return
	}
	if err := a.svc.RemoveRole(adminContext(r), grant(r.Context()), id, rid); err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
