package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// Delegation binds a domain to a name in the hub zone: the domain's owner
// adds CNAME once and the hub serves the domain's challenge values there.
type Delegation struct {
	ID int64
	// Domain is the base domain: lower-case A-labels, no trailing dot; ""
	// for an acme-dns label whose domain is not known yet (then CNAME is
	// the zero value: there is nothing to add yet).
	Domain string
	Label  string
	Target string // the label's fqdn in the hub zone: the CNAME target
	// ConfigID and ConfigName name the managed challenge it is bound to;
	// 0 and "" when none (its config was deleted). Which config serves a
	// challenge is decided by the rules when it is made.
	ConfigID   int64
	ConfigName string
	// OwnerPrincipalID is the owner of the acme-dns account whose
	// registration without a domain created the label (kept when a domain
	// is bound later); 0 otherwise: delegations made for a known domain
	// (native API, admins, acme-dns registrations with a domain), and once
	// that principal is deleted. It grants nothing: who may write a label
	// is decided by scope and, for acme-dns, by the accounts on it.
	OwnerPrincipalID int64
	CreatedAt        time.Time
	CreatedBy        string
	LastUsedAt       time.Time // zero: never (updated lazily)
	CNAME            CNAMERecord
	Check            DelegationCheck // the last delegation check (checks.go)
}

// CNAMERecord is the record a domain's owner adds to delegate its DNS-01
// challenges to the hub.
type CNAMERecord struct {
	Name   string // "_acme-challenge.<domain>."
	Type   string // "CNAME"
	Target string // "<label>.<hub zone>."
}

// ZoneLine returns the record as a zone file line.
func (c CNAMERecord) ZoneLine() string { return c.Name + " " + c.Type + " " + c.Target }

// DelegationFilter selects delegations; zero fields select everything.
type DelegationFilter struct {
	ConfigID int64  // > 0: only those bound to this config
	Unbound  bool   // only those bound to no config
	Under    string // a domain: only it and the domains below it
	AfterID  int64  // paging: only ids above this
	Limit    int    // 0: DefaultDelegationLimit; at most MaxDelegationLimit
	// CheckState: only those whose last check found this state (one of
	// CheckStates; "unchecked": never checked).
	CheckState string
	// Unused: only those without a challenge for Config.UnusedAfter.
	Unused bool
}

// Page sizes of ListDelegations.
const (
	DefaultDelegationLimit = 100
	MaxDelegationLimit     = 1000
)

// CreateDelegation delegates a domain explicitly, as the first challenge
// for it would: the base of the identifier (a wildcard maps to its base)
// must be within the caller's scope for managing challenges, and a managed
// challenge config must match it. It returns the existing delegation with
// created false when there is one.
func (s *Service) CreateDelegation(ctx context.Context, g Grant, domain string) (d Delegation, created bool, err error) {
	d, created, cfgID, err := s.createDelegation(ctx, g, domain)
	detail := ""
	if err == nil && !created {
		detail = "delegated already; nothing changed"
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "delegation.create", Target: d.Target, Domain: d.Domain, ConfigID: cfgID,
		Detail: detail}, err)
	return d, created, err
}

func (s *Service) createDelegation(ctx context.Context, g Grant, domain string) (Delegation, bool, int64, error) {
	base, err := s.manageableBase(ctx, g, domain)
	if err != nil {
		return Delegation{Domain: base}, false, 0, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return Delegation{Domain: base}, false, 0, err
	}
	cfg, err := s.authorizeAt(ctx, g, base, gens.configs)
	if err != nil {
		return Delegation{Domain: base}, false, cfg.ID, err
	}
	_, err = s.db.DelegationByDomain(ctx, base)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return Delegation{Domain: base}, false, cfg.ID, storeError("find delegation", err)
	}
	sd, err := s.delegation(ctx, g, base, cfg, gens.delegations)
	if err != nil {
		return Delegation{Domain: base}, false, cfg.ID, err
	}
	d, err := s.delegationInfo(ctx, sd)
	return d, created, cfg.ID, err
}

// manageableBase resolves any identifier form to its base domain and
// checks that the grant may manage challenges for it.
func (s *Service) manageableBase(ctx context.Context, g Grant, domain string) (string, error) {
	if !g.Allows(ActionManageChallenges) {
		return "", ErrForbidden
	}
	base, err := s.baseDomain(ctx, domain)
	if err != nil {
		return "", err
	}
	if !g.AllowsDomain(ActionManageChallenges, base) {
		return base, ErrForbidden
	}
	return base, nil
}

