package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// presentRequest is the body of POST /api/v1/challenges.
type presentRequest struct {
	// Identifier: "example.org", "*.example.org", "_acme-challenge.example.org"
	// or the delegation's name in the hub zone.
	Identifier string `json:"identifier"`
	// Type is "dns-01" (the default).
	Type string `json:"type"`
	// Value is the TXT value; or give KeyAuthorization and the hub
	// computes base64url(SHA-256(key authorization)).
	Value            string `json:"value"`
	KeyAuthorization string `json:"key_authorization"`
}

// cleanupRequest is the body of POST /api/v1/challenges/cleanup.
type cleanupRequest struct {
	Identifier string `json:"identifier"`
	Value      string `json:"value"`
}

// challengeJSON is a challenge on the wire.
type challengeJSON struct {
	ID         string     `json:"id"`
	Domain     string     `json:"domain"`
	RecordName string     `json:"record_name"`
	CNAME      string     `json:"cname_target"`
	Config     string     `json:"managed_challenge"`
	Provider   string     `json:"provider"`
	Value      string     `json:"value"`
	TTL        uint32     `json:"ttl,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Status     string     `json:"status"` // "published" or "absent"
}

func toChallengeJSON(c hub.Challenge) challengeJSON {
	out := challengeJSON{
		ID: c.ID, Domain: c.Domain, RecordName: c.RecordName, CNAME: c.Target,
		Config: c.Config, Provider: c.Provider, Value: c.Value, TTL: c.TTL, Status: "absent",
	}
	if c.Live {
		out.Status = "published"
		exp := c.ExpiresAt.UTC()
		out.ExpiresAt = &exp
	}
	return out
}

func (a *API) present(w http.ResponseWriter, r *http.Request) {
	var body presentRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	ch, err := a.svc.Present(r.Context(), grant(r.Context()), hub.PresentRequest{
		Identifier: body.Identifier, Type: body.Type, Value: body.Value,
		KeyAuthorization: body.KeyAuthorization, Source: info(r.Context()).source,
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/challenges/"+ch.ID)
	writeJSON(w, http.StatusCreated, toChallengeJSON(ch))
}

func (a *API) cleanup(w http.ResponseWriter, r *http.Request) {
	var body cleanupRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	n, err := a.svc.Cleanup(r.Context(), grant(r.Context()), body.Identifier, body.Value, info(r.Context()).source)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"removed": n})
}

func (a *API) cleanupByID(w http.ResponseWriter, r *http.Request) {
	n, err := a.svc.CleanupByID(r.Context(), grant(r.Context()), mux.Vars(r)["id"], info(r.Context()).source)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"removed": n})
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	ch, err := a.svc.Status(r.Context(), grant(r.Context()), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toChallengeJSON(ch))
}
