package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// TSIGService manages TSIG keys, the credentials of the RFC 2136 gateway:
// tokens of kind "tsig", with AccessService's rights and error contract.
type TSIGService interface {
	// CreateTSIGKey returns the new key's secret, the only time it exists
	// outside the client.
	CreateTSIGKey(ctx context.Context, g hub.Grant, req hub.TSIGKeyRequest) (hub.IssuedTSIGKey, error)
	// ListTSIGKeys lists a principal's keys; principalID 0 lists all.
	ListTSIGKeys(ctx context.Context, g hub.Grant, principalID int64) ([]hub.TokenInfo, error)
	GetTSIGKey(ctx context.Context, g hub.Grant, name string) (hub.TokenInfo, error)
	RevokeTSIGKey(ctx context.Context, g hub.Grant, name string) (hub.TokenInfo, error)
}

// tsigRoutes registers the TSIG key routes.
func (a *API) tsigRoutes(v1 func(path string, h http.HandlerFunc, method string)) {
	v1("/tsig-keys", a.listTSIGKeys, http.MethodGet)
	v1("/tsig-keys", a.createTSIGKey, http.MethodPost)
	v1("/tsig-keys/{name}", a.getTSIGKey, http.MethodGet)
	v1("/tsig-keys/{name}", a.revokeTSIGKey, http.MethodDelete)
}

// TSIGKeyJSON is a TSIG key on the wire: never its secret. The CLI's
// --json output uses it too.
type TSIGKeyJSON struct {
	Name        string     `json:"name"`      // lower-case with the final dot
	Algorithm   string     `json:"algorithm"` // hmac-sha256, hmac-md5, ...
	PrincipalID int64      `json:"principal_id"`
	Title       string     `json:"title"`
	Roles       []string   `json:"roles"`       // narrowing; empty: all of the owner's roles
	AllowCIDRs  []string   `json:"allow_cidrs"` // empty: any source
	Status      string     `json:"status"`      // "active", "expired" or "revoked"
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
}

// ToTSIGKeyJSON is a key in its wire form, its status judged at now.
func ToTSIGKeyJSON(t hub.TokenInfo, now time.Time) TSIGKeyJSON {
	tok := ToTokenJSON(t, now)
	return TSIGKeyJSON{
		Name: t.ClientID, Algorithm: hub.TSIGAlgorithmName(t.Algorithm), PrincipalID: t.PrincipalID, Title: t.Title,
		Roles: tok.Roles, AllowCIDRs: tok.AllowCIDRs, Status: tok.Status,
		CreatedAt: tok.CreatedAt, ExpiresAt: tok.ExpiresAt, RevokedAt: tok.RevokedAt, LastUsedAt: tok.LastUsedAt,
	}
}

// TSIGFormsJSON is a new key in the forms its clients read.
type TSIGFormsJSON struct {
	BIND        string `json:"bind"`         // named.conf key clause; nsupdate -k reads it
	Certbot     string `json:"certbot"`      // certbot-dns-rfc2136 credentials ini
	Lego        string `json:"lego"`         // lego rfc2136 environment (DNSUPDATE_*)
	CertManager string `json:"cert_manager"` // Secret manifest and rfc2136 solver
}

// IssuedTSIGKeyJSON is a new key with, this once, its secret.
type IssuedTSIGKeyJSON struct {
	TSIGKeyJSON
	Principal string        `json:"principal"` // the owner's name
	Secret    string        `json:"secret"`    // base64, as BIND and the clients take it
	Forms     TSIGFormsJSON `json:"forms"`
}

// TSIGPlaceholderServer stands in the forms for the hub's DNS address
// when the request names none.
const TSIGPlaceholderServer = "HUB_DNS_ADDRESS"

// ToIssuedTSIGKeyJSON is a new key in its wire form, with its forms for a
// hub answering at server and port ("" and 0: a placeholder and 53).
func ToIssuedTSIGKeyJSON(k hub.IssuedTSIGKey, server string, port int, now time.Time) IssuedTSIGKeyJSON {
	if server == "" {
		server = TSIGPlaceholderServer
	}
	if port == 0 {
		port = 53
	}
	cidrs := make([]string, len(k.AllowCIDRs))
	for i, p := range k.AllowCIDRs {
		cidrs[i] = p.String()
	}
	info := hub.TokenInfo{
		ClientID: k.Name, Algorithm: k.Algorithm, PrincipalID: k.PrincipalID, Title: k.Title, Roles: k.Roles,
		AllowCIDRs: cidrs, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, Kind: hub.TokenKindTSIG,
	}
	ns := hub.TSIGNameserver(server, port)
	return IssuedTSIGKeyJSON{
		TSIGKeyJSON: ToTSIGKeyJSON(info, now), Principal: k.Principal, Secret: k.Secret,
		Forms: TSIGFormsJSON{BIND: k.BINDKey(), Certbot: k.CertbotINI(server, port), Lego: k.LegoEnv(ns), CertManager: k.CertManager(ns)},
	}
}

