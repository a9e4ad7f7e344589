package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acmehub/acmehub/rules"
)

// GenACMEDNS covers acme-dns accounts: it is bumped by every account
// change (create, delete, cascades from deleting a delegation or a
// principal) and by binding a domain to an account's delegation.
const GenACMEDNS = "acme_dns"

// ErrTooManyAccounts means the owner already holds the most acme-dns
// accounts allowed; nothing was stored.
var ErrTooManyAccounts = errors.New("too many acme-dns accounts")

// ACMEDNSAccount is an acme-dns credential on a delegation's label, owned
// by a principal. The store keeps the password only hashed and sealed
// (both made by the caller with internal/secret).
type ACMEDNSAccount struct {
	Username         string // a lower-case UUID (36 bytes); unique
	DelegationID     int64
	OwnerPrincipalID int64
	PasswordHash     []byte // keyed hash; never the password
	PasswordSealed   []byte // the password sealed; opened only to show it again
	// AllowFrom lists the source prefixes /update is accepted from; empty
	// means any. Stored canonical like Token.AllowCIDRs.
	AllowFrom  []string
	CreatedAt  time.Time // set by CreateACMEDNSAccount
	CreatedBy  string    // at most 256 bytes
	LastUsedAt time.Time // zero: never; updated lazily by TouchACMEDNSAccount

	// Delegation is the account's delegation, read with it.
	Delegation Delegation
}

