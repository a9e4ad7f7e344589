package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// Config holds the service's settings.
type Config struct {
	Zone             string        // the hub zone, lower-case fqdn
	DefaultTTL       time.Duration // TXT TTL when neither request nor config names one
	DefaultLifetime  time.Duration // value lifetime when neither request nor config names one
	MaxValueLifetime time.Duration // longest lifetime a request may ask for
	// MaxValuesPerPrincipal caps the live values one principal holds;
	// 0 means no cap.
	MaxValuesPerPrincipal int
	// ACMEDNSConfig names the managed challenge config (delegated) used by
	// acme-dns accounts whose domain is unknown; "" refuses such accounts.
	ACMEDNSConfig string
	// ACMEDNSMaxAccounts caps the acme-dns accounts one principal owns;
	// 0 means no cap.
	ACMEDNSMaxAccounts int
	// Failures limits failed authentications per source network and per
	// client id; the zero value means the defaults (10, then one per 6 s).
	Failures ratelimit.Config
	Logger   *slog.Logger
	// DNSCheck asks the world's DNS: delegation checks and propagation
	// status. nil turns both off.
	DNSCheck *dnscheck.Client
	// Nameservers are the hub zone's nameservers (the apex NS set) whose
	// answers propagation checks; none turns propagation off.
	Nameservers []dnscheck.Nameserver
	// MaxWait bounds a present's wait until every nameserver serves its
	// value; 0 means 2 minutes.
	MaxWait time.Duration
	// UnusedAfter: a delegation without a challenge for this long is
	// listed as unused; 0 turns the unused listing off.
	UnusedAfter time.Duration
	// CheckStates, if set, receives the number of delegations per check
	// state (checks.go) after each on-demand check and background round.
	CheckStates func(counts map[string]int)
	// PropagationCheck asks the hub's nameservers for propagation; nil
	// means DNSCheck. (It may know where this process itself listens.)
	PropagationCheck *dnscheck.Client
	// Upstreams makes the drivers of upstream providers; nil refuses
	// configs that name one.
	Upstreams Upstreams
	// UpstreamMaxAttempts is how many failed removals of an upstream
	// value make it "failed" (reported, no longer retried); 0 means 12.
	UpstreamMaxAttempts int
	// UpstreamObserve, if set, receives every upstream call: provider,
	// engine, op ("present", "cleanup"), result ("ok", "error"), duration.
	UpstreamObserve func(provider, engine, op, result string, elapsed time.Duration)
	// UpstreamCallTimeout is the provider call timeout the drivers and
	// lego workers use (0: 2 minutes); claims on records outlast it.
	UpstreamCallTimeout time.Duration
}

// Store is what the service needs of the store; *store.DB implements it.
type Store interface {
	AddValue(ctx context.Context, req store.AddRequest) (int64, error)
	RemoveValue(ctx context.Context, name, value string) (serial int64, removed bool, err error)
	RemoveValueAudited(ctx context.Context, name, value string, ev store.AuditEvent) (serial int64, removed bool, err error)
	RemoveAllValues(ctx context.Context, name string) (serial int64, removed int, err error)
	ListValues(ctx context.Context, name string) ([]store.Record, error)
	ListAll(ctx context.Context, afterName string, limit int) ([]store.Record, error)
	TokenByClientID(ctx context.Context, clientID string) (store.Token, error)
	TouchToken(ctx context.Context, clientID string, at time.Time) error
	Principal(ctx context.Context, id int64) (store.Principal, error)
	RoleAssignments(ctx context.Context, principalID int64) ([]store.RoleAssignment, error)
	ListConfigs(ctx context.Context) ([]store.ChallengeConfig, error)
	Generation(ctx context.Context, name string) (int64, error)
	Generations(ctx context.Context, names ...string) ([]int64, error)
	CreateDelegation(ctx context.Context, d store.Delegation) (store.Delegation, bool, error)
	DelegationByDomain(ctx context.Context, domain string) (store.Delegation, error)
	DelegationByName(ctx context.Context, nameOrLabel string) (store.Delegation, error)
	TouchDelegation(ctx context.Context, id int64, at time.Time) error
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
	Serial(ctx context.Context) (int64, error)
	// AdminStore is what the admin operations add (admin.go).
	AdminStore
	// ACMEDNSStore is what the acme-dns operations add (acmedns.go).
	ACMEDNSStore
	// CheckStore is what delegation checks add (checks.go).
	CheckStore
	// CredentialStore is what stored upstream credentials add (credentials.go).
	CredentialStore
	// UpstreamStore is what upstream records add (upstream.go).
	UpstreamStore
}

var _ Store = (*store.DB)(nil)

// Service is the hub's one entry point for every protocol adapter.
type Service struct {
	db       Store
	kr       *secret.Keyring
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	failures *ratelimit.Limiter

	mu      sync.Mutex
	configs *configCache

	// tokens caches authentication by client id, delegations the
	// challenge operations' delegation lookups by base domain; both are
	// checked against the store's generations on every request.
	tokens      *genCache[*tokenEntry]
	delegations *genCache[delegationEntry]
	// acmeDNS caches acme-dns accounts by username for /update, at the
	// "acme_dns", "delegations" and "principals" generations.
	acmeDNS *genCache[*acmeDNSEntry]
	// acmeDNSTouched throttles last-used writes per account.
	acmeDNSTouched *touchThrottle
	// prop shares propagation checks between callers and counts waits
	// per principal (propagation.go).
	prop *propState
	// upstreamValue caches value-level upstream drivers (upstream.go).
	upstreamValue valueDrivers
	// upstreamHint caches whether upstream records exist (upstream.go).
	upstreamHint atomic.Pointer[upstreamHint]
}

