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

	"github.com/acmehub/acmehub/internal/zone"
)

// Upstream record states (see migrations/0006).
const (
	UpstreamAdding   = "adding"   // the provider call is in flight (or the process died during it)
	UpstreamLive     = "live"     // published; removed on clean-up or at ExpiresAt
	UpstreamRemoving = "removing" // removal due at NextAttemptAt (retried with backoff)
	UpstreamCleaning = "cleaning" // a removal call is in flight, claimed until NextAttemptAt
	UpstreamFailed   = "failed"   // removal given up: reported until an admin retries or forgets it
)

// Upstream engines: how a record was written.
const (
	EngineValue = "value" // a value-level driver (internal/upstream/<code>)
	EngineLego  = "lego"  // a lego provider in a worker process (needs KeyAuth)
)

// UpstreamRecord is a TXT value the hub wrote into a domain's own DNS
// through an upstream provider. It is persisted before the provider is
// called, so no value is forgotten: what is not cleaned up is retried,
// across restarts, and reported when it cannot be.
type UpstreamRecord struct {
	ID           int64
	ConfigID     int64 // the config that allowed it (may since be deleted)
	CredentialID int64 // the credential that wrote it; removal uses the same
	Provider     string
	Engine       string // EngineValue or EngineLego
	Domain       string // base domain (lego's "domain": no "*.", no final dot)
	FQDN         string // the record name written: "_acme-challenge.<domain>."
	Value        string
	KeyAuth      string // EngineLego only: lego's CleanUp needs it (not a secret: the CA publishes it)
	TTL          uint32
	State        string
	Attempts     int    // failed removal attempts so far
	LastError    string // the last failure (never secrets)
	CreatedBy    string
	CreatedAt    time.Time
	ExpiresAt    time.Time // removed then, whether or not the client cleans up
	// NextAttemptAt is when a removing record is tried next.
	NextAttemptAt time.Time
}

// GenUpstreamRecords moves when upstream records appear or go, so a
// delegated clean-up can skip looking for stray upstream values while
// there are none (HasUpstreamRecords).
const GenUpstreamRecords = "upstream_records"

