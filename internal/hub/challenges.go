package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// PresentRequest asks to publish a DNS-01 value for an identifier.
type PresentRequest struct {
	// Identifier is what the ACME order names ("example.org",
	// "*.example.org"), or the record name "_acme-challenge.example.org",
	// or the delegation's name in the hub zone (clients that follow the
	// CNAME send that). All resolve to the same base domain and rules.
	Identifier string
	// Type is the challenge type; "" means "dns-01", the only one.
	Type string
	// Value is the TXT value, or empty when KeyAuthorization is given, from
	// which the hub computes base64url(SHA-256(keyAuthorization)).
	Value            string
	KeyAuthorization string
	Source           netip.Addr
}

// Challenge is a published value and where it lives.
type Challenge struct {
	ID         string // opaque; names the value for clean-up and status
	Domain     string // the base domain the value validates (and its wildcard)
	RecordName string // "_acme-challenge.<domain>.", the name the CA queries
	Target     string // the delegation's name in the hub zone: the CNAME target
	Config     string // the managed challenge config that allowed it
	Provider   string
	Value      string
	TTL        uint32
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Live       bool // the value is currently published
	// Serial is the zone serial (the store's counter) that carries the
	// write: a nameserver at or past it (mod 2^32) serves the value. 0
	// when unknown.
	Serial int64
	// Principal is who asked (the Present or Status that returned it):
	// WaitPropagation counts a wait against that principal's cap.
	Principal int64
}

// ChallengeDNS01 is the only challenge type.
const ChallengeDNS01 = "dns-01"

// Present publishes a value after applying the scope and the rules, creating
// the domain's delegation on first use. It returns once the value is durable
// and answered by this process's DNS server.
//
// The value and the audit event of its success are committed together;
// any other outcome is audited on its own.
func (s *Service) Present(ctx context.Context, g Grant, req PresentRequest) (Challenge, error) {
	ch, cfg, err := s.present(ctx, g, req)
	if err != nil {
		s.auditChallenge(ctx, g, "challenge.present", req.Source, ch, cfg, err)
	}
	return ch, err
}

// present does the work of Present; when it succeeds it has audited the
// success.
func (s *Service) present(ctx context.Context, g Grant, req PresentRequest) (Challenge, store.ChallengeConfig, error) {
	if req.Type != "" && req.Type != ChallengeDNS01 {
		return Challenge{}, store.ChallengeConfig{}, fmt.Errorf("%w: challenge type %q (only dns-01)", ErrInvalid, req.Type)
	}
	value, err := challengeValue(req.Value, req.KeyAuthorization)
	if err != nil {
		return Challenge{}, store.ChallengeConfig{}, err
	}
	base, err := s.baseDomain(ctx, req.Identifier)
	if err != nil {
		return Challenge{Domain: base}, store.ChallengeConfig{}, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return Challenge{Domain: base}, store.ChallengeConfig{}, err
	}
	cfg, err := s.authorizeAt(ctx, g, base, gens.configs)
	if err != nil {
		return Challenge{Domain: base}, cfg, err
	}
	if cfg.Provider != store.ProviderDelegated {
		ch, err := s.presentUpstream(ctx, g, req, base, value, cfg)
		if err == nil {
			s.audit(ctx, s.challengeEvent(g, "challenge.present", req.Source, ch, cfg, nil))
		}
		return ch, cfg, err
	}
	d, err := s.delegation(ctx, g, base, cfg, gens.delegations)
	if err != nil {
		return Challenge{Domain: base}, cfg, err
	}
	ttl, expires, err := s.ttlAndExpiry(cfg.TTL, cfg.Lifetime)
	if err != nil {
		return Challenge{Domain: base}, cfg, err
	}
	ch := s.challenge(d, cfg, value, ttl, expires, true)
	ev := s.challengeEvent(g, "challenge.present", req.Source, ch, cfg, nil)
	serial, err := s.db.AddValue(ctx, store.AddRequest{
		Name: d.Name, Value: value, TTL: ttl, ExpiresAt: expires,
		CreatedBy: g.Principal.Name, MaxPerCreator: s.cfg.MaxValuesPerPrincipal,
		Audit: &ev,
	})
	if err != nil {
		return Challenge{Domain: base}, cfg, storeError("add value", err)
	}
	_ = s.db.TouchDelegation(ctx, d.ID, s.now()) // best effort
	ch.Serial, ch.Principal = serial, g.Principal.ID
	ch.ID = challengeID(d.Name, value, serial)
	return ch, cfg, nil
}

// Cleanup removes one value for an identifier; removing what is not there
// succeeds, so clients may retry. A removal and the audit event of its
// success are committed together; any other outcome is audited on its own.
func (s *Service) Cleanup(ctx context.Context, g Grant, identifier, value string, source netip.Addr) (int, error) {
	n, ch, cfg, audited, err := s.cleanup(ctx, g, identifier, value, source)
	if !audited {
		s.auditChallenge(ctx, g, "challenge.cleanup", source, ch, cfg, err)
	}
	return n, err
}

