package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acmehub/acmehub/rules"
)

// Delegation binds a domain to a label in the hub zone: the domain's owner
// adds _acme-challenge.<Domain>. CNAME <Name> once, and the hub serves the
// TXT values at Name. Name is zone content (a zone name, see AddName).
type Delegation struct {
	ID int64 // assigned by CreateDelegation; never reused

	// Domain is the base domain: lower-case A-labels without a trailing
	// dot, as rules.NormalizeIdentifier returns it (CreateDelegation
	// normalises it; a wildcard is refused). Unique. "" means not known
	// yet (stored NULL): an acme-dns account registered without a domain
	// (see CreateACMEDNSAccount and BindACMEDNSDomain).
	Domain string

	// Label is the first label of Name: 1-63 bytes of lower-case letters,
	// digits, '-' and '_'. Unique. CreateDelegation derives it from Name
	// when empty. Choosing it (unguessable, say) is the caller's job.
	Label string

	// Name is the label's fqdn in the hub zone: lower-case with a trailing
	// dot (ValidateName), Label followed by the zone. Unique.
	Name string

	ConfigID int64 // the managed challenge config it is bound to; 0: none
	// OwnerPrincipalID is the owner of the acme-dns account whose
	// registration without a domain created the label (kept when a domain
	// is bound later); 0 otherwise. It grants nothing.
	OwnerPrincipalID int64

	CreatedAt  time.Time // set by CreateDelegation
	CreatedBy  string    // principal or token id; at most 256 bytes
	LastUsedAt time.Time // zero: never; updated lazily by TouchDelegation

	// Check is the last delegation check (zero State: never checked); only
	// RecordDelegationCheck writes it.
	Check DelegationCheck
}

// normalize validates d and fills in Domain's canonical form and Label.
// An empty Domain (not known yet) is valid only if domainless.
func (d *Delegation) normalize(domainless bool) error {
	var errs []error
	if !domainless || d.Domain != "" {
		if base, wild, err := rules.NormalizeIdentifier(d.Domain); err != nil {
			errs = append(errs, fmt.Errorf("domain: %w", err))
		} else if wild {
			errs = append(errs, fmt.Errorf("domain %q: a wildcard cannot be delegated; delegate the base name", d.Domain))
		} else {
			d.Domain = base
		}
	}
	if err := ValidateName(d.Name); err != nil {
		errs = append(errs, err)
	} else {
		first, rest, _ := strings.Cut(d.Name, ".")
		if d.Label == "" {
			d.Label = first
		}
		if d.Label != first || rest == "" {
			errs = append(errs, fmt.Errorf("name %q is not label %q followed by the hub zone", d.Name, d.Label))
		}
	}
	if d.ConfigID < 0 || d.OwnerPrincipalID < 0 {
		errs = append(errs, errors.New("negative id"))
	}
	errs = append(errs, validateCreatedBy(d.CreatedBy))
	return errors.Join(errs...)
}

const delegationCols = `id, domain, label, name, config_id, owner_principal_id, created_at, created_by, last_used_at, ` + checkCols

func scanDelegation(s scanner) (Delegation, error) {
	var d Delegation
	var domain sql.NullString
	var config, owner, used sql.NullInt64
	var created int64
	var ck checkScan
	if err := s.Scan(append([]any{&d.ID, &domain, &d.Label, &d.Name, &config, &owner, &created, &d.CreatedBy, &used}, ck.dest()...)...); err != nil {
		return Delegation{}, err
	}
	d.Check = ck.check()
	d.Domain, d.ConfigID, d.OwnerPrincipalID = domain.String, config.Int64, owner.Int64
	d.CreatedAt, d.LastUsedAt = fromMilli(created), fromNullMilli(used)
	return d, nil
}

// CreateDelegation stores a delegation and adds its Name to the zone in
// the same transaction (OpAddName and a serial bump, unless the name
// already existed; see AddName). It is idempotent by domain: if d.Domain
// is delegated already it returns that delegation with created false and
// changes nothing, whatever d's other fields. A label or name in use by
// another domain fails with ErrConflict, an unknown ConfigID or
// OwnerPrincipalID with ErrNotFound. It bumps the "delegations"
// generation when it creates one.
func (db *DB) CreateDelegation(ctx context.Context, d Delegation) (_ Delegation, created bool, err error) {
	if err := d.normalize(false); err != nil {
		return Delegation{}, false, fmt.Errorf("store: create delegation of %q: %w: %w", d.Domain, ErrInvalid, err)
	}
	var out Delegation
	_, err = db.write(ctx, "create delegation", func(w *wtx) error {
		var err error
		out, created, err = w.createDelegation(d)
		return err
	})
	if err != nil {
		return Delegation{}, false, err
	}
	return out, created, nil
}

