package hub

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/acmehub/acmehub/store"
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
//
// An account does not outlive its owner's right to use it: /update checks
// the owner's roles as they are now (ActionChallenge, and for a bound
// account the domain within its scope). It does outlive the token that
// created it, which is why that token's source allow-list bounds the
// account's allow-from list.

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
// (bad username/password, source not allowed, owner disabled or without
// the right to answer challenges there), ErrForbidden (also a subdomain
// that is not the account's), ErrInvalid (bad value: wraps ErrBadTXT; an
// allow-from list reaching beyond the registering token's: wraps
// ErrAllowFrom), ErrLimit, ErrConflict, ErrNotFound, ErrRateLimited,
// ErrUnsupported (no config for accounts without a domain).
var (
	ErrBadTXT    = errorString("bad txt value")
	ErrAllowFrom = errorString("allow-from not within the token's allow-list")
)

type errorString string

func (e errorString) Error() string { return string(e) }

// ACMEDNSStore is what the acme-dns operations need of the store beyond
// Store; *store.DB implements it. The methods' contracts are the store's.
type ACMEDNSStore interface {
	CreateACMEDNSAccount(ctx context.Context, a store.ACMEDNSAccount, d store.Delegation, maxPerOwner int) (store.ACMEDNSAccount, bool, error)
	ACMEDNSAccountByUsername(ctx context.Context, username string) (store.ACMEDNSAccount, error)
	ACMEDNSCredentialByUsername(ctx context.Context, username string) (store.ACMEDNSCredential, error)
	ListACMEDNSAccounts(ctx context.Context, f store.ACMEDNSFilter) ([]store.ACMEDNSAccount, error)
	DeleteACMEDNSAccount(ctx context.Context, username string) (store.ACMEDNSAccount, bool, error)
	BindACMEDNSDomain(ctx context.Context, delegationID int64, domain string, configID int64) error
	TouchACMEDNSAccount(ctx context.Context, username string, at time.Time) error
	PrincipalByName(ctx context.Context, name string) (store.Principal, error)
}

var _ ACMEDNSStore = (*store.DB)(nil)

// ACMEDNSPublicPrincipal owns the accounts registered without a hub token
// (open registration); disabling it stops all of them at once.
const ACMEDNSPublicPrincipal = "acme-dns-public"

// Page sizes of ListACMEDNS.
const (
	DefaultACMEDNSLimit = 100
	MaxACMEDNSLimit     = 1000
)

// RegisterACMEDNS creates an account owned by the grant's principal (or by
// reg.Owner for admins). The grant needs the challenge action; with a
// domain, the domain must be within its scope and match a config.
//
// With reg.Owner naming another principal the grant must also be allowed
// to manage challenges (for the domain, when one is given) and to manage
// access: the account counts against that principal's caps and writes in
// its name. Through a token with a source allow-list, the account's
// allow-from list must lie within it (none asked: the token's list);
// else ErrInvalid wrapping ErrAllowFrom. Without a domain the account gets
// a new label bound to the config named by Config.ACMEDNSConfig. An owner
// at Config.ACMEDNSMaxAccounts accounts is refused with ErrLimit. Audited
// as "acme_dns.register", never with the password.
func (s *Service) RegisterACMEDNS(ctx context.Context, g Grant, reg ACMEDNSRegistration) (ACMEDNSAccount, error) {
	if reg.Source.IsValid() {
		ctx = WithSource(ctx, reg.Source)
	}
	a, cfgID, err := s.registerACMEDNS(ctx, g, reg)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.register", Target: accountTarget(a.Username), Domain: a.Domain,
		ConfigID: cfgID, Detail: registerDetail(a, reg.Owner)}, err)
	return a, err
}

