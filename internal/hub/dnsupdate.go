package hub

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// UpdateBackend is the service as the RFC 2136 gateway sees it
// (dnsupdate.Backend): a TSIG key is a kind of token, and an UPDATE is one
// more protocol onto Present and Cleanup, scoped by the key's grant and
// the configs' rules like every other.
type UpdateBackend struct{ s *Service }

var _ dnsupdate.Backend = UpdateBackend{}

// UpdateBackend returns the service's RFC 2136 backend.
func (s *Service) UpdateBackend() UpdateBackend { return UpdateBackend{s: s} }

// Key looks a TSIG key up (TSIGKeyFor): every refusal is one error
// (BADKEY); a store failure carries SERVFAIL, since it says nothing of the
// key.
func (b UpdateBackend) Key(ctx context.Context, name string, src netip.Addr) (dnsupdate.Key, error) {
	k, err := b.s.TSIGKeyFor(ctx, name, src)
	if err != nil && !errors.Is(err, ErrUnauthenticated) {
		return dnsupdate.Key{}, rcodeError{err, dns.RcodeServerFailure}
	}
	if err != nil {
		return dnsupdate.Key{}, err
	}
	return dnsupdate.Key{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret, Owner: k.Grant}, nil
}

// anyKey is the grant an unsigned zone-discovery query is checked with:
// no scope of its own, so only the configs' rules decide ("some key could
// write there"). It never writes: Add and Remove need a verified key.
var anyKey = Grant{Assignments: []Assignment{{Role: RoleAdmin}}}

// Allowed reports whether key (nil: an unsigned query) may write TXT
// values at name: a challenge name or a hub-zone delegation name the
// key's grant and a config's rule allow.
func (b UpdateBackend) Allowed(ctx context.Context, key *dnsupdate.Key, name string) bool {
	g := anyKey
	if key != nil {
		kg, ok := key.Owner.(Grant)
		if !ok {
			return false
		}
		g = kg
	}
	if !b.challengeName(name) {
		return false
	}
	base, err := b.s.baseDomain(ctx, name)
	if err != nil {
		return false
	}
	gens, err := b.s.challengeGens(ctx)
	if err != nil {
		return false
	}
	_, err = b.s.authorizeAt(ctx, g, base, gens.configs)
	return err == nil
}

// challengeName reports whether name is one a client may write: an
// "_acme-challenge." name, or a name in the hub zone (a CNAME target).
func (b UpdateBackend) challengeName(name string) bool {
	n := strings.ToLower(dns.CanonicalName(name))
	return strings.HasPrefix(n, "_acme-challenge.") || (zone.InZone(b.s.cfg.Zone, n) && n != b.s.cfg.Zone)
}

// Values are the values published at name, as the key may see them.
func (b UpdateBackend) Values(ctx context.Context, key dnsupdate.Key, name string) ([]string, error) {
	g, err := keyGrant(key)
	if err != nil {
		return nil, err
	}
	v, err := b.s.ChallengeValues(ctx, g, name)
	return v, updateError(err)
}

// Add publishes one value (Present; the config decides TTL and lifetime).
func (b UpdateBackend) Add(ctx context.Context, key dnsupdate.Key, name, value string, src netip.Addr) error {
	g, err := keyGrant(key)
	if err != nil {
		return err
	}
	_, err = b.s.Present(ctx, g, PresentRequest{Identifier: name, Value: value, Source: src})
	return updateError(err)
}

// Remove removes one value (Cleanup); an absent value is no error.
func (b UpdateBackend) Remove(ctx context.Context, key dnsupdate.Key, name, value string, src netip.Addr) error {
	g, err := keyGrant(key)
	if err != nil {
		return err
	}
	_, err = b.s.Cleanup(ctx, g, name, value, src)
	return updateError(err)
}

// Refused audits an UPDATE that changed nothing.
func (b UpdateBackend) Refused(ctx context.Context, key *dnsupdate.Key, keyName string, src netip.Addr, zoneName, reason string, rcode int) {
	ev := store.AuditEvent{
		At: b.s.now(), Source: src.String(), Action: "dns.update", Target: zoneName, Result: "refused",
		Detail: "key " + orNone(keyName) + ": " + dns.RcodeToString[rcode] + ": " + reason,
	}
	if key != nil {
		if g, ok := key.Owner.(Grant); ok {
			ev.PrincipalID, ev.TokenID = g.Principal.ID, g.Principal.TokenID
		}
	}
	switch rcode {
	case dns.RcodeNotAuth: // the TSIG did not verify
		ev.Result = "denied"
	case dns.RcodeServerFailure:
		ev.Result = "error"
	}
	b.s.audit(ctx, ev)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func keyGrant(key dnsupdate.Key) (Grant, error) {
	g, ok := key.Owner.(Grant)
	if !ok {
		return Grant{}, rcodeError{errors.New("key without a grant"), dns.RcodeServerFailure}
	}
	return g, nil
}

// rcodeError carries the rcode an UPDATE answers for a service error.
type rcodeError struct {
	err   error
	rcode int
}

func (e rcodeError) Error() string { return e.err.Error() }
func (e rcodeError) Unwrap() error { return e.err }
func (e rcodeError) Rcode() int    { return e.rcode }

// updateError maps service errors onto UPDATE rcodes: what the key may
// not do, or what the hub refuses, is REFUSED; a provider's or the
// store's failure is SERVFAIL.
func updateError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrInvalid), errors.Is(err, ErrLimit),
		errors.Is(err, ErrConflict), errors.Is(err, ErrUnsupported), errors.Is(err, ErrUnauthenticated):
		return rcodeError{err, dns.RcodeRefused}
	}
	return rcodeError{err, dns.RcodeServerFailure}
}
