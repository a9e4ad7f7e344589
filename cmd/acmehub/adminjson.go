package main

import (
	"time"

	"github.com/acmehub/acmehub/internal/hub"
)

// The --json output of the admin commands uses the field names of the
// HTTP admin API (see api/openapi.yaml), so scripts can use either.

type principalJSON struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Enabled     bool       `json:"enabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	Roles       []roleJSON `json:"roles"`
}

type roleJSON struct {
	ID          int64     `json:"id"`
	PrincipalID int64     `json:"principal_id"`
	Role        string    `json:"role"`
	Domains     string    `json:"domains"` // "": every domain
	CreatedAt   time.Time `json:"created_at"`
}

type tokenJSON struct {
	ClientID    string     `json:"client_id"`
	PrincipalID int64      `json:"principal_id"`
	Principal   string     `json:"principal,omitempty"`
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

// issuedTokenJSON is a new token with, this once, its secret.
type issuedTokenJSON struct {
	tokenJSON
	Token        string `json:"token"` // "<client_id>.<client_secret>"
	ClientSecret string `json:"client_secret"`
}

type managedChallengeJSON struct {
	ID            int64     `json:"id"`
	Name          string    `json:"name"`
	ChallengeType string    `json:"challenge_type"`
	Provider      string    `json:"provider"`
	Rule          string    `json:"rule"`
	TTL           int64     `json:"ttl"`      // seconds; 0: the server's default
	Lifetime      int64     `json:"lifetime"` // seconds; 0: the server's default
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	CreatedBy     string    `json:"created_by"`
}

type delegationJSON struct {
	ID               int64      `json:"id"`
	Domain           string     `json:"domain"`
	Label            string     `json:"label"`
	Target           string     `json:"target"`
	ConfigID         int64      `json:"managed_challenge_id,omitempty"`
	Config           string     `json:"managed_challenge,omitempty"`
	OwnerPrincipalID int64      `json:"owner_principal_id,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	CreatedBy        string     `json:"created_by"`
	LastUsedAt       *time.Time `json:"last_used_at,omitempty"`
	CNAME            cnameJSON  `json:"cname"`
	Created          *bool      `json:"created,omitempty"` // delegation create only
}

type cnameJSON struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Target   string `json:"target"`
	ZoneLine string `json:"zone_line"`
}

type auditEventJSON struct {
	ID          int64     `json:"id"`
	At          time.Time `json:"at"`
	PrincipalID int64     `json:"principal_id,omitempty"`
	Principal   string    `json:"principal,omitempty"`
	TokenID     string    `json:"token_id,omitempty"`
	Source      string    `json:"source,omitempty"`
	Action      string    `json:"action"`
	Target      string    `json:"target,omitempty"`
	Domain      string    `json:"domain,omitempty"`
	ConfigID    int64     `json:"managed_challenge_id,omitempty"`
	Result      string    `json:"result"`
	Detail      string    `json:"detail,omitempty"`
}

func toPrincipalJSON(p hub.PrincipalInfo) principalJSON {
	out := principalJSON{
		ID: p.ID, Kind: p.Kind, Name: p.Name, Description: p.Description, Enabled: p.Enabled,
		CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(), Roles: make([]roleJSON, 0, len(p.Roles)),
	}
	for _, r := range p.Roles {
		out.Roles = append(out.Roles, toRoleJSON(r))
	}
	return out
}

func toRoleJSON(r hub.RoleAssignment) roleJSON {
	return roleJSON{ID: r.ID, PrincipalID: r.PrincipalID, Role: string(r.Role), Domains: r.Domains, CreatedAt: r.CreatedAt.UTC()}
}

func toTokenJSON(t hub.TokenInfo, owner string, now time.Time) tokenJSON {
	out := tokenJSON{
		ClientID: t.ClientID, PrincipalID: t.PrincipalID, Principal: owner, Title: t.Title, Description: t.Description,
		Roles: make([]string, 0, len(t.Roles)), AllowCIDRs: append([]string{}, t.AllowCIDRs...), Status: tokenStatus(t, now),
		CreatedAt: t.CreatedAt.UTC(), ExpiresAt: optTime(t.ExpiresAt), RevokedAt: optTime(t.RevokedAt), LastUsedAt: optTime(t.LastUsedAt),
	}
	for _, r := range t.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	return out
}

func tokenStatus(t hub.TokenInfo, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

func toManagedJSON(c hub.ManagedChallenge) managedChallengeJSON {
	return managedChallengeJSON{
		ID: c.ID, Name: c.Name, ChallengeType: c.ChallengeType, Provider: c.Provider, Rule: c.Rule,
		TTL: int64(c.TTL / time.Second), Lifetime: int64(c.Lifetime / time.Second),
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), CreatedBy: c.CreatedBy,
	}
}

func toDelegationJSON(d hub.Delegation) delegationJSON {
	return delegationJSON{
		ID: d.ID, Domain: d.Domain, Label: d.Label, Target: d.Target, ConfigID: d.ConfigID, Config: d.ConfigName,
		OwnerPrincipalID: d.OwnerPrincipalID, CreatedAt: d.CreatedAt.UTC(), CreatedBy: d.CreatedBy, LastUsedAt: optTime(d.LastUsedAt),
		CNAME: cnameJSON{Name: d.CNAME.Name, Type: d.CNAME.Type, Target: d.CNAME.Target, ZoneLine: d.CNAME.ZoneLine()},
	}
}

func toAuditJSON(e hub.AuditEvent, principal string) auditEventJSON {
	return auditEventJSON{
		ID: e.ID, At: e.At.UTC(), PrincipalID: e.PrincipalID, Principal: principal, TokenID: e.TokenID, Source: e.Source,
		Action: e.Action, Target: e.Target, Domain: e.Domain, ConfigID: e.ConfigID, Result: e.Result, Detail: e.Detail,
	}
}

// optTime is nil for the zero time, so "never" is an absent field.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