func (s *Service) registerACMEDNS(ctx context.Context, g Grant, reg ACMEDNSRegistration) (ACMEDNSAccount, int64, error) {
	if !g.Allows(ActionChallenge) {
		return ACMEDNSAccount{}, 0, ErrForbidden
	}
	if g.Principal.ID > 0 && strings.EqualFold(reg.Owner, g.Principal.Name) {
		reg.Owner = "" // the caller's own: no more rights needed
	}
	if reg.Owner != "" && (!g.Allows(ActionManageChallenges) || !g.Allows(ActionManageAccess)) {
		return ACMEDNSAccount{}, 0, fmt.Errorf("%w: creating an account for another principal needs the admin role", ErrForbidden)
	}
	allow, err := allowFromPrefixes(reg.AllowFrom)
	if err != nil {
		return ACMEDNSAccount{}, 0, err
	}
	if allow, err = s.withinTokenAllowList(ctx, g, allow); err != nil {
		return ACMEDNSAccount{}, 0, err
	}
	if reg.Domain == "" {
		owner, err := s.acmeDNSOwner(ctx, g, reg.Owner)
		if err != nil {
			return ACMEDNSAccount{}, 0, err
		}
		return s.registerDomainless(ctx, g.Principal.Name, owner, allow)
	}
	base, err := s.baseDomain(ctx, reg.Domain)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, 0, err
	}
	if reg.Owner != "" && !g.AllowsDomain(ActionManageChallenges, base) {
		return ACMEDNSAccount{Domain: base}, 0, ErrForbidden
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, 0, err
	}
	cfg, err := s.authorizeDelegated(ctx, g, base, gens.configs)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, cfg.ID, err
	}
	owner, err := s.acmeDNSOwner(ctx, g, reg.Owner)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, cfg.ID, err
	}
	label, err := newLabel()
	if err != nil {
		return ACMEDNSAccount{Domain: base}, cfg.ID, err
	}
	a, err := s.createACMEDNS(ctx, g.Principal.Name, owner, allow, store.Delegation{
		Domain: base, Label: label, Name: label + "." + s.cfg.Zone, ConfigID: cfg.ID, CreatedBy: g.Principal.Name,
	}, cfg)
	return a, cfg.ID, err
}

// registerDomainless creates an account on a new label without a domain,
// bound to the config named by Config.ACMEDNSConfig.
func (s *Service) registerDomainless(ctx context.Context, actor string, owner store.Principal, allow []netip.Prefix) (ACMEDNSAccount, int64, error) {
	cfgs, err := s.currentConfigs(ctx)
	if err != nil {
		return ACMEDNSAccount{}, 0, err
	}
	cfg, err := s.namedACMEDNSConfig(cfgs)
	if err != nil {
		return ACMEDNSAccount{}, cfg.ID, err
	}
	label, err := newLabel()
	if err != nil {
		return ACMEDNSAccount{}, cfg.ID, err
	}
	a, err := s.createACMEDNS(ctx, actor, owner, allow, store.Delegation{
		Label: label, Name: label + "." + s.cfg.Zone, ConfigID: cfg.ID, OwnerPrincipalID: owner.ID, CreatedBy: actor,
	}, cfg)
	return a, cfg.ID, err
}

// createACMEDNS makes the credential and stores the account on d (created,
// or reused when d's domain is delegated already).
func (s *Service) createACMEDNS(ctx context.Context, actor string, owner store.Principal, allow []netip.Prefix, d store.Delegation,
	cfg store.ChallengeConfig,
) (ACMEDNSAccount, error) {
	username, password, err := newACMEDNSCredentials()
	if err != nil {
		return ACMEDNSAccount{}, err
	}
	sealed, err := s.kr.Seal([]byte(password), acmeDNSSealAD(username))
	if err != nil {
		return ACMEDNSAccount{}, fmt.Errorf("seal acme-dns password: %w", err)
	}
	sa, _, err := s.db.CreateACMEDNSAccount(ctx, store.ACMEDNSAccount{
		Username: username, OwnerPrincipalID: owner.ID, PasswordHash: s.kr.HashSecret(acmeDNSHashInput(username, password)),
		PasswordSealed: sealed, AllowFrom: prefixStrings(allow), CreatedBy: actor,
	}, d, s.cfg.ACMEDNSMaxAccounts)
	if errors.Is(err, store.ErrTooManyAccounts) {
		return ACMEDNSAccount{Domain: d.Domain}, fmt.Errorf("%w: principal %q owns %d acme-dns accounts, the most allowed (acme-dns-max-accounts); delete one first",
			ErrLimit, owner.Name, s.cfg.ACMEDNSMaxAccounts)
	}
	if err != nil {
		return ACMEDNSAccount{Domain: d.Domain}, adminStoreError("create acme-dns account", "an acme-dns account with this username", err)
	}
	a := s.acmeDNSView(sa, owner.Name, cfg.Name)
	a.Password = password
	return a, nil
}

