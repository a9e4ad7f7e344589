// Package api is the hub's HTTP front end (gorilla/mux): the record API,
// health and readiness, metrics, and the middleware every route shares.
// It talks to the service through the small Service interface and never to
// the store.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/secret"
)

// Service is what the API needs from the hub. Implementations are safe for
// concurrent use and honour ctx. Errors wrap the hub.Err* kinds.
type Service interface {
	// Authenticate checks client credentials arriving from source; a
	// failure wraps hub.ErrUnauthenticated whatever the reason, or
	// hub.ErrRateLimited after too many failures.
	Authenticate(ctx context.Context, cred secret.Token, source netip.Addr) (hub.Grant, error)

	// Present, Cleanup, CleanupByID and Status are the challenge API: the
	// grant's scope, then the managed challenge configs, decide.
	Present(ctx context.Context, g hub.Grant, req hub.PresentRequest) (hub.Challenge, error)
	Cleanup(ctx context.Context, g hub.Grant, identifier, value string, source netip.Addr) (removed int, err error)
	CleanupByID(ctx context.Context, g hub.Grant, id string, source netip.Addr) (removed int, err error)
	Status(ctx context.Context, g hub.Grant, id string) (hub.Challenge, error)

	// The record operations write hub-zone names directly (admins only).
	SetValue(ctx context.Context, g hub.Grant, req hub.SetRequest) (hub.Record, error)
	// RemoveValue removes one value; removing an absent one is not an error.
	RemoveValue(ctx context.Context, g hub.Grant, name, value string) (removed int, err error)
	// RemoveName removes every value at name.
	RemoveName(ctx context.Context, g hub.Grant, name string) (removed int, err error)
	// Values lists the live values at name (empty, not an error, when none).
	Values(ctx context.Context, g hub.Grant, name string) ([]hub.Record, error)
	// AllValues pages through every live value, ordered by name then value,
	// starting after the given name.
	AllValues(ctx context.Context, g hub.Grant, afterName string, limit int) ([]hub.Record, error)
	// Ready reports whether the database answers.
	Ready(ctx context.Context) error

	// The admin API (admin.go): principals, roles and tokens; managed
	// challenge configs and delegations; the audit log.
	AccessService
	ChallengeAdminService
	AuditService

	// The acme-dns protocol, lego's acme-dns storage and the acme-dns
	// accounts (acmedns.go).
	ACMEDNSService

	// Onboarding and delegation checks (checks.go).
	DelegationCheckService
	// Propagation status and a present's wait (challenges.go).
	PropagationService
	// Stored upstream credentials, write-only (credentials.go).
	CredentialService
	// Values written into domains' own DNS (upstream_records.go).
	UpstreamRecordService
	// TSIG keys of the RFC 2136 gateway (tsig.go).
	TSIGService
}

// Config holds the API's settings.
type Config struct {
	// MaxBody is the largest request body accepted, in bytes; larger is 413.
	MaxBody int64
	// Metrics serves /metrics when not nil.
	Metrics http.Handler
	// Proxy says whose forwarded-for header to believe; zero: nobody's.
	Proxy  ProxyTrust
	Logger *slog.Logger

	// PublicURL is the API's base URL as clients reach it (no trailing
	// slash); "" derives it from each request.
	PublicURL string
	// HTTPReqPath is the path prefix of the lego httpreq endpoints
	// (<prefix>/present, <prefix>/cleanup); "" is the root.
	HTTPReqPath string
	// ACMEDNSPath is the path prefix of the acme-dns API (<prefix>/register,
	// /update, /health); "" is the root.
	ACMEDNSPath string
	// ACMEDNSOpenRegistration lets /register work without a hub token.
	ACMEDNSOpenRegistration bool
}

// API is the HTTP handler tree.
type API struct {
	svc    Service
	cfg    Config
	log    *slog.Logger
	router *mux.Router
	// certifyOps runs the Certify API's background operations
	// (requestbegin); Shutdown waits for them.
	certifyOps *opStore
	// checkLimit limits on-demand delegation checks per principal.
	checkLimit *ratelimit.Limiter
}