// configCache is the managed challenge configs at one generation, with
// the rule set that chooses among them.
type configCache struct {
	gen  int64
	set  *rules.Set
	byID map[string]store.ChallengeConfig
}

// New returns a service over db, verifying tokens with kr.
func New(db Store, kr *secret.Keyring, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Failures == (ratelimit.Config{}) {
		cfg.Failures = failureLimits
	}
	return &Service{
		db: db, kr: kr, cfg: cfg, log: cfg.Logger, now: time.Now, failures: ratelimit.New(cfg.Failures),
		tokens: newGenCache[*tokenEntry](maxTokenEntries), delegations: newGenCache[delegationEntry](maxDelegationEntries),
		acmeDNS: newGenCache[*acmeDNSEntry](maxACMEDNSEntries), acmeDNSTouched: newTouchThrottle(maxACMEDNSEntries),
		prop: newPropState(),
	}
}

// currentConfigs returns the configs, reloading them when their generation
// moved (an admin CLI or another process may have changed them).
func (s *Service) currentConfigs(ctx context.Context) (*configCache, error) {
	gen, err := s.db.Generation(ctx, store.GenConfigs)
	if err != nil {
		return nil, fmt.Errorf("configs generation: %w", err)
	}
	return s.configsAt(ctx, gen)
}

// configsAt returns the configs at generation gen, read before calling.
func (s *Service) configsAt(ctx context.Context, gen int64) (*configCache, error) {
	s.mu.Lock()
	c := s.configs
	s.mu.Unlock()
	if c != nil && c.gen == gen {
		return c, nil
	}
	list, err := s.db.ListConfigs(ctx)
	if err != nil {
		return nil, fmt.Errorf("load configs: %w", err)
	}
	c = &configCache{gen: gen, byID: make(map[string]store.ChallengeConfig, len(list))}
	cands := make([]rules.Candidate, 0, len(list))
	for _, cfg := range list {
		r, err := rules.Parse(cfg.Rule)
		if err != nil {
			return nil, fmt.Errorf("config %q: %w", cfg.Name, err)
		}
		id := strconv.FormatInt(cfg.ID, 10)
		cands = append(cands, rules.Candidate{ID: id, Rule: r})
		c.byID[id] = cfg
	}
	if c.set, err = rules.NewSet(cands); err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	s.mu.Lock()
	if s.configs == nil || s.configs.gen <= gen {
		s.configs = c
	}
	s.mu.Unlock()
	return c, nil
}

// challengeGens are the generations of the tables the challenge
// operations cache, read in one query before reading either.
type challengeGens struct {
	configs, delegations, upstream int64
}

func (s *Service) challengeGens(ctx context.Context) (challengeGens, error) {
	gens, err := s.db.Generations(ctx, store.GenConfigs, store.GenDelegations, store.GenUpstreamRecords)
	if err != nil {
		return challengeGens{}, fmt.Errorf("configs generation: %w", err)
	}
	return challengeGens{configs: gens[0], delegations: gens[1], upstream: gens[2]}, nil
}

// maxDelegationEntries bounds the delegation cache.
const maxDelegationEntries = 16384

// delegationEntry is a domain's delegation, or its absence.
type delegationEntry struct {
	d     store.Delegation
	found bool
}

// delegationAt returns the delegation of base like store.DelegationByDomain
// (ErrNotFound when there is none), through the cache at generation gen.
// LastUsedAt of a cached delegation may lag: touching does not bump the
// generation.
func (s *Service) delegationAt(ctx context.Context, gen int64, base string) (store.Delegation, error) {
	key := genKey{gen}
	if e, ok := s.delegations.get(key, base); ok {
		if !e.found {
			return store.Delegation{}, fmt.Errorf("delegation of %s: %w", base, store.ErrNotFound)
		}
		return e.d, nil
	}
	d, err := s.db.DelegationByDomain(ctx, base)
	switch {
	case err == nil:
		s.delegations.put(key, base, delegationEntry{d: d, found: true})
	case errors.Is(err, store.ErrNotFound):
		s.delegations.put(key, base, delegationEntry{})
	}
	return d, err
}

// Ready reports whether the database answers.
func (s *Service) Ready(ctx context.Context) error {
	_, err := s.db.Serial(ctx)
	return err
}

// lifetime checks a TTL and lifetime pair, filling in defaults.
func (s *Service) ttlAndExpiry(ttl, lifetime time.Duration) (uint32, time.Time, error) {
	if ttl == 0 {
		ttl = s.cfg.DefaultTTL
	}
	if lifetime == 0 {
		lifetime = s.cfg.DefaultLifetime
	}
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 || secs < 0 || secs > math.MaxInt32 {
		return 0, time.Time{}, fmt.Errorf("%w: ttl must be whole seconds up to 2^31-1", ErrInvalid)
	}
	if lifetime < 0 || lifetime > s.cfg.MaxValueLifetime {
		return 0, time.Time{}, fmt.Errorf("%w: lifetime %s is outside 0..%s", ErrInvalid, lifetime, s.cfg.MaxValueLifetime)
	}
	return uint32(secs), s.now().Add(lifetime), nil
}

// storeError maps store sentinels onto the service's error kinds.
func storeError(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrTooManyValues), errors.Is(err, store.ErrTooManyAccounts):
		return fmt.Errorf("%w: %w", ErrLimit, err)
	case errors.Is(err, store.ErrInvalid), errors.Is(err, zone.ErrBadValue), errors.Is(err, zone.ErrBadName):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
