package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/secret"
)

// ACMEDNSService is what the acme-dns protocol, lego's acme-dns account
// storage and the acme-dns admin endpoints need (internal/hub/acmedns.go
// has the contract). Errors wrap the hub.Err* kinds.
type ACMEDNSService interface {
	RegisterACMEDNS(ctx context.Context, g hub.Grant, reg hub.ACMEDNSRegistration) (hub.ACMEDNSAccount, error)
	RegisterACMEDNSOpen(ctx context.Context, allowFrom []netip.Prefix, source netip.Addr) (hub.ACMEDNSAccount, error)
	UpdateACMEDNS(ctx context.Context, u hub.ACMEDNSUpdate) (string, error)
	ACMEDNSAccountForDomain(ctx context.Context, g hub.Grant, domain string) (hub.ACMEDNSAccount, error)
	BindACMEDNS(ctx context.Context, g hub.Grant, domain, username, password string) (hub.ACMEDNSAccount, error)
	ACMEDNSAccountsByDomain(ctx context.Context, g hub.Grant) (map[string]hub.ACMEDNSAccount, error)
	ListACMEDNS(ctx context.Context, g hub.Grant, f hub.ACMEDNSFilter) (_ []hub.ACMEDNSAccount, nextAfter string, _ error)
	GetACMEDNS(ctx context.Context, g hub.Grant, username string, reveal bool) (hub.ACMEDNSAccount, error)
	DeleteACMEDNS(ctx context.Context, g hub.Grant, username string) error
}

// Open registrations (no hub token) are limited per source network: a few
// at once, then one a minute, so an open hub cannot be filled with labels.
var openRegistrationLimit = ratelimit.Config{Burst: 5, Per: time.Minute}

// acmeDNSRoutes registers the acme-dns API under Config.ACMEDNSPath and the
// lego acme-dns account storage.
func (a *API) acmeDNSRoutes(r *mux.Router) {
	p := a.acmeDNSPrefix()
	open := ratelimit.New(openRegistrationLimit)
	r.HandleFunc(p+"/register", func(w http.ResponseWriter, r *http.Request) { a.acmeDNSRegister(w, r, open) }).
		Methods(http.MethodPost).Name("compat:acme-dns-register")
	r.HandleFunc(p+"/update", a.acmeDNSUpdate).Methods(http.MethodPost).Name("compat:acme-dns-update")
	// acme-dns answers its health check with 200 and no body.
	r.HandleFunc(p+"/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }).
		Methods(http.MethodGet, http.MethodHead).Name("compat:acme-dns-health")

	v1 := func(path string, h http.HandlerFunc, method string) {
		r.Handle("/api/v1/acme-dns"+path, a.authenticate(h)).Methods(method)
	}
	// lego's HTTP account storage (ACME_DNS_STORAGE_BASE_URL).
	v1("/storage", a.acmeDNSStorageList, http.MethodGet)
	v1("/storage/{domain}", a.acmeDNSStorageFetch, http.MethodGet)
	v1("/storage/{domain}", a.acmeDNSStoragePut, http.MethodPost)
	// The native admin resource.
	v1("/accounts", a.listACMEDNS, http.MethodGet)
	v1("/accounts", a.createACMEDNS, http.MethodPost)
	v1("/accounts/{username}", a.getACMEDNS, http.MethodGet)
	v1("/accounts/{username}", a.deleteACMEDNS, http.MethodDelete)
}

// acmeDNSPrefix is Config.ACMEDNSPath without a trailing slash ("" = root).
func (a *API) acmeDNSPrefix() string { return strings.TrimSuffix(a.cfg.ACMEDNSPath, "/") }

// acmeDNSServerURL is the acme-dns API's base URL as clients reach it, for
// the server_url of stored accounts: PublicURL when set, else derived from
// the request (TLS, or a trusted proxy's X-Forwarded-Proto, and Host). It
// never ends in "/": Caddy appends "/update" to it verbatim.
func (a *API) acmeDNSServerURL(r *http.Request) string {
	if a.cfg.PublicURL != "" {
		return strings.TrimSuffix(a.cfg.PublicURL, "/") + a.acmeDNSPrefix()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	} else if a.cfg.Proxy.trusted(peerAddr(r.RemoteAddr)) {
		if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
			scheme = p
		}
	}
	return scheme + "://" + r.Host + a.acmeDNSPrefix()
}

// --- the acme-dns protocol ------------------------------------------------

