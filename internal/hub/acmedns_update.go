package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// UpdateACMEDNS adds a TXT value at the account's label (every live value
// is kept; values expire on the server). It returns the value stored.
//
// The checks follow acme-dns's order: credentials (a UUID username and a
// 40-character password; an unknown username is checked against a dummy
// hash, so it costs what a wrong password costs), the source against the
// account's allow-from list, the owner (deleted or disabled: refused) and
// its roles as they are now (it must still be allowed challenges, for a
// bound account at its domain; the owner of open registrations, which has
// no roles, is exempt while its accounts have no domain), all
// ErrUnauthenticated and limited like Authenticate's failures, per source
// network and per well-formed username (ErrRateLimited); then the
// subdomain, which must be the account's label in any case (else
// ErrForbidden: acme-dns answers both with 401 "forbidden"); then the
// value (ErrInvalid wrapping ErrBadTXT; anything zone.ValidateValue
// accepts, not only acme-dns's 43 characters, so more clients work). The
// config is chosen by the rules for a known domain (no new scope check:
// the owner's roles were checked above), else the label's own config or
// the one Config.ACMEDNSConfig names; it must be delegated. The value and
// its "challenge.present" audit event (detail "acme-dns", the username as
// token id) share one commit.
//
// Per request this reads one row of generation counters and writes the
// value, like Present: the account, its owner with its roles and the
// configs are cached at the store's generations (role assignments bump
// "principals"). On a miss a known username costs the one read an unknown
// one does.
func (s *Service) UpdateACMEDNS(ctx context.Context, u ACMEDNSUpdate) (string, error) {
	username := strings.ToLower(u.Username)
	srcKey, idKey := ratelimit.SourceKey(u.Source), ""
	if store.ValidUsername(username) {
		// Only a username's shape earns a key of its own: anything sent
		// would let a client fill the limiter with large keys.
		idKey = "acme-dns:" + username
	}
	if s.failures.Limited(srcKey) || (idKey != "" && s.failures.Limited(idKey)) {
		return "", ErrRateLimited
	}
	gens, err := s.db.Generations(ctx, store.GenACMEDNS, store.GenDelegations, store.GenPrincipals, store.GenConfigs)
	if err != nil {
		return "", fmt.Errorf("look up acme-dns account: %w", err)
	}
	e, why, err := s.acmeDNSAuth(ctx, genKey{gens[0], gens[1], gens[2]}, username, u.Password, u.Source)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			s.acmeDNSFailed(ctx, srcKey, idKey, username, u.Source, why)
		}
		return "", err
	}
	g := e.grant
	value, cfg, err := s.updateACMEDNS(ctx, g, e.acct, u, gens[3])
	if err != nil {
		s.audit(ctx, s.acmeDNSPresentEvent(g, u.Source, e.acct.Delegation, cfg, err))
		return "", err
	}
	return value, nil
}

func (s *Service) updateACMEDNS(ctx context.Context, g Grant, a store.ACMEDNSAccount, u ACMEDNSUpdate, configsGen int64) (string, store.ChallengeConfig, error) {
	d := a.Delegation
	if !strings.EqualFold(strings.TrimSpace(u.Subdomain), d.Label) {
		return "", store.ChallengeConfig{}, fmt.Errorf("%w: the subdomain is not the account's", ErrForbidden)
	}
	// acme-dns checks the subdomain's shape next; equal to the label, it
	// has the shape.
	if err := zone.ValidateValue(u.TXT); err != nil {
		return "", store.ChallengeConfig{}, fmt.Errorf("%w: %w: %w", ErrInvalid, ErrBadTXT, err)
	}
	cfgs, err := s.configsAt(ctx, configsGen)
	if err != nil {
		return "", store.ChallengeConfig{}, err
	}
	cfg, err := s.acmeDNSConfigOf(cfgs, d)
	if err != nil {
		return "", cfg, err
	}
	ttl, expires, err := s.ttlAndExpiry(cfg.TTL, cfg.Lifetime)
	if err != nil {
		return "", cfg, err
	}
	ev := s.acmeDNSPresentEvent(g, u.Source, d, cfg, nil)
	if _, err := s.db.AddValue(ctx, store.AddRequest{
		Name: d.Name, Value: u.TXT, TTL: ttl, ExpiresAt: expires,
		CreatedBy: g.Principal.Name, MaxPerCreator: s.cfg.MaxValuesPerPrincipal, Audit: &ev,
	}); err != nil {
		return "", cfg, storeError("add value", err)
	}
	if now := s.now(); s.acmeDNSTouched.due(a.Username, now) {
		_ = s.db.TouchACMEDNSAccount(ctx, a.Username, now) // best effort, like TouchToken
		_ = s.db.TouchDelegation(ctx, d.ID, now)
	}
	return u.TXT, cfg, nil
}

