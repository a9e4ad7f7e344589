package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// GenCredentials covers upstream credentials.
const GenCredentials = "credentials"

// ErrInUse means a row cannot be deleted while another refers to it.
var ErrInUse = errors.New("in use")

// Limits of credential fields.
const (
	maxCredentialName   = 64
	maxCredentialFields = 32
	maxFieldName        = 128
)

// Credential is a stored upstream credential set. The store never sees a
// value in clear: Sealed is opaque to it (see migrations/0005).
type Credential struct {
	ID int64 // assigned on create; never reused

	// UID is random and fixed for the row's life (16-64 bytes): the
	// service binds the seal to it.
	UID string

	// Name is unique regardless of ASCII case, as config names are.
	Name string

	// Provider is an upstream provider code (as ChallengeConfig.Provider).
	Provider string

	// FieldNames are the names of the sealed fields, sorted, at least
	// one: 1-128 bytes of ASCII letters, digits and '_' each.
	FieldNames []string

	Sealed      []byte // the fields, sealed by the service
	Fingerprint []byte // keyed hash of the sealed plaintext
	Generation  int64  // 1 on create, +1 per change of the fields

	CreatedAt time.Time
	UpdatedAt time.Time
	CreatedBy string
}

func (c *Credential) normalize() error {
	var errs []error
	if len(c.UID) < 16 || len(c.UID) > 64 {
		errs = append(errs, fmt.Errorf("uid: want 16 to 64 bytes, got %d", len(c.UID)))
	}
	errs = append(errs, validateIdent("name", c.Name, maxCredentialName), validateProvider(c.Provider),
		validateFieldNames(c.FieldNames), validateCreatedBy(c.CreatedBy))
	if len(c.Sealed) == 0 || len(c.Fingerprint) == 0 {
		errs = append(errs, errors.New("sealed fields and fingerprint are required"))
	}
	c.FieldNames = slices.Sorted(slices.Values(c.FieldNames))
	return errors.Join(errs...)
}

func validateFieldNames(names []string) error {
	if len(names) == 0 || len(names) > maxCredentialFields {
		return fmt.Errorf("fields: want 1 to %d, got %d", maxCredentialFields, len(names))
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || len(n) > maxFieldName {
			return fmt.Errorf("field name: want 1 to %d bytes, got %d", maxFieldName, len(n))
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
				return fmt.Errorf("field name %q: only ASCII letters, digits and '_'", n)
			}
		}
		if seen[n] {
			return fmt.Errorf("field name %q: given twice", n)
		}
		seen[n] = true
	}
	return nil
}

//nolint:gosec // G101 false positive: column names, not a secret
const credentialCols = `id, uid, name, provider, field_names, sealed, fingerprint, generation, created_at, updated_at, created_by`

func scanCredential(s scanner) (Credential, error) {
	var c Credential
	var names string
	var created, updated int64
	if err := s.Scan(&c.ID, &c.UID, &c.Name, &c.Provider, &names, &c.Sealed, &c.Fingerprint, &c.Generation,
		&created, &updated, &c.CreatedBy); err != nil {
		return Credential{}, err
	}
	c.FieldNames = strings.Split(names, ",")
	c.CreatedAt, c.UpdatedAt = fromMilli(created), fromMilli(updated)
	return c, nil
}

// CreateCredential stores a new credential (c.ID must be 0) and returns it
// as stored. A name or uid in use fails with ErrConflict, invalid fields
// with ErrInvalid. It bumps the "credentials" generation.
func (db *DB) CreateCredential(ctx context.Context, c Credential) (Credential, error) {
	if c.ID != 0 {
		return Credential{}, fmt.Errorf("store: create credential %q: %w: id %d given", c.Name, ErrInvalid, c.ID)
	}
	if err := c.normalize(); err != nil {
		return Credential{}, fmt.Errorf("store: create credential %q: %w: %w", c.Name, ErrInvalid, err)
	}
	var out Credential
	_, err := db.write(ctx, "create credential", func(w *wtx) error {
		now := w.now.UnixMilli()
		got, err := scanCredential(w.queryRow(`INSERT INTO upstream_credentials (uid, name, provider, field_names,
				sealed, fingerprint, generation, created_at, updated_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?) RETURNING `+credentialCols,
			c.UID, c.Name, c.Provider, strings.Join(c.FieldNames, ","), c.Sealed, c.Fingerprint, now, now, c.CreatedBy))
		if err != nil {
			return fmt.Errorf("store: create credential %q: %w", c.Name, sqlErr(err))
		}
		out = got
		return w.bumpGenerations(GenCredentials)
	})
	if err != nil {
		return Credential{}, err
	}
	return out, nil
}

