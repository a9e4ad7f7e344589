package hub

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// TokenInfo is an API token as the admin operations show it: never its
// secret, nor the secret's hash.
type TokenInfo struct {
	ClientID    string
	PrincipalID int64 // the owner
	Title       string
	Description string
	// Roles narrows the token to these of its owner's roles; empty means
	// all of them.
	Roles []Role
	// AllowCIDRs lists the source prefixes it may be used from; empty
	// means any.
	AllowCIDRs []string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: not revoked
	LastUsedAt time.Time // zero: never used (updated lazily)
	// Kind is TokenKindAPI or TokenKindTSIG (then ClientID is the TSIG
	// key name and Algorithm its HMAC, as miekg/dns names it).
	Kind      string
	Algorithm string
}

// Kinds of token.
const (
	TokenKindAPI  = store.TokenKindAPI  // an HTTP API credential
	TokenKindTSIG = store.TokenKindTSIG // a TSIG key for DNS UPDATE (tsig.go)
)

// IssuedToken is a token just created, with its credential. The secret
// is shown this once: only its hash is stored.
type IssuedToken struct {
	TokenInfo
	Credential secret.Token
}

// TokenRequest asks for a new API token.
type TokenRequest struct {
	// PrincipalID owns the token; 0 means the caller's own principal.
	// Tokens for another principal need the admin role.
	PrincipalID int64
	Title       string
	Description string
	// Roles narrows the token to some of its owner's roles; a role the
	// owner does not hold is refused. Empty means not narrowed, except
	// for a caller creating its own token without the admin role: then the
	// new token gets at most the roles the calling token has (see
	// CreateToken).
	Roles []string
	// AllowCIDRs restricts the source addresses ("192.0.2.0/24",
	// "2001:db8::/32"); empty means any source.
	AllowCIDRs []string
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

// CreateToken creates an API token and returns it with its secret, which
// is not stored and cannot be shown again.
//
// A principal may create tokens for itself; tokens for others need the
// admin role. A token can only lose rights: its roles must be among its
// owner's, and a caller without the admin role creating its own token
// cannot get more than the calling token has: its roles, source prefixes
// and expiry default to the calling token's and may only narrow them.
func (s *Service) CreateToken(ctx context.Context, g Grant, req TokenRequest) (IssuedToken, error) {
	t, err := s.createToken(ctx, g, req)
	target := "token"
	if t.ClientID != "" {
		target += ":" + t.ClientID
	}
	if req.PrincipalID == 0 {
		req.PrincipalID = g.Principal.ID
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "token.create", Target: target, Detail: tokenDetail(t.TokenInfo, req)}, err)
	return t, err
}

func (s *Service) createToken(ctx context.Context, g Grant, req TokenRequest) (IssuedToken, error) {
	lim, err := s.newTokenLimits(ctx, g, req)
	if err != nil {
		return IssuedToken{}, err
	}
	cred, err := secret.NewToken()
	if err != nil {
		return IssuedToken{}, err
	}
	st := store.Token{
		ClientID: cred.ClientID, PrincipalID: lim.owner.ID, SecretHash: s.kr.HashSecret(cred.Secret),
		Title: req.Title, Description: req.Description, Roles: roleStrings(lim.roles), AllowCIDRs: prefixStrings(lim.cidrs),
		ExpiresAt: lim.expires,
	}
	if err := s.db.CreateToken(ctx, st); err != nil {
		return IssuedToken{}, adminStoreError("create token", "a token with this client id", err)
	}
	got, err := s.db.TokenByClientID(ctx, cred.ClientID)
	if err != nil {
		return IssuedToken{}, storeError("read the new token", err)
	}
	return IssuedToken{TokenInfo: tokenInfo(got), Credential: cred}, nil
}

// tokenLimits are what a new token (or TSIG key) will be: its owner and
// its checked narrowing, sources and expiry.
type tokenLimits struct {
	owner   PrincipalInfo
	roles   []Role
	cidrs   []netip.Prefix
	expires time.Time
}

