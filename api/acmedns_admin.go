package api

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// ACMEDNSCredentialsJSON is an acme-dns account as its clients keep it:
// lego's HTTP storage, goacmedns's storage file and cert-manager's secret
// (each a map from domain to this). Keys in goacmedns's order.
type ACMEDNSCredentialsJSON struct {
	FullDomain string `json:"fulldomain"`
	Subdomain  string `json:"subdomain"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	ServerURL  string `json:"server_url"`
}

// ToACMEDNSCredentialsJSON is an account with its password in the clients'
// form; serverURL is the acme-dns API's base URL (no trailing slash).
func ToACMEDNSCredentialsJSON(a hub.ACMEDNSAccount, serverURL string) ACMEDNSCredentialsJSON {
	return ACMEDNSCredentialsJSON{FullDomain: a.FullDomain, Subdomain: a.Subdomain, Username: a.Username, Password: a.Password, ServerURL: serverURL}
}

// ACMEDNSAccountJSON is an acme-dns account on the admin API (shared with
// the CLI's --json). Password is present only where it is shown: on
// creation and when revealed.
type ACMEDNSAccountJSON struct {
	Username   string     `json:"username"`
	Password   string     `json:"password,omitempty"`
	FullDomain string     `json:"fulldomain"`
	Subdomain  string     `json:"subdomain"`
	AllowFrom  []string   `json:"allowfrom"`
	Domain     string     `json:"domain,omitempty"` // absent while unknown
	CNAME      string     `json:"cname,omitempty"`  // the record the domain's owner adds
	ServerURL  string     `json:"server_url"`
	Owner      string     `json:"owner"`
	OwnerID    int64      `json:"owner_principal_id"`
	Config     string     `json:"managed_challenge,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// ToACMEDNSAccountJSON is an account in its admin wire form.
func ToACMEDNSAccountJSON(a hub.ACMEDNSAccount, serverURL string) ACMEDNSAccountJSON {
	out := ACMEDNSAccountJSON{
		Username: a.Username, Password: a.Password, FullDomain: a.FullDomain, Subdomain: a.Subdomain,
		AllowFrom: prefixStrings(a.AllowFrom), Domain: a.Domain, ServerURL: serverURL,
		Owner: a.Owner, OwnerID: a.OwnerID, Config: a.Config, CreatedAt: a.CreatedAt.UTC(), CreatedBy: a.CreatedBy,
		LastUsedAt: optTime(a.LastUsedAt),
	}
	if a.Domain != "" {
		out.CNAME = "_acme-challenge." + a.Domain + ". CNAME " + a.FullDomain + "."
	}
	return out
}

// storageDomain is the domain of a lego storage path: lego asks for
// "*.example.org" as well as "example.org", and both are one DNS-01 name,
// so both mean the base domain (certbot's acme-dns hook does the same).
func storageDomain(r *http.Request) string {
	d := strings.TrimSuffix(mux.Vars(r)["domain"], ".")
	return strings.TrimPrefix(d, "*.")
}

// acmeDNSStorageFetch is lego's Fetch: the caller's own account for the
// domain, with its password, or 404 (lego then registers and binds one).
func (a *API) acmeDNSStorageFetch(w http.ResponseWriter, r *http.Request) {
	acct, err := a.svc.ACMEDNSAccountForDomain(adminContext(r), grant(r.Context()), storageDomain(r))
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, ToACMEDNSCredentialsJSON(acct, a.acmeDNSServerURL(r)))
}

// acmeDNSStoragePut is lego's Put: bind the caller's account (proved by its
// password) to the domain. Always 200, never 201: the hub does not create
// the CNAME, so lego must tell its user which CNAME to add.
func (a *API) acmeDNSStoragePut(w http.ResponseWriter, r *http.Request) {
	var body ACMEDNSCredentialsJSON
	if !decodeLenient(w, r, &body, "a lego acme-dns account") {
		return
	}
	if body.Username == "" || body.Password == "" {
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "username and password of the acme-dns account are required")
		return
	}
	acct, err := a.svc.BindACMEDNS(adminContext(r), grant(r.Context()), storageDomain(r), body.Username, body.Password)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	acct.Password = body.Password
	writeJSON(w, http.StatusOK, ToACMEDNSCredentialsJSON(acct, a.acmeDNSServerURL(r)))
}

