package api

import (
	"context"
	"net/http"
	"time"

	"github.com/acmehub/acmehub/internal/hub"
)

// UpstreamRecordService is the admin view of values the hub wrote into
// domains' own DNS (upstream providers): what is published, and what could
// not be removed yet.
type UpstreamRecordService interface {
	ListUpstreamRecords(ctx context.Context, g hub.Grant, state string, afterID int64, limit int) ([]hub.UpstreamRecord, error)
	RetryUpstreamRecord(ctx context.Context, g hub.Grant, id int64) error
	ForgetUpstreamRecord(ctx context.Context, g hub.Grant, id int64) error
}

// UpstreamRecordJSON is an upstream record on the wire (shared with the
// CLI's --json). The key authorization is not shown: it is not needed to
// understand a record.
type UpstreamRecordJSON struct {
	ID            int64      `json:"id"`
	ConfigID      int64      `json:"managed_challenge_id"`
	CredentialID  int64      `json:"credential_id"`
	Provider      string     `json:"provider"`
	Engine        string     `json:"engine"`
	Domain        string     `json:"domain"`
	FQDN          string     `json:"fqdn"`
	Value         string     `json:"value"`
	TTL           uint32     `json:"ttl"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedBy     string     `json:"created_by"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// ToUpstreamRecordJSON is a record in its wire form.
func ToUpstreamRecordJSON(r hub.UpstreamRecord) UpstreamRecordJSON {
	out := UpstreamRecordJSON{
		ID: r.ID, ConfigID: r.ConfigID, CredentialID: r.CredentialID, Provider: r.Provider, Engine: r.Engine,
		Domain: r.Domain, FQDN: r.FQDN, Value: r.Value, TTL: r.TTL, State: r.State, Attempts: r.Attempts,
		LastError: r.LastError, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
	if !r.NextAttemptAt.IsZero() {
		t := r.NextAttemptAt.UTC()
		out.NextAttemptAt = &t
	}
	return out
}

// maxUpstreamRecordsPage is the largest page of GET /upstream-records.
const maxUpstreamRecordsPage = 1000

func (a *API) listUpstreamRecords(w http.ResponseWriter, r *http.Request) {
	q := query{v: r.URL.Query()}
	after, limit := q.id("after"), q.limit("limit", maxUpstreamRecordsPage)
	if q.err != nil {
		a.writeError(w, r, q.err)
		return
	}
	if limit == 0 {
		limit = maxUpstreamRecordsPage
	}
	recs, err := a.svc.ListUpstreamRecords(adminContext(r), grant(r.Context()), q.v.Get("state"), after, limit)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	out := make([]UpstreamRecordJSON, 0, len(recs))
	for _, rec := range recs {
		out = append(out, ToUpstreamRecordJSON(rec))
	}
	resp := map[string]any{"upstream_records": out}
	if len(recs) == limit {
		resp["next_after"] = recs[len(recs)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *API) retryUpstreamRecord(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if err := a.svc.RetryUpstreamRecord(adminContext(r), grant(r.Context()), id); err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) forgetUpstreamRecord(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if err := a.svc.ForgetUpstreamRecord(adminContext(r), grant(r.Context()), id); err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