// newTokenLimits checks who may create a credential for whom and with
// what limits (see CreateToken); API tokens and TSIG keys share it.
func (s *Service) newTokenLimits(ctx context.Context, g Grant, req TokenRequest) (tokenLimits, error) {
	owner := req.PrincipalID
	if owner == 0 {
		owner = g.Principal.ID
	}
	admin := g.Allows(ActionManageAccess)
	if !g.owns(owner) && !admin {
		return tokenLimits{}, ErrForbidden
	}
	if err := positiveID("principal", owner); err != nil {
		return tokenLimits{}, err
	}
	roles, err := parseRoles(req.Roles)
	if err != nil {
		return tokenLimits{}, err
	}
	cidrs, err := parsePrefixes(req.AllowCIDRs)
	if err != nil {
		return tokenLimits{}, err
	}
	if !req.ExpiresAt.IsZero() && !req.ExpiresAt.After(s.now()) {
		return tokenLimits{}, fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalid, req.ExpiresAt.UTC().Format(time.RFC3339))
	}
	expires := req.ExpiresAt
	if !admin {
		if roles, cidrs, expires, err = s.inheritLimits(ctx, g, roles, cidrs, expires); err != nil {
			return tokenLimits{}, err
		}
	}
	p, err := s.principal(ctx, owner)
	if err != nil {
		return tokenLimits{}, err
	}
	held := rolesOf(assignments(p.Roles))
	for _, r := range roles {
		if !slices.Contains(held, r) {
			return tokenLimits{}, fmt.Errorf("%w: principal %q does not hold the role %s (it holds %v); a token can only be narrowed to its owner's roles",
				ErrInvalid, p.Name, r, held)
		}
	}
	return tokenLimits{owner: p, roles: roles, cidrs: cidrs, expires: expires}, nil
}