// GetDelegation returns the delegation of a domain (any identifier form,
// or its name in the hub zone).
func (s *Service) GetDelegation(ctx context.Context, g Grant, domain string) (Delegation, error) {
	base, err := s.manageableBase(ctx, g, domain)
	if err != nil {
		return Delegation{}, err
	}
	sd, err := s.db.DelegationByDomain(ctx, base)
	if err != nil {
		return Delegation{}, adminStoreError("find delegation", "a delegation of "+base, err)
	}
	return s.delegationInfo(ctx, sd)
}

// ListDelegations returns the delegations the filter selects that lie
// within the caller's scope, by id. A page may hold fewer than Limit
// delegations when the caller's roles are restricted to some domains;
// continue after the last id of a full store page (see the next id
// returned: 0 when there is no more).
func (s *Service) ListDelegations(ctx context.Context, g Grant, f DelegationFilter) (_ []Delegation, nextAfter int64, _ error) {
	if !g.Allows(ActionManageChallenges) {
		return nil, 0, ErrForbidden
	}
	if f.Limit == 0 {
		f.Limit = DefaultDelegationLimit
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxDelegationLimit:
		return nil, 0, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalid, f.Limit, MaxDelegationLimit)
	case f.ConfigID < 0 || f.AfterID < 0:
		return nil, 0, fmt.Errorf("%w: negative id", ErrInvalid)
	case f.Unbound && f.ConfigID != 0:
		return nil, 0, fmt.Errorf("%w: unbound and a config exclude each other", ErrInvalid)
	case f.CheckState != "" && !validCheckState(f.CheckState):
		return nil, 0, fmt.Errorf("%w: state %q: want one of %s", ErrInvalid, f.CheckState, strings.Join(CheckStates, ", "))
	case f.Unused && s.cfg.UnusedAfter <= 0:
		return nil, 0, fmt.Errorf("%w: the unused report is off (delegation-unused-after is not set)", ErrInvalid)
	}
	var usedBefore time.Time
	if f.Unused {
		usedBefore = s.now().Add(-s.cfg.UnusedAfter)
	}
	if f.Under != "" {
		base, err := s.baseDomain(ctx, f.Under)
		if err != nil {
			return nil, 0, err
		}
		f.Under = base
	}
	ds, err := s.db.ListDelegations(ctx, store.DelegationFilter{
		ConfigID: f.ConfigID, Unbound: f.Unbound, Under: f.Under, AfterID: f.AfterID, Limit: f.Limit,
		CheckState: f.CheckState, UsedBefore: usedBefore,
	})
	if err != nil {
		return nil, 0, storeError("list delegations", err)
	}
	cfgs, err := s.currentConfigs(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Delegation, 0, len(ds))
	for _, d := range ds {
		if g.AllowsDomain(ActionManageChallenges, d.Domain) {
			out = append(out, s.delegationWith(d, cfgs))
		}
	}
	if len(ds) == f.Limit {
		nextAfter = ds[len(ds)-1].ID
	}
	return out, nextAfter, nil
}

// DeleteDelegation deletes a domain's delegation together with the values
// published at its name; the name stops resolving at once. A later
// challenge for the domain creates a new delegation with a new label, so
// its owner must change the CNAME.
func (s *Service) DeleteDelegation(ctx context.Context, g Grant, domain string) error {
	d, err := s.deleteDelegation(ctx, g, domain)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "delegation.delete", Target: d.Name, Domain: d.Domain, ConfigID: d.ConfigID}, err)
	if err == nil {
		s.reportCheckStates(ctx)
	}
	return err
}

func (s *Service) deleteDelegation(ctx context.Context, g Grant, domain string) (store.Delegation, error) {
	base, err := s.manageableBase(ctx, g, domain)
	if err != nil {
		return store.Delegation{Domain: base}, err
	}
	d, err := s.db.DelegationByDomain(ctx, base)
	if err != nil {
		return store.Delegation{Domain: base}, adminStoreError("find delegation", "a delegation of "+base, err)
	}
	if err := s.db.DeleteDelegation(ctx, d.ID); err != nil {
		return d, adminStoreError("delete delegation", "a delegation of "+base, err)
	}
	return d, nil
}

// MoveDelegation makes config configID serve a delegated domain. Configs
// are chosen by their rules, so a move changes rules: the exact pattern of
// the domain (rank 1, it wins over any wildcard) is removed from the config
// that has it, if another one does, and added to the target config; then
// the delegation is bound to the target. Both rule changes are checked for
// ties like any save. They are two writes: if the second fails, the first
// is undone (and a failure to undo it is logged). A config whose rule is
// only that pattern cannot give it away: delete or change that config
// instead.
func (s *Service) MoveDelegation(ctx context.Context, g Grant, domain string, configID int64) (Delegation, error) {
	d, detail, err := s.moveDelegation(ctx, g, domain, configID)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "delegation.move", Target: d.Target, Domain: d.Domain,
		ConfigID: max(configID, 0), Detail: detail}, err)
	return d, err
}