// New builds the router.
func New(svc Service, cfg Config) (*API, error) {
	if svc == nil {
		return nil, errors.New("api: nil service")
	}
	if cfg.MaxBody <= 0 {
		return nil, fmt.Errorf("api: MaxBody %d must be positive", cfg.MaxBody)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{svc: svc, cfg: cfg, log: cfg.Logger}
	a.routes()
	return a, nil
}

// ServeHTTP makes the API an http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

func (a *API) routes() {
	r := mux.NewRouter()
	r.Use(a.recoverPanics, a.accessLog, a.limitBody)
	r.NotFoundHandler = a.accessLog(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, codeNotFound, "no such endpoint")
	}))
	r.MethodNotAllowedHandler = a.accessLog(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusMethodNotAllowed, codeMethod, "method not allowed on this endpoint")
	}))

	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", a.ready).Methods(http.MethodGet, http.MethodHead)
	if a.cfg.Metrics != nil {
		r.Handle("/metrics", a.cfg.Metrics).Methods(http.MethodGet)
	}

	// The API description needs no credentials.
	r.HandleFunc("/api/v1/openapi.yaml", serveOpenAPI("application/yaml")).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/v1/openapi.json", serveOpenAPI("application/json")).Methods(http.MethodGet, http.MethodHead)

	// Every other /api/v1 route needs credentials. Each is registered on
	// the root router with its full path and authenticate around its
	// handler, not on a PathPrefix subrouter: gorilla/mux forgets a method
	// mismatch when a later route of a subrouter matches the prefix, which
	// answered 404 instead of 405 for all but the last routes.
	v1 := func(path string, h http.HandlerFunc, method string) {
		r.Handle("/api/v1"+path, a.authenticate(h)).Methods(method)
	}
	v1("/challenges", a.present, http.MethodPost)
	v1("/challenges/cleanup", a.cleanup, http.MethodPost)
	v1("/challenges/{id}", a.status, http.MethodGet)
	v1("/challenges/{id}", a.cleanupByID, http.MethodDelete)
	v1("/records", a.listRecords, http.MethodGet)
	v1("/records/{name}", a.getRecord, http.MethodGet)
	v1("/records/{name}", a.addValue, http.MethodPost)
	v1("/records/{name}", a.removeValues, http.MethodDelete)

	v1("/principals", a.listPrincipals, http.MethodGet)
	v1("/principals", a.createPrincipal, http.MethodPost)
	v1("/principals/{id}", a.getPrincipal, http.MethodGet)
	v1("/principals/{id}", a.updatePrincipal, http.MethodPatch)
	v1("/principals/{id}", a.deletePrincipal, http.MethodDelete)
	v1("/principals/{id}/roles", a.listRoles, http.MethodGet)
	v1("/principals/{id}/roles", a.addRole, http.MethodPost)
	v1("/principals/{id}/roles/{rid}", a.removeRole, http.MethodDelete)
	v1("/tokens", a.listTokens, http.MethodGet)
	v1("/tokens", a.createToken, http.MethodPost)
	v1("/tokens/{client_id}", a.getToken, http.MethodGet)
	v1("/tokens/{client_id}", a.revokeToken, http.MethodDelete)
	a.tsigRoutes(v1)
	v1("/managed-challenges", a.listManaged, http.MethodGet)
	v1("/managed-challenges", a.createManaged, http.MethodPost)
	v1("/managed-challenges/{id}", a.getManaged, http.MethodGet)
	v1("/managed-challenges/{id}", a.updateManaged, http.MethodPut)
	v1("/managed-challenges/{id}", a.deleteManaged, http.MethodDelete)
	v1("/delegations", a.listDelegations, http.MethodGet)
	v1("/delegations", a.createDelegation, http.MethodPost)
	a.checkRoutes(v1) // before /delegations/{domain}: "onboard" is not a domain
	v1("/delegations/{domain}", a.getDelegation, http.MethodGet)
	v1("/delegations/{domain}", a.deleteDelegation, http.MethodDelete)
	v1("/delegations/{domain}/move", a.moveDelegation, http.MethodPost)
	v1("/audit", a.listAudit, http.MethodGet)
	v1("/credentials", a.listCredentials, http.MethodGet)
	v1("/credentials", a.createCredential, http.MethodPost)
	v1("/credentials/{id}", a.getCredential, http.MethodGet)
	v1("/credentials/{id}", a.replaceCredential, http.MethodPut)
	v1("/credentials/{id}", a.deleteCredential, http.MethodDelete)
	v1("/upstream-records", a.listUpstreamRecords, http.MethodGet)
	v1("/upstream-records/{id}/retry", a.retryUpstreamRecord, http.MethodPost)
	v1("/upstream-records/{id}", a.forgetUpstreamRecord, http.MethodDelete)
	v1("/providers", a.listProviders, http.MethodGet)
	v1("/providers/{code}", a.getProvider, http.MethodGet)

	// The protocols existing clients speak, each a thin adapter onto the
	// same service calls. Routes outside /api/v1 are named "compat:..." so
	// the OpenAPI test knows they are not ours to document.
	a.certifyRoutes(r)
	a.httpreqRoutes(r)
	a.acmeDNSRoutes(r)
	a.router = r
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.svc.Ready(ctx); err != nil {
		a.log.WarnContext(ctx, "not ready", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, codeNotReady, "the database does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// NewServer wraps a handler in an http.Server with every timeout set, so a
// slow or idle client cannot hold connections forever.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