// withinTokenAllowList checks an account's allow-from list against the
// source allow-list of the token registering it: the account outlives the
// token, so it must not reach further. An empty list becomes the token's.
func (s *Service) withinTokenAllowList(ctx context.Context, g Grant, allow []netip.Prefix) ([]netip.Prefix, error) {
	if g.Principal.TokenID == "" {
		return allow, nil // not through a token (the local admin CLI)
	}
	tok, err := s.db.TokenByClientID(ctx, g.Principal.TokenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: the token was deleted", ErrUnauthenticated)
	}
	if err != nil {
		return nil, storeError("find token", err)
	}
	if len(tok.AllowCIDRs) == 0 {
		return allow, nil
	}
	limits := make([]netip.Prefix, 0, len(tok.AllowCIDRs))
	for _, c := range tok.AllowCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			limits = append(limits, p)
		}
	}
	if limits, err = allowFromPrefixes(limits); err != nil || len(limits) == 0 {
		return nil, fmt.Errorf("token %s: unreadable allow-list", tok.ClientID)
	}
	if len(allow) == 0 {
		return limits, nil
	}
	for _, p := range allow {
		if !slices.ContainsFunc(limits, func(l netip.Prefix) bool { return l.Bits() <= p.Bits() && l.Contains(p.Addr()) }) {
			return nil, fmt.Errorf("%w: %w: %s is outside the token's allow-list (%s); ask for prefixes within it, or for none to get it",
				ErrInvalid, ErrAllowFrom, p, strings.Join(prefixStrings(limits), ","))
		}
	}
	return allow, nil
}

// acmeDNSOwner returns the principal an account is created for: the
// caller's, or the one named.
func (s *Service) acmeDNSOwner(ctx context.Context, g Grant, name string) (store.Principal, error) {
	if name == "" {
		if g.Principal.ID <= 0 {
			return store.Principal{}, fmt.Errorf("%w: name the account's owner (a principal)", ErrInvalid)
		}
		p, err := s.db.Principal(ctx, g.Principal.ID)
		if err != nil {
			return store.Principal{}, storeError("find owner", err)
		}
		return p, nil
	}
	p, err := s.db.PrincipalByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Principal{}, fmt.Errorf("%w: no principal named %q", ErrNotFound, name)
	}
	if err != nil {
		return store.Principal{}, storeError("find owner", err)
	}
	return p, nil
}

// RegisterACMEDNSOpen creates an account without a hub token, for hubs that
// open registration: owned by the principal "acme-dns-public" (created on
// first use, kind app, no roles), never bound to a domain. While that
// principal is disabled, open registration is refused (ErrForbidden).
func (s *Service) RegisterACMEDNSOpen(ctx context.Context, allowFrom []netip.Prefix, source netip.Addr) (ACMEDNSAccount, error) {
	if source.IsValid() {
		ctx = WithSource(ctx, source)
	}
	owner, err := s.publicPrincipal(ctx)
	g := Grant{Principal: Principal{ID: owner.ID, Name: owner.Name}}
	var a ACMEDNSAccount
	var cfgID int64
	switch {
	case err != nil:
	case !owner.Enabled:
		err = fmt.Errorf("%w: open registration is switched off (the principal %s is disabled)", ErrForbidden, ACMEDNSPublicPrincipal)
	default:
		var allow []netip.Prefix
		if allow, err = allowFromPrefixes(allowFrom); err == nil {
			a, cfgID, err = s.registerDomainless(ctx, ACMEDNSPublicPrincipal, owner, allow)
		}
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.register", Target: accountTarget(a.Username), ConfigID: cfgID,
		Detail: joinDetail("open registration", registerDetail(a, ""))}, err)
	return a, err
}

// publicPrincipal returns the owner of openly registered accounts,
// creating it on first use.
func (s *Service) publicPrincipal(ctx context.Context) (store.Principal, error) {
	p, err := s.db.PrincipalByName(ctx, ACMEDNSPublicPrincipal)
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return p, storeError("find the acme-dns public principal", err)
	}
	p, err = s.db.CreatePrincipal(ctx, store.Principal{Kind: store.PrincipalApp, Name: ACMEDNSPublicPrincipal, Enabled: true,
		Description: "owner of the acme-dns accounts registered without a hub token; disable it to stop them all"})
	if errors.Is(err, store.ErrConflict) { // created meanwhile by another request
		p, err = s.db.PrincipalByName(ctx, ACMEDNSPublicPrincipal)
	}
	if err != nil {
		return p, storeError("create the acme-dns public principal", err)
	}
	return p, nil
}

