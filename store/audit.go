package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	ID int64 // assigned by AppendAudit; increasing, never reused

	At time.Time // when it happened; zero: when the writer stores it

	PrincipalID int64  // the acting principal; 0: none (failed authentication)
	TokenID     string // the token's client id, if any
	Source      string // the remote address

	// Action is what was attempted, e.g. "challenge.present" or
	// "config.update": 1-64 bytes of lower-case letters, digits, '.',
	// '_', ':' and '-'.
	Action string

	Target   string // what it was done to (a record name, config, principal)
	Domain   string // the base domain concerned, if any
	ConfigID int64  // the config concerned, if any; 0: none

	// Result is "ok", "denied", "error", "failed_auth" or another word:
	// 1-32 bytes of lower-case letters and '_'.
	Result string

	// Detail is free text for people. It must never hold secrets.
	Detail string
}

// Limits of audit fields. Free text longer than its limit is cut (with
// "…"), not refused: an event must not be lost for being long.
const (
	maxAuditAction = 64
	maxAuditResult = 32
	maxAuditToken  = 128
	maxAuditSource = 128
	maxAuditTarget = 512
	maxAuditDomain = 255
	maxAuditDetail = 4096

	// DefaultAuditLimit and MaxAuditLimit bound ListAudit's pages.
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000

	pruneAuditChunk = 5000
)

// normalize checks Action and Result (set by code, so refused when
// malformed) and cuts the free-text fields (which may carry client input)
// to their limits.
func (e *AuditEvent) normalize() error {
	if err := auditWord("action", e.Action, maxAuditAction, ".:-_0123456789"); err != nil {
		return err
	}
	if err := auditWord("result", e.Result, maxAuditResult, "_"); err != nil {
		return err
	}
	if e.PrincipalID < 0 || e.ConfigID < 0 {
		return fmt.Errorf("negative id")
	}
	e.TokenID = clip(e.TokenID, maxAuditToken)
	e.Source = clip(e.Source, maxAuditSource)
	e.Target = clip(e.Target, maxAuditTarget)
	e.Domain = clip(e.Domain, maxAuditDomain)
	e.Detail = clip(e.Detail, maxAuditDetail)
	return nil
}

