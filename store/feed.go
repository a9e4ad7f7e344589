package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

// defaultMaxSerials applies when ChangesSince gets maxSerials <= 0.
const defaultMaxSerials = 1000

// Serial returns the latest committed zone serial (the int64 counter; see
// SerialPublished for the SOA value). One indexed row: cheap to poll.
func (db *DB) Serial(ctx context.Context) (int64, error) {
	var s int64
	if err := db.queryRow(ctx, qSerial).Scan(&s); err != nil {
		return 0, fmt.Errorf("store: read serial: %w", err)
	}
	return s, nil
}

// The DNS view's follower loads the zone through this optional interface.
var _ zone.SnapshotStreamer = (*DB)(nil)

// Snapshot returns the whole zone at one serial, read in one transaction.
// Values are ordered by (name, value), names by name. Names lists every
// name added by AddName, whether or not it also holds values.
func (db *DB) Snapshot(ctx context.Context) (zone.Snapshot, error) {
	var c snapshotCollector
	serial, err := db.streamSnapshot(ctx, &c)
	if err != nil {
		return zone.Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	// Rows come in table order: sorting here is far cheaper than having
	// SQLite read them in index order, which costs a table lookup (often a
	// page read) per row. Both compare bytes, like SQLite's BINARY collation.
	vals := c.snap.Values
	slices.SortFunc(vals, func(a, b zone.Value) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	// Consecutive values of one name share one name string; the driver's
	// copies become garbage.
	for i := 1; i < len(vals); i++ {
		if vals[i].Name == vals[i-1].Name {
			vals[i].Name = vals[i-1].Name
		}
	}
	c.snap.Serial = serial
	return c.snap, nil
}

// snapshotCollector is the zone.SnapshotSink that Snapshot reads into.
type snapshotCollector struct{ snap zone.Snapshot }

func (c *snapshotCollector) Grow(values, names int) {
	c.snap.Values = slices.Grow(c.snap.Values, values)
	c.snap.Names = slices.Grow(c.snap.Names, names)
}

func (c *snapshotCollector) Value(v zone.Value) { c.snap.Values = append(c.snap.Values, v) }

func (c *snapshotCollector) Name(name string) { c.snap.Names = append(c.snap.Names, name) }

// StreamSnapshot implements zone.SnapshotStreamer: it feeds sink the whole
// zone at one serial, read in one transaction, and returns that serial.
// Values come in table order (not sorted), then names ordered by name; the
// sink is told their numbers first. Nothing of the zone is materialised
// here: each row goes to the sink as it is read.
func (db *DB) StreamSnapshot(ctx context.Context, sink zone.SnapshotSink) (int64, error) {
	serial, err := db.streamSnapshot(ctx, sink)
	if err != nil {
		return 0, fmt.Errorf("store: stream snapshot: %w", err)
	}
	return serial, nil
}

func (db *DB) streamSnapshot(ctx context.Context, sink zone.SnapshotSink) (int64, error) {
	var serial int64
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT serial FROM zone_state WHERE id = 1`).Scan(&serial); err != nil {
			return fmt.Errorf("serial: %w", err)
		}
		// count(*) reads the smallest index, a fraction of the table: cheap
		// next to the scan, and it lets the sink size its tables once. (Three
		// simple statements cost SQLite less memory than one with subqueries.)
		var nValues, nNames int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM txt_values`).Scan(&nValues); err != nil {
			return fmt.Errorf("count values: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM zone_names`).Scan(&nNames); err != nil {
			return fmt.Errorf("count names: %w", err)
		}
		sink.Grow(nValues, nNames)
		if err := scanValues(ctx, tx, sink); err != nil {
			return fmt.Errorf("values: %w", err)
		}
		if err := scanNames(ctx, tx, sink); err != nil {
			return fmt.Errorf("names: %w", err)
		}
		return nil
	})
	return serial, err
}

// scanValues feeds every txt_values row to sink, in table order.
func scanValues(ctx context.Context, tx *sql.Tx, sink zone.SnapshotSink) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, value, ttl FROM txt_values`)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	// Declared once: Scan makes its destinations escape, so variables
	// declared in the loop would be two heap allocations per row.
	var v zone.Value
	var ttl int64
	for rows.Next() {
		if err := rows.Scan(&v.Name, &v.Value, &ttl); err != nil {
			return err
		}
		if v.TTL, err = ttlFromDB(ttl); err != nil {
			return err
		}
		sink.Value(v)
	}
	return rows.Err()
}

// scanNames feeds every zone_names row to sink, ordered by name (the
// primary key's index covers the query).
func scanNames(ctx context.Context, tx *sql.Tx, sink zone.SnapshotSink) error {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM zone_names ORDER BY name`)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err is checked below
	var name string
	for rows.Next() {
		if err := rows.Scan(&name); err != nil {
			return err
		}
		sink.Name(name)
	}
	return rows.Err()
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
	err := db.queryRow(ctx, qGeneration, name).Scan(&g)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: read generation %q: %w", name, err)
	}
	return g, nil
}

// Generations returns the change counters of several cached tables at
// once, in the order of names (0 for one that never changed), read in one
// query: a service that caches several tables checks them all for the
// price of one lookup.
func (db *DB) Generations(ctx context.Context, names ...string) ([]int64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	q := generationsQuery(len(names))
	if len(names) < len(qGenerations) {
		q = qGenerations[len(names)]
	}
	out := make([]int64, len(names))
	args, dest := make([]any, len(names)), make([]any, len(names))
	for i, n := range names {
		args[i], dest[i] = n, &out[i]
	}
	if err := db.queryRow(ctx, q, args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("store: read generations %q: %w", names, err)
	}
	return out, nil
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
