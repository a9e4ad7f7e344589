package hub

import (
	"context"
	"net/netip"
	"time"
)

// The acme-dns protocol (PROTOCOLS.md §3). An acme-dns account is a
// delegation label plus a credential (username + 40-character password),
// owned by the principal whose token created it. The label's domain may be
// unknown: then the config named by Config.ACMEDNSConfig applies. Writing
// through an account can only ever touch its own label, which is safe by
// construction: only domains whose owners CNAME to the label are affected.
// When a domain becomes known (registration with a domain, an admin creating
// the account for a domain, lego's storage binding a domain) the caller's
// scope and the domain match rules are checked at that moment.

// ACMEDNSAccount is an account as clients see it. Password is set only
// where it must be shown: on creation, to its owner through lego's storage,
// and to admins who ask for it (reveal), never in lists or logs.
type ACMEDNSAccount struct {
	Username   string         // a UUID
	Password   string         // 40 characters of base64url (240 bits); "" unless shown
	Subdomain  string         // the label in the hub zone
	FullDomain string         // label + "." + hub zone, without the trailing dot
	Domain     string         // the base domain it serves; "" while unknown
	AllowFrom  []netip.Prefix // /update accepted only from these; empty: anywhere
	Owner      string         // owning principal's name
	OwnerID    int64
	Config     string // the managed challenge config that applies now; "" if none
	CreatedAt  time.Time
	CreatedBy  string
	LastUsedAt time.Time // zero: never
}

// ACMEDNSRegistration asks for a new account.
type ACMEDNSRegistration struct {
	// Domain, when set, binds the account to the domain at once (scope and
	// rules checked now); an account for a domain that is delegated already
	// shares that delegation's label, so the existing CNAME keeps working.
	Domain    string
	AllowFrom []netip.Prefix
	// Owner names the owning principal (admins creating accounts for
	// clients that never register); "" is the caller.
	Owner  string
	Source netip.Addr
}

// ACMEDNSUpdate is one /update call.
type ACMEDNSUpdate struct {
	Username, Password string
	Subdomain          string
	TXT                string
	Source             netip.Addr
}

// ACMEDNSFilter selects accounts for lists; zero fields select everything
// the caller may see.
type ACMEDNSFilter struct {
	Owner   string // principal name
	Domain  string // only accounts bound to this base domain
	AfterID string // paging: usernames above this
	Limit   int    // 0: 100; at most 1000
}

// Errors of the acme-dns methods wrap the usual kinds: ErrUnauthenticated
// (bad username/password, source not allowed, owner disabled),
// ErrForbidden, ErrInvalid (bad subdomain: wraps ErrBadSubdomain; bad
// value: wraps ErrBadTXT), ErrLimit, ErrConflict, ErrNotFound,
// ErrRateLimited, ErrUnsupported (no config for accounts without a domain).
var (
	ErrBadSubdomain = errorString("bad subdomain")
	ErrBadTXT       = errorString("bad txt value")
)

type errorString string

func (e errorString) Error() string { return string(e) }

// RegisterACMEDNS creates an account owned by the grant's principal (or by
// reg.Owner for admins). The grant needs the challenge action; with a
// domain, the domain must be within its scope and match a config.
func (s *Service) RegisterACMEDNS(ctx context.Context, g Grant, reg ACMEDNSRegistration) (ACMEDNSAccount, error) {
	return ACMEDNSAccount{}, ErrUnsupported
}

// RegisterACMEDNSOpen creates an account without a hub token, for hubs that
// open registration: owned by the principal "acme-dns-public" (created on
// first use, kind app, no roles), never bound to a domain.
func (s *Service) RegisterACMEDNSOpen(ctx context.Context, allowFrom []netip.Prefix, source netip.Addr) (ACMEDNSAccount, error) {
	return ACMEDNSAccount{}, ErrUnsupported
}

// UpdateACMEDNS adds a TXT value at the account's label (every live value
// is kept; values expire on the server). It returns the value stored.
func (s *Service) UpdateACMEDNS(ctx context.Context, u ACMEDNSUpdate) (string, error) {
	return "", ErrUnsupported
}

// ACMEDNSAccountForDomain returns, with its password, the grant's own
// account bound to domain (lego storage GET); ErrNotFound when none.
func (s *Service) ACMEDNSAccountForDomain(ctx context.Context, g Grant, domain string) (ACMEDNSAccount, error) {
	return ACMEDNSAccount{}, ErrUnsupported
}

// BindACMEDNS binds the grant's own account (proved by its password) to a
// domain (lego storage POST): scope and rules are checked. Binding again to
// the same domain succeeds; a domain delegated to another label is
// ErrConflict, an account bound to another domain too.
func (s *Service) BindACMEDNS(ctx context.Context, g Grant, domain, username, password string) (ACMEDNSAccount, error) {
	return ACMEDNSAccount{}, ErrUnsupported
}

// ACMEDNSAccountsByDomain returns the grant's own accounts bound to a
// domain, with passwords, keyed by domain (lego storage GET base).
func (s *Service) ACMEDNSAccountsByDomain(ctx context.Context, g Grant) (map[string]ACMEDNSAccount, error) {
	return nil, ErrUnsupported
}

// ListACMEDNS lists accounts without passwords: admins see all, challenge
// admins those within their scope and their own, consumers their own.
func (s *Service) ListACMEDNS(ctx context.Context, g Grant, f ACMEDNSFilter) ([]ACMEDNSAccount, error) {
	return nil, ErrUnsupported
}

// GetACMEDNS returns one account; reveal adds the password (owner, or a
// grant that may manage challenges for its domain; audited).
func (s *Service) GetACMEDNS(ctx context.Context, g Grant, username string, reveal bool) (ACMEDNSAccount, error) {
	return ACMEDNSAccount{}, ErrUnsupported
}

// DeleteACMEDNS deletes an account; a label without a domain and without
// other accounts goes with it (through the zone journal).
func (s *Service) DeleteACMEDNS(ctx context.Context, g Grant, username string) error {
	return ErrUnsupported
}
