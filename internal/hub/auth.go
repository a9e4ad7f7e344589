package hub

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// ErrRateLimited means too many failed authentications came from the
// request's source network or for its client id; the API answers 429.
var ErrRateLimited = errors.New("too many failed authentications")

// Authenticate checks client credentials arriving from source and returns
// what the request may do. Unknown client ids are verified against a dummy
// hash so they cost what a wrong secret costs; every failure is the same
// ErrUnauthenticated. Failures are limited per source network and per client
// id: past the limit the request is refused with ErrRateLimited before any
// check, and the moment a key becomes limited is audited.
func (s *Service) Authenticate(ctx context.Context, cred secret.Token, source netip.Addr) (Grant, error) {
	srcKey, idKey := ratelimit.SourceKey(source), cred.ClientID
	if s.failures.Limited(srcKey) || s.failures.Limited(idKey) {
		return Grant{}, ErrRateLimited
	}
	g, why, err := s.authenticate(ctx, cred, source)
	if err == nil {
		_ = s.db.TouchToken(ctx, cred.ClientID, s.now()) // best effort: last-used is informational
		return g, nil
	}
	if !errors.Is(err, ErrUnauthenticated) {
		return Grant{}, err
	}
	s.failures.Spend(srcKey)
	s.failures.Spend(idKey)
	// Audit the failure that used up a bucket; later attempts are refused
	// before any check and leave no row, so a flood cannot fill the log.
	limited := s.failures.Limited(srcKey) || s.failures.Limited(idKey)
	ev := store.AuditEvent{TokenID: cred.ClientID, Source: source.String(), Action: "auth", Result: "failed_auth", Detail: why}
	if limited {
		ev.Result, ev.Detail = "rate_limited", why+"; further attempts from this network or for this client id are refused for a while"
	}
	s.audit(ctx, ev)
	return Grant{}, ErrUnauthenticated
}

// authenticate does the checks; why says which failed, for the audit log
// only (the client always sees the same answer).
func (s *Service) authenticate(ctx context.Context, cred secret.Token, source netip.Addr) (Grant, string, error) {
	gens, err := s.db.Generations(ctx, store.GenTokens, store.GenPrincipals)
	if err != nil {
		return Grant{}, "", fmt.Errorf("look up token: %w", err)
	}
	gen := genKey{gens[0], gens[1]}
	e, err := s.tokenEntry(ctx, gen, cred.ClientID)
	if err != nil {
		return Grant{}, "", err
	}
	var hash []byte
	if e.found && e.tok.Kind == "" {
		hash = e.tok.SecretHash
	}
	// A TSIG key (kind tsig) has no hash and is verified like an unknown
	// client id: it authenticates DNS messages, never HTTP requests.
	if !s.kr.VerifySecret(cred.Secret, hash) || len(hash) == 0 {
		why := "unknown client id or wrong secret"
		if e.found && e.tok.Kind == store.TokenKindTSIG {
			why = "a TSIG key cannot authenticate on the HTTP API"
		}
		return Grant{}, why, ErrUnauthenticated
	}
	return s.entryGrant(ctx, gen, e, source)
}