// createDelegation is CreateDelegation inside the writer's transaction,
// for a normalised d; a domainless d always creates a new delegation.
func (w *wtx) createDelegation(d Delegation) (Delegation, bool, error) {
	if d.Domain != "" {
		existing, err := scanDelegation(w.queryRow(`SELECT `+delegationCols+` FROM delegations WHERE domain = ?`, d.Domain))
		if err == nil {
			return existing, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Delegation{}, false, fmt.Errorf("store: create delegation of %s: %w", d.Domain, err)
		}
	}
	got, err := scanDelegation(w.queryRow(`INSERT INTO delegations (domain, label, name, config_id, owner_principal_id,
			created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+delegationCols,
		sql.NullString{String: d.Domain, Valid: d.Domain != ""}, d.Label, d.Name, nullID(d.ConfigID), nullID(d.OwnerPrincipalID),
		w.now.UnixMilli(), d.CreatedBy))
	if err != nil {
		return Delegation{}, false, fmt.Errorf("store: create delegation of %q: %w", d.Domain, sqlErr(err))
	}
	if _, err := w.addName(d.Name, d.CreatedBy); err != nil {
		return Delegation{}, false, fmt.Errorf("store: create delegation of %q: add name %s: %w", d.Domain, d.Name, err)
	}
	if _, err := w.bumpGeneration(GenDelegations); err != nil {
		return Delegation{}, false, err
	}
	return got, true, nil
}

// DeleteDelegation deletes a delegation and removes its Name from the zone
// in the same transaction, as RemoveName does: OpRemoveValue for each value
// at it, then OpRemoveName, with a serial bump. Its acme-dns accounts go
// with it. An unknown id fails with ErrNotFound. It bumps the
// "delegations" generation, and "acme_dns" if it had accounts.
func (db *DB) DeleteDelegation(ctx context.Context, id int64) error {
	_, err := db.write(ctx, "delete delegation", func(w *wtx) error {
		return w.deleteDelegation(id)
	})
	return err
}

// deleteDelegation is DeleteDelegation inside the writer's transaction.
func (w *wtx) deleteDelegation(id int64) error {
	var accounts int
	if err := w.queryRow(`SELECT count(*) FROM acme_dns_accounts WHERE delegation_id = ?`, id).Scan(&accounts); err != nil {
		return fmt.Errorf("store: delete delegation %d: count accounts: %w", id, err)
	}
	var name string
	err := w.queryRow(`DELETE FROM delegations WHERE id = ? RETURNING name`, id).Scan(&name)
	if err != nil {
		return fmt.Errorf("store: delete delegation %d: %w", id, notFound(err))
	}
	if _, err := w.removeName(name); err != nil {
		return fmt.Errorf("store: delete delegation %d: remove name %s: %w", id, name, err)
	}
	gens := []string{GenDelegations}
	if accounts > 0 {
		gens = append(gens, GenACMEDNS)
	}
	return w.bumpGenerations(gens...)
}

// DelegationByDomain returns the delegation of a domain (normalised as by
// CreateDelegation), or ErrNotFound.
func (db *DB) DelegationByDomain(ctx context.Context, domain string) (Delegation, error) {
	base, wild, err := rules.NormalizeIdentifier(domain)
	if err != nil || wild {
		return Delegation{}, fmt.Errorf("store: delegation of %q: %w: not a base domain", domain, ErrInvalid)
	}
	d, err := scanDelegation(db.queryRow(ctx, qDelegationByDomain, base))
	if err != nil {
		return Delegation{}, fmt.Errorf("store: delegation of %s: %w", base, notFound(err))
	}
	return d, nil
}

// DelegationByName returns the delegation whose Name is nameOrLabel (an
// fqdn in the hub zone, any case, trailing dot optional) or, if it has no
// dot, whose Label it is; or ErrNotFound.
func (db *DB) DelegationByName(ctx context.Context, nameOrLabel string) (Delegation, error) {
	key := strings.ToLower(nameOrLabel)
	q := qDelegationByLabel
	if strings.Contains(key, ".") {
		q = qDelegationByName
		if !strings.HasSuffix(key, ".") {
			key += "."
		}
	}
	d, err := scanDelegation(db.queryRow(ctx, q, key))
	if err != nil {
		return Delegation{}, fmt.Errorf("store: delegation %q: %w", nameOrLabel, notFound(err))
	}
	return d, nil
}

// DelegationFilter selects delegations for ListDelegations; zero fields
// select everything.
type DelegationFilter struct {
	ConfigID         int64  // > 0: only those bound to this config
	Unbound          bool   // only those bound to no config (ConfigID must be 0)
	OwnerPrincipalID int64  // > 0: only those owned by this principal
	Under            string // a domain: only it and the domains below it
	AfterID          int64  // paging: only ids above this (pass the last ID seen)
	Limit            int    // at most this many (0: no limit)
	// CheckState: only those whose last check found this state;
	// CheckUnchecked ("unchecked") selects those never checked.
	CheckState string
	// UsedBefore: only those last used (or, never used, created) before
	// this time: the unused ones.
	UsedBefore time.Time
}

// ListDelegations returns the delegations the filter selects, ordered by
// id.
func (db *DB) ListDelegations(ctx context.Context, f DelegationFilter) ([]Delegation, error) {
	if f.Limit < 0 || f.ConfigID < 0 || f.OwnerPrincipalID < 0 || (f.Unbound && f.ConfigID != 0) {
		return nil, fmt.Errorf("store: list delegations: %w: %+v", ErrInvalid, f)
	}
	var where []string
	var args []any
	if f.ConfigID > 0 {
		where, args = append(where, `config_id = ?`), append(args, f.ConfigID)
	}
	if f.Unbound {
		where = append(where, `config_id IS NULL`)
	}
	if f.OwnerPrincipalID > 0 {
		where, args = append(where, `owner_principal_id = ?`), append(args, f.OwnerPrincipalID)
	}
	if f.Under != "" {
		base, wild, err := rules.NormalizeIdentifier(f.Under)
		if err != nil || wild {
			return nil, fmt.Errorf("store: list delegations under %q: %w: not a base domain", f.Under, ErrInvalid)
		}
		// Compared whole, so example.org does not select badexample.org.
		where = append(where, `(domain = ? OR substr(domain, -length(?) - 1) = '.' || ?)`)
		args = append(args, base, base, base)
	}
	if f.AfterID > 0 {
		where, args = append(where, `id > ?`), append(args, f.AfterID)
	}
	where, args = checkFilter(f, where, args)
	q := `SELECT ` + delegationCols + ` FROM delegations`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `) //nolint:gosec // joins constant conditions; every value is a bound parameter
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q, args = q+` LIMIT ?`, append(args, f.Limit)
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list delegations: %w", err)
	}
	out, err := collect(rows, scanDelegation)
	if err != nil {
		return nil, fmt.Errorf("store: list delegations: %w", err)
	}
	return out, nil
}