func (s *Service) moveDelegation(ctx context.Context, g Grant, domain string, configID int64) (Delegation, string, error) {
	base, err := s.manageableBase(ctx, g, domain)
	if err != nil {
		return Delegation{Domain: base}, "", err
	}
	sd, err := s.db.DelegationByDomain(ctx, base)
	if err != nil {
		return Delegation{Domain: base}, "", adminStoreError("find delegation", "a delegation of "+base, err)
	}
	info := Delegation{Domain: base, Target: sd.Name}
	target, err := s.config(ctx, configID)
	if err != nil {
		return info, "", err
	}
	if target.Provider != ProviderDelegated {
		return info, "", fmt.Errorf("%w: config %q uses provider %q; upstream providers are not available yet", ErrUnsupported, target.Name, target.Provider)
	}
	all, err := s.db.ListConfigs(ctx)
	if err != nil {
		return info, "", storeError("list configs", err)
	}
	var holder store.ChallengeConfig // the config with the exact pattern base, if any
	for _, c := range all {
		if r, err := rules.Parse(c.Rule); err == nil && hasPattern(r, base) {
			holder = c
		}
	}
	detail := fmt.Sprintf("to managed challenge %q", target.Name)
	if holder.ID != target.ID {
		if holder.ID != 0 {
			detail = fmt.Sprintf("pattern %s moved from managed challenge %q to %q", base, holder.Name, target.Name)
			rest := withoutPattern(holder.Rule, base)
			if rest == "" {
				return info, detail, fmt.Errorf("%w: managed challenge %q has no pattern but %q, so it cannot give it away; delete it or change its rule instead",
					ErrConflict, holder.Name, base)
			}
			shrunk := holder
			shrunk.Rule = rest
			if _, err := s.saveConfigChecked(ctx, shrunk); err != nil {
				return info, detail, err
			}
		} else {
			detail = fmt.Sprintf("pattern %s added to managed challenge %q", base, target.Name)
		}
		grown := target
		grown.Rule = target.Rule + ", " + base
		if _, err := s.saveConfigChecked(ctx, grown); err != nil {
			if holder.ID != 0 {
				if _, rerr := s.saveConfigChecked(context.WithoutCancel(ctx), holder); rerr != nil {
					s.log.ErrorContext(ctx, "moving a delegation: could not restore the rule of the config it came from",
						"domain", base, "config", holder.Name, "rule", holder.Rule, "err", rerr)
				}
			}
			return info, detail, err
		}
	}
	if err := s.db.MoveDelegation(ctx, sd.ID, target.ID); err != nil {
		return info, detail, adminStoreError("move delegation", "a delegation of "+base, err)
	}
	sd, err = s.db.DelegationByDomain(ctx, base)
	if err != nil {
		return info, detail, storeError("find delegation", err)
	}
	d, err := s.delegationInfo(ctx, sd)
	return d, detail, err
}

func hasPattern(r rules.Rule, name string) bool {
	for _, p := range r.Patterns() {
		if p.String() == name {
			return true
		}
	}
	return false
}

// withoutPattern returns a canonical rule without the exact pattern name,
// or "" if nothing is left.
func withoutPattern(rule, name string) string {
	r, err := rules.Parse(rule)
	if err != nil {
		return rule
	}
	var keep []string
	for _, p := range r.Patterns() {
		if s := p.String(); s != name {
			keep = append(keep, s)
		}
	}
	return strings.Join(keep, ", ")
}

func (s *Service) delegationInfo(ctx context.Context, d store.Delegation) (Delegation, error) {
	cfgs, err := s.currentConfigs(ctx)
	if err != nil {
		return Delegation{}, err
	}
	return s.delegationWith(d, cfgs), nil
}

func (s *Service) delegationWith(d store.Delegation, cfgs *configCache) Delegation {
	out := Delegation{
		ID: d.ID, Domain: d.Domain, Label: d.Label, Target: d.Name, ConfigID: d.ConfigID,
		OwnerPrincipalID: d.OwnerPrincipalID, CreatedAt: d.CreatedAt, CreatedBy: d.CreatedBy, LastUsedAt: d.LastUsedAt,
		Check: checkOf(d.Check),
	}
	if d.Domain != "" { // an acme-dns label without a domain has no CNAME yet
		out.CNAME = CNAMERecord{Name: rules.ChallengeName(d.Domain) + ".", Type: "CNAME", Target: d.Name}
	}
	if c, ok := cfgs.byID[strconv.FormatInt(d.ConfigID, 10)]; ok && d.ConfigID != 0 {
		out.ConfigName = c.Name
	}
	return out
}