// acme-dns error codes ({"error": "<code>"}). The first four are acme-dns's
// own; clients print the body, so the hub's additions say what is wrong.
const (
	adnsForbidden     = "forbidden"
	adnsMalformedJSON = "malformed_json_payload"
	adnsBadCIDR       = "invalid_allowfrom_cidr"
	adnsBadTXT        = "bad_txt"
	adnsInternal      = "db_error"
	adnsBadRequest    = "bad_request"
	adnsTooLarge      = "body_too_large"
	adnsRateLimited   = "rate_limited"
	adnsLimit         = "limit_reached"
	adnsConflict      = "conflict"
	adnsUnsupported   = "acme_dns_not_configured"
)

// writeACMEDNSError writes acme-dns's error body byte for byte
// ({"error": "code"}, with its space), plus a "detail" for people when
// given. Every acme-dns client reads the status; some print the body.
func writeACMEDNSError(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := `{"error": "` + code + `"`
	if detail != "" {
		body += `, "detail": ` + jsonString(detail)
	}
	_, _ = io.WriteString(w, body+"}") //nolint:gosec // G705: a JSON body served as application/json, its strings quoted
}

// registerRequest is the body of /register: acme-dns's allowfrom (goacmedns
// sends "AllowFrom" or "allowfrom"; matched case-insensitively) and Certify
// DNS's subject, the domain being registered for.
type registerRequest struct {
	AllowFrom []string `json:"allowfrom"`
	Subject   string   `json:"subject"`
}

// registerResponse is acme-dns's reply to /register, keys in its order.
type registerResponse struct {
	Username   string   `json:"username"`
	Password   string   `json:"password"`
	FullDomain string   `json:"fulldomain"`
	Subdomain  string   `json:"subdomain"`
	AllowFrom  []string `json:"allowfrom"`
}

// acmeDNSRegister is POST {prefix}/register. With a hub token (any form,
// usually Basic from the URL's userinfo) the account belongs to the token's
// principal; without one it works only when open registration is on.
func (a *API) acmeDNSRegister(w http.ResponseWriter, r *http.Request, open *ratelimit.Limiter) {
	ctx := adminContext(r)
	source := info(r.Context()).source
	cred, credErr := secret.ExtractCredentials(r)
	var g hub.Grant
	switch {
	case credErr == nil:
		var err error
		if g, err = a.svc.Authenticate(ctx, cred, source); err != nil {
			a.acmeDNSAuthError(w, r, err)
			return
		}
		info(r.Context()).tokenID = g.Principal.TokenID
	case errors.Is(credErr, secret.ErrNoCredentials) && a.cfg.ACMEDNSOpenRegistration:
		// Open registration: checked below, once the body is known good.
	default:
		writeACMEDNSError(w, http.StatusUnauthorized, adnsForbidden,
			"registration needs a hub token: use https://<client id>:<secret>@<hub>/ as the acme-dns URL")
		return
	}

	var body registerRequest
	raw, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeACMEDNSError(w, http.StatusRequestEntityTooLarge, adnsTooLarge, "")
		return
	case err != nil:
		writeACMEDNSError(w, http.StatusBadRequest, adnsMalformedJSON, "")
		return
	}
	// acme-dns accepts no body at all; whitespace is no body too.
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			writeACMEDNSError(w, http.StatusBadRequest, adnsMalformedJSON, "")
			return
		}
	}
	allow, ok := parseAllowFrom(body.AllowFrom)
	if !ok {
		writeACMEDNSError(w, http.StatusBadRequest, adnsBadCIDR, "")
		return
	}

	var acct hub.ACMEDNSAccount
	if credErr != nil {
		if !open.Spend(ratelimit.SourceKey(source)) {
			w.Header().Set("Retry-After", "60")
			writeACMEDNSError(w, http.StatusTooManyRequests, adnsRateLimited, "too many registrations from this network; try again later")
			return
		}
		acct, err = a.svc.RegisterACMEDNSOpen(ctx, allow, source)
	} else {
		acct, err = a.svc.RegisterACMEDNS(ctx, g, hub.ACMEDNSRegistration{Domain: body.Subject, AllowFrom: allow, Source: source})
	}
	if err != nil {
		a.acmeDNSServiceError(w, r, err)
		return
	}
	out, _ := json.Marshal(registerResponse{ //nolint:gosec // G117: the new account's password is shown once, as acme-dns does
		Username: acct.Username, Password: acct.Password, FullDomain: acct.FullDomain,
		Subdomain: acct.Subdomain, AllowFrom: prefixStrings(acct.AllowFrom),
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
}

// parseAllowFrom parses acme-dns's allowfrom CIDRs; like acme-dns it drops
// the brackets of IPv6 addresses written as "[::1]/128".
func parseAllowFrom(in []string) ([]netip.Prefix, bool) {
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		s = strings.NewReplacer("[", "", "]", "").Replace(strings.TrimSpace(s))
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, false
		}
		out = append(out, p)
	}
	return out, true
}

