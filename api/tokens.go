package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// TokenJSON is an API token on the wire: never its secret or hash. The
// CLI's --json output uses it too.
type TokenJSON struct {
	ClientID    string     `json:"client_id"`
	PrincipalID int64      `json:"principal_id"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Roles       []string   `json:"roles"`       // narrowing; empty: all of the owner's roles
	AllowCIDRs  []string   `json:"allow_cidrs"` // empty: any source
	Status      string     `json:"status"`      // "active", "expired" or "revoked"
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
}

// issuedTokenJSON is the answer to POST /api/v1/tokens: the token and,
// this once, its secret, alone and in the bearer form.
type issuedTokenJSON struct {
	TokenJSON
	Token        string `json:"token"`         // "<client_id>.<client_secret>", for Authorization: Bearer
	ClientSecret string `json:"client_secret"` // for X-Client-Secret or HTTP Basic
}

// createTokenRequest is the body of POST /api/v1/tokens. principal_id 0
// or absent means the caller's own principal; expires_at and expires_in
// (seconds from now) exclude each other; neither means no expiry.
type createTokenRequest struct {
	PrincipalID int64      `json:"principal_id"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Roles       []string   `json:"roles"`
	AllowCIDRs  []string   `json:"allow_cidrs"`
	ExpiresAt   *time.Time `json:"expires_at"`
	ExpiresIn   int64      `json:"expires_in"`
}

// ToTokenJSON is a token in its wire form, its status judged at now.
func ToTokenJSON(t hub.TokenInfo, now time.Time) TokenJSON {
	out := TokenJSON{
		ClientID: t.ClientID, PrincipalID: t.PrincipalID, Title: t.Title, Description: t.Description,
		Roles: make([]string, 0, len(t.Roles)), AllowCIDRs: append([]string{}, t.AllowCIDRs...), Status: TokenStatus(t, now),
		CreatedAt: t.CreatedAt.UTC(), ExpiresAt: optTime(t.ExpiresAt), RevokedAt: optTime(t.RevokedAt), LastUsedAt: optTime(t.LastUsedAt),
	}
	for _, r := range t.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	return out
}

// TokenStatus is "revoked", "expired" or "active" at now.
func TokenStatus(t hub.TokenInfo, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var body createTokenRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	req := hub.TokenRequest{
		PrincipalID: body.PrincipalID, Title: body.Title, Description: body.Description,
		Roles: body.Roles, AllowCIDRs: body.AllowCIDRs,
	}
	switch {
	case body.PrincipalID < 0:
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "principal_id must be a positive whole number")
		return
	case body.ExpiresAt != nil && body.ExpiresIn != 0:
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "give expires_at or expires_in, not both")
		return
	case body.ExpiresIn < 0 || body.ExpiresIn > maxExpiresIn:
		writeProblem(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("expires_in must be from 1 to %d seconds", maxExpiresIn))
		return
	case body.ExpiresAt != nil:
		req.ExpiresAt = *body.ExpiresAt
	case body.ExpiresIn > 0:
		req.ExpiresAt = time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)
	}
	t, err := a.svc.CreateToken(adminContext(r), grant(r.Context()), req)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.Header().Set("Location", "/api/v1/tokens/"+t.ClientID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, issuedTokenJSON{
		TokenJSON: ToTokenJSON(t.TokenInfo, time.Now()), Token: t.Credential.String(), ClientSecret: t.Credential.Secret,
	})
}

// maxExpiresIn bounds expires_in (ten years) so the sum cannot overflow.
const maxExpiresIn = 10 * 366 * 24 * 3600

// listTokens lists the caller's own tokens, another principal's
// (?principal=<id>) or every token (?principal=all), the last two for
// admins.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	g := grant(r.Context())
	principal := g.Principal.ID
	switch s := r.URL.Query().Get("principal"); s {
	case "":
	case "all":
		principal = 0
	default:
		q := query{v: r.URL.Query()}
		principal = q.id("principal")
		if q.err != nil {
			a.writeError(w, r, fmt.Errorf("%w or all", q.err))
			return
		}
	}
	ts, err := a.svc.ListTokens(adminContext(r), g, principal)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	now := time.Now()
	out := make([]TokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, ToTokenJSON(t, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (a *API) getToken(w http.ResponseWriter, r *http.Request) {
	t, err := a.svc.GetToken(adminContext(r), grant(r.Context()), mux.Vars(r)["client_id"])
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToTokenJSON(t, time.Now()))
}

// revokeToken revokes at once; the answer is the revoked token.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := a.svc.RevokeToken(adminContext(r), grant(r.Context()), mux.Vars(r)["client_id"])
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToTokenJSON(t, time.Now()))
}
