package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ChallengeDNS01 is the only challenge type so far.
const ChallengeDNS01 = "dns-01"

// ProviderDelegated is the provider of configs served from the hub zone.
const ProviderDelegated = "delegated"

// Limits of managed challenge config fields.
const (
	maxConfigName = 64
	maxProvider   = 64
	maxLifetime   = (1<<31 - 1) * time.Second
)

// ChallengeConfig is a managed challenge config: how challenges for the
// base names its rule matches are fulfilled.
type ChallengeConfig struct {
	ID int64 // assigned on create; never reused

	// Name is unique regardless of ASCII case: 1-64 bytes of ASCII
	// letters, digits, '.', '_', '@' and '-', starting with a letter or
	// digit.
	Name string

	// ChallengeType is ChallengeDNS01 (checked by the schema); "" means
	// ChallengeDNS01.
	ChallengeType string

	// Provider is ProviderDelegated or an upstream provider code: 1-64
	// bytes of lower-case letters, digits, '.', '_' and '-'. Which
	// providers exist is the service's business.
	Provider string

	// CredentialID is the stored credential an upstream provider uses;
	// 0 means none.
	CredentialID int64

	// Engine is how an upstream provider is driven: "" (the hub picks:
	// the value-level driver where the provider has one, else lego),
	// EngineValue or EngineLego. Always "" for ProviderDelegated.
	Engine string

	// Rule is the domain match rule; stored (and returned) in canonical
	// form (rules.Rule.String). An empty rule is invalid: "*" matches
	// every domain. Ties with other configs are the caller's check (see
	// SaveConfigChecked).
	Rule string

	// TTL of the TXT records and Lifetime of the values, whole seconds
	// (TTL at most 2^31-1 s, Lifetime too); 0 means the service default.
	TTL      time.Duration
	Lifetime time.Duration

	CreatedAt time.Time // set on create
	UpdatedAt time.Time // set on create and update
	CreatedBy string    // principal or token id, set on create; at most 256 bytes
}

// normalize validates c and puts ChallengeType and Rule in canonical form.
func (c *ChallengeConfig) normalize() error {
	var errs []error
	if c.ID < 0 {
		errs = append(errs, fmt.Errorf("id %d is negative", c.ID))
	}
	errs = append(errs, validateIdent("name", c.Name, maxConfigName))
	if c.ChallengeType == "" {
		c.ChallengeType = ChallengeDNS01
	}
	if err := validateProvider(c.Provider); err != nil {
		errs = append(errs, err)
	}
	if c.CredentialID < 0 {
		errs = append(errs, fmt.Errorf("credential id %d is negative", c.CredentialID))
	}
	switch {
	case c.Engine != "" && c.Engine != EngineValue && c.Engine != EngineLego:
		errs = append(errs, fmt.Errorf("engine %q: want %q, %q or none", c.Engine, EngineValue, EngineLego))
	case c.Engine != "" && c.Provider == ProviderDelegated:
		errs = append(errs, fmt.Errorf("engine %q: provider %q has none", c.Engine, ProviderDelegated))
	}
	if rule, err := canonicalRule("rule", c.Rule); err != nil {
		errs = append(errs, err)
	} else {
		c.Rule = rule
	}
	if c.TTL < 0 || c.TTL > maxTTL*time.Second || c.TTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("ttl %v: want whole seconds from 0 to %d", c.TTL, maxTTL))
	}
	if c.Lifetime < 0 || c.Lifetime > maxLifetime || c.Lifetime%time.Second != 0 {
		errs = append(errs, fmt.Errorf("lifetime %v: want whole seconds from 0 to %v", c.Lifetime, maxLifetime))
	}
	errs = append(errs, validateCreatedBy(c.CreatedBy))
	return errors.Join(errs...)
}

func validateProvider(p string) error {
	if p == "" || len(p) > maxProvider {
		return fmt.Errorf("provider: want 1 to %d bytes, got %d", maxProvider, len(p))
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("provider %q: only lower-case letters, digits, '.', '_' and '-'", p)
		}
	}
	return nil
}

const configCols = `id, name, challenge_type, provider, credential_id, upstream_engine, rule, ttl, lifetime, created_at, updated_at, created_by`