// ACMEDNSAccountForDomain returns, with its password, the grant's own
// account bound to domain (lego storage GET); ErrNotFound when none. The
// grant needs the challenge action for the domain and a config must match
// it (else ErrForbidden). Of several accounts the newest is returned.
func (s *Service) ACMEDNSAccountForDomain(ctx context.Context, g Grant, domain string) (ACMEDNSAccount, error) {
	a, err := s.accountForDomain(ctx, g, domain)
	if err == nil {
		s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.reveal", Target: accountTarget(a.Username), Domain: a.Domain,
			Detail: "lego storage"}, nil)
	}
	return a, err
}

func (s *Service) accountForDomain(ctx context.Context, g Grant, domain string) (ACMEDNSAccount, error) {
	if !g.Allows(ActionChallenge) {
		return ACMEDNSAccount{}, ErrForbidden
	}
	base, err := s.baseDomain(ctx, domain)
	if err != nil {
		return ACMEDNSAccount{}, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return ACMEDNSAccount{}, err
	}
	cfg, err := s.authorizeDelegated(ctx, g, base, gens.configs)
	if err != nil {
		return ACMEDNSAccount{}, err
	}
	if g.Principal.ID <= 0 {
		return ACMEDNSAccount{}, fmt.Errorf("%w: no acme-dns account of yours for %s", ErrNotFound, base)
	}
	list, err := s.db.ListACMEDNSAccounts(ctx, store.ACMEDNSFilter{OwnerPrincipalID: g.Principal.ID, Domain: base})
	if err != nil {
		return ACMEDNSAccount{}, storeError("list acme-dns accounts", err)
	}
	if len(list) == 0 {
		return ACMEDNSAccount{}, fmt.Errorf("%w: no acme-dns account of yours for %s", ErrNotFound, base)
	}
	return s.withPassword(s.acmeDNSView(newest(list), g.Principal.Name, cfg.Name), newest(list))
}

// BindACMEDNS binds the grant's own account (proved by its password) to a
// domain (lego storage POST): scope and rules are checked. Binding again to
// the same domain succeeds; a domain delegated to another label is
// ErrConflict, an account bound to another domain too. An account that is
// not the grant's principal's, or a wrong password, is ErrForbidden.
func (s *Service) BindACMEDNS(ctx context.Context, g Grant, domain, username, password string) (ACMEDNSAccount, error) {
	a, cfgID, err := s.bindACMEDNS(ctx, g, domain, username, password)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.bind", Target: accountTarget(a.Username), Domain: a.Domain, ConfigID: cfgID}, err)
	return a, err
}

func (s *Service) bindACMEDNS(ctx context.Context, g Grant, domain, username, password string) (ACMEDNSAccount, int64, error) {
	if !g.Allows(ActionChallenge) {
		return ACMEDNSAccount{}, 0, ErrForbidden
	}
	base, err := s.baseDomain(ctx, domain)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, 0, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, 0, err
	}
	cfg, err := s.authorizeDelegated(ctx, g, base, gens.configs)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, cfg.ID, err
	}
	acct, err := s.ownAccount(ctx, g, username, password)
	if err != nil {
		return ACMEDNSAccount{Domain: base}, cfg.ID, err
	}
	info := ACMEDNSAccount{Username: acct.Username, Domain: base}
	switch acct.Delegation.Domain {
	case base: // bound already: nothing to do
	case "":
		if d, err := s.db.DelegationByDomain(ctx, base); err == nil {
			return info, cfg.ID, fmt.Errorf("%w: %s is delegated already, to %s: use an account on that label "+
				"(an admin makes one with `acmehub acme-dns create --domain %s`), or delete that delegation "+
				"(`acmehub delegation delete %s`) and point the CNAME at %s", ErrConflict, base, d.Name, base, base, acct.Delegation.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return info, cfg.ID, storeError("find delegation", err)
		}
		if err := s.db.BindACMEDNSDomain(ctx, acct.DelegationID, base, cfg.ID); err != nil {
			return info, cfg.ID, adminStoreError("bind acme-dns account", "a delegation of "+base, err)
		}
		if acct, err = s.db.ACMEDNSAccountByUsername(ctx, acct.Username); err != nil {
			return info, cfg.ID, storeError("read the account", err)
		}
	default:
		return info, cfg.ID, fmt.Errorf("%w: acme-dns account %s serves %s already; register another account for %s",
			ErrConflict, acct.Username, acct.Delegation.Domain, base)
	}
	a, err := s.withPassword(s.acmeDNSView(acct, g.Principal.Name, cfg.Name), acct)
	return a, cfg.ID, err
}

