package api

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// ManagedChallengeJSON is a managed challenge config on the wire; ttl and
// lifetime are seconds, 0 meaning the server's defaults.
type ManagedChallengeJSON struct {
	ID            int64     `json:"id"`
	Name          string    `json:"name"`
	ChallengeType string    `json:"challenge_type"`
	Provider      string    `json:"provider"`
	Credential    string    `json:"credential,omitempty"` // upstream: the stored credential's name
	CredentialID  int64     `json:"credential_id,omitempty"`
	Engine        string    `json:"engine,omitempty"` // upstream: "" automatic, "value" or "lego"
	Rule          string    `json:"rule"`
	TTL           int64     `json:"ttl"`
	Lifetime      int64     `json:"lifetime"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	CreatedBy     string    `json:"created_by"`
}

// managedChallengeRequest is the body of POST /api/v1/managed-challenges
// and PUT /api/v1/managed-challenges/{id} (which replaces every field).
type managedChallengeRequest struct {
	Name          string `json:"name"`
	ChallengeType string `json:"challenge_type"` // "" or "dns-01"
	Provider      string `json:"provider"`       // "" or "delegated", or an upstream provider code
	Credential    string `json:"credential"`     // upstream: a stored credential's name (or id)
	Engine        string `json:"engine"`         // upstream: "" (automatic), "value" or "lego"
	Rule          string `json:"rule"`
	TTL           int64  `json:"ttl"`
	Lifetime      int64  `json:"lifetime"`
}

// ToManagedJSON is a managed challenge config in its wire form (shared with the CLI's --json).
func ToManagedJSON(c hub.ManagedChallenge) ManagedChallengeJSON {
	return ManagedChallengeJSON{
		ID: c.ID, Name: c.Name, ChallengeType: c.ChallengeType, Provider: c.Provider, Credential: c.Credential,
		CredentialID: c.CredentialID, Engine: c.Engine, Rule: c.Rule,
		TTL: int64(c.TTL / time.Second), Lifetime: int64(c.Lifetime / time.Second),
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), CreatedBy: c.CreatedBy,
	}
}

func (body managedChallengeRequest) toHub() (hub.ManagedChallengeRequest, error) {
	ttl, err := seconds("ttl", body.TTL)
	if err != nil {
		return hub.ManagedChallengeRequest{}, err
	}
	lifetime, err := seconds("lifetime", body.Lifetime)
	if err != nil {
		return hub.ManagedChallengeRequest{}, err
	}
	return hub.ManagedChallengeRequest{
		Name: body.Name, ChallengeType: body.ChallengeType, Provider: body.Provider, Credential: body.Credential,
		Engine: body.Engine, Rule: body.Rule, TTL: ttl, Lifetime: lifetime,
	}, nil
}

func (a *API) createManaged(w http.ResponseWriter, r *http.Request) {
	var body managedChallengeRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	req, err := body.toHub()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.svc.CreateManagedChallenge(adminContext(r), grant(r.Context()), req)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.Header().Set("Location", "/api/v1/managed-challenges/"+strconv.FormatInt(c.ID, 10))
	writeJSON(w, http.StatusCreated, ToManagedJSON(c))
}

func (a *API) listManaged(w http.ResponseWriter, r *http.Request) {
	cs, err := a.svc.ListManagedChallenges(adminContext(r), grant(r.Context()))
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	out := make([]ManagedChallengeJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, ToManagedJSON(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"managed_challenges": out})
}

func (a *API) getManaged(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	c, err := a.svc.GetManagedChallenge(adminContext(r), grant(r.Context()), id)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToManagedJSON(c))
}

func (a *API) updateManaged(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var body managedChallengeRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	req, err := body.toHub()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.svc.UpdateManagedChallenge(adminContext(r), grant(r.Context()), id, req)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToManagedJSON(c))
}

func (a *API) deleteManaged(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if err := a.svc.DeleteManagedChallenge(adminContext(r), grant(r.Context()), id); err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DelegationJSON is a delegation on the wire, with the CNAME record the
// domain's owner adds.
type DelegationJSON struct {
	ID       int64  `json:"id"`
	Domain   string `json:"domain"`
	Label    string `json:"label"`
	Target   string `json:"target"`
	ConfigID int64  `json:"managed_challenge_id,omitempty"`
	Config   string `json:"managed_challenge,omitempty"`
	// OwnerPrincipalID: the owner of the acme-dns account whose
	// registration without a domain created the label; absent otherwise.
	// It grants nothing.
	OwnerPrincipalID int64      `json:"owner_principal_id,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	CreatedBy        string     `json:"created_by"`
	LastUsedAt       *time.Time `json:"last_used_at,omitempty"`
	// CNAME is absent while the domain is unknown (an acme-dns label
	// registered without one).
	CNAME *CNAMEJSON `json:"cname,omitempty"`
	// Check is the last delegation check; absent until the first.
	Check *CheckJSON `json:"check,omitempty"`
}

