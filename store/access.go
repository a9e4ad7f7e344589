package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/acmehub/acmehub/rules"
)

// Generation names of the access model's cached tables (see Generation);
// every write to them bumps its counter in the same transaction.
const (
	// GenPrincipals covers principals and their role assignments.
	GenPrincipals = "principals"
	// GenConfigs covers managed challenge configs.
	GenConfigs = "configs"
	// GenDelegations covers delegations (their zone names are zone
	// content and reach the DNS view through the journal as well).
	GenDelegations = "delegations"
)

// Principal kinds.
const (
	PrincipalUser = "user"
	PrincipalApp  = "app"
)

// Role names as stored. The schema's CHECK constraints (0002_access.sql)
// hold the same list; the service gives them meaning.
const (
	RoleAdmin             = "admin"
	RoleChallengeAdmin    = "managed_challenge_admin"
	RoleChallengeConsumer = "managed_challenge_consumer"
)

// knownRoles is the sorted list of roles, for validating a token's Roles
// (role assignments are checked by the schema).
var knownRoles = []string{RoleAdmin, RoleChallengeAdmin, RoleChallengeConsumer}

// Length limits of free-form fields.
const (
	maxPrincipalName = 128
	maxDescription   = 1024
)

// Principal is a user or an app (service principal). It holds roles
// through role assignments and owns API tokens.
type Principal struct {
	ID int64 // assigned by CreatePrincipal; never reused

	// Kind is PrincipalUser or PrincipalApp (checked by the schema).
	Kind string

	// Name is unique regardless of ASCII case: 1-128 bytes of ASCII
	// letters, digits, '.', '_', '@' and '-', starting with a letter or
	// digit. It cannot be changed.
	Name string

	// Description is free text: at most 1024 bytes of UTF-8 without
	// control characters.
	Description string

	// Enabled: the service refuses every token of a disabled principal.
	// The zero value creates a disabled principal.
	Enabled bool

	CreatedAt time.Time // set by CreatePrincipal
	UpdatedAt time.Time // set by CreatePrincipal and UpdatePrincipal
}

// RoleAssignment is one role held by a principal, optionally restricted to
// some domains.
type RoleAssignment struct {
	ID          int64 // assigned by AddRoleAssignment; never reused
	PrincipalID int64

	// Role is RoleAdmin, RoleChallengeAdmin or RoleChallengeConsumer;
	// another value is refused by the schema (ErrInvalid).
	Role string

	// Domains restricts the role to the base names this domain match rule
	// allows; "" means every domain. AddRoleAssignment stores (and returns)
	// the rule's canonical form (rules.Rule.String), so two spellings of
	// one rule are the same assignment.
	Domains string

	CreatedAt time.Time // set by AddRoleAssignment
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// sqlErr marks a constraint violation with the store's sentinel: a unique
// or primary key violation is ErrConflict, a CHECK or NOT NULL violation
// ErrInvalid, a foreign key violation ErrNotFound (the row referred to
// does not exist). Other errors pass unchanged.
func sqlErr(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w: a row it refers to does not exist: %w", ErrNotFound, err)
	}
	return err
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// validateIdent checks a name used as an identifier (principals, configs):
// 1 to limit bytes of ASCII letters, digits, '.', '_', '@' and '-',
// starting with a letter or digit.
func validateIdent(what, s string, limit int) error {
	if s == "" || len(s) > limit {
		return fmt.Errorf("%s: want 1 to %d bytes, got %d", what, limit, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '@' && c != '-') {
			return fmt.Errorf("%s %q: only ASCII letters, digits, '.', '_', '@' and '-', starting with a letter or digit", what, s)
		}
	}
	return nil
}

// validateText checks free text: valid UTF-8, at most limit bytes, no
// control characters.
func validateText(what, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%s: %d bytes, at most %d", what, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", what)
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%s: control character at byte %d", what, i)
		}
	}
	return nil
}

// canonicalRule returns the canonical form of a domain match rule, or
// ErrInvalid.
func canonicalRule(what, s string) (string, error) {
	r, err := rules.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	return r.String(), nil
}