// prefixStrings is never nil: acme-dns answers "allowfrom":[] when empty.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// updateRequest is the body of /update: acme-dns's keys, matched
// case-insensitively (old goacmedns sends SubDomain and Txt).
type updateRequest struct {
	Subdomain string `json:"subdomain"`
	TXT       string `json:"txt"`
}

// acmeDNSUpdate is POST {prefix}/update, the hot path: decode, one service
// call, and acme-dns's reply {"txt": "<value>"} (acme.sh greps it for
// "<value>"). Basic auth that comes along is ignored: the account's
// X-Api-User and X-Api-Key are the credentials.
func (a *API) acmeDNSUpdate(w http.ResponseWriter, r *http.Request) {
	var body updateRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeACMEDNSError(w, http.StatusRequestEntityTooLarge, adnsTooLarge, "")
			return
		}
		writeACMEDNSError(w, http.StatusBadRequest, adnsMalformedJSON, "")
		return
	}
	user, key := r.Header.Get("X-Api-User"), r.Header.Get("X-Api-Key")
	if user == "" || key == "" {
		writeACMEDNSError(w, http.StatusUnauthorized, adnsForbidden, "")
		return
	}
	value, err := a.svc.UpdateACMEDNS(r.Context(), hub.ACMEDNSUpdate{
		Username: user, Password: key, Subdomain: body.Subdomain, TXT: body.TXT, Source: info(r.Context()).source,
	})
	if err != nil {
		if errors.Is(err, hub.ErrForbidden) {
			// acme-dns answers a subdomain that is not the account's
			// with its 401; the hub's other refusals of a proved
			// account (no config for its domain now) look the same.
			err = hub.ErrUnauthenticated
		}
		a.acmeDNSServiceError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"txt": `+jsonString(value)+`}`)
}

// jsonString quotes s for JSON without HTML escaping; values as ACME makes
// them (base64url) come out as "s" unchanged, without the cost of an
// encoder.
func jsonString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s)
			return strings.TrimSuffix(b.String(), "\n")
		}
	}
	return `"` + s + `"`
}

// acmeDNSAuthError answers a failed hub-token authentication on /register.
func (a *API) acmeDNSAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, hub.ErrUnauthenticated) && !errors.Is(err, hub.ErrRateLimited) {
		a.log.ErrorContext(r.Context(), "authentication failed", "req_id", requestID(r.Context()), "err", err)
		err = hub.ErrUnauthenticated
	}
	a.acmeDNSServiceError(w, r, err)
}

// acmeDNSServiceError maps a service error of /register or /update to an
// acme-dns error body. Internal errors are logged and answered as
// acme-dns's db_error, without their text.
func (a *API) acmeDNSServiceError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, hub.ErrAllowFrom):
		writeACMEDNSError(w, http.StatusBadRequest, adnsBadCIDR, err.Error())
	case errors.Is(err, hub.ErrBadTXT):
		writeACMEDNSError(w, http.StatusBadRequest, adnsBadTXT, "")
	case errors.Is(err, hub.ErrInvalid):
		writeACMEDNSError(w, http.StatusBadRequest, adnsBadRequest, err.Error())
	case errors.Is(err, hub.ErrUnauthenticated):
		writeACMEDNSError(w, http.StatusUnauthorized, adnsForbidden, "")
	case errors.Is(err, hub.ErrRateLimited):
		w.Header().Set("Retry-After", "60")
		writeACMEDNSError(w, http.StatusTooManyRequests, adnsRateLimited, "too many failed authentications; try again later")
	case errors.Is(err, hub.ErrForbidden):
		writeACMEDNSError(w, http.StatusForbidden, adnsForbidden, "no managed challenge allows this within the token's scope")
	case errors.Is(err, hub.ErrLimit):
		writeACMEDNSError(w, http.StatusForbidden, adnsLimit, err.Error())
	case errors.Is(err, hub.ErrConflict):
		writeACMEDNSError(w, http.StatusConflict, adnsConflict, err.Error())
	case errors.Is(err, hub.ErrUnsupported):
		writeACMEDNSError(w, http.StatusServiceUnavailable, adnsUnsupported, err.Error())
	default:
		a.log.ErrorContext(r.Context(), "acme-dns request failed", "req_id", requestID(r.Context()), "err", err)
		writeACMEDNSError(w, http.StatusInternalServerError, adnsInternal, "internal error; see the server log for request "+requestID(r.Context()))
	}
}