// acmeDNSStorageList is lego's FetchAll: the caller's own bound accounts.
func (a *API) acmeDNSStorageList(w http.ResponseWriter, r *http.Request) {
	accts, err := a.svc.ACMEDNSAccountsByDomain(adminContext(r), grant(r.Context()))
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	serverURL := a.acmeDNSServerURL(r)
	out := make(map[string]ACMEDNSCredentialsJSON, len(accts))
	for domain, acct := range accts {
		out[domain] = ToACMEDNSCredentialsJSON(acct, serverURL)
	}
	writeJSON(w, http.StatusOK, out)
}

// createACMEDNSRequest is the body of POST /api/v1/acme-dns/accounts.
type createACMEDNSRequest struct {
	Domain    string   `json:"domain"`
	Owner     string   `json:"owner"`
	AllowFrom []string `json:"allowfrom"`
}

func (a *API) listACMEDNS(w http.ResponseWriter, r *http.Request) {
	q := query{v: r.URL.Query()}
	f := hub.ACMEDNSFilter{Owner: q.v.Get("owner"), Domain: q.v.Get("domain"), AfterID: q.v.Get("after"), Limit: q.limit("limit", 1000)}
	if q.err != nil {
		a.writeError(w, r, q.err)
		return
	}
	accts, next, err := a.svc.ListACMEDNS(adminContext(r), grant(r.Context()), f)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	serverURL := a.acmeDNSServerURL(r)
	out := make([]ACMEDNSAccountJSON, 0, len(accts))
	for _, acct := range accts {
		acct.Password = "" // never in lists
		out = append(out, ToACMEDNSAccountJSON(acct, serverURL))
	}
	resp := map[string]any{"accounts": out}
	if next != "" {
		// The store's cursor: a page thinned by visibility may be short,
		// even empty, with more to come.
		resp["next_after"] = next
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *API) createACMEDNS(w http.ResponseWriter, r *http.Request) {
	var body createACMEDNSRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	allow, ok := parseAllowFrom(body.AllowFrom)
	if !ok {
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "allowfrom must be a list of CIDR prefixes such as 192.0.2.0/24")
		return
	}
	acct, err := a.svc.RegisterACMEDNS(adminContext(r), grant(r.Context()), hub.ACMEDNSRegistration{
		Domain: body.Domain, Owner: body.Owner, AllowFrom: allow, Source: info(r.Context()).source,
	})
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	w.Header().Set("Location", "/api/v1/acme-dns/accounts/"+url.PathEscape(acct.Username))
	writeJSON(w, http.StatusCreated, ToACMEDNSAccountJSON(acct, a.acmeDNSServerURL(r)))
}

func (a *API) getACMEDNS(w http.ResponseWriter, r *http.Request) {
	q := query{v: r.URL.Query()}
	reveal := q.bool("reveal")
	if q.err != nil {
		a.writeError(w, r, q.err)
		return
	}
	acct, err := a.svc.GetACMEDNS(adminContext(r), grant(r.Context()), mux.Vars(r)["username"], reveal)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	if !reveal {
		acct.Password = ""
	}
	writeJSON(w, http.StatusOK, ToACMEDNSAccountJSON(acct, a.acmeDNSServerURL(r)))
}

func (a *API) deleteACMEDNS(w http.ResponseWriter, r *http.Request) {
	if err := a.svc.DeleteACMEDNS(adminContext(r), grant(r.Context()), mux.Vars(r)["username"]); err != nil {
		a.adminError(w, r, err, "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
