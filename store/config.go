package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

// Defaults applied by Open for zero Config fields.
const (
	DefaultSynchronous      = "NORMAL"
	DefaultBusyTimeout      = 5 * time.Second
	DefaultMaxValuesPerName = 32
	DefaultJournalMaxAge    = 24 * time.Hour
	DefaultJournalMaxRows   = 200_000
	DefaultReadConns        = 4
)

// Config configures Open.
type Config struct {
	// Path is the SQLite database file; it is created when missing. The
	// files Path+"-wal", Path+"-shm" and Path+".lock" live beside it.
	// Required; it may not contain '?' or '#'.
	Path string

	// Synchronous is SQLite's synchronous setting: "NORMAL" (default)
	// survives a crash of the process, "FULL" also survives power loss
	// (one fsync per committed batch of writes).
	Synchronous string

	// BusyTimeout is how long a statement waits for a lock held by another
	// process (the admin CLI, a backup) before failing. Default 5s.
	BusyTimeout time.Duration

	// MaxValuesPerName caps the TXT values one name holds at once.
	// Default 32.
	MaxValuesPerName int

	// JournalMaxAge and JournalMaxRows bound the zone journal: older rows,
	// and rows beyond the newest JournalMaxRows, are pruned by the sweeper
	// (whole serials; the latest serial is always kept). A consumer further
	// behind gets zone.ErrGap and reloads. Defaults 24h and 200,000 rows.
	JournalMaxAge  time.Duration
	JournalMaxRows int

	// ReadConns is the size of the read connection pool. Default 4.
	ReadConns int

	// OnCommit, if set, is called with the changes of every committed
	// transaction that changed the zone, one call per serial, in commit
	// order, before any write of that transaction is acknowledged to its
	// caller. It runs on the single writer goroutine: it must be quick and
	// must not write to this DB (that would deadlock); reading is fine.
	// Changes committed by other processes do not reach it: poll Serial.
	OnCommit func([]zone.Change)

	// Logger receives warnings (failed best-effort writes, sweeper errors).
	// Default: discard.
	Logger *slog.Logger
}

// validate fills in defaults and reports every problem at once.
func (c *Config) validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path is required"))
	}
	if strings.ContainsAny(c.Path, "?#") {
		errs = append(errs, fmt.Errorf("path %q may not contain '?' or '#'", c.Path))
	}
	switch s := strings.ToUpper(c.Synchronous); s {
	case "":
		c.Synchronous = DefaultSynchronous
	case "NORMAL", "FULL":
		c.Synchronous = s
	default:
		errs = append(errs, fmt.Errorf("synchronous %q: want NORMAL or FULL", c.Synchronous))
	}
	switch {
	case c.BusyTimeout == 0:
		c.BusyTimeout = DefaultBusyTimeout
	case c.BusyTimeout < time.Millisecond:
		errs = append(errs, fmt.Errorf("busy timeout %v: want at least 1ms", c.BusyTimeout))
	}
	switch {
	case c.MaxValuesPerName == 0:
		c.MaxValuesPerName = DefaultMaxValuesPerName
	case c.MaxValuesPerName < 0 || c.MaxValuesPerName > 10_000:
		errs = append(errs, fmt.Errorf("max values per name %d: want 1 to 10000", c.MaxValuesPerName))
	}
	switch {
	case c.JournalMaxAge == 0:
		c.JournalMaxAge = DefaultJournalMaxAge
	case c.JournalMaxAge < 0:
		errs = append(errs, fmt.Errorf("journal max age %v is negative", c.JournalMaxAge))
	}
	switch {
	case c.JournalMaxRows == 0:
		c.JournalMaxRows = DefaultJournalMaxRows
	case c.JournalMaxRows < 0:
		errs = append(errs, fmt.Errorf("journal max rows %d is negative", c.JournalMaxRows))
	}
	switch {
	case c.ReadConns == 0:
		c.ReadConns = DefaultReadConns
	case c.ReadConns < 0:
		errs = append(errs, fmt.Errorf("read conns %d is negative", c.ReadConns))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
