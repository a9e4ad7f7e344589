package api

import (
	"net/http"
	"time"

	"github.com/acmehub/acmehub/internal/hub"
)

// auditEventJSON is an audit event on the wire.
type auditEventJSON struct {
	ID          int64     `json:"id"`
	At          time.Time `json:"at"`
	PrincipalID int64     `json:"principal_id,omitempty"`
	TokenID     string    `json:"token_id,omitempty"`
	Source      string    `json:"source,omitempty"`
	Action      string    `json:"action"`
	Target      string    `json:"target,omitempty"`
	Domain      string    `json:"domain,omitempty"`
	ConfigID    int64     `json:"managed_challenge_id,omitempty"`
	Result      string    `json:"result"`
	Detail      string    `json:"detail,omitempty"`
}

// listAudit pages through the audit log, newest first, within the
// caller's audit scope. Filters: since, until (RFC 3339), principal,
// managed_challenge, domain, action, result; paging: limit, before (the
// last id seen; the answer's next_before).
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	q := query{v: r.URL.Query()}
	aq := hub.AuditQuery{
		Since: q.time("since"), Until: q.time("until"), PrincipalID: q.id("principal"), ConfigID: q.id("managed_challenge"),
		Domain: q.v.Get("domain"), Action: q.v.Get("action"), Result: q.v.Get("result"),
		Limit: q.limit("limit", hub.MaxAuditLimit), BeforeID: q.id("before"),
	}
	if q.err != nil {
		a.writeError(w, r, q.err)
		return
	}
	evs, err := a.svc.ListAudit(adminContext(r), grant(r.Context()), aq)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	out := make([]auditEventJSON, 0, len(evs))
	for _, e := range evs {
		out = append(out, auditEventJSON{
			ID: e.ID, At: e.At.UTC(), PrincipalID: e.PrincipalID, TokenID: e.TokenID, Source: e.Source, Action: e.Action,
			Target: e.Target, Domain: e.Domain, ConfigID: e.ConfigID, Result: e.Result, Detail: e.Detail,
		})
	}
	resp := map[string]any{"events": out}
	limit := aq.Limit
	if limit == 0 {
		limit = hub.DefaultAuditLimit
	}
	if len(evs) == limit {
		resp["next_before"] = evs[len(evs)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}
