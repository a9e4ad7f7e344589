package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/upstream/catalog"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// ProviderDelegated is the provider that serves values from the hub zone
// through delegations; any other provider is an upstream one (upstream.go).
const ProviderDelegated = store.ProviderDelegated

// ManagedChallenge is a managed challenge config: how challenges for the
// base names its domain match rule matches are fulfilled.
type ManagedChallenge struct {
	ID            int64
	Name          string
	ChallengeType string // ChallengeDNS01
	Provider      string // ProviderDelegated or an upstream provider's catalogue code
	CredentialID  int64  // upstream: the stored credential it writes with
	Credential    string // its name
	Engine        string // upstream: EngineAuto, EngineValue or EngineLego
	Rule          string // canonical domain match rule
	TTL           time.Duration
	Lifetime      time.Duration // 0: the service defaults
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CreatedBy     string
}

// ManagedChallengeRequest creates a config or replaces one's fields.
type ManagedChallengeRequest struct {
	Name string
	// ChallengeType "" means ChallengeDNS01, the only one.
	ChallengeType string
	// Provider "" means ProviderDelegated; any other is an upstream
	// provider's code (see `acmehub providers list`), which needs
	// Credential: a stored credential of the same provider, by name or id.
	Provider   string
	Credential string
	// Engine (upstream only): EngineAuto picks the value-level driver
	// where the provider has one, else lego's provider; EngineValue or
	// EngineLego insist.
	Engine string
	// Rule is the domain match rule; it must not be empty ("*" matches
	// every domain) and must not tie with another config's.
	Rule string
	// TTL of the TXT records and Lifetime of the values, whole seconds;
	// 0 means the service defaults. Lifetime is at most the service's
	// MaxValueLifetime.
	TTL      time.Duration
	Lifetime time.Duration
}

// ListManagedChallenges returns every config, by creation (needs the
// managed challenge admin or admin role).
func (s *Service) ListManagedChallenges(ctx context.Context, g Grant) ([]ManagedChallenge, error) {
	if !g.Allows(ActionManageChallenges) {
		return nil, ErrForbidden
	}
	cs, err := s.db.ListConfigs(ctx)
	if err != nil {
		return nil, storeError("list configs", err)
	}
	out := make([]ManagedChallenge, 0, len(cs))
	for _, c := range cs {
		out = append(out, s.managed(ctx, c))
	}
	return out, nil
}

// GetManagedChallenge returns one config.
func (s *Service) GetManagedChallenge(ctx context.Context, g Grant, id int64) (ManagedChallenge, error) {
	if !g.Allows(ActionManageChallenges) {
		return ManagedChallenge{}, ErrForbidden
	}
	c, err := s.config(ctx, id)
	if err != nil {
		return ManagedChallenge{}, err
	}
	return s.managed(ctx, c), nil
}

func (s *Service) config(ctx context.Context, id int64) (store.ChallengeConfig, error) {
	if err := positiveID("managed challenge", id); err != nil {
		return store.ChallengeConfig{}, err
	}
	c, err := s.db.Config(ctx, id)
	if err != nil {
		return store.ChallengeConfig{}, adminStoreError("get config", fmt.Sprintf("managed challenge %d", id), err)
	}
	return c, nil
}

// CreateManagedChallenge creates a config. A rule that ties with another
// config's is refused with ErrConflict naming the other config, the shared
// pattern and a name neither would win; the check and the save are one
// transaction. A caller whose role is restricted to some domains may only
// save rules within them.
func (s *Service) CreateManagedChallenge(ctx context.Context, g Grant, req ManagedChallengeRequest) (ManagedChallenge, error) {
	c, err := s.saveConfig(ctx, g, 0, req)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "config.create", Target: configTarget(c.ID, req.Name), ConfigID: c.ID,
		Detail: configDetail(req)}, err)
	return c, err
}

// UpdateManagedChallenge replaces a config's fields, checked as
// CreateManagedChallenge checks them. Challenges choose by the new rule at
// once.
func (s *Service) UpdateManagedChallenge(ctx context.Context, g Grant, id int64, req ManagedChallengeRequest) (ManagedChallenge, error) {
	c, err := s.saveConfig(ctx, g, id, req)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "config.update", Target: configTarget(id, req.Name), ConfigID: max(id, 0),
		Detail: configDetail(req)}, err)
	return c, err
}

