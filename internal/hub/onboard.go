package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/rules"
)

// MaxOnboard is the most domains one Onboard call takes.
const MaxOnboard = 1000

// Onboarding outcomes, per domain.
const (
	OnboardCreated  = "created"  // a new delegation: its owner adds the CNAME
	OnboardExisting = "existing" // delegated already: the CNAME is the one in place
	OnboardRefused  = "refused"  // not delegated; Reason says why
)

// OnboardResult is the outcome for one domain of an Onboard call.
type OnboardResult struct {
	Input   string // as given
	Domain  string // its base domain (A-labels), "" if it is not a valid name
	Outcome string // OnboardCreated, OnboardExisting or OnboardRefused
	Reason  string // why it was refused; safe to show
	// Delegation, unless refused: its CNAME is the record to add.
	Delegation Delegation
}

// Onboard delegates each domain as CreateDelegation does (same scope,
// rules and audit), and reports per domain what to add or why not,
// without failing the batch for one domain. Inputs are any identifier
// form (Unicode, a wildcard: its base); inputs with the same base are
// reported once, for the first. Only a grant that may not manage
// challenges at all, or more than MaxOnboard inputs, fail the call.
func (s *Service) Onboard(ctx context.Context, g Grant, domains []string) ([]OnboardResult, error) {
	if !g.Allows(ActionManageChallenges) {
		return nil, ErrForbidden
	}
	if len(domains) == 0 || len(domains) > MaxOnboard {
		return nil, fmt.Errorf("%w: give 1 to %d domains, not %d", ErrInvalid, MaxOnboard, len(domains))
	}
	out := make([]OnboardResult, 0, len(domains))
	seen := map[string]bool{}
	for _, in := range domains {
		r := OnboardResult{Input: in}
		if base, _, err := rules.NormalizeIdentifier(in); err == nil {
			if seen[base] {
				continue
			}
			seen[base] = true
			r.Domain = base
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, created, err := s.CreateDelegation(ctx, g, in)
		switch {
		case err == nil && created:
			r.Outcome, r.Delegation, r.Domain = OnboardCreated, d, d.Domain
		case err == nil:
			r.Outcome, r.Delegation, r.Domain = OnboardExisting, d, d.Domain
		default:
			r.Outcome, r.Reason = OnboardRefused, s.refusal(ctx, r.Domain, err)
		}
		out = append(out, r)
	}
	// New delegations are "unchecked" in the gauge; the background
	// checker gets to them at its own pace (nothing is checked here).
	s.reportCheckStates(ctx)
	return out, nil
}

// refusal is the reason shown for a domain Onboard did not delegate: the
// message of a user error, the one 403 text for anything out of scope,
// a generic text (and a log line) for an internal error.
func (s *Service) refusal(ctx context.Context, domain string, err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return "no managed challenge allows this domain within the token's scope"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrConflict), errors.Is(err, ErrLimit),
		errors.Is(err, ErrUnsupported), errors.Is(err, ErrNotFound):
		return err.Error()
	}
	s.log.ErrorContext(ctx, "onboarding a domain failed", "domain", domain, "err", err)
	return "internal error; see the server log"
}

// Bounds on a zone file to onboard: its text, and the records read from
// it (not only the new names: a file of one name repeated is no cheaper
// to parse).
const (
	MaxZoneFileBytes   = 1 << 20
	MaxZoneFileRecords = 10 * MaxOnboard
)

// ZoneFileDomains reads a zone file (RFC 1035 master file syntax, as
// miekg/dns parses it) and returns the domains to onboard: every owner
// name once, in order of first appearance, a wildcard "*.x" as x, as
// lower-case A-labels. Names with a label starting with "_" (service
// names such as _dmarc, _acme-challenge, DKIM selectors) are skipped.
// origin is used for relative names when the file has no $ORIGIN ("" :
// the file must use absolute names). $INCLUDE and $GENERATE are refused
// ($GENERATE makes up to 65,536 records of one line); so are more than
// MaxZoneFileBytes of text, MaxZoneFileRecords records or MaxOnboard
// names. A syntax error is ErrInvalid with the parser's line. ctx ends
// the parse.
//
// The caller checks that the grant may onboard before calling: parsing
// costs CPU that a grant without the role must not get to spend.
func ZoneFileDomains(ctx context.Context, r io.Reader, origin string) ([]string, error) {
	if origin != "" {
		origin = dns.Fqdn(origin)
		if _, ok := dns.IsDomainName(origin); !ok {
			return nil, fmt.Errorf("%w: origin %q is not a domain name", ErrInvalid, origin)
		}
	}
	text, err := io.ReadAll(io.LimitReader(r, MaxZoneFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("zone file: %w", err)
	}
	if len(text) > MaxZoneFileBytes {
		return nil, fmt.Errorf("%w: the zone file is larger than %d bytes", ErrInvalid, MaxZoneFileBytes)
	}
	if hasGenerate(text) {
		return nil, fmt.Errorf("%w: zone file: $GENERATE is not supported; list the names", ErrInvalid)
	}
	zp := dns.NewZoneParser(bytes.NewReader(text), origin, "")
	zp.SetIncludeAllowed(false)
	var out []string
	seen := map[string]bool{}
	n := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if n++; n > MaxZoneFileRecords {
			return nil, fmt.Errorf("%w: the zone file has more than %d records", ErrInvalid, MaxZoneFileRecords)
		}
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		name := strings.TrimSuffix(rr.Header().Name, ".")
		if hasServiceLabel(name) {
			continue
		}
		base, _, err := rules.NormalizeIdentifier(name)
		if err != nil {
			continue // not a host name (an IP-like owner, say): nothing to delegate
		}
		if !seen[base] {
			seen[base] = true
			out = append(out, base)
		}
		if len(out) > MaxOnboard {
			return nil, fmt.Errorf("%w: the zone file has more than %d names", ErrInvalid, MaxOnboard)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%w: zone file: %w", ErrInvalid, err)
	}
	return out, nil
}

// hasGenerate reports whether text holds "$GENERATE" anywhere, in any
// case. The parser has no switch to turn the directive off, and where it
// is one depends on the lexer's state (line starts, parentheses), so the
// text is refused outright, even for a TXT string that quotes it.
func hasGenerate(text []byte) bool {
	return bytes.Contains(bytes.ToUpper(text), []byte("$GENERATE"))
}

// hasServiceLabel reports whether a name has a label starting with "_".
func hasServiceLabel(name string) bool {
	for l := range strings.SplitSeq(name, ".") {
		if strings.HasPrefix(l, "_") {
			return true
		}
	}
	return false
}