// ReplaceCredentialFields replaces the sealed fields of credential id
// (the caller sealed them with the row's UID, which does not change) and
// bumps its generation. An unknown id fails with ErrNotFound. It bumps the
// "credentials" generation.
func (db *DB) ReplaceCredentialFields(ctx context.Context, id int64, fieldNames []string, sealed, fingerprint []byte) (Credential, error) {
	if err := validateFieldNames(fieldNames); err != nil {
		return Credential{}, fmt.Errorf("store: replace credential %d: %w: %w", id, ErrInvalid, err)
	}
	if len(sealed) == 0 || len(fingerprint) == 0 {
		return Credential{}, fmt.Errorf("store: replace credential %d: %w: sealed fields and fingerprint are required", id, ErrInvalid)
	}
	names := strings.Join(slices.Sorted(slices.Values(fieldNames)), ",")
	var out Credential
	_, err := db.write(ctx, "replace credential", func(w *wtx) error {
		got, err := scanCredential(w.queryRow(`UPDATE upstream_credentials SET field_names = ?, sealed = ?,
				fingerprint = ?, generation = generation + 1, updated_at = ?
			WHERE id = ? RETURNING `+credentialCols, names, sealed, fingerprint, w.now.UnixMilli(), id))
		if err != nil {
			return fmt.Errorf("store: replace credential %d: %w", id, notFound(sqlErr(err)))
		}
		out = got
		return w.bumpGenerations(GenCredentials)
	})
	if err != nil {
		return Credential{}, err
	}
	return out, nil
}

// DeleteCredential deletes a credential and returns it as it was. One a
// managed challenge config refers to fails with ErrInUse naming the
// config, and so does one that upstream records (in any state) were
// written with, naming how many: removing them needs it. An unknown id
// fails with ErrNotFound. It bumps the "credentials" generation.
func (db *DB) DeleteCredential(ctx context.Context, id int64) (Credential, error) {
	var out Credential
	_, err := db.write(ctx, "delete credential", func(w *wtx) error {
		c, err := scanCredential(w.queryRow(`SELECT `+credentialCols+` FROM upstream_credentials WHERE id = ?`, id))
		if err != nil {
			return fmt.Errorf("store: delete credential %d: %w", id, notFound(err))
		}
		var users []string
		rows, err := w.query(`SELECT name FROM managed_challenges WHERE credential_id = ? ORDER BY id`, id)
		if err != nil {
			return fmt.Errorf("store: delete credential %d: %w", id, err)
		}
		users, err = collect(rows, func(s scanner) (string, error) {
			var n string
			return n, s.Scan(&n)
		})
		if err != nil {
			return fmt.Errorf("store: delete credential %d: %w", id, err)
		}
		var records int
		if err := w.queryRow(`SELECT count(*) FROM upstream_records WHERE credential_id = ?`, id).Scan(&records); err != nil {
			return fmt.Errorf("store: delete credential %d: %w", id, err)
		}
		var why []string
		if len(users) > 0 {
			why = append(why, "managed challenge "+strings.Join(users, ", ")+" refers to it")
		}
		if records > 0 {
			noun := "records were"
			if records == 1 {
				noun = "record was"
			}
			why = append(why, fmt.Sprintf("%d upstream %s written with it and not yet removed or forgotten", records, noun))
		}
		if len(why) > 0 {
			return fmt.Errorf("store: delete credential %d: %w: %s", id, ErrInUse, strings.Join(why, "; "))
		}
		if _, err := w.exec(`DELETE FROM upstream_credentials WHERE id = ?`, id); err != nil {
			return fmt.Errorf("store: delete credential %d: %w", id, err)
		}
		out = c
		return w.bumpGenerations(GenCredentials)
	})
	if err != nil {
		return Credential{}, err
	}
	return out, nil
}