func (s *Service) saveConfig(ctx context.Context, g Grant, id int64, req ManagedChallengeRequest) (ManagedChallenge, error) {
	if !g.Allows(ActionManageChallenges) {
		return ManagedChallenge{}, ErrForbidden
	}
	next := store.ChallengeConfig{Name: req.Name, CreatedBy: g.Principal.Name}
	if id != 0 {
		cur, err := s.config(ctx, id)
		if err != nil {
			return ManagedChallenge{}, err
		}
		if err := g.mayChange(cur); err != nil {
			return ManagedChallenge{}, err
		}
		next = cur
		next.Name = req.Name
	}
	rule, err := s.validateConfig(req)
	if err != nil {
		return ManagedChallenge{}, err
	}
	if !g.coversRule(ActionManageChallenges, rule) {
		return ManagedChallenge{}, ErrForbidden
	}
	next.ChallengeType, next.Provider, next.Rule = ChallengeDNS01, ProviderDelegated, rule.String()
	next.CredentialID, next.Engine = 0, EngineAuto
	if req.Provider != "" && req.Provider != ProviderDelegated {
		if next.Provider, next.CredentialID, next.Engine, err = s.validateUpstream(ctx, g, req); err != nil {
			return ManagedChallenge{}, err
		}
	}
	next.TTL, next.Lifetime = req.TTL, req.Lifetime
	saved, err := s.saveConfigChecked(ctx, next)
	if err != nil {
		return ManagedChallenge{}, err
	}
	return s.managed(ctx, saved), nil
}

// saveConfigChecked stores c unless its rule ties with another config's;
// the check runs inside the store's write transaction.
func (s *Service) saveConfigChecked(ctx context.Context, c store.ChallengeConfig) (store.ChallengeConfig, error) {
	rule, err := rules.Parse(c.Rule)
	if err != nil {
		return store.ChallengeConfig{}, fmt.Errorf("%w: rule: %w", ErrInvalid, err)
	}
	var tie error
	saved, err := s.db.SaveConfigChecked(ctx, c, func(existing []store.ChallengeConfig) error {
		cands := make([]rules.Candidate, 0, len(existing))
		for _, e := range existing {
			r, err := rules.Parse(e.Rule)
			if err != nil {
				return fmt.Errorf("config %q: %w", e.Name, err)
			}
			cands = append(cands, rules.Candidate{ID: e.Name, Rule: r})
		}
		if cs := rules.Conflicts(cands, rules.Candidate{ID: c.Name, Rule: rule}); len(cs) > 0 {
			msgs := make([]string, len(cs))
			for i, x := range cs {
				msgs[i] = x.String()
			}
			tie = fmt.Errorf("%w: the domain match rule ties with another managed challenge: %s; make one of the patterns more specific or remove it (the lowest rank wins, equal ranks cannot be decided)",
				ErrConflict, strings.Join(msgs, "; "))
			return tie
		}
		return nil
	})
	switch {
	case err == nil:
		return saved, nil
	case tie != nil && errors.Is(err, ErrConflict):
		return store.ChallengeConfig{}, tie
	case errors.Is(err, store.ErrConflict):
		return store.ChallengeConfig{}, fmt.Errorf("%w: a managed challenge named %q exists already", ErrConflict, c.Name)
	}
	return store.ChallengeConfig{}, adminStoreError("save config", fmt.Sprintf("managed challenge %d", c.ID), err)
}

// validateConfig checks what the store does not know: the challenge type,
// the providers that exist, the rule's presence and the value lifetime
// bound.
func (s *Service) validateConfig(req ManagedChallengeRequest) (rules.Rule, error) {
	if req.ChallengeType != "" && req.ChallengeType != ChallengeDNS01 {
		return rules.Rule{}, fmt.Errorf("%w: challenge type %q: only %q", ErrInvalid, req.ChallengeType, ChallengeDNS01)
	}
	if (req.Provider == "" || req.Provider == ProviderDelegated) && (req.Credential != "" || req.Engine != "") {
		return rules.Rule{}, fmt.Errorf("%w: credential and engine are for upstream providers; provider %q serves from the hub zone",
			ErrInvalid, ProviderDelegated)
	}
	if strings.TrimSpace(req.Rule) == "" {
		return rules.Rule{}, fmt.Errorf(`%w: a rule is required: patterns such as "example.org" or "*.example.org", or "*" to match every domain`, ErrInvalid)
	}
	rule, err := rules.Parse(req.Rule)
	if err != nil {
		return rules.Rule{}, fmt.Errorf("%w: rule: %w", ErrInvalid, err)
	}
	if _, _, err := s.ttlAndExpiry(req.TTL, req.Lifetime); err != nil {
		return rules.Rule{}, err
	}
	return rule, nil
}

// DeleteManagedChallenge deletes a config. Its delegations stay, bound to
// no config; challenges for their domains go to whichever config matches
// next, or are refused.
func (s *Service) DeleteManagedChallenge(ctx context.Context, g Grant, id int64) error {
	name, err := s.deleteConfig(ctx, g, id)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "config.delete", Target: configTarget(id, name), ConfigID: max(id, 0)}, err)
	return err
}

func (s *Service) deleteConfig(ctx context.Context, g Grant, id int64) (string, error) {
	if !g.Allows(ActionManageChallenges) {
		return "", ErrForbidden
	}
	cur, err := s.config(ctx, id)
	if err != nil {
		return "", err
	}
	if err := g.mayChange(cur); err != nil {
		return cur.Name, err
	}
	if err := s.db.DeleteConfig(ctx, id); err != nil {
		return cur.Name, adminStoreError("delete config", fmt.Sprintf("managed challenge %d", id), err)
	}
	return cur.Name, nil
}

