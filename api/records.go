package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// recordJSON is a challenge value on the wire.
type recordJSON struct {
	Name      string    `json:"name"`
	Value     string    `json:"value"`
	TTL       uint32    `json:"ttl"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func toJSON(recs []hub.Record) []recordJSON {
	out := make([]recordJSON, 0, len(recs))
	for _, r := range recs {
		out = append(out, recordJSON(r))
	}
	return out
}

// addValueRequest is the body of POST /api/v1/records/{name}.
type addValueRequest struct {
	Value string `json:"value"`
	// TTL and Lifetime are in seconds; zero means the server's default.
	TTL      int64 `json:"ttl"`
	Lifetime int64 `json:"lifetime"`
}

const maxListLimit = 1000

func (a *API) listRecords(w http.ResponseWriter, r *http.Request) {
	limit := maxListLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			writeProblem(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", maxListLimit))
			return
		}
		limit = n
	}
	recs, err := a.svc.AllValues(r.Context(), grant(r.Context()), r.URL.Query().Get("after"), limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": toJSON(recs)})
}

func (a *API) getRecord(w http.ResponseWriter, r *http.Request) {
	recs, err := a.svc.Values(r.Context(), grant(r.Context()), mux.Vars(r)["name"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": toJSON(recs)})
}

func (a *API) addValue(w http.ResponseWriter, r *http.Request) {
	var body addValueRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	if body.TTL < 0 || body.Lifetime < 0 {
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "ttl and lifetime must not be negative")
		return
	}
	rec, err := a.svc.SetValue(r.Context(), grant(r.Context()), hub.SetRequest{
		Name:     mux.Vars(r)["name"],
		Value:    body.Value,
		TTL:      time.Duration(body.TTL) * time.Second,
		Lifetime: time.Duration(body.Lifetime) * time.Second,
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, recordJSON(rec))
}

// removeValues removes one value (?value=) or, without it, every value at
// the name. Removing what is not there succeeds, so clean-up can be retried.
func (a *API) removeValues(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	var n int
	var err error
	if q := r.URL.Query(); q.Has("value") {
		n, err = a.svc.RemoveValue(r.Context(), grant(r.Context()), name, q.Get("value"))
	} else {
		n, err = a.svc.RemoveName(r.Context(), grant(r.Context()), name)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"removed": n})
}

// decodeJSON reads exactly one JSON object with known fields only. It
// answers the client itself and returns false when the body is unusable.
func (a *API) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeBody(w, r, v, true, "valid JSON for this endpoint")
}

// decodeLenient is decodeJSON ignoring unknown fields, for bodies in
// another product's wire type, which may grow; what names the expected
// body in the error.
func decodeLenient(w http.ResponseWriter, r *http.Request, v any, what string) bool {
	return decodeBody(w, r, v, false, what)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool, what string) bool {
	dec := json.NewDecoder(r.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil && !errors.Is(dec.Decode(&struct{}{}), io.EOF) {
		err = errors.New("more than one JSON value in the body")
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		writeProblem(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
	case errors.Is(err, io.EOF):
		writeProblem(w, http.StatusBadRequest, codeMalformedJSON, "the request body is empty; a JSON object is required")
	default:
		writeProblem(w, http.StatusBadRequest, codeMalformedJSON, "the request body is not "+what+": "+jsonErrorText(err))
	}
	return false
}

// jsonErrorText describes a decoding error without echoing the body.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	}
	return err.Error()
}