// acmeDNSPresentEvent is the audit event of an update that ended with err.
func (s *Service) acmeDNSPresentEvent(g Grant, source netip.Addr, d store.Delegation, cfg store.ChallengeConfig, err error) store.AuditEvent {
	ev := s.challengeEvent(g, "challenge.present", source, Challenge{Target: d.Name, Domain: d.Domain}, cfg, err)
	if ev.Detail == "" {
		ev.Detail = "acme-dns"
	} else {
		ev.Detail = "acme-dns: " + ev.Detail
	}
	return ev
}

// acmeDNSFailed spends the failure budgets and audits the failure that
// used one up, as Authenticate does.
func (s *Service) acmeDNSFailed(ctx context.Context, srcKey, idKey, username string, source netip.Addr, why string) {
	s.failures.Spend(srcKey)
	if idKey != "" {
		s.failures.Spend(idKey)
	}
	if !store.ValidUsername(username) {
		username = "" // whatever was sent is not recorded: it might be a secret
	}
	ev := store.AuditEvent{TokenID: username, Source: source.String(), Action: "auth", Result: "failed_auth", Detail: "acme-dns: " + why}
	if s.failures.Limited(srcKey) || (idKey != "" && s.failures.Limited(idKey)) {
		ev.Result, ev.Detail = "rate_limited", ev.Detail+"; further attempts from this network or for this username are refused for a while"
	}
	s.audit(ctx, ev)
}

// maxACMEDNSEntries bounds the account cache and the touch throttle.
const maxACMEDNSEntries = 16384

// acmeDNSEntry is what the store holds for one username at the cache's
// generations: the account, if any, its parsed allow-from list, and its
// owner with the owner's roles as a grant. Unknown usernames are cached too.
type acmeDNSEntry struct {
	acct       store.ACMEDNSAccount
	found      bool
	allow      []netip.Prefix
	owner      store.Principal
	ownerFound bool
	grant      Grant // the owner's, the username as its token id
}

// acmeDNSAuth checks an account's credentials and source; why says which
// check failed, for the audit log only.
func (s *Service) acmeDNSAuth(ctx context.Context, gen genKey, username, password string, source netip.Addr) (*acmeDNSEntry, string, error) {
	e := &acmeDNSEntry{}
	if store.ValidUsername(username) && validACMEDNSPassword(password) {
		var err error
		if e, err = s.acmeDNSEntry(ctx, gen, username); err != nil {
			return nil, "", err
		}
	}
	var hash []byte
	if e.found {
		hash = e.acct.PasswordHash
	}
	switch {
	case !s.kr.VerifySecret(acmeDNSHashInput(username, password), hash) || hash == nil:
		return nil, "unknown username or wrong password", ErrUnauthenticated
	case !prefixesAllow(e.allow, source):
		return nil, "source address not in the account's allow-from list", ErrUnauthenticated
	case !e.ownerFound:
		return nil, "owner deleted", ErrUnauthenticated
	case !e.owner.Enabled:
		return nil, "owner disabled", ErrUnauthenticated
	}
	if why := e.ownerRefuses(); why != "" {
		return nil, why, ErrUnauthenticated
	}
	return e, "", nil
}

