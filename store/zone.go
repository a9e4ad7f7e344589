package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

// maxTTL is the largest TTL DNS allows (RFC 2181 section 8).
const maxTTL = 1<<31 - 1

// maxCreatedBy bounds the free-form creator tag.
const maxCreatedBy = 256

// AddRequest asks for one TXT value at a name.
type AddRequest struct {
	Name      string    // lower-case fqdn inside the hub zone, e.g. "abc.acme.example.net."
	Value     string    // zone.ValidateValue
	TTL       uint32    // seconds, at most 2^31-1
	ExpiresAt time.Time // required; the sweep removes the value from then on
	CreatedBy string    // principal or token id, for audit and the per-creator cap

	// MaxPerCreator, if > 0, refuses a new value while CreatedBy already
	// holds that many values in the whole zone (ErrTooManyValues). Checked
	// by the single writer, so concurrent requests cannot overshoot it.
	MaxPerCreator int

	// Audit, if set, is appended to the audit log in the same transaction
	// as the value, and only if the value is stored: the request and its
	// record cost one commit, and neither is durable without the other.
	// When AddValue fails nothing of it is stored; recording the failure is
	// the caller's job. A malformed event fails the request (ErrInvalid).
	Audit *AuditEvent
}

// Record is one stored TXT value.
type Record struct {
	Name      string
	Value     string
	TTL       uint32
	CreatedAt time.Time
	ExpiresAt time.Time
	CreatedBy string
}

// ValidateName checks that name is a lower-case fqdn (trailing dot) other
// than the root, of labels of letters, digits, '-' and '_'. The store does
// not know the hub zone; callers turn user input into such a name with
// zone.InZoneName first.
func ValidateName(name string) error {
	if len(name) < 2 || len(name) > 254 || name[len(name)-1] != '.' {
		return fmt.Errorf("%w: %q is not a fully qualified name", zone.ErrBadName, name)
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 || label > 63 {
				return fmt.Errorf("%w: %q has an empty label or one longer than 63 bytes", zone.ErrBadName, name)
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			label++
		default:
			return fmt.Errorf("%w: %q has a character other than lower-case letters, digits, '-' and '_'", zone.ErrBadName, name)
		}
	}
	return nil
}

func validateCreatedBy(s string) error {
	if len(s) > maxCreatedBy {
		return fmt.Errorf("created by: %d bytes, at most %d", len(s), maxCreatedBy)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("created by: control character at byte %d", i)
		}
	}
	return nil
}

func (r AddRequest) validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if err := zone.ValidateValue(r.Value); err != nil {
		return err
	}
	if r.TTL > maxTTL {
		return fmt.Errorf("ttl %d: at most %d", r.TTL, maxTTL)
	}
	if r.ExpiresAt.IsZero() {
		return errors.New("expiry is required")
	}
	if r.MaxPerCreator < 0 {
		return fmt.Errorf("max per creator %d is negative", r.MaxPerCreator)
	}
	return validateCreatedBy(r.CreatedBy)
}

// AddValue adds req.Value to the set at req.Name, or refreshes it (TTL and
// expiry; creator and creation time are kept) if it is already there. Both
// are a zone change (OpAddValue) and bump the serial. A new value beyond
// MaxValuesPerName (or req.MaxPerCreator) fails with ErrTooManyValues and
// stores nothing. It returns the serial that carries the change.
func (db *DB) AddValue(ctx context.Context, req AddRequest) (int64, error) {
	if err := req.validate(); err != nil {
		return 0, fmt.Errorf("store: add value at %q: %w: %w", req.Name, ErrInvalid, err)
	}
	audit, err := normalizedAudit(req.Audit)
	if err != nil {
		return 0, fmt.Errorf("store: add value at %q: %w: %w", req.Name, ErrInvalid, err)
	}
	return db.write(ctx, "add value", func(w *wtx) error {
		if err := w.addValue(req); err != nil {
			return fmt.Errorf("store: add value at %s: %w", req.Name, err)
		}
		if audit != nil {
			return w.appendAudit(*audit)
		}
		return nil
	})
}

func (w *wtx) addValue(req AddRequest) error {
	res, err := w.exec(qRefreshValue, int64(req.TTL), req.ExpiresAt.UnixMilli(), req.Name, req.Value)
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("refresh: %w", err)
	} else if n == 0 {
		var count int
		if err := w.queryRow(qCountName, req.Name).Scan(&count); err != nil {
			return fmt.Errorf("count values: %w", err)
		}
		if limit := w.db.cfg.MaxValuesPerName; count >= limit {
			return fmt.Errorf("%w: the name already holds %d values, at most %d at once; remove one or wait for one to expire",
				ErrTooManyValues, count, limit)
		}
		if req.MaxPerCreator > 0 {
			if err := w.queryRow(qCountCreator, req.CreatedBy).Scan(&count); err != nil {
				return fmt.Errorf("count values of creator: %w", err)
			}
			if count >= req.MaxPerCreator {
				return fmt.Errorf("%w: %q already holds %d values, at most %d at once", ErrTooManyValues, req.CreatedBy, count, req.MaxPerCreator)
			}
		}
		if _, err := w.exec(qInsertValue, req.Name, req.Value, int64(req.TTL), w.now.UnixMilli(), req.ExpiresAt.UnixMilli(), req.CreatedBy); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	w.change(zone.OpAddValue, req.Name, req.Value, req.TTL)
	return nil
}

