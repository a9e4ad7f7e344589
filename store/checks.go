package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DelegationCheck is the stored result of a domain's last delegation
// check: whether _acme-challenge.<domain> is a CNAME to the delegation's
// name on every nameserver (internal/dnscheck decides the State).
type DelegationCheck struct {
	State    string // "": never checked
	Detail   string // one sentence for the domain's owner
	Evidence string // JSON: what each server answered; opaque here (a string keeps Delegation comparable)
	// CheckedAt is when the check ran; Since when State began to hold
	// (set by RecordDelegationCheck). Stored to the millisecond.
	CheckedAt time.Time
	Since     time.Time
}

// CheckUnchecked is the DelegationFilter.CheckState (and the
// CountDelegationChecks key) of delegations never checked.
const CheckUnchecked = "unchecked"

const checkCols = `check_state, check_detail, check_evidence, checked_at, check_since`

// checkScan receives the checkCols of a row.
type checkScan struct {
	state, detail, evidence sql.NullString
	at, since               sql.NullInt64
}

func (c *checkScan) dest() []any {
	return []any{&c.state, &c.detail, &c.evidence, &c.at, &c.since}
}

func (c *checkScan) check() DelegationCheck {
	if !c.state.Valid {
		return DelegationCheck{}
	}
	out := DelegationCheck{State: c.state.String, Detail: c.detail.String,
		CheckedAt: fromNullMilli(c.at), Since: fromNullMilli(c.since)}
	out.Evidence = c.evidence.String
	return out
}

// checkFilter adds the conditions of the check fields of f.
func checkFilter(f DelegationFilter, where []string, args []any) ([]string, []any) {
	switch f.CheckState {
	case "":
	case CheckUnchecked:
		where = append(where, `check_state IS NULL`)
	default:
		where, args = append(where, `check_state = ?`), append(args, f.CheckState)
	}
	if !f.UsedBefore.IsZero() {
		where, args = append(where, `coalesce(last_used_at, created_at) < ?`), append(args, f.UsedBefore.UnixMilli())
	}
	return where, args
}

// RecordDelegationCheck stores c as delegation id's last check, unless a
// check that ran later is stored already (checks may finish out of
// order). Since is kept while the state stays the same and set to
// c.CheckedAt when it changes. It returns the check stored before and the
// one stored now (equal when c was older). An unknown id fails with
// ErrNotFound. No generation moves: nothing the running server caches
// depends on a check.
func (db *DB) RecordDelegationCheck(ctx context.Context, id int64, c DelegationCheck) (prev, now DelegationCheck, err error) {
	if c.State == "" || c.CheckedAt.IsZero() {
		return prev, now, fmt.Errorf("store: record check of delegation %d: %w: state and time are required", id, ErrInvalid)
	}
	_, err = db.write(ctx, "record delegation check", func(w *wtx) error {
		var ck checkScan
		if err := w.queryRow(`SELECT `+checkCols+` FROM delegations WHERE id = ?`, id).Scan(ck.dest()...); err != nil {
			return fmt.Errorf("store: record check of delegation %d: %w", id, notFound(err))
		}
		prev, now = ck.check(), c
		if prev.State != "" && prev.CheckedAt.After(c.CheckedAt) {
			now = prev
			return nil
		}
		now.Since = c.CheckedAt
		if prev.State == c.State {
			now.Since = prev.Since
		}
		evidence := sql.NullString{String: c.Evidence, Valid: c.Evidence != ""}
		_, err := w.exec(`UPDATE delegations SET check_state = ?, check_detail = ?, check_evidence = ?, checked_at = ?, check_since = ?
			WHERE id = ?`, c.State, c.Detail, evidence, c.CheckedAt.UnixMilli(), now.Since.UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("store: record check of delegation %d: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return DelegationCheck{}, DelegationCheck{}, err
	}
	// What a read gives back: times to the millisecond, in UTC.
	now.CheckedAt, now.Since = fromMilli(now.CheckedAt.UnixMilli()), fromMilli(now.Since.UnixMilli())
	return prev, now, nil
}

// DelegationsToCheck returns up to limit delegations with a domain that
// were never checked or last checked before before: never checked first,
// then the oldest check, then by id.
func (db *DB) DelegationsToCheck(ctx context.Context, before time.Time, limit int) ([]Delegation, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: delegations to check: %w: limit %d", ErrInvalid, limit)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+delegationCols+` FROM delegations
		WHERE domain IS NOT NULL AND (checked_at IS NULL OR checked_at < ?)
		ORDER BY checked_at IS NOT NULL, checked_at, id LIMIT ?`, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: delegations to check: %w", err)
	}
	out, err := collect(rows, scanDelegation)
	if err != nil {
		return nil, fmt.Errorf("store: delegations to check: %w", err)
	}
	return out, nil
}

// CountDelegationChecks counts the delegations with a domain by the state
// of their last check; those never checked count as CheckUnchecked.
// States no delegation is in are absent.
func (db *DB) CountDelegationChecks(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT coalesce(check_state, ?), count(*) FROM delegations
		WHERE domain IS NOT NULL GROUP BY 1`, CheckUnchecked)
	if err != nil {
		return nil, fmt.Errorf("store: count delegation checks: %w", err)
	}
	type pair struct {
		state string
		n     int
	}
	pairs, err := collect(rows, func(s scanner) (pair, error) {
		var p pair
		return p, s.Scan(&p.state, &p.n)
	})
	if err != nil {
		return nil, fmt.Errorf("store: count delegation checks: %w", err)
	}
	out := make(map[string]int, len(pairs))
	for _, p := range pairs {
		out[p.state] = p.n
	}
	return out, nil
}

// CountValues returns how many TXT values are live: not expired yet. The
// zone still serves expired ones until the sweep removes them, but they
// are no longer anybody's challenge, so the live-values gauge leaves them
// out.
func (db *DB) CountValues(ctx context.Context) (int, error) {
	var n int
	q := `SELECT count(*) FROM txt_values WHERE expires_at > ?`
	if err := db.r.QueryRowContext(ctx, q, time.Now().UnixMilli()).Scan(&n); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return 0, fmt.Errorf("store: count values: %w", err)
	}
	return n, nil
}