// ownerRefuses says why the owner's roles no longer allow the account,
// or "". The accounts outlive the tokens that made them; they must not
// outlive their owner's right to answer challenges.
func (e *acmeDNSEntry) ownerRefuses() string {
	domain := e.acct.Delegation.Domain
	switch {
	case domain == "" && e.owner.Name == ACMEDNSPublicPrincipal:
		return "" // open registration: no roles, no domain, stopped by disabling its owner
	case !e.grant.Allows(ActionChallenge):
		return "owner " + e.owner.Name + " no longer holds a role allowing challenges"
	case domain != "" && !e.grant.AllowsDomain(ActionChallenge, domain):
		return "the account's domain " + domain + " is outside its owner " + e.owner.Name + "'s scope for challenges"
	}
	return ""
}

// acmeDNSEntry returns the cached entry for username at gen, reading the
// store on a miss.
func (s *Service) acmeDNSEntry(ctx context.Context, gen genKey, username string) (*acmeDNSEntry, error) {
	if e, ok := s.acmeDNS.get(gen, username); ok {
		return e, nil
	}
	e := &acmeDNSEntry{}
	c, err := s.db.ACMEDNSCredentialByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("look up acme-dns account: %w", err)
	default:
		a := c.Account
		e.acct, e.found = a, true
		for _, c := range a.AllowFrom {
			if p, err := netip.ParsePrefix(c); err == nil {
				e.allow = append(e.allow, p)
			}
		}
		if len(a.AllowFrom) > 0 && len(e.allow) == 0 {
			e.allow = []netip.Prefix{{}} // unparsable list: allows nothing rather than everything
		}
		e.owner, e.ownerFound = c.Owner, c.OwnerFound
		e.grant = Grant{Principal: Principal{ID: c.Owner.ID, Name: c.Owner.Name, TokenID: a.Username}}
		for _, r := range c.OwnerRoles {
			as := Assignment{Role: Role(r.Role)}
			if r.Domains != "" {
				if as.Domains, err = rules.Parse(r.Domains); err != nil {
					return nil, fmt.Errorf("role assignment %d: %w", r.ID, err)
				}
			}
			e.grant.Assignments = append(e.grant.Assignments, as)
		}
		e.grant.Assignments = slices.Clip(e.grant.Assignments) // shared by the cache's readers
	}
	s.acmeDNS.put(gen, username, e)
	return e, nil
}

// prefixesAllow checks an allow-from list; an empty list allows all.
func prefixesAllow(ps []netip.Prefix, source netip.Addr) bool {
	if len(ps) == 0 {
		return true
	}
	src := source.Unmap()
	for _, p := range ps {
		if p.IsValid() && p.Contains(src) {
			return true
		}
	}
	return false
}

// acmeDNSConfigOf returns the config that serves an account's delegation
// now: by the rules for a known domain, else the delegation's own config
// or the one Config.ACMEDNSConfig names. It must be delegated.
func (s *Service) acmeDNSConfigOf(cfgs *configCache, d store.Delegation) (store.ChallengeConfig, error) {
	var cfg store.ChallengeConfig
	if d.Domain != "" {
		c, _, ok := cfgs.set.Choose(d.Domain)
		if !ok {
			return cfg, fmt.Errorf("%w: no managed challenge config matches %s", ErrForbidden, d.Domain)
		}
		cfg = cfgs.byID[c.ID]
	} else if c, ok := cfgs.byID[strconv.FormatInt(d.ConfigID, 10)]; ok && d.ConfigID != 0 {
		cfg = c
	} else {
		var err error
		if cfg, err = s.namedACMEDNSConfig(cfgs); err != nil {
			return cfg, err
		}
	}
	if cfg.Provider != store.ProviderDelegated {
		return cfg, fmt.Errorf("%w: config %q uses provider %q; acme-dns accounts need a delegated one", ErrUnsupported, cfg.Name, cfg.Provider)
	}
	return cfg, nil
}

