package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Queries run on (nearly) every API request. Open prepares them once on
// the read pool, which then prepares each on a connection the first time
// that connection runs it and keeps it: parsing and planning cost about as
// much as running these point lookups.
const (
	qTokenByClientID    = `SELECT ` + tokenCols + `, secret_hash FROM api_tokens WHERE client_id = ?`
	qPrincipal          = `SELECT ` + principalCols + ` FROM principals WHERE id = ?`
	qRoleAssignmentsOf  = `SELECT ` + assignmentCols + ` FROM role_assignments WHERE principal_id = ? ORDER BY role, domains, id`
	qGeneration         = `SELECT gen FROM generations WHERE name = ?`
	qDelegationByDomain = `SELECT ` + delegationCols + ` FROM delegations WHERE domain = ?`
	qDelegationByLabel  = `SELECT ` + delegationCols + ` FROM delegations WHERE label = ?`
	qDelegationByName   = `SELECT ` + delegationCols + ` FROM delegations WHERE name = ?`
	qListConfigs        = `SELECT ` + configCols + ` FROM managed_challenges ORDER BY id`
	qListValues         = `SELECT name, value, ttl, created_at, expires_at, created_by
		FROM txt_values WHERE name = ? ORDER BY value`
	qSerial = `SELECT serial FROM zone_state WHERE id = 1`
)

var hotReads = append([]string{qTokenByClientID, qPrincipal, qRoleAssignmentsOf, qGeneration,
	qDelegationByDomain, qDelegationByLabel, qDelegationByName, qListConfigs, qListValues, qSerial, qACMEDNSAccount},
	qGenerations[1:]...)

// qGenerations[n] reads n generations as one row (Generations), so that
// reading them costs one step; n up to len(qGenerations)-1 is prepared.
var qGenerations = func() []string {
	qs := make([]string, 5)
	for n := 1; n < len(qs); n++ {
		qs[n] = generationsQuery(n)
	}
	return qs
}()

func generationsQuery(n int) string {
	cols := make([]string, n)
	for i := range cols {
		cols[i] = `coalesce((SELECT gen FROM generations WHERE name = ?), 0)`
	}
	return `SELECT ` + strings.Join(cols, `, `)
}

// prepareReads prepares hotReads on the read pool.
func (db *DB) prepareReads(ctx context.Context) error {
	db.reads = make(map[string]*sql.Stmt, len(hotReads))
	for _, q := range hotReads {
		st, err := db.r.PrepareContext(ctx, q) //nolint:sqlclosecheck // cached for the pool's life; DB.Close closes db.reads
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		db.reads[q] = st
	}
	return nil
}

// queryRow runs a read on the pool, through its prepared statement if the
// query is hot.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st, ok := db.reads[query]; ok {
		return st.QueryRowContext(ctx, args...)
	}
	return db.r.QueryRowContext(ctx, query, args...)
}

// query runs a read on the pool like queryRow.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st, ok := db.reads[query]; ok {
		return st.QueryContext(ctx, args...)
	}
	return db.r.QueryContext(ctx, query, args...)
}

// readQueryer adapts db.query to the queryer interface.
type readQueryer struct{ db *DB }

func (q readQueryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.db.query(ctx, query, args...)
}

// collect reads every row with scan, then closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