// HasUpstreamRecords reports whether any upstream record exists.
func (db *DB) HasUpstreamRecords(ctx context.Context) (bool, error) {
	var exist bool
	if err := db.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM upstream_records)`).Scan(&exist); err != nil {
		return false, fmt.Errorf("store: any upstream records: %w", err)
	}
	return exist, nil
}

// ErrBusy means a provider call for that record is in flight (a write
// or a removal): acting on it now would race that call.
var ErrBusy = errors.New("a provider call for it is in flight")

// UpstreamLimits bound what BeginUpstreamRecord accepts; 0 means no bound.
type UpstreamLimits struct {
	// Exclusive: the provider replaces the whole TXT set at a name, so a
	// record of another value at the FQDN (any credential) that is adding,
	// live or cleaning makes Begin fail with ErrConflict.
	Exclusive bool
	// PerName caps the records at one FQDN, PerCreator those one
	// principal (CreatedBy) holds, in any state but failed.
	PerName, PerCreator int
}

// BeginUpstreamRecord persists r in state UpstreamAdding before the
// provider is called. If a record with the same credential, FQDN and value
// exists: a live one is returned with its ExpiresAt extended to r's and
// existing true; a removing or failed one becomes r's, adding again
// (existing true); an adding or cleaning one fails with ErrBusy. Limits
// are checked in the same transaction: ErrConflict (returning the
// conflicting record) or ErrTooManyValues.
func (db *DB) BeginUpstreamRecord(ctx context.Context, r UpstreamRecord, lim UpstreamLimits) (rec UpstreamRecord, existing bool, err error) {
	if err := r.validateNew(); err != nil {
		return UpstreamRecord{}, false, fmt.Errorf("store: begin upstream record %s: %w: %w", r.FQDN, ErrInvalid, err)
	}
	var conflict bool
	_, err = db.write(ctx, "begin upstream record", func(w *wtx) error {
		var werr error
		rec, existing, conflict, werr = w.beginUpstream(r, lim)
		if werr != nil {
			return fmt.Errorf("store: begin upstream record %s: %w", r.FQDN, werr)
		}
		if conflict {
			return fmt.Errorf("store: begin upstream record %s: %w: record %d of another value is %s there, and the provider replaces the whole set",
				r.FQDN, ErrConflict, rec.ID, rec.State)
		}
		return nil
	})
	switch {
	case conflict && errors.Is(err, ErrConflict):
		return rec, false, err
	case err != nil:
		return UpstreamRecord{}, false, err
	}
	return rec, existing, nil
}

// SetUpstreamRecordState moves a record from state from to state to, with
// its failed attempts, last error and next attempt time. ErrNotFound if it
// is gone or no longer in state from (another writer acted on it).
func (db *DB) SetUpstreamRecordState(ctx context.Context, id int64, from, to string, attempts int, lastError string, next time.Time) error {
	if !slices.Contains(upstreamStates, to) || !slices.Contains(upstreamStates, from) {
		return fmt.Errorf("store: set upstream record %d: %w: state %q -> %q unknown", id, ErrInvalid, from, to)
	}
	if attempts < 0 {
		return fmt.Errorf("store: set upstream record %d: %w: attempts %d is negative", id, ErrInvalid, attempts)
	}
	lastError = capLastError(lastError)
	_, err := db.write(ctx, "set upstream record", func(w *wtx) error {
		res, err := w.exec(`UPDATE upstream_records SET state = ?, attempts = ?, last_error = ?, next_attempt_at = ?
			WHERE id = ? AND state = ?`, to, attempts, lastError, milliOrZero(next), id, from)
		if err != nil {
			return fmt.Errorf("store: set upstream record %d: %w", id, sqlErr(err))
		}
		return affectedOne(res, "set upstream record", id)
	})
	return err
}

// ClaimUpstreamRecord moves rec, as the caller read it, to
// UpstreamCleaning until lease: the caller then removes the value and
// deletes the row (or sets it removing or failed). It fails with
// ErrNotFound when the row changed since it was read (state, expiry, next
// attempt or creation), so a re-present that extended a live value, or
// another claimant, wins. Rows adding cannot be claimed here.
func (db *DB) ClaimUpstreamRecord(ctx context.Context, rec UpstreamRecord, lease time.Time) (UpstreamRecord, error) {
	if lease.IsZero() {
		return UpstreamRecord{}, fmt.Errorf("store: claim upstream record %d: %w: no lease", rec.ID, ErrInvalid)
	}
	var out UpstreamRecord
	_, err := db.write(ctx, "claim upstream record", func(w *wtx) error {
		r, err := scanUpstream(w.queryRow(`UPDATE upstream_records SET state = 'cleaning', next_attempt_at = ?
			WHERE id = ? AND state = ? AND state <> 'adding' AND expires_at = ? AND next_attempt_at = ? AND created_at = ?
			RETURNING `+upstreamCols,
			lease.UnixMilli(), rec.ID, rec.State, rec.ExpiresAt.UnixMilli(), milliOrZero(rec.NextAttemptAt), rec.CreatedAt.UnixMilli()))
		if err != nil {
			return fmt.Errorf("store: claim upstream record %d: %w", rec.ID, notFound(err))
		}
		out = r
		return nil
	})
	return out, err
}

// AbandonUpstreamAdding turns an adding record, as the caller read it, into
// a removing one due at once, for a write whose process died (the row
// stayed adding past any call's timeout): what it wrote is unknown.
// ErrNotFound when the row changed since.
func (db *DB) AbandonUpstreamAdding(ctx context.Context, rec UpstreamRecord, now time.Time) error {
	_, err := db.write(ctx, "abandon upstream record", func(w *wtx) error {
		res, err := w.exec(`UPDATE upstream_records SET state = 'removing', next_attempt_at = ?
			WHERE id = ? AND state = 'adding' AND created_at = ?`, now.UnixMilli(), rec.ID, rec.CreatedAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: abandon upstream record %d: %w", rec.ID, err)
		}
		return affectedOne(res, "abandon upstream record", rec.ID)
	})
	return err
}

// ExpireUpstreamRecord makes a record due for removal now (ExpiresAt =
// now) if it is adding or live: a clean-up that arrives while the write is
// in flight leaves the removal to the sweep, right after the write.
func (db *DB) ExpireUpstreamRecord(ctx context.Context, id int64, now time.Time) error {
	_, err := db.write(ctx, "expire upstream record", func(w *wtx) error {
		res, err := w.exec(`UPDATE upstream_records SET expires_at = min(expires_at, ?)
			WHERE id = ? AND state IN ('adding', 'live')`, now.UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("store: expire upstream record %d: %w", id, err)
		}
		return affectedOne(res, "expire upstream record", id)
	})
	return err
}

// DeleteUpstreamRecord forgets a record (removed upstream, or an admin
// gave up on it) if it is in state from ("" for any); ErrNotFound if it is
// gone or in another state.
func (db *DB) DeleteUpstreamRecord(ctx context.Context, id int64, from string) error {
	_, err := db.write(ctx, "delete upstream record", func(w *wtx) error {
		res, err := w.exec(`DELETE FROM upstream_records WHERE id = ? AND (? = '' OR state = ?)`, id, from, from)
		if err != nil {
			return fmt.Errorf("store: delete upstream record %d: %w", id, err)
		}
		if err := affectedOne(res, "delete upstream record", id); err != nil {
			return err
		}
		return w.bumpGenerations(GenUpstreamRecords)
	})
	return err
}

// UpstreamRecord returns one record by id, or ErrNotFound.
func (db *DB) UpstreamRecord(ctx context.Context, id int64) (UpstreamRecord, error) {
	r, err := scanUpstream(db.r.QueryRowContext(ctx, `SELECT `+upstreamCols+` FROM upstream_records WHERE id = ?`, id))
	if err != nil {
		return UpstreamRecord{}, fmt.Errorf("store: upstream record %d: %w", id, notFound(err))
	}
	return r, nil
}

// UpstreamRecordsAt returns the records at fqdn with that value (any
// credential, any state), by id; value "" means every value at fqdn.
func (db *DB) UpstreamRecordsAt(ctx context.Context, fqdn, value string) ([]UpstreamRecord, error) {
	q, args := `SELECT `+upstreamCols+` FROM upstream_records WHERE fqdn = ? AND value = ? ORDER BY id`, []any{fqdn, value}
	if value == "" {
		q, args = `SELECT `+upstreamCols+` FROM upstream_records WHERE fqdn = ? ORDER BY id`, []any{fqdn}
	}
	rs, err := queryUpstream(ctx, db.r, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: upstream records at %s: %w", fqdn, err)
	}
	return rs, nil
}

// DueUpstreamRecords returns at most limit records needing work at now, by
// id: live ones past ExpiresAt, removing ones past NextAttemptAt, cleaning
// ones whose claim lapsed (their claimant died), and adding ones created
// before staleAdding (their process died mid-call).
func (db *DB) DueUpstreamRecords(ctx context.Context, now, staleAdding time.Time, limit int) ([]UpstreamRecord, error) {
	if err := checkUpstreamLimit(limit); err != nil {
		return nil, fmt.Errorf("store: due upstream records: %w: %w", ErrInvalid, err)
	}
	// Each branch of the OR searches its own (state, time) index of 0006.
	rs, err := queryUpstream(ctx, db.r, `SELECT `+upstreamCols+` FROM upstream_records
		WHERE (state = 'live' AND expires_at <= ?)
			OR (state IN ('removing', 'cleaning') AND next_attempt_at <= ?)
			OR (state = 'adding' AND created_at < ?)
		ORDER BY id LIMIT ?`, now.UnixMilli(), now.UnixMilli(), staleAdding.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due upstream records: %w", err)
	}
	return rs, nil
}

// ListUpstreamRecords pages through records by id after afterID; state ""
// means every state.
func (db *DB) ListUpstreamRecords(ctx context.Context, state string, afterID int64, limit int) ([]UpstreamRecord, error) {
	if state != "" && !slices.Contains(upstreamStates, state) {
		return nil, fmt.Errorf("store: list upstream records: %w: state %q unknown", ErrInvalid, state)
	}
	if err := checkUpstreamLimit(limit); err != nil {
		return nil, fmt.Errorf("store: list upstream records: %w: %w", ErrInvalid, err)
	}
	q, args := `SELECT `+upstreamCols+` FROM upstream_records WHERE id > ? ORDER BY id LIMIT ?`, []any{afterID, limit}
	if state != "" {
		q, args = `SELECT `+upstreamCols+` FROM upstream_records WHERE state = ? AND id > ? ORDER BY id LIMIT ?`, []any{state, afterID, limit}
	}
	rs, err := queryUpstream(ctx, db.r, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list upstream records: %w", err)
	}
	return rs, nil
}

// CountUpstreamRecords returns the number of records per state (every
// state present, zero included).
func (db *DB) CountUpstreamRecords(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT state, count(*) FROM upstream_records GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: count upstream records: %w", err)
	}
	type count struct {
		state string
		n     int
	}
	cs, err := collect(rows, func(s scanner) (count, error) {
		var c count
		return c, s.Scan(&c.state, &c.n)
	})
	if err != nil {
		return nil, fmt.Errorf("store: count upstream records: %w", err)
	}
	out := make(map[string]int, len(upstreamStates))
	for _, st := range upstreamStates {
		out[st] = 0
	}
	for _, c := range cs {
		out[c.state] = c.n
	}
	return out, nil
}

// Limits of upstream record fields.
const (
	maxKeyAuth      = 1024
	maxLastError    = 512 // bytes; longer errors are cut, not refused
	maxUpstreamPage = 10_000
)

var upstreamStates = []string{UpstreamAdding, UpstreamLive, UpstreamRemoving, UpstreamCleaning, UpstreamFailed}

// validateNew checks what BeginUpstreamRecord stores from r; the fields
// the store sets (state, attempts, times but ExpiresAt) are ignored.
func (r *UpstreamRecord) validateNew() error {
	var errs []error
	if r.ID != 0 {
		errs = append(errs, fmt.Errorf("id %d given", r.ID))
	}
	if r.ConfigID <= 0 {
		errs = append(errs, fmt.Errorf("config id %d: want > 0", r.ConfigID))
	}
	if r.CredentialID <= 0 {
		errs = append(errs, fmt.Errorf("credential id %d: want > 0", r.CredentialID))
	}
	errs = append(errs, validateProvider(r.Provider))
	if r.Engine != EngineValue && r.Engine != EngineLego {
		errs = append(errs, fmt.Errorf("engine %q: want %q or %q", r.Engine, EngineValue, EngineLego))
	}
	// A domain is a name without the final dot (and so without "*.").
	if r.Domain == "" || strings.HasSuffix(r.Domain, ".") || ValidateName(r.Domain+".") != nil {
		errs = append(errs, fmt.Errorf("domain %q: want a lower-case name without the final dot", r.Domain))
	}
	if err := ValidateName(r.FQDN); err != nil {
		errs = append(errs, fmt.Errorf("fqdn: %w", err))
	}
	if err := zone.ValidateValue(r.Value); err != nil {
		errs = append(errs, fmt.Errorf("value: %w", err))
	}
	if err := validateKeyAuth(r.KeyAuth); err != nil {
		errs = append(errs, err)
	} else if r.Engine == EngineLego && r.KeyAuth == "" {
		errs = append(errs, errors.New("key authorization: required by engine lego (its clean-up needs it)"))
	}
	if r.TTL > maxTTL {
		errs = append(errs, fmt.Errorf("ttl %d: at most %d", r.TTL, maxTTL))
	}
	if r.ExpiresAt.IsZero() {
		errs = append(errs, errors.New("expiry is required"))
	}
	errs = append(errs, validateCreatedBy(r.CreatedBy))
	return errors.Join(errs...)
}

// validateKeyAuth checks the shape of a key authorization (RFC 8555
// section 8.1: token "." thumbprint, both base64url), loosely: printable
// ASCII without spaces, at most maxKeyAuth bytes.
func validateKeyAuth(ka string) error {
	if len(ka) > maxKeyAuth {
		return fmt.Errorf("key authorization: %d bytes, at most %d", len(ka), maxKeyAuth)
	}
	for i := 0; i < len(ka); i++ {
		if c := ka[i]; c <= 0x20 || c >= 0x7f {
			return fmt.Errorf("key authorization: byte %d is a space, control or non-ASCII character", i)
		}
	}
	return nil
}

// capLastError cuts s to maxLastError bytes, at a UTF-8 boundary: an
// error message is worth keeping even when it is long.
func capLastError(s string) string {
	if len(s) <= maxLastError {
		return s
	}
	i := maxLastError
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

func checkUpstreamLimit(limit int) error {
	if limit <= 0 || limit > maxUpstreamPage {
		return fmt.Errorf("limit %d, want 1 to %d", limit, maxUpstreamPage)
	}
	return nil
}

// milliOrZero stores a zero time as 0 (fromMilli reads it back as zero).
func milliOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// affectedOne turns "no row changed" into ErrNotFound.
func affectedOne(res sql.Result, op string, id int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s %d: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s %d: %w", op, id, ErrNotFound)
	}
	return nil
}

const upstreamCols = `id, config_id, credential_id, provider, engine, domain, fqdn, value, key_auth, ttl, state,
	attempts, last_error, created_by, created_at, expires_at, next_attempt_at`

func scanUpstream(s scanner) (UpstreamRecord, error) {
	var r UpstreamRecord
	var ttl, created, expires, next int64
	if err := s.Scan(&r.ID, &r.ConfigID, &r.CredentialID, &r.Provider, &r.Engine, &r.Domain, &r.FQDN, &r.Value,
		&r.KeyAuth, &ttl, &r.State, &r.Attempts, &r.LastError, &r.CreatedBy, &created, &expires, &next); err != nil {
		return UpstreamRecord{}, err
	}
	var err error
	if r.TTL, err = ttlFromDB(ttl); err != nil {
		return UpstreamRecord{}, fmt.Errorf("upstream record %d: %w", r.ID, err)
	}
	r.CreatedAt, r.ExpiresAt, r.NextAttemptAt = fromMilli(created), fromMilli(expires), fromMilli(next)
	return r, nil
}

func queryUpstream(ctx context.Context, q queryer, query string, args ...any) ([]UpstreamRecord, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanUpstream)
}

// beginUpstream is BeginUpstreamRecord inside the writer's transaction, so
// that the checks and the insert cannot be raced. With conflict true, rec
// is the conflicting record and nothing was written.
func (w *wtx) beginUpstream(r UpstreamRecord, lim UpstreamLimits) (rec UpstreamRecord, existing, conflict bool, err error) {
	if lim.Exclusive {
		// Any credential: two credentials may reach the same zone.
		c, err := scanUpstream(w.queryRow(`SELECT `+upstreamCols+` FROM upstream_records
			WHERE fqdn = ? AND value <> ? AND state IN ('adding', 'live', 'cleaning') ORDER BY id LIMIT 1`,
			r.FQDN, r.Value))
		if err == nil {
			return c, false, true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return UpstreamRecord{}, false, false, err
		}
	}
	old, err := scanUpstream(w.queryRow(`SELECT `+upstreamCols+` FROM upstream_records
		WHERE credential_id = ? AND fqdn = ? AND value = ?`, r.CredentialID, r.FQDN, r.Value))
	now, expires := w.now.UnixMilli(), r.ExpiresAt.UnixMilli()
	if errors.Is(err, sql.ErrNoRows) || (err == nil && old.State == UpstreamFailed) {
		// A new value, or a failed one (not counted) counting again.
		if err := w.upstreamLimits(r, lim); err != nil {
			return UpstreamRecord{}, false, false, err
		}
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		rec, err = scanUpstream(w.queryRow(`INSERT INTO upstream_records (config_id, credential_id, provider, engine,
				domain, fqdn, value, key_auth, ttl, state, created_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'adding', ?, ?, ?) RETURNING `+upstreamCols,
			r.ConfigID, r.CredentialID, r.Provider, r.Engine, r.Domain, r.FQDN, r.Value, r.KeyAuth, int64(r.TTL),
			r.CreatedBy, now, expires))
		if err == nil {
			err = w.bumpGenerations(GenUpstreamRecords)
		}
		return rec, false, false, sqlErr(err)
	case err != nil:
		return UpstreamRecord{}, false, false, err
	case old.State == UpstreamAdding || old.State == UpstreamCleaning:
		return old, true, false, fmt.Errorf("record %d is %s: %w", old.ID, old.State, ErrBusy)
	case old.State == UpstreamLive:
		// Still there: only the expiry moves, never back.
		rec, err = scanUpstream(w.queryRow(`UPDATE upstream_records SET expires_at = max(expires_at, ?)
			WHERE id = ? RETURNING `+upstreamCols, expires, old.ID))
		return rec, true, false, err
	default:
		// Being removed or given up: the caller writes it again, as r
		// says, so the row becomes r's. created_at restarts, or the
		// sweeper would take the new call for a stale one.
		rec, err = scanUpstream(w.queryRow(`UPDATE upstream_records SET config_id = ?, provider = ?, engine = ?,
				domain = ?, key_auth = ?, ttl = ?, state = 'adding', attempts = 0, last_error = '', created_by = ?,
				created_at = ?, expires_at = max(expires_at, ?), next_attempt_at = 0
			WHERE id = ? RETURNING `+upstreamCols,
			r.ConfigID, r.Provider, r.Engine, r.Domain, r.KeyAuth, int64(r.TTL), r.CreatedBy, now, expires, old.ID))
		return rec, true, false, sqlErr(err)
	}
}

// upstreamLimits checks the per-name and per-creator caps before a new
// record is inserted; failed records do not count (they are reported, not
// served).
func (w *wtx) upstreamLimits(r UpstreamRecord, lim UpstreamLimits) error {
	count := func(col, v string) (int, error) {
		var n int
		err := w.queryRow(`SELECT count(*) FROM upstream_records WHERE `+col+` = ? AND state <> 'failed'`, v).Scan(&n)
		return n, err
	}
	if lim.PerName > 0 {
		n, err := count("fqdn", r.FQDN)
		if err != nil {
			return err
		}
		if n >= lim.PerName {
			return fmt.Errorf("%w: %s holds %d values already (at most %d)", ErrTooManyValues, r.FQDN, n, lim.PerName)
		}
	}
	if lim.PerCreator > 0 && r.CreatedBy != "" {
		n, err := count("created_by", r.CreatedBy)
		if err != nil {
			return err
		}
		if n >= lim.PerCreator {
			return fmt.Errorf("%w: %s holds %d upstream values already (at most %d)", ErrTooManyValues, r.CreatedBy, n, lim.PerCreator)
		}
	}
	return nil
}
