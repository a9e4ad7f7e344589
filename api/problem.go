package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/acmehub/acmehub/internal/hub"
)

// problem is an RFC 7807 problem document. Code is stable for programs;
// Detail is for people and never carries internal error text.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// Stable problem codes.
const (
	codeBadRequest      = "bad_request"
	codeMalformedJSON   = "malformed_json"
	codeBodyTooLarge    = "body_too_large"
	codeUnauthenticated = "unauthenticated"
	codeForbidden       = "forbidden"
	codeNotFound        = "not_found"
	codeLimit           = "limit_reached"
	codeNotReady        = "not_ready"
	codeInternal        = "internal"
	codeMethod          = "method_not_allowed"
	codeRateLimited     = "rate_limited"
	codeUnsupported     = "not_implemented"
	codeUpstream        = "upstream_failed"
)

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:   "urn:acmehub:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	})
}

// writeError maps a service error to its HTTP form. Messages of the
// service's validation errors are meant for users; anything else is logged
// and answered with a generic message, since it may carry internals.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p, internal := errorProblem(err)
	if internal {
		a.log.ErrorContext(r.Context(), "request failed", "req_id", requestID(r.Context()), "err", err)
		p.Detail = "internal error; see the server log for request " + requestID(r.Context())
	}
	if p.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	writeProblem(w, p.Status, p.Code, p.Detail)
}

// errorProblem maps a service error to its problem document: one status
// and code per hub error kind, shared by every protocol that answers
// problems. internal reports an error of no known kind: its text may carry
// internals, so the caller logs it and the detail stays empty.
func errorProblem(err error) (p problem, internal bool) {
	status, code, detail := http.StatusInternalServerError, codeInternal, ""
	switch {
	case errors.Is(err, hub.ErrInvalid):
		status, code, detail = http.StatusBadRequest, codeBadRequest, err.Error()
	case errors.Is(err, hub.ErrNotFound):
		status, code, detail = http.StatusNotFound, codeNotFound, err.Error()
	case errors.Is(err, hub.ErrLimit):
		status, code, detail = http.StatusConflict, codeLimit, err.Error()
	case errors.Is(err, hub.ErrUnauthenticated):
		status, code, detail = http.StatusUnauthorized, codeUnauthenticated, "valid client credentials are required"
	case errors.Is(err, hub.ErrForbidden):
		// One body whatever the reason, so a caller cannot tell a domain
		// outside its scope from one no config matches.
		status, code, detail = http.StatusForbidden, codeForbidden, "no managed challenge allows this within the token's scope"
	case errors.Is(err, hub.ErrRateLimited):
		status, code, detail = http.StatusTooManyRequests, codeRateLimited, "too many failed authentications; try again later"
	case errors.Is(err, hub.ErrUnsupported):
		status, code, detail = http.StatusNotImplemented, codeUnsupported, err.Error()
	case errors.Is(err, hub.ErrConflict):
		status, code, detail = http.StatusConflict, codeConflict, err.Error()
	case errors.Is(err, hub.ErrUpstream):
		// The provider's own error, which drivers keep free of secrets:
		// the client needs it to see why its domain's DNS refused.
		status, code, detail = http.StatusBadGateway, codeUpstream, err.Error()
	default:
		internal = true
	}
	return problem{
		Type: "urn:acmehub:problem:" + code, Title: http.StatusText(status),
		Status: status, Code: code, Detail: detail,
	}, internal
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