// CNAMEJSON is the record to add, as fields and as a zone file line.
type CNAMEJSON struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Target   string `json:"target"`
	ZoneLine string `json:"zone_line"`
}

// createDelegationRequest is the body of POST /api/v1/delegations.
type createDelegationRequest struct {
	Domain string `json:"domain"`
}

// moveDelegationRequest is the body of POST /api/v1/delegations/{domain}/move.
type moveDelegationRequest struct {
	ConfigID int64 `json:"managed_challenge_id"`
}

// ToDelegationJSON is a delegation in its wire form, with the CNAME to add.
func ToDelegationJSON(d hub.Delegation) DelegationJSON {
	out := DelegationJSON{
		ID: d.ID, Domain: d.Domain, Label: d.Label, Target: d.Target, ConfigID: d.ConfigID, Config: d.ConfigName,
		OwnerPrincipalID: d.OwnerPrincipalID, CreatedAt: d.CreatedAt.UTC(), CreatedBy: d.CreatedBy, LastUsedAt: optTime(d.LastUsedAt),
		Check: toCheckJSON(d.Check),
	}
	if d.Domain != "" {
		out.CNAME = &CNAMEJSON{Name: d.CNAME.Name, Type: d.CNAME.Type, Target: d.CNAME.Target, ZoneLine: d.CNAME.ZoneLine()}
	}
	return out
}

// Delegation endpoints are about domains: their 403 is the challenge
// API's, which does not tell a domain outside the scope from one no
// managed challenge matches.

func (a *API) createDelegation(w http.ResponseWriter, r *http.Request) {
	var body createDelegationRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	d, created, err := a.svc.CreateDelegation(adminContext(r), grant(r.Context()), body.Domain)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/api/v1/delegations/"+url.PathEscape(d.Domain))
	writeJSON(w, status, ToDelegationJSON(d))
}

func (a *API) listDelegations(w http.ResponseWriter, r *http.Request) {
	q := query{v: r.URL.Query()}
	f := hub.DelegationFilter{
		ConfigID: q.id("managed_challenge"), Unbound: q.bool("unbound"), Under: q.v.Get("under"),
		AfterID: q.id("after"), Limit: q.limit("limit", hub.MaxDelegationLimit),
		CheckState: q.v.Get("state"), Unused: q.bool("unused"),
	}
	if q.err != nil {
		a.writeError(w, r, q.err)
		return
	}
	ds, next, err := a.svc.ListDelegations(adminContext(r), grant(r.Context()), f)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	out := make([]DelegationJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, ToDelegationJSON(d))
	}
	resp := map[string]any{"delegations": out}
	if next != 0 {
		resp["next_after"] = next
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *API) getDelegation(w http.ResponseWriter, r *http.Request) {
	d, err := a.svc.GetDelegation(adminContext(r), grant(r.Context()), mux.Vars(r)["domain"])
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, ToDelegationJSON(d))
}

func (a *API) deleteDelegation(w http.ResponseWriter, r *http.Request) {
	if err := a.svc.DeleteDelegation(adminContext(r), grant(r.Context()), mux.Vars(r)["domain"]); err != nil {
		a.adminError(w, r, err, "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) moveDelegation(w http.ResponseWriter, r *http.Request) {
	var body moveDelegationRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	if body.ConfigID <= 0 {
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "managed_challenge_id must be a positive whole number")
		return
	}
	d, err := a.svc.MoveDelegation(adminContext(r), grant(r.Context()), mux.Vars(r)["domain"], body.ConfigID)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, ToDelegationJSON(d))
}