// CleanupByID removes the value a Present returned.
func (s *Service) CleanupByID(ctx context.Context, g Grant, id string, source netip.Addr) (int, error) {
	name, value, _, err := parseChallengeID(id)
	if err != nil {
		return 0, err
	}
	return s.Cleanup(ctx, g, name, value, source)
}

// cleanup does the work of Cleanup; audited says whether the outcome was
// audited together with the removal.
func (s *Service) cleanup(ctx context.Context, g Grant, identifier, value string, source netip.Addr) (
	n int, ch Challenge, cfg store.ChallengeConfig, audited bool, err error,
) {
	if err := zone.ValidateValue(value); err != nil {
		return 0, Challenge{}, store.ChallengeConfig{}, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	base, err := s.baseDomain(ctx, identifier)
	if err != nil {
		return 0, Challenge{Domain: base}, store.ChallengeConfig{}, false, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return 0, Challenge{Domain: base}, store.ChallengeConfig{}, false, err
	}
	cfg, err = s.authorizeAt(ctx, g, base, gens.configs)
	if err != nil {
		return 0, Challenge{Domain: base}, cfg, false, err
	}
	if cfg.Provider != store.ProviderDelegated {
		n, ch, err = s.cleanupUpstream(ctx, g, base, value, cfg)
		return n, ch, cfg, false, err
	}
	ch = Challenge{Domain: base, Value: value}
	d, err := s.delegationAt(ctx, gens.delegations, base)
	if errors.Is(err, store.ErrNotFound) {
		// Never delegated; values written upstream before the config
		// became delegated may remain.
		n, err = s.cleanupStrayUpstream(ctx, g, base, value, gens.upstream)
		return n, ch, cfg, false, err
	}
	if err != nil {
		return 0, ch, cfg, false, storeError("find delegation", err)
	}
	ch = s.challenge(d, cfg, value, 0, time.Time{}, false)
	ev := s.challengeEvent(g, "challenge.cleanup", source, ch, cfg, nil)
	_, removed, err := s.db.RemoveValueAudited(ctx, d.Name, value, ev)
	if err != nil {
		return 0, ch, cfg, false, storeError("remove value", err)
	}
	n = 0
	if removed {
		n = 1
	}
	// Values written upstream before the config became delegated.
	stray, err := s.cleanupStrayUpstream(ctx, g, base, value, gens.upstream)
	return n + stray, ch, cfg, true, err
}

// Status reports whether the value a Present returned is still published.
// A live challenge keeps the serial its id carries (Present's write).
func (s *Service) Status(ctx context.Context, g Grant, id string) (Challenge, error) {
	name, value, serial, err := parseChallengeID(id)
	if err != nil {
		return Challenge{}, err
	}
	base, err := s.baseDomain(ctx, name)
	if err != nil {
		return Challenge{}, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return Challenge{}, err
	}
	cfg, err := s.authorizeAt(ctx, g, base, gens.configs)
	if err != nil {
		return Challenge{}, err
	}
	if cfg.Provider != store.ProviderDelegated {
		return s.statusUpstream(ctx, g, base, value, cfg)
	}
	d, err := s.delegationAt(ctx, gens.delegations, base)
	if err != nil {
		return Challenge{}, storeError("find delegation", err)
	}
	recs, err := s.db.ListValues(ctx, d.Name)
	if err != nil {
		return Challenge{}, storeError("list values", err)
	}
	for _, r := range recs {
		if r.Value == value {
			ch := s.challenge(d, cfg, value, r.TTL, r.ExpiresAt, true)
			ch.CreatedAt, ch.Serial, ch.Principal = r.CreatedAt, serial, g.Principal.ID
			ch.ID = challengeID(d.Name, value, serial)
			return ch, nil
		}
	}
	return s.challenge(d, cfg, value, 0, time.Time{}, false), nil
}

// baseDomain turns any accepted identifier form into the base domain the
// rules are evaluated on.
func (s *Service) baseDomain(ctx context.Context, identifier string) (string, error) {
	id := strings.ToLower(strings.TrimSpace(identifier))
	if fq := zone.Fqdn(id); zone.InZone(s.cfg.Zone, fq) {
		d, err := s.db.DelegationByName(ctx, fq)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Same answer as for a domain outside the caller's scope:
			// probing the hub zone reveals nothing.
			return "", ErrForbidden
		case err != nil:
			return "", storeError("find delegation", err)
		case d.Domain == "":
			// An acme-dns label whose domain is not known yet: nothing
			// to check the scope or the rules against.
			return "", ErrForbidden
		}
		return d.Domain, nil
	}
	if strings.HasPrefix(id, "_acme-challenge.") {
		base, err := rules.BaseFromChallengeName(id)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return base, nil
	}
	base, _, err := rules.NormalizeIdentifier(id)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return base, nil
}

// authorizeAt applies the scope, then the rules, and returns the config;
// configsGen is the configs generation, read by the caller (challengeGens).
func (s *Service) authorizeAt(ctx context.Context, g Grant, base string, configsGen int64) (store.ChallengeConfig, error) {
	cfgs, err := s.configsAt(ctx, configsGen)
	if err != nil {
		return store.ChallengeConfig{}, err
	}
	cand, err := AuthorizeChallenge(g, base, cfgs.set)
	if err != nil {
		return store.ChallengeConfig{}, err
	}
	return cfgs.byID[cand.ID], nil
}