// canonicalRoles sorts and de-duplicates a token's roles and checks each.
func canonicalRoles(roles []string) ([]string, error) {
	out := slices.Clone(roles)
	slices.Sort(out)
	out = slices.Compact(out)
	for _, r := range out {
		if !slices.Contains(knownRoles, r) {
			return nil, fmt.Errorf("unknown role %q (want one of %s)", r, strings.Join(knownRoles, ", "))
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// splitList reads a stored comma list; "" is nil.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// nullID stores an optional id as NULL when 0.
func nullID(id int64) sql.NullInt64 {
	return sql.NullInt64{Int64: id, Valid: id != 0}
}

func (p Principal) validate() error {
	return errors.Join(
		validateIdent("name", p.Name, maxPrincipalName),
		validateText("description", p.Description, maxDescription),
	)
}

const principalCols = `id, kind, name, description, enabled, created_at, updated_at`

func scanPrincipal(s scanner) (Principal, error) {
	var p Principal
	var created, updated int64
	if err := s.Scan(&p.ID, &p.Kind, &p.Name, &p.Description, &p.Enabled, &created, &updated); err != nil {
		return Principal{}, err
	}
	p.CreatedAt, p.UpdatedAt = fromMilli(created), fromMilli(updated)
	return p, nil
}

// CreatePrincipal stores a new principal (p.ID, CreatedAt and UpdatedAt
// are ignored) and returns it as stored. A name in use, in any ASCII
// case, fails with ErrConflict; an unknown kind with ErrInvalid. It bumps
// the "principals" generation.
func (db *DB) CreatePrincipal(ctx context.Context, p Principal) (Principal, error) {
	if err := p.validate(); err != nil {
		return Principal{}, fmt.Errorf("store: create principal %q: %w: %w", p.Name, ErrInvalid, err)
	}
	var out Principal
	_, err := db.write(ctx, "create principal", func(w *wtx) error {
		now := w.now.UnixMilli()
		got, err := scanPrincipal(w.queryRow(`INSERT INTO principals (kind, name, description, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING `+principalCols, p.Kind, p.Name, p.Description, p.Enabled, now, now))
		if err != nil {
			return fmt.Errorf("store: create principal %q: %w", p.Name, sqlErr(err))
		}
		if _, err := w.bumpGeneration(GenPrincipals); err != nil {
			return err
		}
		out = got
		return nil
	})
	if err != nil {
		return Principal{}, err
	}
	return out, nil
}

// Principal returns the principal with that id, or ErrNotFound.
func (db *DB) Principal(ctx context.Context, id int64) (Principal, error) {
	p, err := scanPrincipal(db.queryRow(ctx, qPrincipal, id))
	if err != nil {
		return Principal{}, fmt.Errorf("store: principal %d: %w", id, notFound(err))
	}
	return p, nil
}

// PrincipalByName returns the principal with that name in any ASCII case,
// or ErrNotFound.
func (db *DB) PrincipalByName(ctx context.Context, name string) (Principal, error) {
	p, err := scanPrincipal(db.r.QueryRowContext(ctx, `SELECT `+principalCols+` FROM principals WHERE name = ?`, name))
	if err != nil {
		return Principal{}, fmt.Errorf("store: principal %q: %w", name, notFound(err))
	}
	return p, nil
}

// ListPrincipals returns every principal, ordered by name.
func (db *DB) ListPrincipals(ctx context.Context) ([]Principal, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+principalCols+` FROM principals ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list principals: %w", err)
	}
	out, err := collect(rows, scanPrincipal)
	if err != nil {
		return nil, fmt.Errorf("store: list principals: %w", err)
	}
	return out, nil
}

// UpdatePrincipal sets the description and enabled flag of principal p.ID
// (kind and name cannot change) and returns it as stored, or ErrNotFound.
// It bumps the "principals" generation.
func (db *DB) UpdatePrincipal(ctx context.Context, p Principal) (Principal, error) {
	if err := validateText("description", p.Description, maxDescription); err != nil {
		return Principal{}, fmt.Errorf("store: update principal %d: %w: %w", p.ID, ErrInvalid, err)
	}
	var out Principal
	_, err := db.write(ctx, "update principal", func(w *wtx) error {
		got, err := scanPrincipal(w.queryRow(`UPDATE principals SET description = ?, enabled = ?, updated_at = ?
			WHERE id = ? RETURNING `+principalCols, p.Description, p.Enabled, w.now.UnixMilli(), p.ID))
		if err != nil {
			return fmt.Errorf("store: update principal %d: %w", p.ID, notFound(sqlErr(err)))
		}
		if _, err := w.bumpGeneration(GenPrincipals); err != nil {
			return err
		}
		out = got
		return nil
	})
	if err != nil {
		return Principal{}, err
	}
	return out, nil
}

// DeletePrincipal deletes a principal together with its role assignments,
// API tokens and acme-dns accounts, or fails with ErrNotFound. Delegations
// it owned lose their owner (they stay in the zone), except the domainless
// delegations its acme-dns accounts leave without any account: nobody could
// use or find those labels any more, so they are deleted with their zone
// names in the same transaction (journalled). It bumps the "principals" and
// "tokens" generations, "delegations" if it owned or removed any, and
// "acme_dns" if it had accounts. Whether the last admin may go is the
// service's decision.
func (db *DB) DeletePrincipal(ctx context.Context, id int64) error {
	_, err := db.write(ctx, "delete principal", func(w *wtx) error {
		var owned, accounts int
		if err := w.queryRow(`SELECT (SELECT count(*) FROM delegations WHERE owner_principal_id = ?),
				(SELECT count(*) FROM acme_dns_accounts WHERE owner_principal_id = ?)`, id, id).Scan(&owned, &accounts); err != nil {
			return fmt.Errorf("store: delete principal %d: owned delegations: %w", id, err)
		}
		orphans, err := w.domainlessOf(id)
		if err != nil {
			return fmt.Errorf("store: delete principal %d: %w", id, err)
		}
		res, err := w.exec(`DELETE FROM principals WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("store: delete principal %d: %w", id, sqlErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: delete principal %d: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: delete principal %d: %w", id, ErrNotFound)
		}
		removed := false
		for _, d := range orphans {
			gone, err := w.deleteIfUnused(d)
			if err != nil {
				return fmt.Errorf("store: delete principal %d: %w", id, err)
			}
			removed = removed || gone
		}
		gens := []string{GenPrincipals, GenTokens}
		if owned > 0 || removed {
			gens = append(gens, GenDelegations)
		}
		if accounts > 0 {
			gens = append(gens, GenACMEDNS)
		}
		return w.bumpGenerations(gens...)
	})
	return err
}

// bumpGenerations bumps each named generation.
func (w *wtx) bumpGenerations(names ...string) error {
	for _, n := range names {
		if _, err := w.bumpGeneration(n); err != nil {
			return err
		}
	}
	return nil
}

const assignmentCols = `id, principal_id, role, domains, created_at`

func scanAssignment(s scanner) (RoleAssignment, error) {
	var a RoleAssignment
	var created int64
	if err := s.Scan(&a.ID, &a.PrincipalID, &a.Role, &a.Domains, &created); err != nil {
		return RoleAssignment{}, err
	}
	a.CreatedAt = fromMilli(created)
	return a, nil
}

// AddRoleAssignment gives principal a.PrincipalID the role a.Role,
// restricted to a.Domains (canonicalised; "" = every domain), and returns
// the stored assignment. An unknown role or an invalid rule fails with
// ErrInvalid, an unknown principal with ErrNotFound, the same
// (principal, role, domains) twice with ErrConflict. It bumps the
// "principals" generation.
func (db *DB) AddRoleAssignment(ctx context.Context, a RoleAssignment) (RoleAssignment, error) {
	if a.Domains != "" {
		d, err := canonicalRule("domains", a.Domains)
		if err != nil {
			return RoleAssignment{}, fmt.Errorf("store: add role %q to principal %d: %w", a.Role, a.PrincipalID, err)
		}
		a.Domains = d
	}
	var out RoleAssignment
	_, err := db.write(ctx, "add role assignment", func(w *wtx) error {
		got, err := scanAssignment(w.queryRow(`INSERT INTO role_assignments (principal_id, role, domains, created_at)
			VALUES (?, ?, ?, ?) RETURNING `+assignmentCols, a.PrincipalID, a.Role, a.Domains, w.now.UnixMilli()))
		if err != nil {
			return fmt.Errorf("store: add role %q to principal %d: %w", a.Role, a.PrincipalID, sqlErr(err))
		}
		if _, err := w.bumpGeneration(GenPrincipals); err != nil {
			return err
		}
		out = got
		return nil
	})
	if err != nil {
		return RoleAssignment{}, err
	}
	return out, nil
}

// RemoveRoleAssignment deletes a role assignment, or fails with
// ErrNotFound. It bumps the "principals" generation.
func (db *DB) RemoveRoleAssignment(ctx context.Context, id int64) error {
	_, err := db.write(ctx, "remove role assignment", func(w *wtx) error {
		res, err := w.exec(`DELETE FROM role_assignments WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("store: remove role assignment %d: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: remove role assignment %d: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: remove role assignment %d: %w", id, ErrNotFound)
		}
		_, err = w.bumpGeneration(GenPrincipals)
		return err
	})
	return err
}

// RoleAssignments returns the role assignments of a principal (0: of
// every principal), ordered by principal, role, domains. An unknown
// principal has none; that is not an error.
func (db *DB) RoleAssignments(ctx context.Context, principalID int64) ([]RoleAssignment, error) {
	q, args := `SELECT `+assignmentCols+` FROM role_assignments ORDER BY principal_id, role, domains, id`, []any(nil)
	if principalID != 0 {
		q, args = qRoleAssignmentsOf, []any{principalID}
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: role assignments of %d: %w", principalID, err)
	}
	out, err := collect(rows, scanAssignment)
	if err != nil {
		return nil, fmt.Errorf("store: role assignments of %d: %w", principalID, err)
	}
	return out, nil
}