func scanConfig(s scanner) (ChallengeConfig, error) {
	var c ChallengeConfig
	var cred sql.NullInt64
	var ttl, lifetime, created, updated int64
	if err := s.Scan(&c.ID, &c.Name, &c.ChallengeType, &c.Provider, &cred, &c.Engine, &c.Rule, &ttl, &lifetime,
		&created, &updated, &c.CreatedBy); err != nil {
		return ChallengeConfig{}, err
	}
	if ttl < 0 || ttl > maxTTL || lifetime < 0 || lifetime > int64(maxLifetime/time.Second) {
		return ChallengeConfig{}, fmt.Errorf("config %d: stored ttl %d or lifetime %d out of range", c.ID, ttl, lifetime)
	}
	c.CredentialID = cred.Int64
	c.TTL, c.Lifetime = time.Duration(ttl)*time.Second, time.Duration(lifetime)*time.Second
	c.CreatedAt, c.UpdatedAt = fromMilli(created), fromMilli(updated)
	return c, nil
}

// CreateConfig stores a new config (c.ID must be 0) and returns it as
// stored; SaveConfigChecked with no check.
func (db *DB) CreateConfig(ctx context.Context, c ChallengeConfig) (ChallengeConfig, error) {
	if c.ID != 0 {
		return ChallengeConfig{}, fmt.Errorf("store: create config %q: %w: id %d given", c.Name, ErrInvalid, c.ID)
	}
	return db.SaveConfigChecked(ctx, c, nil)
}

// UpdateConfig replaces config c.ID (c.ID must be set) and returns it as
// stored; SaveConfigChecked with no check.
func (db *DB) UpdateConfig(ctx context.Context, c ChallengeConfig) (ChallengeConfig, error) {
	if c.ID == 0 {
		return ChallengeConfig{}, fmt.Errorf("store: update config %q: %w: no id", c.Name, ErrInvalid)
	}
	return db.SaveConfigChecked(ctx, c, nil)
}

// SaveConfigChecked creates (c.ID 0) or updates (c.ID set) a config and
// returns it as stored. On update every field but ID, CreatedAt and
// CreatedBy is replaced. A name in use fails with ErrConflict, an unknown
// c.ID with ErrNotFound, invalid fields with ErrInvalid. It bumps the
// "configs" generation.
//
// check, if not nil, runs inside the writer's transaction with every
// other config as it stands there (all but c.ID, ordered by id), after c
// was validated: an error from it stores nothing and is returned wrapped.
// Saves are serialised by the single writer, so a check that refuses ties
// between rules cannot be raced by a concurrent save. check runs on the
// writer goroutine: it must be quick and must not use the DB (that would
// deadlock); a panic in it is returned as an error.
func (db *DB) SaveConfigChecked(ctx context.Context, c ChallengeConfig, check func(existing []ChallengeConfig) error) (ChallengeConfig, error) {
	op := "create config"
	if c.ID != 0 {
		op = "update config"
	}
	if err := c.normalize(); err != nil {
		return ChallengeConfig{}, fmt.Errorf("store: %s %q: %w: %w", op, c.Name, ErrInvalid, err)
	}
	var out ChallengeConfig
	_, err := db.write(ctx, op, func(w *wtx) error {
		got, err := w.saveConfig(c, check)
		if err != nil {
			return fmt.Errorf("store: %s %q: %w", op, c.Name, err)
		}
		out = got
		return nil
	})
	if err != nil {
		return ChallengeConfig{}, err
	}
	return out, nil
}

