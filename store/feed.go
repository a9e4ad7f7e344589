package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

// defaultMaxSerials applies when ChangesSince gets maxSerials <= 0.
const defaultMaxSerials = 1000

// Serial returns the latest committed zone serial (the int64 counter; see
// SerialPublished for the SOA value). One indexed row: cheap to poll.
func (db *DB) Serial(ctx context.Context) (int64, error) {
	var s int64
	if err := db.r.QueryRowContext(ctx, `SELECT serial FROM zone_state WHERE id = 1`).Scan(&s); err != nil {
		return 0, fmt.Errorf("store: read serial: %w", err)
	}
	return s, nil
}

// Snapshot returns the whole zone at one serial, read in one transaction.
// Values are ordered by (name, value), names by name. Names lists every
// name added by AddName, whether or not it also holds values.
func (db *DB) Snapshot(ctx context.Context) (zone.Snapshot, error) {
	var snap zone.Snapshot
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT serial FROM zone_state WHERE id = 1`).Scan(&snap.Serial); err != nil {
			return fmt.Errorf("serial: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT name, value, ttl FROM txt_values ORDER BY name, value`)
		if err != nil {
			return fmt.Errorf("values: %w", err)
		}
		for rows.Next() {
			var v zone.Value
			var ttl int64
			if err := rows.Scan(&v.Name, &v.Value, &ttl); err != nil {
				_ = rows.Close() // read-only; the Scan error is the one to report
				return fmt.Errorf("values: %w", err)
			}
			if v.TTL, err = ttlFromDB(ttl); err != nil {
				_ = rows.Close() // read-only; the range error is the one to report
				return fmt.Errorf("values: %w", err)
			}
			snap.Values = append(snap.Values, v)
		}
		if err := rows.Err(); err != nil { // Next returning false closed rows
			return fmt.Errorf("values: %w", err)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("values: %w", err)
		}
		rows, err = tx.QueryContext(ctx, `SELECT name FROM zone_names ORDER BY name`)
		if err != nil {
			return fmt.Errorf("names: %w", err)
		}
		defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return fmt.Errorf("names: %w", err)
			}
			snap.Names = append(snap.Names, n)
		}
		return rows.Err()
	})
	if err != nil {
		return zone.Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	return snap, nil
}

// readTx runs fn in one read transaction: in WAL mode every statement in it
// sees the same committed state, whatever the writer does meanwhile.
func (db *DB) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to commit
	return fn(tx)
}

