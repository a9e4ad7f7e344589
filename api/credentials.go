package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/acmehub/acmehub/internal/hub"
)

// CredentialService is the stored upstream credentials part of Service:
// write-only, values are never read back.
type CredentialService interface {
	CreateCredential(ctx context.Context, g hub.Grant, req hub.CredentialRequest) (hub.Credential, error)
	ReplaceCredentialFields(ctx context.Context, g hub.Grant, id int64, fields map[string]string) (hub.Credential, error)
	DeleteCredential(ctx context.Context, g hub.Grant, id int64) error
	ListCredentials(ctx context.Context, g hub.Grant) ([]hub.Credential, error)
	GetCredential(ctx context.Context, g hub.Grant, id int64) (hub.Credential, error)
}

// CredentialJSON is a credential set on the wire: field names and a
// fingerprint, never a value.
type CredentialJSON struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Provider    string    `json:"provider"`
	Fields      []string  `json:"fields"`
	Fingerprint string    `json:"fingerprint"`
	Generation  int64     `json:"generation"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// ToCredentialJSON converts a credential for the wire.
func ToCredentialJSON(c hub.Credential) CredentialJSON {
	f := c.Fields
	if f == nil {
		f = []string{}
	}
	return CredentialJSON{ID: c.ID, Name: c.Name, Provider: c.Provider, Fields: f, Fingerprint: c.Fingerprint,
		Generation: c.Generation, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, CreatedBy: c.CreatedBy}
}

type credentialRequest struct {
	Name     string            `json:"name"`
	Provider string            `json:"provider"`
	Fields   map[string]string `json:"fields"`
}

type credentialFieldsRequest struct {
	Fields map[string]string `json:"fields"`
}

func (a *API) createCredential(w http.ResponseWriter, r *http.Request) {
	var body credentialRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	c, err := a.svc.CreateCredential(adminContext(r), grant(r.Context()),
		hub.CredentialRequest{Name: body.Name, Provider: body.Provider, Fields: body.Fields})
	clear(body.Fields)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.Header().Set("Location", "/api/v1/credentials/"+strconv.FormatInt(c.ID, 10))
	writeJSON(w, http.StatusCreated, ToCredentialJSON(c))
}

func (a *API) listCredentials(w http.ResponseWriter, r *http.Request) {
	cs, err := a.svc.ListCredentials(adminContext(r), grant(r.Context()))
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	out := make([]CredentialJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, ToCredentialJSON(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": out})
}

func (a *API) getCredential(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	c, err := a.svc.GetCredential(adminContext(r), grant(r.Context()), id)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToCredentialJSON(c))
}

func (a *API) replaceCredential(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var body credentialFieldsRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	c, err := a.svc.ReplaceCredentialFields(adminContext(r), grant(r.Context()), id, body.Fields)
	clear(body.Fields)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToCredentialJSON(c))
}

func (a *API) deleteCredential(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if err := a.svc.DeleteCredential(adminContext(r), grant(r.Context()), id); err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
