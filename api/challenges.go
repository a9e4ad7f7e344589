package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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
	// Wait ("30s") asks the hub to answer only once every hub nameserver
	// serves the value, or the wait ends (202); also ?wait=30s.
	Wait string `json:"wait"`
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
	// Propagation is set when the hub checked its nameservers: on a
	// status read of a published value, and after a present's wait.
	Propagation *propagationJSON `json:"propagation,omitempty"`
}

// propagationJSON says which hub nameservers serve a value.
type propagationJSON struct {
	Everywhere bool      `json:"everywhere"`
	CheckedAt  time.Time `json:"checked_at"`
	// Lagging names the nameservers that do not serve the value yet.
	Lagging []string           `json:"lagging"`
	Servers []serverStatusJSON `json:"servers"`
	// Detail says why a present's wait did not run ("too many waits").
	Detail string `json:"detail,omitempty"`
}

// serverStatusJSON is one address of one hub nameserver.
type serverStatusJSON struct {
	Server string `json:"server"`
	Addr   string `json:"addr"`
	// Serial is the zone's SOA serial it answered (0: none).
	Serial uint32 `json:"serial"`
	// Current: its serial is at or past the write's (RFC 1982).
	Current bool `json:"current"`
	// Serves: it answers the value.
	Serves bool   `json:"serves"`
	Error  string `json:"error,omitempty"`
	// Skipped says why this host could not even try the address (no
	// route for its family); such an address does not block everywhere.
	Skipped string `json:"skipped,omitempty"`
}

func toPropagationJSON(p hub.Propagation) *propagationJSON {
	out := &propagationJSON{
		Everywhere: p.Everywhere, CheckedAt: p.CheckedAt.UTC(),
		Lagging: []string{}, Servers: make([]serverStatusJSON, 0, len(p.Servers)), Detail: p.Detail,
	}
	for _, s := range p.Servers {
		out.Servers = append(out.Servers, serverStatusJSON{
			Server: s.Server, Addr: s.Addr, Serial: s.Serial, Current: s.Current, Serves: s.Serves, Error: s.Err, Skipped: s.Skipped,
		})
	}
	// The names of hub.Lagging, once each: one server may lag at several
	// addresses.
	for _, l := range hub.Lagging(p) {
		if !slices.Contains(out.Lagging, l.Server) {
			out.Lagging = append(out.Lagging, l.Server)
		}
	}
	return out
}

// PropagationService is what the propagation status and a present's wait
// need of the service.
type PropagationService interface {
	// PropagationEnabled reports whether the hub can ask its nameservers.
	PropagationEnabled() bool
	// PropagationMaxWait is the longest wait a present may ask for.
	PropagationMaxWait() time.Duration
	// WaitPropagation checks (wait <= 0: once) or waits until every hub
	// nameserver serves the challenge's value.
	WaitPropagation(ctx context.Context, ch hub.Challenge, wait time.Duration) (hub.Propagation, error)
}

// propagation returns the service's propagation checks, or nil when off.
func (a *API) propagation() PropagationService {
	if a.svc.PropagationEnabled() {
		return a.svc
	}
	return nil
}

// waitSlack is how much longer than its wait a present may take to answer:
// the last check's queries and the write itself.
const waitSlack = 15 * time.Second

// presentWait reads the wait of a present from the body or the query
// (both: they must agree): a Go duration ("30s") or whole seconds.
func (a *API) presentWait(r *http.Request, body string) (time.Duration, error) {
	q := r.URL.Query().Get("wait")
	switch {
	case q != "" && body != "" && q != body:
		return 0, fmt.Errorf("%w: wait is given twice, as %q and %q", hub.ErrInvalid, body, q)
	case body == "":
		body = q
	}
	if body == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(body)
	if err != nil {
		n, nerr := strconv.ParseUint(body, 10, 32)
		if nerr != nil {
			return 0, fmt.Errorf("%w: wait %q is not a duration such as \"30s\"", hub.ErrInvalid, body)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: wait %q is negative", hub.ErrInvalid, body)
	}
	if d == 0 {
		return 0, nil
	}
	p := a.propagation()
	if p == nil {
		return 0, fmt.Errorf("%w: wait needs propagation checks, which are off on this hub (no check resolver or nameservers)", hub.ErrInvalid)
	}
	if limit := p.PropagationMaxWait(); d > limit {
		return 0, fmt.Errorf("%w: wait %s is longer than the hub's maximum %s", hub.ErrInvalid, d, limit)
	}
	return d, nil
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
	// A bad wait is refused before anything is written.
	wait, err := a.presentWait(r, body.Wait)
	if err != nil {
		a.writeError(w, r, err)
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
	out, status := toChallengeJSON(ch), http.StatusCreated
	// A value written into the domain's own DNS is not the hub's
	// nameservers' to serve: there is nothing of the hub's to wait for.
	if wait > 0 && !ch.Upstream() {
		// The server's write timeout (30 s) would cut a longer wait: this
		// response may take the wait and a little more.
		a.extendWrite(w, r, wait+waitSlack)
		p, err := a.propagation().WaitPropagation(r.Context(), ch, wait)
		if err != nil {
			// The value is stored; only the check failed.
			a.writeError(w, r, err)
			return
		}
		out.Propagation = toPropagationJSON(p)
		if !p.Everywhere {
			// Stored and answered by some nameservers, not yet by all;
			// or, past the principal's cap on waits, checked once
			// (propagation.detail says so).
			status = http.StatusAccepted
		}
	}
	writeJSON(w, status, out)
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
	out := toChallengeJSON(ch)
	if p := a.propagation(); p != nil && ch.Live && !ch.Upstream() {
		res, err := p.WaitPropagation(r.Context(), ch, 0)
		if err != nil && r.Context().Err() != nil {
			return // the client went away while the check ran
		}
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		out.Propagation = toPropagationJSON(res)
	}
	writeJSON(w, http.StatusOK, out)
}