// ownAccount returns the grant's principal's account username, proved by
// its password; anything else is one ErrForbidden, at the cost of a hash
// check either way.
func (s *Service) ownAccount(ctx context.Context, g Grant, username, password string) (store.ACMEDNSAccount, error) {
	username = strings.ToLower(username)
	var a store.ACMEDNSAccount
	var hash []byte
	if store.ValidUsername(username) {
		got, err := s.db.ACMEDNSAccountByUsername(ctx, username)
		switch {
		case err == nil:
			a, hash = got, got.PasswordHash
		case !errors.Is(err, store.ErrNotFound):
			return a, storeError("find acme-dns account", err)
		}
	}
	ok := s.kr.VerifySecret(acmeDNSHashInput(username, password), hash)
	if !ok || hash == nil || !g.owns(a.OwnerPrincipalID) {
		return store.ACMEDNSAccount{}, fmt.Errorf("%w: no acme-dns account of yours with this username and password", ErrForbidden)
	}
	return a, nil
}

// ACMEDNSAccountsByDomain returns the grant's own accounts bound to a
// domain, with passwords, keyed by domain (lego storage GET base): only
// domains within the grant's scope for challenges that a config matches.
// Of several accounts for one domain the newest is returned.
func (s *Service) ACMEDNSAccountsByDomain(ctx context.Context, g Grant) (map[string]ACMEDNSAccount, error) {
	out, err := s.accountsByDomain(ctx, g)
	if err == nil && len(out) > 0 {
		s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.reveal", Target: "acme-dns",
			Detail: fmt.Sprintf("lego storage: %d accounts", len(out))}, nil)
	}
	return out, err
}

func (s *Service) accountsByDomain(ctx context.Context, g Grant) (map[string]ACMEDNSAccount, error) {
	if !g.Allows(ActionChallenge) {
		return nil, ErrForbidden
	}
	out := map[string]ACMEDNSAccount{}
	if g.Principal.ID <= 0 {
		return out, nil
	}
	list, err := s.db.ListACMEDNSAccounts(ctx, store.ACMEDNSFilter{OwnerPrincipalID: g.Principal.ID, Bound: true})
	if err != nil {
		return nil, storeError("list acme-dns accounts", err)
	}
	cfgs, err := s.currentConfigs(ctx)
	if err != nil {
		return nil, err
	}
	best := map[string]store.ACMEDNSAccount{}
	for _, a := range list {
		base := a.Delegation.Domain
		if !g.AllowsDomain(ActionChallenge, base) {
			continue
		}
		if _, _, ok := cfgs.set.Choose(base); !ok {
			continue
		}
		if cur, ok := best[base]; !ok || newer(a, cur) {
			best[base] = a
		}
	}
	for base, a := range best {
		v, err := s.withPassword(s.acmeDNSViewIn(a, g.Principal.Name, cfgs), a)
		if err != nil {
			return nil, err
		}
		out[base] = v
	}
	return out, nil
}

// ListACMEDNS lists accounts without passwords, by username: admins see
// all, challenge admins those within their scope and their own, others
// their own (an owner filter naming someone else gives them an empty list,
// whether or not that principal exists). A challenge admin's page may hold
// fewer than Limit accounts, even none, when some are not visible:
// continue after nextAfter, the last username of a full store page; ""
// when there is no more.
func (s *Service) ListACMEDNS(ctx context.Context, g Grant, f ACMEDNSFilter) (_ []ACMEDNSAccount, nextAfter string, _ error) {
	if f.Limit == 0 {
		f.Limit = DefaultACMEDNSLimit
	}
	if f.Limit < 0 || f.Limit > MaxACMEDNSLimit {
		return nil, "", fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalid, f.Limit, MaxACMEDNSLimit)
	}
	sf := store.ACMEDNSFilter{AfterUsername: strings.ToLower(f.AfterID), Limit: f.Limit}
	switch {
	case !g.Allows(ActionManageChallenges):
		// Only its own: filtered in the store, so pages are full.
		own := f.Owner == "" || strings.EqualFold(f.Owner, g.Principal.Name)
		if !own || g.Principal.ID <= 0 {
			return []ACMEDNSAccount{}, "", nil
		}
		sf.OwnerPrincipalID = g.Principal.ID
	case f.Owner != "":
		p, err := s.db.PrincipalByName(ctx, f.Owner)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", fmt.Errorf("%w: no principal named %q", ErrNotFound, f.Owner)
		}
		if err != nil {
			return nil, "", storeError("find principal", err)
		}
		sf.OwnerPrincipalID = p.ID
	}
	if f.Domain != "" {
		base, err := s.baseDomain(ctx, f.Domain)
		if err != nil {
			return nil, "", err
		}
		sf.Domain = base
	}
	list, err := s.db.ListACMEDNSAccounts(ctx, sf)
	if err != nil {
		return nil, "", storeError("list acme-dns accounts", err)
	}
	cfgs, err := s.currentConfigs(ctx)
	if err != nil {
		return nil, "", err
	}
	names, err := s.principalNames(ctx)
	if err != nil {
		return nil, "", err
	}
	out := make([]ACMEDNSAccount, 0, len(list))
	for _, a := range list {
		if g.seesAccount(a) {
			out = append(out, s.acmeDNSViewIn(a, names[a.OwnerPrincipalID], cfgs))
		}
	}
	if len(list) == f.Limit {
		nextAfter = list[len(list)-1].Username
	}
	return out, nextAfter, nil
}