func auditWord(what, s string, limit int, extra string) error {
	if s == "" || len(s) > limit {
		return fmt.Errorf("%s: want 1 to %d bytes, got %d", what, limit, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && !strings.ContainsRune(extra, rune(c)) {
			return fmt.Errorf("%s %q: only lower-case letters and %q", what, s, extra)
		}
	}
	return nil
}

// clip makes s valid UTF-8 and cuts it to at most limit bytes at a rune
// boundary, marking the cut with "…".
func clip(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	const mark = "…"
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

const qInsertAudit = `INSERT INTO audit_events (at, principal_id, token_id, source, action, target, domain,
	config_id, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// AppendAudit stores an audit event and returns once it is committed.
// Malformed Action or Result fail with ErrInvalid; long free text is cut.
// It goes through the single writer, so concurrent events (and other
// writes) share one transaction and one commit: an event costs the
// caller about one group commit, and is never dropped silently.
func (db *DB) AppendAudit(ctx context.Context, e AuditEvent) error {
	if err := e.normalize(); err != nil {
		return fmt.Errorf("store: append audit event %q: %w: %w", e.Action, ErrInvalid, err)
	}
	_, err := db.write(ctx, "append audit event", func(w *wtx) error {
		return w.appendAudit(e)
	})
	return err
}

// normalizedAudit returns a normalised copy of an optional event carried by
// another write (nil stays nil).
func normalizedAudit(e *AuditEvent) (*AuditEvent, error) {
	if e == nil {
		return nil, nil
	}
	c := *e
	if err := c.normalize(); err != nil {
		return nil, fmt.Errorf("audit event %q: %w", c.Action, err)
	}
	return &c, nil
}

// appendAudit inserts a normalised event inside the writer's transaction.
func (w *wtx) appendAudit(e AuditEvent) error {
	at := e.At
	if at.IsZero() {
		at = w.now
	}
	if _, err := w.exec(qInsertAudit, at.UnixMilli(), nullID(e.PrincipalID), e.TokenID, e.Source, e.Action,
		e.Target, e.Domain, nullID(e.ConfigID), e.Result, e.Detail); err != nil {
		return fmt.Errorf("store: append audit event %q: %w", e.Action, sqlErr(err))
	}
	return nil
}

// AuditFilter selects audit events for ListAudit; zero fields select
// everything.
type AuditFilter struct {
	Since, Until time.Time // At >= Since, At < Until when not zero

	PrincipalID int64  // > 0: only this principal's events
	Domain      string // only events about this domain (exact)
	Action      string // only this action
	Result      string // only this result

	// ConfigIDs keeps only events about one of these configs. With
	// RestrictConfigs set an empty list keeps none (so a caller scoping
	// by "own configs" cannot widen the scope by having none).
	ConfigIDs       []int64
	RestrictConfigs bool

	Limit    int   // page size: 0 means DefaultAuditLimit, at most MaxAuditLimit
	BeforeID int64 // paging: only ids below this (pass the last ID seen)
}

const auditCols = `id, at, principal_id, token_id, source, action, target, domain, config_id, result, detail`

// ListAudit returns the events the filter selects, newest first (by id).
// For the next page pass the last event's ID as BeforeID.
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit == 0 {
		f.Limit = DefaultAuditLimit
	}
	if f.Limit < 0 || f.Limit > MaxAuditLimit || f.PrincipalID < 0 || f.BeforeID < 0 {
		return nil, fmt.Errorf("store: list audit: %w: limit %d (want 1 to %d), principal %d, before %d",
			ErrInvalid, f.Limit, MaxAuditLimit, f.PrincipalID, f.BeforeID)
	}
	var where []string
	var args []any
	cond := func(c string, a ...any) {
		where, args = append(where, c), append(args, a...)
	}
	if !f.Since.IsZero() {
		cond(`at >= ?`, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		cond(`at < ?`, f.Until.UnixMilli())
	}
	if f.PrincipalID > 0 {
		cond(`principal_id = ?`, f.PrincipalID)
	}
	if f.Domain != "" {
		cond(`domain = ?`, f.Domain)
	}
	if f.Action != "" {
		cond(`action = ?`, f.Action)
	}
	if f.Result != "" {
		cond(`result = ?`, f.Result)
	}
	if f.RestrictConfigs || len(f.ConfigIDs) > 0 {
		ids, err := json.Marshal(append([]int64{}, f.ConfigIDs...))
		if err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		cond(`config_id IN (SELECT value FROM json_each(?))`, string(ids))
	}
	if f.BeforeID > 0 {
		cond(`id < ?`, f.BeforeID)
	}
	q := `SELECT ` + auditCols + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `) //nolint:gosec // joins constant conditions; every value is a bound parameter
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at int64
		var principal, config sql.NullInt64
		if err := rows.Scan(&e.ID, &at, &principal, &e.TokenID, &e.Source, &e.Action, &e.Target, &e.Domain,
			&config, &e.Result, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		e.At, e.PrincipalID, e.ConfigID = fromMilli(at), principal.Int64, config.Int64
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	return out, nil
}

// PruneAudit deletes the events from before olderThan and returns how
// many. It deletes in chunks, each its own write, so the writer stays
// responsive; the caller chooses the retention.
func (db *DB) PruneAudit(ctx context.Context, olderThan time.Time) (int, error) {
	total := 0
	for {
		var n int
		_, err := db.write(ctx, "prune audit", func(w *wtx) error {
			res, err := w.exec(`DELETE FROM audit_events WHERE id IN (
				SELECT id FROM audit_events WHERE at < ? ORDER BY at LIMIT ?)`, olderThan.UnixMilli(), pruneAuditChunk)
			if err != nil {
				return fmt.Errorf("store: prune audit: %w", err)
			}
			m, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("store: prune audit: %w", err)
			}
			n = int(m)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneAuditChunk {
			return total, nil
		}
	}
}