// RemoveValue removes one value at name. Removing a value that is not there
// changes nothing: removed is false and this request bumps no serial (the
// serial returned is then the current one, which other writes committed in
// the same batch may have moved).
func (db *DB) RemoveValue(ctx context.Context, name, value string) (serial int64, removed bool, err error) {
	return db.removeValue(ctx, name, value, nil)
}

// RemoveValueAudited is RemoveValue that also appends ev to the audit log,
// in the same transaction and only if the removal succeeds (removing an
// absent value succeeds): one commit for both. When it fails nothing of it
// is stored; recording the failure is the caller's job. A malformed event
// fails the request (ErrInvalid).
func (db *DB) RemoveValueAudited(ctx context.Context, name, value string, ev AuditEvent) (serial int64, removed bool, err error) {
	return db.removeValue(ctx, name, value, &ev)
}

func (db *DB) removeValue(ctx context.Context, name, value string, ev *AuditEvent) (serial int64, removed bool, err error) {
	if err := ValidateName(name); err != nil {
		return 0, false, fmt.Errorf("store: remove value at %q: %w: %w", name, ErrInvalid, err)
	}
	if err := zone.ValidateValue(value); err != nil {
		return 0, false, fmt.Errorf("store: remove value at %s: %w: %w", name, ErrInvalid, err)
	}
	audit, err := normalizedAudit(ev)
	if err != nil {
		return 0, false, fmt.Errorf("store: remove value at %s: %w: %w", name, ErrInvalid, err)
	}
	serial, err = db.write(ctx, "remove value", func(w *wtx) error {
		res, err := w.exec(qDeleteValue, name, value)
		if err != nil {
			return fmt.Errorf("store: remove value at %s: %w", name, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: remove value at %s: %w", name, err)
		}
		if audit != nil {
			if err := w.appendAudit(*audit); err != nil {
				return err
			}
		}
		if n > 0 {
			removed = true
			w.change(zone.OpRemoveValue, name, value, 0)
		}
		return nil
	})
	if err != nil {
		// Not read on error: after a cancelled wait the writer may still set it.
		return 0, false, err
	}
	return serial, removed, nil
}

// RemoveAllValues removes every value at name (the name stays if it is a
// delegation label). It returns how many values it removed; 0 changes
// nothing.
func (db *DB) RemoveAllValues(ctx context.Context, name string) (serial int64, removed int, err error) {
	if err := ValidateName(name); err != nil {
		return 0, 0, fmt.Errorf("store: remove values at %q: %w: %w", name, ErrInvalid, err)
	}
	serial, err = db.write(ctx, "remove values", func(w *wtx) error {
		n, err := w.removeValuesAt(name)
		if err != nil {
			return fmt.Errorf("store: remove values at %s: %w", name, err)
		}
		removed = n
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return serial, removed, nil
}

func (w *wtx) removeValuesAt(name string) (int, error) {
	rows, err := w.query(`DELETE FROM txt_values WHERE name = ? RETURNING value`, name)
	if err != nil {
		return 0, err
	}
	defer func() { _ = rows.Close() }() // rows.Err is checked after the loop
	var values []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return 0, err
		}
		values = append(values, v)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// RETURNING gives no order; the journal should be deterministic.
	slices.Sort(values)
	for _, v := range values {
		w.change(zone.OpRemoveValue, name, v, 0)
	}
	return len(values), nil
}

// AddName makes name exist in the zone without values (a delegation
// label), so queries for it answer NODATA instead of NXDOMAIN. Adding an
// existing name changes nothing (added false, no serial bump).
func (db *DB) AddName(ctx context.Context, name, createdBy string) (serial int64, added bool, err error) {
	if err := ValidateName(name); err != nil {
		return 0, false, fmt.Errorf("store: add name %q: %w: %w", name, ErrInvalid, err)
	}
	if err := validateCreatedBy(createdBy); err != nil {
		return 0, false, fmt.Errorf("store: add name %s: %w: %w", name, ErrInvalid, err)
	}
	serial, err = db.write(ctx, "add name", func(w *wtx) error {
		var err error
		if added, err = w.addName(name, createdBy); err != nil {
			return fmt.Errorf("store: add name %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return serial, added, nil
}

// addName is AddName inside the writer's transaction.
func (w *wtx) addName(name, createdBy string) (bool, error) {
	res, err := w.exec(`INSERT INTO zone_names (name, created_at, created_by) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, w.now.UnixMilli(), createdBy)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, nil
	}
	w.change(zone.OpAddName, name, "", 0)
	return true, nil
}

// RemoveName removes a name added by AddName together with any values at
// it (each journalled as OpRemoveValue before the OpRemoveName). Removing
// an absent name changes nothing (removed false, no serial bump), even if
// values exist at it: use RemoveAllValues for those.
func (db *DB) RemoveName(ctx context.Context, name string) (serial int64, removed bool, err error) {
	if err := ValidateName(name); err != nil {
		return 0, false, fmt.Errorf("store: remove name %q: %w: %w", name, ErrInvalid, err)
	}
	serial, err = db.write(ctx, "remove name", func(w *wtx) error {
		var err error
		if removed, err = w.removeName(name); err != nil {
			return fmt.Errorf("store: remove name %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return serial, removed, nil
}

// removeName is RemoveName inside the writer's transaction.
func (w *wtx) removeName(name string) (bool, error) {
	res, err := w.exec(`DELETE FROM zone_names WHERE name = ?`, name)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, nil
	}
	if _, err := w.removeValuesAt(name); err != nil {
		return false, fmt.Errorf("values: %w", err)
	}
	w.change(zone.OpRemoveName, name, "", 0)
	return true, nil
}

// CountValuesBy returns how many values createdBy holds in the whole zone
// (expired ones included until the sweep removes them), for quota
// displays; AddRequest.MaxPerCreator enforces the cap atomically.
func (db *DB) CountValuesBy(ctx context.Context, createdBy string) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM txt_values WHERE created_by = ?`, createdBy).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count values of %q: %w", createdBy, err)
	}
	return n, nil
}

// ListValues returns the values at name, ordered by value; none is not an
// error. Expired values are listed until the sweep removes them.
func (db *DB) ListValues(ctx context.Context, name string) ([]Record, error) {
	recs, err := queryRecords(ctx, readQueryer{db}, qListValues, name)
	if err != nil {
		return nil, fmt.Errorf("store: list values at %s: %w", name, err)
	}
	return recs, nil
}

// ListAll pages through all values in (name, value) order: it returns the
// values of at most limit names that sort after afterName ("" to start).
// A name's values are never split across pages; pass the last record's
// Name as afterName for the next page, which is empty at the end.
func (db *DB) ListAll(ctx context.Context, afterName string, limit int) ([]Record, error) {
	if limit <= 0 || limit > 10_000 {
		return nil, fmt.Errorf("store: list values after %q: %w: limit %d, want 1 to 10000", afterName, ErrInvalid, limit)
	}
	recs, err := queryRecords(ctx, db.r, `SELECT name, value, ttl, created_at, expires_at, created_by
		FROM txt_values
		WHERE name IN (SELECT DISTINCT name FROM txt_values WHERE name > ? ORDER BY name LIMIT ?)
		ORDER BY name, value`, afterName, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list values after %q: %w", afterName, err)
	}
	return recs, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryRecords(ctx context.Context, q queryer, query string, args ...any) ([]Record, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }() // rows.Err is checked after the loop
	var recs []Record
	for rows.Next() {
		var r Record
		var ttl, created, expires int64
		if err := rows.Scan(&r.Name, &r.Value, &ttl, &created, &expires, &r.CreatedBy); err != nil {
			return nil, err
		}
		if r.TTL, err = ttlFromDB(ttl); err != nil {
			return nil, err
		}
		r.CreatedAt, r.ExpiresAt = fromMilli(created), fromMilli(expires)
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// sweepChunk bounds one sweep transaction so the writer stays responsive
// when very many values expire at once; Sweep loops until done.
const sweepChunk = 5000

// Sweep removes the values that expired at or before now, journalled as
// OpRemoveValue with a serial bump (none when nothing expired). Reads never
// filter by the clock, so every nameserver serving a serial agrees; only
// Sweep removes expired values.
func (db *DB) Sweep(ctx context.Context, now time.Time) (serial int64, removed int, err error) {
	for {
		var n int
		s, err := db.write(ctx, "sweep", func(w *wtx) error {
			var err error
			n, err = w.sweep(now.UnixMilli())
			if err != nil {
				return fmt.Errorf("store: sweep: %w", err)
			}
			return nil
		})
		if err != nil {
			return serial, removed, err
		}
		serial, removed = s, removed+n
		if n < sweepChunk {
			return serial, removed, nil
		}
	}
}

func (w *wtx) sweep(now int64) (int, error) {
	rows, err := w.query(`DELETE FROM txt_values WHERE rowid IN (
		SELECT rowid FROM txt_values WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)
		RETURNING name, value`, now, sweepChunk)
	if err != nil {
		return 0, err
	}
	defer func() { _ = rows.Close() }() // rows.Err is checked after the loop
	var expired []zone.Value
	for rows.Next() {
		var v zone.Value
		if err := rows.Scan(&v.Name, &v.Value); err != nil {
			return 0, err
		}
		expired = append(expired, v)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// RETURNING gives no order; the journal should be deterministic.
	slices.SortFunc(expired, func(a, b zone.Value) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value))
	})
	for _, v := range expired {
		w.change(zone.OpRemoveValue, v.Name, v.Value, 0)
	}
	return len(expired), nil
}