// GetACMEDNS returns one account; reveal adds the password (owner, or a
// grant that may manage challenges for its domain; audited). An account
// the grant may not see is ErrNotFound.
func (s *Service) GetACMEDNS(ctx context.Context, g Grant, username string, reveal bool) (ACMEDNSAccount, error) {
	a, err := s.getACMEDNS(ctx, g, username, reveal)
	if reveal {
		s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.reveal", Target: accountTarget(a.Username), Domain: a.Domain}, err)
	}
	return a, err
}

func (s *Service) getACMEDNS(ctx context.Context, g Grant, username string, reveal bool) (ACMEDNSAccount, error) {
	sa, err := s.visibleAccount(ctx, g, username)
	if err != nil {
		return ACMEDNSAccount{}, err
	}
	a, err := s.acmeDNSViewOne(ctx, sa)
	if err != nil || !reveal {
		return a, err
	}
	if !g.mayReveal(sa) {
		return ACMEDNSAccount{Username: a.Username, Domain: a.Domain}, fmt.Errorf("%w: only the owner, or who manages challenges for its domain, may see the password", ErrForbidden)
	}
	return s.withPassword(a, sa)
}

// DeleteACMEDNS deletes an account; a label without a domain and without
// other accounts goes with it (through the zone journal). The owner, or a
// grant that may manage challenges for the account's domain, may delete it.
func (s *Service) DeleteACMEDNS(ctx context.Context, g Grant, username string) error {
	a, err := s.deleteACMEDNS(ctx, g, username)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "acme_dns.delete", Target: accountTarget(a.Username), Domain: a.Delegation.Domain,
		Detail: a.Delegation.Name}, err)
	return err
}

func (s *Service) deleteACMEDNS(ctx context.Context, g Grant, username string) (store.ACMEDNSAccount, error) {
	a, err := s.visibleAccount(ctx, g, username)
	if err != nil {
		return store.ACMEDNSAccount{Username: accountUsername(username)}, err
	}
	if _, _, err := s.db.DeleteACMEDNSAccount(ctx, a.Username); err != nil {
		return a, adminStoreError("delete acme-dns account", "acme-dns account "+a.Username, err)
	}
	return a, nil
}

// visibleAccount returns an account the grant may see, or ErrNotFound.
func (s *Service) visibleAccount(ctx context.Context, g Grant, username string) (store.ACMEDNSAccount, error) {
	username = strings.ToLower(username)
	notFound := fmt.Errorf("%w: acme-dns account %q", ErrNotFound, accountUsername(username))
	if !store.ValidUsername(username) {
		return store.ACMEDNSAccount{}, notFound
	}
	a, err := s.db.ACMEDNSAccountByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.ACMEDNSAccount{}, notFound
	}
	if err != nil {
		return store.ACMEDNSAccount{}, storeError("find acme-dns account", err)
	}
	if !g.seesAccount(a) {
		return store.ACMEDNSAccount{}, notFound
	}
	return a, nil
}

// seesAccount: the owner, or who may manage challenges for the account's
// domain (for an account without one: without domain restriction).
func (g Grant) seesAccount(a store.ACMEDNSAccount) bool {
	return g.owns(a.OwnerPrincipalID) || g.AllowsDomain(ActionManageChallenges, a.Delegation.Domain)
}

// mayReveal: who may manage challenges for the account's domain, or the
// owner while the domain (if known) is within its scope for challenges.
func (g Grant) mayReveal(a store.ACMEDNSAccount) bool {
	d := a.Delegation.Domain
	if g.AllowsDomain(ActionManageChallenges, d) {
		return true
	}
	return g.owns(a.OwnerPrincipalID) && (d == "" || g.AllowsDomain(ActionChallenge, d))
}