// createTSIGKeyRequest is the body of POST /api/v1/tsig-keys. The owner is
// principal (a name) or principal_id, neither meaning the caller; name ""
// generates one; expires_in is seconds, 0 no expiry; server and port are
// the hub's DNS address for the forms only.
type createTSIGKeyRequest struct {
	Principal   string   `json:"principal"`
	PrincipalID int64    `json:"principal_id"`
	Name        string   `json:"name"`
	Algorithm   string   `json:"algorithm"`
	Title       string   `json:"title"`
	Roles       []string `json:"roles"`
	AllowCIDRs  []string `json:"allow_cidrs"`
	ExpiresIn   int64    `json:"expires_in"`
	Server      string   `json:"server"`
	Port        int      `json:"port"`
}

func (a *API) createTSIGKey(w http.ResponseWriter, r *http.Request) {
	var body createTSIGKeyRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	bad := func(detail string) { writeProblem(w, http.StatusBadRequest, codeBadRequest, detail) }
	switch {
	case body.PrincipalID < 0:
		bad("principal_id must be a positive whole number")
		return
	case body.Principal != "" && body.PrincipalID != 0:
		bad("give principal or principal_id, not both")
		return
	case body.ExpiresIn < 0 || body.ExpiresIn > maxExpiresIn:
		bad(fmt.Sprintf("expires_in must be from 1 to %d seconds", maxExpiresIn))
		return
	case body.Port < 0 || body.Port > 65535:
		bad("port must be from 1 to 65535")
		return
	case len(body.Server) > 255:
		bad("server must be at most 255 bytes")
		return
	}
	req := hub.TSIGKeyRequest{
		Principal: body.Principal, PrincipalID: body.PrincipalID, Name: body.Name, Algorithm: body.Algorithm,
		Title: body.Title, ExpiresIn: time.Duration(body.ExpiresIn) * time.Second,
	}
	for _, s := range body.Roles {
		role, err := hub.ParseRole(s)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		req.Roles = append(req.Roles, role)
	}
	for _, s := range body.AllowCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			bad(fmt.Sprintf("allow_cidrs: %q is not a prefix such as 192.0.2.0/24 or 2001:db8::/32", s))
			return
		}
		req.AllowCIDRs = append(req.AllowCIDRs, p)
	}
	k, err := a.svc.CreateTSIGKey(adminContext(r), grant(r.Context()), req)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	w.Header().Set("Location", "/api/v1/tsig-keys/"+k.Name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, ToIssuedTSIGKeyJSON(k, body.Server, body.Port, time.Now()))
}

// listTSIGKeys lists the caller's own keys, another principal's
// (?principal=<id>) or every key (?principal=all), the last two for
// admins.
func (a *API) listTSIGKeys(w http.ResponseWriter, r *http.Request) {
	g := grant(r.Context())
	principal := g.Principal.ID
	switch s := r.URL.Query().Get("principal"); s {
	case "":
	case "all":
		principal = 0
	default:
		q := query{v: r.URL.Query()}
		principal = q.id("principal")
		if q.err != nil {
			a.writeError(w, r, fmt.Errorf("%w or all", q.err))
			return
		}
	}
	ks, err := a.svc.ListTSIGKeys(adminContext(r), g, principal)
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	now := time.Now()
	out := make([]TSIGKeyJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, ToTSIGKeyJSON(k, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tsig_keys": out})
}

func (a *API) getTSIGKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.svc.GetTSIGKey(adminContext(r), grant(r.Context()), mux.Vars(r)["name"])
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToTSIGKeyJSON(k, time.Now()))
}

// revokeTSIGKey revokes at once; the answer is the revoked key.
func (a *API) revokeTSIGKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.svc.RevokeTSIGKey(adminContext(r), grant(r.Context()), mux.Vars(r)["name"])
	if err != nil {
		a.adminError(w, r, err, forbiddenAdmin)
		return
	}
	writeJSON(w, http.StatusOK, ToTSIGKeyJSON(k, time.Now()))
}