// entryGrant finishes authenticating a credential whose secret (or, for a
// TSIG key, whose name) was checked: revocation, expiry, source, owner;
// it returns the grant narrowed to the credential's roles. why says which
// check failed, for the audit log only.
func (s *Service) entryGrant(ctx context.Context, gen genKey, e *tokenEntry, source netip.Addr) (Grant, string, error) {
	tok := e.tok
	now := s.now()
	switch {
	case !tok.RevokedAt.IsZero():
		return Grant{}, "token revoked", ErrUnauthenticated
	case !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt):
		return Grant{}, "token expired", ErrUnauthenticated
	case !sourceAllowed(tok.AllowCIDRs, source):
		return Grant{}, "source address not in the token's allow-list", ErrUnauthenticated
	case tok.PrincipalID == 0:
		return Grant{}, "token has no principal", ErrUnauthenticated
	}
	o := e.owner
	if o == nil {
		var err error
		if o, err = s.loadOwner(ctx, tok.PrincipalID); err != nil {
			return Grant{}, "", err
		}
		withOwner := *e
		withOwner.owner = o
		s.tokens.put(gen, tok.ClientID, &withOwner)
	}
	switch {
	case !o.found:
		return Grant{}, "principal deleted", ErrUnauthenticated
	case !o.p.Enabled:
		return Grant{}, "principal disabled", ErrUnauthenticated
	}
	narrow := make([]Role, len(tok.Roles))
	for i, r := range tok.Roles {
		narrow[i] = Role(r)
	}
	return Grant{
		Principal:   Principal{ID: o.p.ID, Name: o.p.Name, TokenID: tok.ClientID},
		Assignments: Narrow(o.assignments, narrow),
	}, "", nil
}

// maxTokenEntries bounds the authentication cache.
const maxTokenEntries = 4096

// tokenEntry is what the store holds for one client id, at the cache's
// generations ("tokens" and "principals"): the token, if any, and once it
// passed its own checks, its owner. Unknown client ids are cached too, so
// they cost what a wrong secret for a known one costs.
type tokenEntry struct {
	tok   store.Token
	found bool
	owner *tokenOwner // nil until loaded
}

// tokenOwner is a token's principal and, if it is enabled, its role
// assignments.
type tokenOwner struct {
	p           store.Principal
	found       bool // false: the principal was deleted
	assignments []Assignment
}

// tokenEntry returns the cached entry for clientID at gen, reading the
// token from the store on a miss.
func (s *Service) tokenEntry(ctx context.Context, gen genKey, clientID string) (*tokenEntry, error) {
	if e, ok := s.tokens.get(gen, clientID); ok {
		return e, nil
	}
	tok, err := s.db.TokenByClientID(ctx, clientID)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		tok = store.Token{}
	default:
		return nil, fmt.Errorf("look up token: %w", err)
	}
	e := &tokenEntry{tok: tok, found: err == nil}
	s.tokens.put(gen, clientID, e)
	return e, nil
}

// loadOwner reads a principal and, if it is enabled, its role
// assignments.
func (s *Service) loadOwner(ctx context.Context, principalID int64) (*tokenOwner, error) {
	p, err := s.db.Principal(ctx, principalID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &tokenOwner{}, nil
	case err != nil:
		return nil, fmt.Errorf("look up principal: %w", err)
	case !p.Enabled:
		return &tokenOwner{p: p, found: true}, nil
	}
	rows, err := s.db.RoleAssignments(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	assignments := make([]Assignment, 0, len(rows))
	for _, r := range rows {
		a := Assignment{Role: Role(r.Role)}
		if r.Domains != "" {
			if a.Domains, err = rules.Parse(r.Domains); err != nil {
				return nil, fmt.Errorf("role assignment %d: %w", r.ID, err)
			}
		}
		assignments = append(assignments, a)
	}
	// Grants share the slice: clipped, an append by one copies it.
	return &tokenOwner{p: p, found: true, assignments: slices.Clip(assignments)}, nil
}

// sourceAllowed checks a token's CIDR allow-list; an empty list allows all.
func sourceAllowed(cidrs []string, source netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(source.Unmap()) {
			return true
		}
	}
	return false
}

// audit records an event. A failure to record is logged, not returned: the
// request it describes has already happened.
func (s *Service) audit(ctx context.Context, ev store.AuditEvent) {
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	if err := s.db.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "audit event lost", "action", ev.Action, "err", err)
	}
}

// failureLimits are the defaults for failed authentications: ten at once,
// then one forgiven every six seconds, per source network and per client id.
var failureLimits = ratelimit.Config{Burst: 10, Per: 6 * time.Second}