// namedACMEDNSConfig is the config Config.ACMEDNSConfig names, which
// accounts without a domain use; it must exist and be delegated.
func (s *Service) namedACMEDNSConfig(cfgs *configCache) (store.ChallengeConfig, error) {
	name := s.cfg.ACMEDNSConfig
	if name == "" {
		return store.ChallengeConfig{}, fmt.Errorf("%w: acme-dns accounts without a domain need the setting acme-dns-config "+
			"to name a delegated managed challenge config", ErrUnsupported)
	}
	for _, c := range cfgs.byID {
		if strings.EqualFold(c.Name, name) {
			if c.Provider != store.ProviderDelegated {
				return c, fmt.Errorf("%w: the acme-dns-config setting names %q, which uses provider %q; name a delegated config",
					ErrUnsupported, c.Name, c.Provider)
			}
			return c, nil
		}
	}
	return store.ChallengeConfig{}, fmt.Errorf("%w: the acme-dns-config setting names %q, which does not exist; "+
		"create it or set acme-dns-config to a delegated managed challenge config", ErrUnsupported, name)
}

// Credentials. The password is hashed under a label of its own and bound
// to its username, so an account's hash never verifies as a token secret
// (which never holds a NUL byte) nor as another account's.
const acmeDNSLabel = "acmehub acme-dns password v1\x00"

func acmeDNSHashInput(username, password string) string {
	return acmeDNSLabel + username + "\x00" + password
}

// acmeDNSSealAD binds a sealed password to its username: a sealed blob
// copied to another account does not open.
func acmeDNSSealAD(username string) []byte { return []byte(acmeDNSLabel + username) }

// acmeDNSPasswordLen is what clients expect: 40 characters.
const acmeDNSPasswordLen = 40

// newACMEDNSCredentials returns a random UUID v4 username and a password
// of base64url (no padding) of 30 random bytes: 40 characters, 240 bits.
func newACMEDNSCredentials() (username, password string, err error) {
	var b [16 + 30]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("acme-dns credentials: %w", err)
	}
	u := b[:16]
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(u)
	username = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	return username, base64.RawURLEncoding.EncodeToString(b[16:]), nil
}

