package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/store"
)

// ErrChecksOff means delegation checks need a DNS check client and the hub
// has none (no recursive resolver was found or set).
var ErrChecksOff = errors.New("delegation checks are off: the hub has no recursive resolver (set check-resolver)")

// CheckStore is what delegation checks need of the store; *store.DB
// implements it.
type CheckStore interface {
	// RecordDelegationCheck stores a check unless a later one is stored,
	// and returns the check stored before and the one stored now.
	RecordDelegationCheck(ctx context.Context, id int64, c store.DelegationCheck) (prev, now store.DelegationCheck, err error)
	// DelegationsToCheck lists delegations with a domain never checked or
	// last checked before before, never checked and oldest first.
	DelegationsToCheck(ctx context.Context, before time.Time, limit int) ([]store.Delegation, error)
	// CountDelegationChecks counts delegations with a domain by state
	// (store.CheckUnchecked for those never checked).
	CountDelegationChecks(ctx context.Context) (map[string]int, error)
}

// CheckStates are the states a delegation check reports, in the order
// people read them; "unchecked" (store.CheckUnchecked) is a delegation
// never checked.
var CheckStates = []string{
	string(dnscheck.StateOK), string(dnscheck.StateMissing), string(dnscheck.StateWrongTarget),
	string(dnscheck.StateConflict), string(dnscheck.StateInconsistent), string(dnscheck.StateUnreachable),
	string(dnscheck.StateInvalid), store.CheckUnchecked,
}

// DelegationCheck is the last check of a delegation; State "" means never
// checked (then the rest is zero).
type DelegationCheck struct {
	State     string
	Detail    string
	CheckedAt time.Time
	Since     time.Time // the state has held since this check
	Evidence  *CheckEvidence
}

// CheckEvidence is what the servers answered.
type CheckEvidence struct {
	Name        string           `json:"name"`           // _acme-challenge.<domain>.
	Expected    string           `json:"expected"`       // the CNAME target that should be there
	Zone        string           `json:"zone,omitempty"` // the domain's zone apex, if found
	Recursive   ServerEvidence   `json:"recursive"`
	Nameservers []ServerEvidence `json:"nameservers"`
}

// ServerEvidence is one server's answer about the challenge name.
type ServerEvidence struct {
	Server string   `json:"server"`          // nameserver name, or "recursive"
	Addr   string   `json:"addr,omitempty"`  // host:port asked
	Rcode  string   `json:"rcode,omitempty"` // "" when no answer
	CNAME  string   `json:"cname,omitempty"`
	Other  []string `json:"other,omitempty"` // other records at the name
	// Delegated: the name is delegated away by NS to these nameservers.
	Delegated []string `json:"delegated,omitempty"`
	Error     string   `json:"error,omitempty"` // why there was no usable answer
	// Skipped: not asked, as the hub cannot reach the address at all
	// (IPv6 from an IPv4-only host); not an error of the nameserver.
	Skipped string `json:"skipped,omitempty"`
}

// Bounds on what a check stores: a domain's zone feeds the evidence and
// the detail (its records are quoted), so their size is the hub's choice.
const (
	maxEvidenceBytes = 16 << 10
	maxDetailBytes   = 512
	maxOtherRecords  = 8   // per server; the rest counted
	maxEvidenceText  = 256 // bytes of one record or error
)

func serverEvidence(a dnscheck.ServerAnswer) ServerEvidence {
	e := ServerEvidence{Server: a.Server, Addr: a.Addr, Rcode: a.Rcode, CNAME: a.CNAME,
		Delegated: capList(a.Delegated), Error: truncate(a.Err, maxEvidenceText), Skipped: a.Skipped}
	e.Other = capList(a.Other)
	return e
}

// capList keeps the first maxOtherRecords entries of l, each at most
// maxEvidenceText bytes, and says how many more there were.
func capList(l []string) []string {
	var out []string
	for i, x := range l {
		if i == maxOtherRecords {
			return append(out, fmt.Sprintf("(%d more)", len(l)-i))
		}
		out = append(out, truncate(x, maxEvidenceText))
	}
	return out
}

// truncate cuts s to at most n bytes, on a character boundary, marking
// the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// evidenceJSON is ev as stored: at most maxEvidenceBytes, dropping the
// last nameservers' entries (and saying so) when needed.
func evidenceJSON(ev CheckEvidence) ([]byte, error) {
	all := ev.Nameservers
	for keep := len(all); ; keep /= 2 {
		ev.Nameservers = all[:keep:keep]
		if keep < len(all) {
			ev.Nameservers = append(ev.Nameservers, ServerEvidence{
				Server: fmt.Sprintf("(%d more answers not kept)", len(all)-keep)})
		}
		b, err := json.Marshal(ev)
		if err != nil || len(b) <= maxEvidenceBytes || keep == 0 {
			return b, err
		}
	}
}

// checkOf reads a stored check; evidence that does not parse is dropped.
func checkOf(c store.DelegationCheck) DelegationCheck {
	out := DelegationCheck{State: c.State, Detail: c.Detail, CheckedAt: c.CheckedAt, Since: c.Since}
	if c.Evidence != "" {
		var ev CheckEvidence
		if json.Unmarshal([]byte(c.Evidence), &ev) == nil {
			out.Evidence = &ev
		}
	}
	return out
}

// validCheckState reports whether s names a state for listing.
func validCheckState(s string) bool { return slices.Contains(CheckStates, s) }