// ValidUsername reports whether s has the shape of an acme-dns username: a
// UUID in lower case, 8-4-4-4-12 hex digits.
func ValidUsername(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

func (a *ACMEDNSAccount) normalize() error {
	var errs []error
	if !ValidUsername(a.Username) {
		errs = append(errs, errors.New("username: want a lower-case UUID"))
	}
	if len(a.PasswordHash) == 0 || len(a.PasswordSealed) == 0 {
		errs = append(errs, errors.New("password hash and sealed password are required"))
	}
	if a.OwnerPrincipalID <= 0 {
		errs = append(errs, errors.New("an owning principal is required"))
	}
	if a.DelegationID < 0 {
		errs = append(errs, errors.New("delegation id: want 0 (a new delegation) or an existing one's id"))
	}
	cidrs, err := canonicalCIDRs(a.AllowFrom)
	if err != nil {
		errs = append(errs, fmt.Errorf("allow from: %w", err))
	}
	a.AllowFrom = cidrs
	errs = append(errs, validateCreatedBy(a.CreatedBy))
	return errors.Join(errs...)
}

const acmeDNSCols = `a.username, a.delegation_id, a.owner_principal_id, a.password_hash, a.password_sealed, a.allow_from,
	a.created_at, a.created_by, a.last_used_at, d.id, d.domain, d.label, d.name, d.config_id, d.owner_principal_id,
	d.created_at, d.created_by, d.last_used_at`

const acmeDNSFrom = ` FROM acme_dns_accounts a JOIN delegations d ON d.id = a.delegation_id`

// qACMEDNSByUsername reads one account with its delegation.
const qACMEDNSByUsername = `SELECT ` + acmeDNSCols + acmeDNSFrom + ` WHERE a.username = ?`

// qACMEDNSAccount is the /update hot path's read (on a cache miss): the
// account with its delegation, its owner and the owner's role assignments
// (as a JSON array) in one query, so a known username costs the one read
// an unknown one does.
const qACMEDNSAccount = `SELECT ` + acmeDNSCols + `, p.id, p.kind, p.name, p.description, p.enabled, p.created_at, p.updated_at,
	(SELECT json_group_array(json_object('id', r.id, 'role', r.role, 'domains', r.domains, 'created_at', r.created_at))
		FROM role_assignments r WHERE r.principal_id = a.owner_principal_id)` + acmeDNSFrom + `
	LEFT JOIN principals p ON p.id = a.owner_principal_id WHERE a.username = ?`

func scanACMEDNS(s scanner) (ACMEDNSAccount, error) {
	var a ACMEDNSAccount
	var allow string
	var created, dCreated int64
	var used, dConfig, dOwner, dUsed sql.NullInt64
	var dDomain sql.NullString
	d := &a.Delegation
	if err := s.Scan(&a.Username, &a.DelegationID, &a.OwnerPrincipalID, &a.PasswordHash, &a.PasswordSealed, &allow,
		&created, &a.CreatedBy, &used, &d.ID, &dDomain, &d.Label, &d.Name, &dConfig, &dOwner,
		&dCreated, &d.CreatedBy, &dUsed); err != nil {
		return ACMEDNSAccount{}, err
	}
	a.AllowFrom = splitList(allow)
	a.CreatedAt, a.LastUsedAt = fromMilli(created), fromNullMilli(used)
	d.Domain, d.ConfigID, d.OwnerPrincipalID = dDomain.String, dConfig.Int64, dOwner.Int64
	d.CreatedAt, d.LastUsedAt = fromMilli(dCreated), fromNullMilli(dUsed)
	return a, nil
}

// CreateACMEDNSAccount stores a new account. With a.DelegationID 0 its
// delegation is d: when d.Domain is delegated already the account shares
// that delegation (and its label, so an existing CNAME keeps working),
// otherwise d is created as CreateDelegation does (zone name journalled);
// a d without a domain always creates a new domainless delegation. With
// maxPerOwner > 0 an owner holding that many accounts already is refused
// with ErrTooManyAccounts. Everything is one transaction, so concurrent
// registrations cannot overshoot the cap or split a domain over two
// delegations. It returns the account as stored, with its delegation,
// and whether the delegation was created. An unknown owner or delegation
// fails with ErrNotFound, a username in use with ErrConflict. It bumps
// the "acme_dns" generation, and "delegations" when it creates one.
func (db *DB) CreateACMEDNSAccount(ctx context.Context, a ACMEDNSAccount, d Delegation, maxPerOwner int) (_ ACMEDNSAccount, created bool, err error) {
	if err := a.normalize(); err != nil {
		return ACMEDNSAccount{}, false, fmt.Errorf("store: create acme-dns account: %w: %w", ErrInvalid, err)
	}
	if a.DelegationID == 0 {
		if err := d.normalize(true); err != nil {
			return ACMEDNSAccount{}, false, fmt.Errorf("store: create acme-dns account: delegation of %q: %w: %w", d.Domain, ErrInvalid, err)
		}
	}
	var out ACMEDNSAccount
	_, err = db.write(ctx, "create acme-dns account", func(w *wtx) error {
		if maxPerOwner > 0 {
			var n int
			if err := w.queryRow(`SELECT count(*) FROM acme_dns_accounts WHERE owner_principal_id = ?`, a.OwnerPrincipalID).Scan(&n); err != nil {
				return fmt.Errorf("store: create acme-dns account: count: %w", err)
			}
			if n >= maxPerOwner {
				return fmt.Errorf("store: create acme-dns account: %w: the owner holds %d, at most %d", ErrTooManyAccounts, n, maxPerOwner)
			}
		}
		delegationID := a.DelegationID
		if delegationID == 0 {
			got, made, err := w.createDelegation(d)
			if err != nil {
				return err
			}
			delegationID, created = got.ID, made
		}
		if _, err := w.exec(`INSERT INTO acme_dns_accounts (username, delegation_id, owner_principal_id, password_hash,
				password_sealed, allow_from, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Username, delegationID, a.OwnerPrincipalID, a.PasswordHash, a.PasswordSealed, strings.Join(a.AllowFrom, ","),
			w.now.UnixMilli(), a.CreatedBy); err != nil {
			return fmt.Errorf("store: create acme-dns account: %w", sqlErr(err))
		}
		got, err := scanACMEDNS(w.queryRow(qACMEDNSByUsername, a.Username))
		if err != nil {
			return fmt.Errorf("store: create acme-dns account: read back: %w", err)
		}
		out = got
		_, err = w.bumpGeneration(GenACMEDNS)
		return err
	})
	if err != nil {
		return ACMEDNSAccount{}, false, err
	}
	return out, created, nil
}

// ACMEDNSAccountByUsername returns an account with its delegation, or
// ErrNotFound.
func (db *DB) ACMEDNSAccountByUsername(ctx context.Context, username string) (ACMEDNSAccount, error) {
	a, err := scanACMEDNS(db.queryRow(ctx, qACMEDNSByUsername, username))
	if err != nil {
		return ACMEDNSAccount{}, fmt.Errorf("store: acme-dns account %q: %w", username, notFound(err))
	}
	return a, nil
}

// ACMEDNSCredential is what /update checks: an account, its owner as it
// is now and the owner's role assignments.
type ACMEDNSCredential struct {
	Account    ACMEDNSAccount
	Owner      Principal
	OwnerFound bool // false: the owner is gone (the account goes with it)
	OwnerRoles []RoleAssignment
}

// ACMEDNSCredentialByUsername returns an account with its delegation, its
// owner and the owner's role assignments, read in one query, or
// ErrNotFound.
func (db *DB) ACMEDNSCredentialByUsername(ctx context.Context, username string) (ACMEDNSCredential, error) {
	var c ACMEDNSCredential
	var pID, pCreated, pUpdated sql.NullInt64
	var pKind, pName, pDesc sql.NullString
	var pEnabled sql.NullBool
	var roles string
	a, err := scanACMEDNS(extraScanner{db.queryRow(ctx, qACMEDNSAccount, username),
		[]any{&pID, &pKind, &pName, &pDesc, &pEnabled, &pCreated, &pUpdated, &roles}})
	if err != nil {
		return c, fmt.Errorf("store: acme-dns account %q: %w", username, notFound(err))
	}
	c.Account = a
	if pID.Valid {
		c.OwnerFound = true
		c.Owner = Principal{ID: pID.Int64, Kind: pKind.String, Name: pName.String, Description: pDesc.String,
			Enabled: pEnabled.Bool, CreatedAt: fromMilli(pCreated.Int64), UpdatedAt: fromMilli(pUpdated.Int64)}
	}
	var rs []struct {
		ID        int64  `json:"id"`
		Role      string `json:"role"`
		Domains   string `json:"domains"`
		CreatedAt int64  `json:"created_at"`
	}
	if err := json.Unmarshal([]byte(roles), &rs); err != nil {
		return ACMEDNSCredential{}, fmt.Errorf("store: acme-dns account %q: owner's roles: %w", username, err)
	}
	for _, r := range rs {
		c.OwnerRoles = append(c.OwnerRoles, RoleAssignment{ID: r.ID, PrincipalID: a.OwnerPrincipalID, Role: r.Role,
			Domains: r.Domains, CreatedAt: fromMilli(r.CreatedAt)})
	}
	return c, nil
}

// extraScanner scans a row's columns past the first ones into extra.
type extraScanner struct {
	s     scanner
	extra []any
}

func (e extraScanner) Scan(dest ...any) error { return e.s.Scan(append(dest, e.extra...)...) }

// ACMEDNSFilter selects accounts for ListACMEDNSAccounts; zero fields
// select everything.
type ACMEDNSFilter struct {
	OwnerPrincipalID int64  // > 0: only this principal's
	DelegationID     int64  // > 0: only those on this delegation
	Domain           string // only those whose delegation has this base domain
	Bound            bool   // only those whose delegation has a domain
	AfterUsername    string // paging: only usernames above this
	Limit            int    // at most this many (0: no limit)
}

// ListACMEDNSAccounts returns the accounts the filter selects, with their
// delegations, ordered by username.
func (db *DB) ListACMEDNSAccounts(ctx context.Context, f ACMEDNSFilter) ([]ACMEDNSAccount, error) {
	if f.Limit < 0 || f.OwnerPrincipalID < 0 || f.DelegationID < 0 {
		return nil, fmt.Errorf("store: list acme-dns accounts: %w: %+v", ErrInvalid, f)
	}
	var where []string
	var args []any
	if f.OwnerPrincipalID > 0 {
		where, args = append(where, `a.owner_principal_id = ?`), append(args, f.OwnerPrincipalID)
	}
	if f.DelegationID > 0 {
		where, args = append(where, `a.delegation_id = ?`), append(args, f.DelegationID)
	}
	if f.Domain != "" {
		base, wild, err := rules.NormalizeIdentifier(f.Domain)
		if err != nil || wild {
			return nil, fmt.Errorf("store: list acme-dns accounts of %q: %w: not a base domain", f.Domain, ErrInvalid)
		}
		where, args = append(where, `d.domain = ?`), append(args, base)
	}
	if f.Bound {
		where = append(where, `d.domain IS NOT NULL`)
	}
	if f.AfterUsername != "" {
		where, args = append(where, `a.username > ?`), append(args, f.AfterUsername)
	}
	q := `SELECT ` + acmeDNSCols + acmeDNSFrom
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `) //nolint:gosec // joins constant conditions; every value is a bound parameter
	}
	q += ` ORDER BY a.username`
	if f.Limit > 0 {
		q, args = q+` LIMIT ?`, append(args, f.Limit)
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list acme-dns accounts: %w", err)
	}
	out, err := collect(rows, scanACMEDNS)
	if err != nil {
		return nil, fmt.Errorf("store: list acme-dns accounts: %w", err)
	}
	return out, nil
}

// DeleteACMEDNSAccount deletes an account and returns it as it was. If its
// delegation has no domain and no other account, the delegation goes too,
// with its zone name and values, in the same transaction (journalled, as
// DeleteDelegation does): removed says so. An unknown username fails with
// ErrNotFound. It bumps the "acme_dns" generation, and "delegations" when
// it removes one.
func (db *DB) DeleteACMEDNSAccount(ctx context.Context, username string) (_ ACMEDNSAccount, removed bool, err error) {
	var out ACMEDNSAccount
	_, err = db.write(ctx, "delete acme-dns account", func(w *wtx) error {
		a, err := scanACMEDNS(w.queryRow(qACMEDNSByUsername, username))
		if err != nil {
			return fmt.Errorf("store: delete acme-dns account %q: %w", username, notFound(err))
		}
		if _, err := w.exec(`DELETE FROM acme_dns_accounts WHERE username = ?`, username); err != nil {
			return fmt.Errorf("store: delete acme-dns account %q: %w", username, err)
		}
		gens := []string{GenACMEDNS}
		if a.Delegation.Domain == "" {
			n, err := w.deleteIfUnused(a.DelegationID)
			if err != nil {
				return fmt.Errorf("store: delete acme-dns account %q: %w", username, err)
			}
			if removed = n; removed {
				gens = append(gens, GenDelegations)
			}
		}
		out = a
		return w.bumpGenerations(gens...)
	})
	if err != nil {
		return ACMEDNSAccount{}, false, err
	}
	return out, removed, nil
}

// domainlessOf returns the domainless delegations holding an account of
// principal id.
func (w *wtx) domainlessOf(id int64) ([]int64, error) {
	rows, err := w.query(`SELECT DISTINCT d.id FROM acme_dns_accounts a JOIN delegations d ON d.id = a.delegation_id
		WHERE a.owner_principal_id = ? AND d.domain IS NULL`, id)
	if err != nil {
		return nil, fmt.Errorf("domainless delegations: %w", err)
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	var out []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("domainless delegations: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("domainless delegations: %w", err)
	}
	return out, nil
}

// deleteIfUnused deletes delegation id with its zone name if it has no
// domain and no account left, and reports whether it did. The caller
// bumps the generations.
func (w *wtx) deleteIfUnused(id int64) (bool, error) {
	var name string
	err := w.queryRow(`DELETE FROM delegations WHERE id = ? AND domain IS NULL
		AND NOT EXISTS (SELECT 1 FROM acme_dns_accounts WHERE delegation_id = ?) RETURNING name`, id, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete unused delegation %d: %w", id, err)
	}
	if _, err := w.removeName(name); err != nil {
		return false, fmt.Errorf("delete unused delegation %d: remove name %s: %w", id, name, err)
	}
	return true, nil
}

// BindACMEDNSDomain gives domainless delegation id its domain (normalised
// as by CreateDelegation) and binds it to config configID (0: none).
// Binding a delegation to the domain it has already succeeds and changes
// nothing. A delegation with another domain, or a domain delegated to
// another delegation, fails with ErrConflict; an unknown delegation with
// ErrNotFound. It bumps the "delegations" and "acme_dns" generations.
func (db *DB) BindACMEDNSDomain(ctx context.Context, id int64, domain string, configID int64) error {
	base, wild, err := rules.NormalizeIdentifier(domain)
	if err != nil || wild || configID < 0 {
		return fmt.Errorf("store: bind delegation %d to %q: %w: not a base domain", id, domain, ErrInvalid)
	}
	_, err = db.write(ctx, "bind delegation", func(w *wtx) error {
		var cur sql.NullString
		if err := w.queryRow(`SELECT domain FROM delegations WHERE id = ?`, id).Scan(&cur); err != nil {
			return fmt.Errorf("store: bind delegation %d: %w", id, notFound(err))
		}
		switch {
		case cur.Valid && cur.String == base:
			return nil
		case cur.Valid:
			return fmt.Errorf("store: bind delegation %d to %s: %w: it serves %s", id, base, ErrConflict, cur.String)
		}
		if _, err := w.exec(`UPDATE delegations SET domain = ?, config_id = ? WHERE id = ?`, base, nullID(configID), id); err != nil {
			return fmt.Errorf("store: bind delegation %d to %s: %w", id, base, sqlErr(err))
		}
		return w.bumpGenerations(GenDelegations, GenACMEDNS)
	})
	return err
}

// TouchACMEDNSAccount records that the account was used at at. Like
// TouchToken it is best effort: coalesced in memory, written by the
// writer's next batch (and on Close), no generation bump.
func (db *DB) TouchACMEDNSAccount(ctx context.Context, username string, at time.Time) error {
	if err := db.touch(ctx, func() {
		if prev, ok := db.acmeDNSTouches[username]; !ok || at.After(prev) {
			db.acmeDNSTouches[username] = at
		}
	}); err != nil {
		return fmt.Errorf("store: touch acme-dns account: %w", err)
	}
	return nil
}