// authorizeDelegated is authorizeAt for operations that only delegation
// serves (acme-dns accounts: their clients write a hub-zone label).
func (s *Service) authorizeDelegated(ctx context.Context, g Grant, base string, configsGen int64) (store.ChallengeConfig, error) {
	cfg, err := s.authorizeAt(ctx, g, base, configsGen)
	if err == nil && cfg.Provider != store.ProviderDelegated {
		err = fmt.Errorf("%w: config %q writes to the domain's own DNS through provider %q; this needs a delegated config",
			ErrUnsupported, cfg.Name, cfg.Provider)
	}
	return cfg, err
}

// delegation returns the domain's delegation, creating it (with a new
// unguessable label) on the first allowed request. gen is the delegations
// generation, read by the caller.
func (s *Service) delegation(ctx context.Context, g Grant, base string, cfg store.ChallengeConfig, gen int64) (store.Delegation, error) {
	d, err := s.delegationAt(ctx, gen, base)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return d, storeError("find delegation", err)
	}
	label, err := newLabel()
	if err != nil {
		return d, err
	}
	d, _, err = s.db.CreateDelegation(ctx, store.Delegation{
		Domain: base, Label: label, Name: label + "." + s.cfg.Zone, ConfigID: cfg.ID, CreatedBy: g.Principal.Name,
	})
	if err != nil {
		return d, storeError("create delegation", err)
	}
	s.reportCheckStates(ctx) // one more "unchecked" delegation
	return d, nil
}

func (s *Service) challenge(d store.Delegation, cfg store.ChallengeConfig, value string, ttl uint32, expires time.Time, live bool) Challenge {
	return Challenge{
		ID:         challengeID(d.Name, value, 0),
		Domain:     d.Domain,
		RecordName: rules.ChallengeName(d.Domain) + ".",
		Target:     d.Name,
		Config:     cfg.Name,
		Provider:   cfg.Provider,
		Value:      value,
		TTL:        ttl,
		ExpiresAt:  expires,
		Live:       live,
	}
}

func (s *Service) auditChallenge(ctx context.Context, g Grant, action string, source netip.Addr, ch Challenge, cfg store.ChallengeConfig, err error) {
	s.audit(ctx, s.challengeEvent(g, action, source, ch, cfg, err))
}

// challengeEvent is the audit event of a challenge operation that ended
// with err.
func (s *Service) challengeEvent(g Grant, action string, source netip.Addr, ch Challenge, cfg store.ChallengeConfig, err error) store.AuditEvent {
	ev := store.AuditEvent{
		At: s.now(), PrincipalID: g.Principal.ID, TokenID: g.Principal.TokenID, Source: source.String(),
		Action: action, Target: ch.Target, Domain: ch.Domain, ConfigID: cfg.ID, Result: "ok",
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrForbidden):
		ev.Result = "denied"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrLimit), errors.Is(err, ErrUnsupported), errors.Is(err, ErrConflict):
		ev.Result, ev.Detail = "refused", err.Error()
	case errors.Is(err, ErrUpstream):
		ev.Result, ev.Detail = "error", errorText(err)
	default:
		ev.Result, ev.Detail = "error", "internal error"
	}
	return ev
}

// challengeValue returns the TXT value to publish.
func challengeValue(value, keyAuth string) (string, error) {
	if keyAuth != "" {
		sum := sha256.Sum256([]byte(keyAuth))
		computed := base64.RawURLEncoding.EncodeToString(sum[:])
		if value != "" && value != computed {
			return "", fmt.Errorf("%w: value does not match the key authorization", ErrInvalid)
		}
		value = computed
	}
	if err := zone.ValidateValue(value); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return value, nil
}

// labelEncoding writes delegation labels: lower-case letters and digits.
var labelEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newLabel returns an unguessable delegation label (120 random bits): a
// label is not a secret, but nobody should be able to predict which label
// a domain will get.
func newLabel() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("delegation label: %w", err)
	}
	return labelEncoding.EncodeToString(b[:]), nil
}

// A challenge id is the delegation name and the value, encoded, and after a
// Present the serial of its write (propagation compares nameservers with
// it): it needs no state, and every use of it is authorised again through
// the name's domain. Ids without the serial (serial 0, and those issued
// before it was added) stay valid.
func challengeID(name, value string, serial int64) string {
	s := name + "\x00" + value
	if serial > 0 {
		s += "\x00" + strconv.FormatInt(serial, 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseChallengeID(id string) (name, value string, serial int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err == nil {
		parts := strings.Split(string(b), "\x00")
		if len(parts) == 3 {
			serial, err = strconv.ParseInt(parts[2], 10, 64)
			if err != nil || serial <= 0 {
				parts = nil
			}
		}
		if len(parts) >= 2 && len(parts) <= 3 && parts[0] != "" && parts[1] != "" {
			return parts[0], parts[1], serial, nil
		}
	}
	return "", "", 0, fmt.Errorf("%w: malformed challenge id", ErrInvalid)
}
