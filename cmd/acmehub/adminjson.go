package main

import (
	"time"

	"github.com/acmehub/acmehub/api"

	"github.com/acmehub/acmehub/internal/hub"
)

// The --json output of the admin commands uses the field names of the
// HTTP admin API (see api/openapi.yaml), so scripts can use either.

// tokenJSON is the API's token plus its owner's name.
type tokenJSON struct {
	api.TokenJSON
	Principal string `json:"principal,omitempty"`
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
	return tokenJSON{TokenJSON: api.ToTokenJSON(t, now), Principal: owner}
}

func toAuditJSON(e hub.AuditEvent, principal string) auditEventJSON {
	return auditEventJSON{
		ID: e.ID, At: e.At.UTC(), PrincipalID: e.PrincipalID, Principal: principal, TokenID: e.TokenID, Source: e.Source,
		Action: e.Action, Target: e.Target, Domain: e.Domain, ConfigID: e.ConfigID, Result: e.Result, Detail: e.Detail,
	}
}

// delegationJSON is the API's delegation, plus whether a create made it.
type delegationJSON struct {
	api.DelegationJSON
	Created *bool `json:"created,omitempty"` // delegation create only
}

func toDelegationJSON(d hub.Delegation) delegationJSON {
	return delegationJSON{DelegationJSON: api.ToDelegationJSON(d)}
}