// MoveDelegation binds a delegation to config configID (0: to none). An
// unknown delegation or config fails with ErrNotFound. It bumps the
// "delegations" generation.
func (db *DB) MoveDelegation(ctx context.Context, id, configID int64) error {
	if configID < 0 {
		return fmt.Errorf("store: move delegation %d: %w: config id %d", id, ErrInvalid, configID)
	}
	_, err := db.write(ctx, "move delegation", func(w *wtx) error {
		res, err := w.exec(`UPDATE delegations SET config_id = ? WHERE id = ?`, nullID(configID), id)
		if err != nil {
			return fmt.Errorf("store: move delegation %d to config %d: %w", id, configID, sqlErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: move delegation %d: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: move delegation %d: %w", id, ErrNotFound)
		}
		_, err = w.bumpGeneration(GenDelegations)
		return err
	})
	return err
}

// TouchDelegation records that the delegation was used at at. Like
// TouchToken it is best effort: coalesced in memory, written by the
// writer's next batch (and on Close), no generation bump.
func (db *DB) TouchDelegation(ctx context.Context, id int64, at time.Time) error {
	if err := db.touch(ctx, func() {
		if prev, ok := db.delegationTouches[id]; !ok || at.After(prev) {
			db.delegationTouches[id] = at
		}
	}); err != nil {
		return fmt.Errorf("store: touch delegation %d: %w", id, err)
	}
	return nil
}