// validACMEDNSPassword checks the shape of a password, as acme-dns does
// before looking anything up.
func validACMEDNSPassword(p string) bool {
	if len(p) != acmeDNSPasswordLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// allowFromPrefixes canonicalises an allow-from list. Host bits are
// cleared (acme-dns accepts 192.0.2.1/24 and means the network).
func allowFromPrefixes(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: an allow-from entry is not a prefix", ErrInvalid)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// touchThrottle lets a last-used write through at most once a minute per
// key: the time is informational, and writing it on every /update would
// cost a write per request.
type touchThrottle struct {
	max  int
	mu   sync.Mutex
	last map[string]time.Time
}

const touchEvery = time.Minute

func newTouchThrottle(maxKeys int) *touchThrottle {
	return &touchThrottle{max: maxKeys, last: make(map[string]time.Time)}
}

// due reports whether key should be touched at now, and if so records it.
func (t *touchThrottle) due(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.last[key]; ok && now.Sub(prev) < touchEvery {
		return false
	}
	if len(t.last) >= t.max {
		t.last = make(map[string]time.Time) // start over: a few extra touches, bounded memory
	}
	t.last[key] = now
	return true
}

// acmeDNSView is an account as clients see it, without its password.
func (s *Service) acmeDNSView(a store.ACMEDNSAccount, owner, config string) ACMEDNSAccount {
	out := ACMEDNSAccount{
		Username: a.Username, Subdomain: a.Delegation.Label, FullDomain: strings.TrimSuffix(a.Delegation.Name, "."),
		Domain: a.Delegation.Domain, Owner: owner, OwnerID: a.OwnerPrincipalID, Config: config,
		CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy, LastUsedAt: a.LastUsedAt,
	}
	for _, c := range a.AllowFrom {
		if p, err := netip.ParsePrefix(c); err == nil {
			out.AllowFrom = append(out.AllowFrom, p)
		}
	}
	return out
}

// acmeDNSViewIn is acmeDNSView with the config that applies now.
func (s *Service) acmeDNSViewIn(a store.ACMEDNSAccount, owner string, cfgs *configCache) ACMEDNSAccount {
	cfg, err := s.acmeDNSConfigOf(cfgs, a.Delegation)
	if err != nil {
		cfg.Name = ""
	}
	return s.acmeDNSView(a, owner, cfg.Name)
}

// acmeDNSViewOne is acmeDNSViewIn reading the owner's name and the configs.
func (s *Service) acmeDNSViewOne(ctx context.Context, a store.ACMEDNSAccount) (ACMEDNSAccount, error) {
	cfgs, err := s.currentConfigs(ctx)
	if err != nil {
		return ACMEDNSAccount{}, err
	}
	owner := ""
	if p, err := s.db.Principal(ctx, a.OwnerPrincipalID); err == nil {
		owner = p.Name
	} else if !errors.Is(err, store.ErrNotFound) {
		return ACMEDNSAccount{}, storeError("find owner", err)
	}
	return s.acmeDNSViewIn(a, owner, cfgs), nil
}

// withPassword adds the account's password, opened from its sealed copy.
func (s *Service) withPassword(v ACMEDNSAccount, a store.ACMEDNSAccount) (ACMEDNSAccount, error) {
	pw, err := s.kr.Open(a.PasswordSealed, acmeDNSSealAD(a.Username))
	if err != nil {
		return ACMEDNSAccount{Username: v.Username, Domain: v.Domain}, fmt.Errorf("open the password of acme-dns account %s: %w", a.Username, err)
	}
	v.Password = string(pw)
	return v, nil
}

// principalNames maps principal ids to names.
func (s *Service) principalNames(ctx context.Context) (map[int64]string, error) {
	ps, err := s.db.ListPrincipals(ctx)
	if err != nil {
		return nil, storeError("list principals", err)
	}
	out := make(map[int64]string, len(ps))
	for _, p := range ps {
		out[p.ID] = p.Name
	}
	return out, nil
}

// NewerThan orders accounts by creation, then username: of several
// accounts for one domain the hub, and the CLI's export, use the newest.
func (a ACMEDNSAccount) NewerThan(b ACMEDNSAccount) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.Username > b.Username
}

// newer is NewerThan for stored accounts.
func newer(a, b store.ACMEDNSAccount) bool {
	return ACMEDNSAccount{CreatedAt: a.CreatedAt, Username: a.Username}.NewerThan(ACMEDNSAccount{CreatedAt: b.CreatedAt, Username: b.Username})
}

// newest returns the newest of a non-empty list.
func newest(list []store.ACMEDNSAccount) store.ACMEDNSAccount {
	best := list[0]
	for _, a := range list[1:] {
		if newer(a, best) {
			best = a
		}
	}
	return best
}

// accountTarget names an account in audit events.
func accountTarget(username string) string {
	if username == "" {
		return "acme-dns"
	}
	return "acme-dns:" + username
}

// accountUsername is username if it has the shape of one, for messages;
// anything else is not repeated (it might be a secret sent by mistake).
func accountUsername(username string) string {
	if u := strings.ToLower(username); store.ValidUsername(u) {
		return u
	}
	return "(malformed username)"
}

// registerDetail describes a new account for the audit log: never the
// password.
func registerDetail(a ACMEDNSAccount, owner string) string {
	d := ""
	if a.Owner != "" {
		d = "owner " + a.Owner
	} else if owner != "" {
		d = "owner " + owner
	}
	if a.FullDomain != "" {
		d = joinDetail(d, "label "+a.FullDomain)
	}
	if len(a.AllowFrom) > 0 {
		d = joinDetail(d, "allow from "+strings.Join(prefixStrings(a.AllowFrom), ","))
	}
	return d
}