// CheckDelegation checks, now, whether the CNAME of a domain's delegation
// is in place on the domain's nameservers (scope as GetDelegation),
// stores the result on the delegation, audits a change of state and
// returns the delegation with it. Without a DNS check client it fails
// with ErrChecksOff.
func (s *Service) CheckDelegation(ctx context.Context, g Grant, domain string) (Delegation, error) {
	base, err := s.manageableBase(ctx, g, domain)
	if err != nil {
		return Delegation{}, err
	}
	if s.cfg.DNSCheck == nil {
		return Delegation{}, ErrChecksOff
	}
	sd, err := s.db.DelegationByDomain(ctx, base)
	if err != nil {
		return Delegation{}, adminStoreError("find delegation", "a delegation of "+base, err)
	}
	sd, err = s.check(ctx, sd, g)
	if err != nil {
		return Delegation{}, err
	}
	s.reportCheckStates(ctx)
	return s.delegationInfo(ctx, sd)
}

// check runs one delegation check, stores it and audits a state change
// in g's name (the zero Grant: the background checker).
func (s *Service) check(ctx context.Context, sd store.Delegation, g Grant) (store.Delegation, error) {
	res := s.cfg.DNSCheck.CheckDelegation(ctx, sd.Domain, sd.Name)
	if err := ctx.Err(); err != nil {
		// Cut short (the caller left, or shutdown): the result says
		// "unreachable" about us, not about the domain; keep the last one.
		return sd, fmt.Errorf("check %s: %w", sd.Domain, err)
	}
	ev := CheckEvidence{Name: res.Name, Expected: res.Expected, Zone: res.Zone, Recursive: serverEvidence(res.Recursive)}
	for _, a := range res.Nameservers {
		ev.Nameservers = append(ev.Nameservers, serverEvidence(a))
	}
	evJSON, err := evidenceJSON(ev)
	if err != nil {
		return sd, fmt.Errorf("check %s: evidence: %w", sd.Domain, err)
	}
	c := store.DelegationCheck{State: string(res.State), Detail: truncate(res.Detail, maxDetailBytes),
		Evidence: string(evJSON), CheckedAt: res.CheckedAt}
	if res.ResolverDown {
		// The hub's resolver did not answer: the result is about us, not
		// the domain. It is returned, not stored or audited; the stored
		// state stays.
		s.log.WarnContext(ctx, "delegation check: the recursive resolver did not answer; result not stored", "domain", sd.Domain)
		c.Since = c.CheckedAt
		sd.Check = c
		return sd, nil
	}
	prev, now, err := s.db.RecordDelegationCheck(ctx, sd.ID, c)
	if err != nil {
		return sd, adminStoreError("record check", "a delegation of "+sd.Domain, err)
	}
	sd.Check = now
	if prev.State != now.State {
		old := prev.State
		if old == "" {
			old = store.CheckUnchecked
		}
		e := store.AuditEvent{Action: "delegation.check", Target: sd.Name, Domain: sd.Domain, ConfigID: sd.ConfigID,
			Result: "ok", Detail: old + " -> " + now.State + ": " + now.Detail}
		if g.Principal.ID == 0 && g.Principal.Name == "" {
			e.Source = "checker"
			s.audit(ctx, e)
		} else {
			s.auditAdmin(ctx, g, e, nil)
		}
	}
	return sd, nil
}

// reportCheckStates hands the count of delegations per state to
// Config.CheckStates, if set.
func (s *Service) reportCheckStates(ctx context.Context) {
	if s.cfg.CheckStates == nil {
		return
	}
	counts, err := s.db.CountDelegationChecks(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "count delegation checks", "err", err)
		return
	}
	s.cfg.CheckStates(counts)
}

// Background checks: checkConcurrency checks at once, checkBatch read at
// a time.
const (
	checkConcurrency = 8
	checkBatch       = 64
)

// RunChecks checks every delegation with a domain about once per every,
// until ctx ends: a round now, then one every every (±10% so several hubs
// on one database drift apart). A round checks the delegations not
// checked within the last half interval (so an on-demand check or a
// restart does not repeat recent work), never-checked and oldest first,
// checkConcurrency at once, storing and auditing like CheckDelegation.
// It returns nil when ctx ends, and an error at once without a DNS check
// client or with every <= 0.
func (s *Service) RunChecks(ctx context.Context, every time.Duration) error {
	if s.cfg.DNSCheck == nil {
		return ErrChecksOff
	}
	if every <= 0 {
		return fmt.Errorf("%w: check interval %v", ErrInvalid, every)
	}
	for {
		s.CheckRound(ctx, s.now().Add(-every/2))
		wait := every + time.Duration((rand.Float64()-0.5)*0.2*float64(every)) //nolint:gosec // jitter, not a secret
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// CheckRound checks every delegation with a domain last checked before
// before (or never), then reports the counts per state. It returns the
// number checked. Errors are logged: one delegation's failure does not
// stop the round.
func (s *Service) CheckRound(ctx context.Context, before time.Time) int {
	if s.cfg.DNSCheck == nil {
		return 0
	}
	defer s.reportCheckStates(context.WithoutCancel(ctx))
	seen := map[int64]bool{}
	sem := make(chan struct{}, checkConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		wg.Wait() // the batch's results are stored before reading the next
		ds, err := s.db.DelegationsToCheck(ctx, before, checkBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.ErrorContext(ctx, "delegation checks: list", "err", err)
			}
			break
		}
		fresh := 0
		for _, d := range ds {
			if seen[d.ID] { // its check could not be stored: not again this round
				continue
			}
			seen[d.ID] = true
			fresh++
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return len(seen)
			}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := s.check(ctx, d, Grant{}); err != nil && ctx.Err() == nil {
					s.log.WarnContext(ctx, "delegation check", "domain", d.Domain, "err", err)
				}
			})
		}
		if fresh == 0 {
			break
		}
	}
	return len(seen)
}