// CredentialByID returns the credential with that id, or ErrNotFound.
func (db *DB) CredentialByID(ctx context.Context, id int64) (Credential, error) {
	c, err := scanCredential(db.r.QueryRowContext(ctx, `SELECT `+credentialCols+` FROM upstream_credentials WHERE id = ?`, id))
	if err != nil {
		return Credential{}, fmt.Errorf("store: credential %d: %w", id, notFound(err))
	}
	return c, nil
}

// CredentialByName returns the credential with that name in any ASCII
// case, or ErrNotFound.
func (db *DB) CredentialByName(ctx context.Context, name string) (Credential, error) {
	c, err := scanCredential(db.r.QueryRowContext(ctx, `SELECT `+credentialCols+` FROM upstream_credentials WHERE name = ?`, name))
	if err != nil {
		return Credential{}, fmt.Errorf("store: credential %q: %w", name, notFound(err))
	}
	return c, nil
}

// ListCredentials returns every credential, ordered by id (creation).
func (db *DB) ListCredentials(ctx context.Context) ([]Credential, error) {
	rows, err := db.query(ctx, `SELECT `+credentialCols+` FROM upstream_credentials ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list credentials: %w", err)
	}
	cs, err := collect(rows, scanCredential)
	if err != nil {
		return nil, fmt.Errorf("store: list credentials: %w", err)
	}
	return cs, nil
}

// Kinds of sealed rows, for ResealAll.
const (
	SealedCredential      = "credential" // key: the credential's UID
	SealedACMEDNSPassword = "acme_dns"   // key: the account's username
)

// ResealAll passes every sealed blob in the database to reseal with its
// kind and row key, and stores what it returns where it differs, all in
// one transaction: either every row moves or none does. It returns how
// many rows changed. An error from reseal stores nothing.
//
// reseal runs on the writer goroutine: it must be quick and must not use
// the DB. Generations of the tables touched are bumped (caches hold the
// sealed blobs).
func (db *DB) ResealAll(ctx context.Context, reseal func(kind, key string, blob []byte) ([]byte, error)) (int, error) {
	var n int
	_, err := db.write(ctx, "reseal", func(w *wtx) error {
		n = 0
		tables := []struct{ kind, table, key, col, gen string }{
			{SealedCredential, "upstream_credentials", "uid", "sealed", GenCredentials},
			{SealedACMEDNSPassword, "acme_dns_accounts", "username", "password_sealed", GenACMEDNS},
			{SealedTSIGSecret, "api_tokens", "client_id", "sealed_secret", GenTokens}, // API tokens have none
		}
		for _, t := range tables {
			rows, err := w.query(`SELECT ` + t.key + `, ` + t.col + ` FROM ` + t.table + ` WHERE ` + t.col + ` IS NOT NULL ORDER BY ` + t.key)
			if err != nil {
				return fmt.Errorf("store: reseal %s: %w", t.kind, err)
			}
			type row struct {
				key  string
				blob []byte
			}
			rs, err := collect(rows, func(s scanner) (row, error) {
				var r row
				return r, s.Scan(&r.key, &r.blob)
			})
			if err != nil {
				return fmt.Errorf("store: reseal %s: %w", t.kind, err)
			}
			changed := 0
			for _, r := range rs {
				out, err := reseal(t.kind, r.key, r.blob)
				if err != nil {
					return fmt.Errorf("store: reseal %s %q: %w", t.kind, r.key, err)
				}
				if bytes.Equal(out, r.blob) {
					continue
				}
				if _, err := w.exec(`UPDATE `+t.table+` SET `+t.col+` = ? WHERE `+t.key+` = ?`, out, r.key); err != nil {
					return fmt.Errorf("store: reseal %s %q: %w", t.kind, r.key, err)
				}
				changed++
			}
			if changed > 0 {
				if err := w.bumpGenerations(t.gen); err != nil {
					return err
				}
			}
			n += changed
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
