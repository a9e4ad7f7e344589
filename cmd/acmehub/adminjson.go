package main

import (
	"time"

	"github.com/acmehub/acmehub/api"

	"github.com/acmehub/acmehub/internal/hub"
)

// The --json output of the admin commands uses the field names of the
// HTTP admin API (see api/openapi.yaml), so scripts can use either.

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

// delegationJSON is the API's delegation, plus whether a create made it.
type delegationJSON struct {
	api.DelegationJSON
	Created *bool `json:"created,omitempty"` // delegation create only
}

func toDelegationJSON(d hub.Delegation) delegationJSON {
	return delegationJSON{DelegationJSON: api.ToDelegationJSON(d)}
}