// ChangesSince returns the journalled changes of the serials after since,
// ordered by serial and then commit order, whole serials only and at most
// maxSerials of them (default 1000 when <= 0). It returns nil when since is
// the latest serial, and an error wrapping zone.ErrGap when serial since+1
// is no longer in the journal (pruned, or skipped by a Restore) or since is
// ahead of the store.
func (db *DB) ChangesSince(ctx context.Context, since int64, maxSerials int) ([]zone.Change, error) {
	if maxSerials <= 0 {
		maxSerials = defaultMaxSerials
	}
	var out []zone.Change
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		var cur int64
		if err := tx.QueryRowContext(ctx, `SELECT serial FROM zone_state WHERE id = 1`).Scan(&cur); err != nil {
			return fmt.Errorf("serial: %w", err)
		}
		if since == cur {
			return nil
		}
		if since > cur || since < 0 {
			return fmt.Errorf("%w: the store is at serial %d", zone.ErrGap, cur)
		}
		upto := min(cur, since+int64(maxSerials))
		rows, err := tx.QueryContext(ctx, `SELECT serial, op, name, value, ttl FROM zone_journal
			WHERE serial > ? AND serial <= ? ORDER BY serial, id`, since, upto)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
		prev := since
		for rows.Next() {
			var c zone.Change
			var op, ttl int64
			if err := rows.Scan(&c.Serial, &op, &c.Name, &c.Value, &ttl); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			if c.Serial != prev && c.Serial != prev+1 {
				return fmt.Errorf("%w: serial %d is missing from the journal", zone.ErrGap, prev+1)
			}
			if c.Op, err = opFromDB(op); err != nil {
				return fmt.Errorf("journal: serial %d: %w", c.Serial, err)
			}
			if c.TTL, err = ttlFromDB(ttl); err != nil {
				return fmt.Errorf("journal: serial %d: %w", c.Serial, err)
			}
			prev = c.Serial
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if prev != upto {
			return fmt.Errorf("%w: serial %d is missing from the journal", zone.ErrGap, prev+1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: changes since %d: %w", since, err)
	}
	return out, nil
}

// PruneJournal deletes journal rows older than JournalMaxAge and beyond the
// newest JournalMaxRows, whole serials only, always keeping the latest
// serial's rows. RunSweeper calls it; it returns the rows deleted.
func (db *DB) PruneJournal(ctx context.Context, now time.Time) (int, error) {
	var deleted int
	_, err := db.write(ctx, "prune journal", func(w *wtx) error {
		n, err := w.pruneJournal(now)
		if err != nil {
			return fmt.Errorf("store: prune journal: %w", err)
		}
		deleted = n
		return nil
	})
	if err != nil {
		return 0, err // deleted may still be written by the writer
	}
	return deleted, nil
}

func (w *wtx) pruneJournal(now time.Time) (int, error) {
	var latest, byAge, byRows sql.NullInt64
	if err := w.queryRow(`SELECT max(serial) FROM zone_journal`).Scan(&latest); err != nil {
		return 0, fmt.Errorf("latest: %w", err)
	}
	if !latest.Valid {
		return 0, nil
	}
	cutoff := now.Add(-w.db.cfg.JournalMaxAge).UnixMilli()
	if err := w.queryRow(`SELECT max(serial) FROM zone_journal WHERE at < ?`, cutoff).Scan(&byAge); err != nil {
		return 0, fmt.Errorf("by age: %w", err)
	}
	err := w.queryRow(`SELECT serial FROM zone_journal ORDER BY id DESC LIMIT 1 OFFSET ?`,
		w.db.cfg.JournalMaxRows).Scan(&byRows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("by rows: %w", err)
	}
	upto := max(byAge.Int64, byRows.Int64) // Int64 is 0 when NULL
	upto = min(upto, latest.Int64-1)
	if upto <= 0 {
		return 0, nil
	}
	res, err := w.exec(`DELETE FROM zone_journal WHERE serial <= ?`, upto)
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Generation names of the cached tables outside the zone.
const (
	GenTokens = "tokens"
)

// Generation returns the change counter of a cached table (0 if it never
// changed). A cache compares it with the value it loaded at and reloads
// when it moved; writes by other processes bump it too.
func (db *DB) Generation(ctx context.Context, name string) (int64, error) {
	var g int64
	err := db.r.QueryRowContext(ctx, `SELECT gen FROM generations WHERE name = ?`, name).Scan(&g)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: read generation %q: %w", name, err)
	}
	return g, nil
}

// BumpGeneration increments the counter of a cached table in its own
// write and returns the new value. Writes in this package bump it in the
// same transaction as the change instead.
func (db *DB) BumpGeneration(ctx context.Context, name string) (int64, error) {
	if name == "" {
		return 0, fmt.Errorf("store: bump generation: %w: empty name", ErrInvalid)
	}
	var g int64
	_, err := db.write(ctx, "bump generation", func(w *wtx) error {
		var err error
		g, err = w.bumpGeneration(name)
		return err
	})
	if err != nil {
		return 0, err
	}
	return g, nil
}

func (w *wtx) bumpGeneration(name string) (int64, error) {
	var g int64
	err := w.queryRow(`INSERT INTO generations (name, gen) VALUES (?, 1)
		ON CONFLICT (name) DO UPDATE SET gen = gen + 1 RETURNING gen`, name).Scan(&g)
	if err != nil {
		return 0, fmt.Errorf("store: bump generation %q: %w", name, err)
	}
	return g, nil
}

// SerialPublished is the SOA serial for counter c: c mod 2^32.
func SerialPublished(c int64) uint32 {
	return uint32(c) //nolint:gosec // truncation is the point: the SOA serial is the counter mod 2^32
}

// SerialLess reports whether SOA serial a is older than b in RFC 1982
// serial number arithmetic. Serials exactly 2^31 apart are incomparable
// (neither is less).
func SerialLess(a, b uint32) bool {
	// RFC 1982: b-a wraps mod 2^32; read as int32 it is positive exactly
	// when b is ahead of a by less than 2^31.
	return a != b && int32(b-a) > 0 //nolint:gosec // intentional two's-complement reinterpretation (RFC 1982)
}