// inheritLimits bounds a token a caller without the admin role creates for
// itself by the calling token, so that a narrowed, source-bound or
// expiring token cannot mint a wider or longer-lived one.
func (s *Service) inheritLimits(ctx context.Context, g Grant, roles []Role, cidrs []netip.Prefix, expires time.Time) ([]Role, []netip.Prefix, time.Time, error) {
	caller, err := s.db.TokenByClientID(ctx, g.Principal.TokenID)
	if err != nil {
		return nil, nil, time.Time{}, storeError("look up the calling token", err)
	}
	if len(caller.Roles) > 0 {
		mine := make([]Role, len(caller.Roles))
		for i, r := range caller.Roles {
			mine[i] = Role(r)
		}
		if len(roles) == 0 {
			roles = mine
		}
		for _, r := range roles {
			if !slices.Contains(mine, r) {
				return nil, nil, time.Time{}, fmt.Errorf("%w: the calling token is narrowed to %v and cannot create a token with the role %s", ErrInvalid, mine, r)
			}
		}
	}
	if len(caller.AllowCIDRs) > 0 {
		mine, err := parsePrefixes(caller.AllowCIDRs)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		if len(cidrs) == 0 {
			cidrs = mine
		}
		for _, p := range cidrs {
			if !slices.ContainsFunc(mine, func(m netip.Prefix) bool { return m.Bits() <= p.Bits() && m.Contains(p.Addr()) }) {
				return nil, nil, time.Time{}, fmt.Errorf("%w: the calling token may be used only from %v; %s is not within that", ErrInvalid, caller.AllowCIDRs, p)
			}
		}
	}
	if !caller.ExpiresAt.IsZero() {
		if expires.IsZero() {
			expires = caller.ExpiresAt
		}
		if expires.After(caller.ExpiresAt) {
			return nil, nil, time.Time{}, fmt.Errorf("%w: a token cannot outlive the token that creates it (expires %s)",
				ErrInvalid, caller.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	return roles, cidrs, expires, nil
}

// ListTokens returns the API tokens of a principal, revoked and expired
// ones included, never with secrets or hashes; TSIG keys are listed by
// ListTSIGKeys. A principal may list its own;
// another principal's, or every token (principalID 0), need the admin
// role.
func (s *Service) ListTokens(ctx context.Context, g Grant, principalID int64) ([]TokenInfo, error) {
	if principalID < 0 {
		return nil, positiveID("principal", principalID)
	}
	if !g.owns(principalID) && !g.Allows(ActionManageAccess) {
		return nil, ErrForbidden
	}
	ts, err := s.db.ListTokens(ctx, principalID)
	if err != nil {
		return nil, storeError("list tokens", err)
	}
	out := make([]TokenInfo, 0, len(ts))
	for _, t := range ts {
		if t.Kind == "" {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

// GetToken returns one token, never with its secret or hash: one of the
// caller's own, or any for an admin. Another principal's token is
// ErrNotFound for a caller without the admin role.
func (s *Service) GetToken(ctx context.Context, g Grant, clientID string) (TokenInfo, error) {
	t, err := s.visibleToken(ctx, g, clientID)
	if err != nil {
		return TokenInfo{}, err
	}
	return tokenInfo(t), nil
}

func (s *Service) visibleToken(ctx context.Context, g Grant, clientID string) (store.Token, error) {
	t, err := s.db.TokenByClientID(ctx, clientID)
	if err != nil {
		return store.Token{}, adminStoreError("get token", fmt.Sprintf("token %q", clientID), err)
	}
	if !g.owns(t.PrincipalID) && !g.Allows(ActionManageAccess) {
		return store.Token{}, fmt.Errorf("%w: token %q", ErrNotFound, clientID)
	}
	t.SecretHash = nil
	return t, nil
}

// RevokeToken revokes a token at once: one of the caller's own, or any
// for an admin. Revoking a revoked token changes nothing and succeeds.
func (s *Service) RevokeToken(ctx context.Context, g Grant, clientID string) (TokenInfo, error) {
	t, err := s.revokeToken(ctx, g, clientID)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "token.revoke", Target: "token:" + clientID,
		Detail: fmt.Sprintf("owner principal %d", t.PrincipalID)}, err)
	return t, err
}

func (s *Service) revokeToken(ctx context.Context, g Grant, clientID string) (TokenInfo, error) {
	t, err := s.visibleToken(ctx, g, clientID)
	if err != nil {
		return TokenInfo{}, err
	}
	if err := s.db.RevokeToken(ctx, clientID, time.Time{}); err != nil {
		return tokenInfo(t), adminStoreError("revoke token", fmt.Sprintf("token %q", clientID), err)
	}
	got, err := s.db.TokenByClientID(ctx, clientID)
	if err != nil {
		return tokenInfo(t), storeError("get token", err)
	}
	return tokenInfo(got), nil
}

// owns reports whether principalID is the caller's own principal.
func (g Grant) owns(principalID int64) bool {
	return principalID > 0 && principalID == g.Principal.ID
}

func parseRoles(in []string) ([]Role, error) {
	var out []Role
	for _, s := range in {
		r, err := ParseRole(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func parsePrefixes(in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: allowed source %q: want a prefix such as 192.0.2.0/24 or 2001:db8::/32", ErrInvalid, s)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%w: allowed source %s has host bits set (did you mean %s?)", ErrInvalid, s, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func roleStrings(rs []Role) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	slices.Sort(out)
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func assignments(rs []RoleAssignment) []Assignment {
	out := make([]Assignment, len(rs))
	for i, r := range rs {
		out[i] = Assignment{Role: r.Role}
	}
	return out
}

func tokenInfo(t store.Token) TokenInfo {
	out := TokenInfo{
		ClientID: t.ClientID, PrincipalID: t.PrincipalID, Title: t.Title, Description: t.Description,
		AllowCIDRs: slices.Clone(t.AllowCIDRs), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt, Kind: TokenKindAPI,
	}
	if t.Kind == store.TokenKindTSIG {
		out.Kind, out.Algorithm = TokenKindTSIG, t.TSIGAlgorithm
	}
	for _, r := range t.Roles {
		out.Roles = append(out.Roles, Role(r))
	}
	return out
}

// tokenDetail describes a token for the audit log: owner and limits, never
// the secret.
func tokenDetail(t TokenInfo, req TokenRequest) string {
	owner := t.PrincipalID
	if owner == 0 {
		owner = req.PrincipalID
	}
	d := fmt.Sprintf("owner principal %d", owner)
	if len(t.Roles) > 0 {
		d += fmt.Sprintf("; roles %v", t.Roles)
	}
	if len(t.AllowCIDRs) > 0 {
		d += fmt.Sprintf("; sources %v", t.AllowCIDRs)
	}
	if !t.ExpiresAt.IsZero() {
		d += "; expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return d
}