// mayChange checks that the grant reaches every pattern of a stored
// config's rule.
func (g Grant) mayChange(c store.ChallengeConfig) error {
	r, err := rules.Parse(c.Rule)
	if err != nil {
		return fmt.Errorf("config %q: stored rule: %w", c.Name, err)
	}
	if !g.coversRule(ActionManageChallenges, r) {
		return ErrForbidden
	}
	return nil
}

func (s *Service) managed(ctx context.Context, c store.ChallengeConfig) ManagedChallenge {
	m := ManagedChallenge{
		ID: c.ID, Name: c.Name, ChallengeType: c.ChallengeType, Provider: c.Provider, CredentialID: c.CredentialID,
		Engine: c.Engine, Rule: c.Rule, TTL: c.TTL, Lifetime: c.Lifetime, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		CreatedBy: c.CreatedBy,
	}
	if c.CredentialID > 0 {
		if cred, err := s.db.CredentialByID(ctx, c.CredentialID); err == nil {
			m.Credential = cred.Name
		}
	}
	return m
}

func configTarget(id int64, name string) string {
	t := "config"
	if id > 0 {
		t += ":" + strconv.FormatInt(id, 10)
	}
	if name != "" {
		t += " (" + name + ")"
	}
	return t
}

func configDetail(req ManagedChallengeRequest) string {
	d := "rule " + req.Rule
	if req.Provider != "" {
		d += "; provider " + req.Provider
	}
	if req.Credential != "" {
		d += "; credential " + req.Credential
	}
	if req.Engine != "" {
		d += "; engine " + req.Engine
	}
	if req.TTL != 0 {
		d += "; ttl " + req.TTL.String()
	}
	if req.Lifetime != 0 {
		d += "; lifetime " + req.Lifetime.String()
	}
	return d
}

// validateUpstream checks an upstream config's provider, credential and
// engine, and returns the provider's canonical code, the credential's id
// and the engine. Naming a credential needs the same right as managing
// credentials: it writes wherever the provider account reaches.
func (s *Service) validateUpstream(ctx context.Context, g Grant, req ManagedChallengeRequest) (provider string, credID int64, engine string, err error) {
	if !g.AllowsEverywhere(ActionManageChallenges) {
		return "", 0, "", ErrForbidden
	}
	p, ok := catalog.Lookup(req.Provider)
	if !ok {
		return "", 0, "", fmt.Errorf("%w: provider %q: not %q and not a lego provider code (see `acmehub providers list`)",
			ErrInvalid, req.Provider, ProviderDelegated)
	}
	provider = p.Code
	if strings.TrimSpace(req.Credential) == "" {
		return "", 0, "", fmt.Errorf("%w: provider %q needs a credential: create one with `acmehub credential create` and name it here",
			ErrInvalid, provider)
	}
	cred, err := s.db.CredentialByName(ctx, req.Credential)
	if errors.Is(err, store.ErrNotFound) {
		if id, perr := strconv.ParseInt(req.Credential, 10, 64); perr == nil && id > 0 {
			cred, err = s.db.CredentialByID(ctx, id)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", 0, "", fmt.Errorf("%w: credential %q does not exist", ErrInvalid, req.Credential)
	}
	if err != nil {
		return "", 0, "", storeError("find credential", err)
	}
	if cred.Provider != provider {
		return "", 0, "", fmt.Errorf("%w: credential %q is for provider %q, not %q", ErrInvalid, cred.Name, cred.Provider, provider)
	}
	ups := s.cfg.Upstreams
	if ups == nil {
		return "", 0, "", fmt.Errorf("%w: this hub runs without upstream drivers", ErrUnsupported)
	}
	value, lego := ups.HasValueDriver(provider), ups.HasKeyAuthDriver(provider)
	switch req.Engine {
	case EngineAuto:
		if !value && !lego {
			return "", 0, "", fmt.Errorf("%w: provider %q has no value-level driver and lego's is not in this build "+
				"(`make build` includes every lego provider)", ErrUnsupported, provider)
		}
	case EngineValue:
		if !value {
			return "", 0, "", fmt.Errorf("%w: provider %q has no value-level driver (those with one: %s); use engine %q, "+
				"which needs clients that send the key authorization", ErrInvalid, provider, strings.Join(ups.ValueProviders(), ", "), EngineLego)
		}
	case EngineLego:
		if !lego {
			return "", 0, "", fmt.Errorf("%w: lego's provider %q is not available on this hub: not in this build (`make build` includes every lego provider), or lego workers are off (lego-workers 0)",
				ErrUnsupported, provider)
		}
	default:
		return "", 0, "", fmt.Errorf("%w: engine %q: one of \"\" (automatic), %q, %q", ErrInvalid, req.Engine, EngineValue, EngineLego)
	}
	return provider, cred.ID, req.Engine, nil
}