func (w *wtx) saveConfig(c ChallengeConfig, check func(existing []ChallengeConfig) error) (ChallengeConfig, error) {
	if c.ID != 0 {
		var ok bool
		if err := w.queryRow(`SELECT EXISTS (SELECT 1 FROM managed_challenges WHERE id = ?)`, c.ID).Scan(&ok); err != nil {
			return ChallengeConfig{}, err
		}
		if !ok {
			return ChallengeConfig{}, fmt.Errorf("config %d: %w", c.ID, ErrNotFound)
		}
	}
	if check != nil {
		existing, err := listConfigs(w.ctx, w.tx, `SELECT `+configCols+` FROM managed_challenges WHERE id <> ? ORDER BY id`, c.ID)
		if err != nil {
			return ChallengeConfig{}, fmt.Errorf("read configs: %w", err)
		}
		if err := runCheck(check, existing); err != nil {
			return ChallengeConfig{}, err
		}
	}
	now := w.now.UnixMilli()
	ttl, lifetime := int64(c.TTL/time.Second), int64(c.Lifetime/time.Second)
	var (
		got ChallengeConfig
		err error
	)
	if c.ID == 0 {
		got, err = scanConfig(w.queryRow(`INSERT INTO managed_challenges (name, challenge_type, provider, credential_id,
				upstream_engine, rule, ttl, lifetime, created_at, updated_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+configCols,
			c.Name, c.ChallengeType, c.Provider, nullID(c.CredentialID), c.Engine, c.Rule, ttl, lifetime, now, now, c.CreatedBy))
	} else {
		got, err = scanConfig(w.queryRow(`UPDATE managed_challenges SET name = ?, challenge_type = ?, provider = ?,
				credential_id = ?, upstream_engine = ?, rule = ?, ttl = ?, lifetime = ?, updated_at = ?
			WHERE id = ? RETURNING `+configCols,
			c.Name, c.ChallengeType, c.Provider, nullID(c.CredentialID), c.Engine, c.Rule, ttl, lifetime, now, c.ID))
	}
	if err != nil {
		return ChallengeConfig{}, sqlErr(err)
	}
	if _, err := w.bumpGeneration(GenConfigs); err != nil {
		return ChallengeConfig{}, err
	}
	return got, nil
}

// runCheck calls check, turning a panic into an error: it runs on the
// writer goroutine, which must survive the caller's bug.
func runCheck(check func([]ChallengeConfig) error, existing []ChallengeConfig) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return check(existing)
}

// DeleteConfig deletes a config, or fails with ErrNotFound. Its
// delegations stay, bound to no config. It bumps the "configs"
// generation, and "delegations" if any was bound to it.
func (db *DB) DeleteConfig(ctx context.Context, id int64) error {
	_, err := db.write(ctx, "delete config", func(w *wtx) error {
		var bound int
		if err := w.queryRow(`SELECT count(*) FROM delegations WHERE config_id = ?`, id).Scan(&bound); err != nil {
			return fmt.Errorf("store: delete config %d: bound delegations: %w", id, err)
		}
		res, err := w.exec(`DELETE FROM managed_challenges WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("store: delete config %d: %w", id, sqlErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: delete config %d: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: delete config %d: %w", id, ErrNotFound)
		}
		gens := []string{GenConfigs}
		if bound > 0 {
			gens = append(gens, GenDelegations)
		}
		return w.bumpGenerations(gens...)
	})
	return err
}

// Config returns the config with that id, or ErrNotFound.
func (db *DB) Config(ctx context.Context, id int64) (ChallengeConfig, error) {
	c, err := scanConfig(db.r.QueryRowContext(ctx, `SELECT `+configCols+` FROM managed_challenges WHERE id = ?`, id))
	if err != nil {
		return ChallengeConfig{}, fmt.Errorf("store: config %d: %w", id, notFound(err))
	}
	return c, nil
}

// ConfigByName returns the config with that name in any ASCII case, or
// ErrNotFound.
func (db *DB) ConfigByName(ctx context.Context, name string) (ChallengeConfig, error) {
	c, err := scanConfig(db.r.QueryRowContext(ctx, `SELECT `+configCols+` FROM managed_challenges WHERE name = ?`, name))
	if err != nil {
		return ChallengeConfig{}, fmt.Errorf("store: config %q: %w", name, notFound(err))
	}
	return c, nil
}

// ListConfigs returns every config, ordered by id (creation).
func (db *DB) ListConfigs(ctx context.Context) ([]ChallengeConfig, error) {
	cs, err := listConfigs(ctx, readQueryer{db}, qListConfigs)
	if err != nil {
		return nil, fmt.Errorf("store: list configs: %w", err)
	}
	return cs, nil
}

func listConfigs(ctx context.Context, q queryer, query string, args ...any) ([]ChallengeConfig, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanConfig)
}
