package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/ratelimit"
)

// DelegationCheckService is onboarding and delegation checks, with the
// error contract of ChallengeAdminService; CheckDelegation fails with
// hub.ErrChecksOff when the hub cannot ask DNS.
type DelegationCheckService interface {
	CheckDelegation(ctx context.Context, g hub.Grant, domain string) (hub.Delegation, error)
	Onboard(ctx context.Context, g hub.Grant, domains []string) ([]hub.OnboardResult, error)
}

// checkLimits bound on-demand delegation checks per principal: each one
// sends a few dozen DNS queries to third parties' nameservers.
var checkLimits = ratelimit.Config{Burst: 10, Per: 6 * time.Second}

// codeChecksOff is the 503 of a check when the hub has no resolver.
const codeChecksOff = "checks_off"

// checkRoutes registers the onboarding and check endpoints; v1 is the
// authenticated route helper of routes().
func (a *API) checkRoutes(v1 func(path string, h http.HandlerFunc, method string)) {
	a.checkLimit = ratelimit.New(checkLimits)
	v1("/delegations/onboard", a.onboard, http.MethodPost)
	v1("/delegations/{domain}/check", a.checkDelegation, http.MethodPost)
}

// CheckJSON is a delegation's last check on the wire.
type CheckJSON struct {
	State     string             `json:"state"`
	Detail    string             `json:"detail"`
	CheckedAt time.Time          `json:"checked_at"`
	Since     time.Time          `json:"since"`
	Evidence  *hub.CheckEvidence `json:"evidence,omitempty"`
}

// toCheckJSON is nil for a delegation never checked.
func toCheckJSON(c hub.DelegationCheck) *CheckJSON {
	if c.State == "" {
		return nil
	}
	return &CheckJSON{State: c.State, Detail: c.Detail, CheckedAt: c.CheckedAt.UTC(), Since: c.Since.UTC(), Evidence: c.Evidence}
}

func (a *API) checkDelegation(w http.ResponseWriter, r *http.Request) {
	g := grant(r.Context())
	if !a.checkLimit.Spend("p:" + strconv.FormatInt(g.Principal.ID, 10)) {
		w.Header().Set("Retry-After", strconv.Itoa(int(checkLimits.Per/time.Second)))
		writeProblem(w, http.StatusTooManyRequests, codeRateLimited, "too many delegation checks; try again later")
		return
	}
	d, err := a.svc.CheckDelegation(adminContext(r), g, mux.Vars(r)["domain"])
	if errors.Is(err, hub.ErrChecksOff) {
		writeProblem(w, http.StatusServiceUnavailable, codeChecksOff, err.Error())
		return
	}
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, ToDelegationJSON(d))
}

// onboardRequest is the body of POST /api/v1/delegations/onboard: domains,
// the names of a zone file, or both (origin: for a file's relative names
// when it has no $ORIGIN).
type onboardRequest struct {
	Domains  []string `json:"domains"`
	ZoneFile string   `json:"zone_file"`
	Origin   string   `json:"origin"`
}

// OnboardResultJSON is one domain's outcome; Delegation (with the CNAME to
// add) unless refused.
type OnboardResultJSON struct {
	Input      string          `json:"input"`
	Domain     string          `json:"domain,omitempty"`
	Outcome    string          `json:"outcome"`
	Reason     string          `json:"reason,omitempty"`
	Delegation *DelegationJSON `json:"delegation,omitempty"`
}

// ToOnboardJSON is an onboarding outcome on the wire (shared with the CLI).
func ToOnboardJSON(r hub.OnboardResult) OnboardResultJSON {
	out := OnboardResultJSON{Input: r.Input, Domain: r.Domain, Outcome: r.Outcome, Reason: r.Reason}
	if r.Outcome != hub.OnboardRefused {
		d := ToDelegationJSON(r.Delegation)
		out.Delegation = &d
	}
	return out
}

func (a *API) onboard(w http.ResponseWriter, r *http.Request) {
	g := grant(r.Context())
	// The role first: parsing a zone file costs CPU that a token which
	// may not onboard must not get to spend.
	if !g.Allows(hub.ActionManageChallenges) {
		a.adminError(w, r, hub.ErrForbidden, "")
		return
	}
	var body onboardRequest
	if !a.decodeJSON(w, r, &body) {
		return
	}
	domains := body.Domains
	if body.ZoneFile != "" {
		names, err := hub.ZoneFileDomains(r.Context(), strings.NewReader(body.ZoneFile), body.Origin)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		domains = append(domains, names...)
	}
	if len(domains) == 0 {
		writeProblem(w, http.StatusBadRequest, codeBadRequest, "give domains, or a zone_file with at least one name")
		return
	}
	res, err := a.svc.Onboard(adminContext(r), g, domains)
	if err != nil {
		a.adminError(w, r, err, "")
		return
	}
	out := make([]OnboardResultJSON, 0, len(res))
	for _, x := range res {
		out = append(out, ToOnboardJSON(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}
