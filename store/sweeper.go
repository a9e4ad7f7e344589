package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sweeper intervals. Expired values must be gone within 10 s (DESIGN.md).
const (
	DefaultSweepEvery = 5 * time.Second
	MaxSweepEvery     = 10 * time.Second
)

// pruneEvery spaces journal pruning: it scans the journal, so not every sweep.
const pruneEvery = time.Minute

// RunSweeper removes expired values every interval (0: DefaultSweepEvery;
// above MaxSweepEvery is refused) and prunes the journal about once a
// minute, until ctx ends (it then returns nil) or the DB is closed (nil
// too). Errors are logged and retried at the next tick.
func (db *DB) RunSweeper(ctx context.Context, every time.Duration) error {
	if every == 0 {
		every = DefaultSweepEvery
	}
	if every < 0 || every > MaxSweepEvery {
		return fmt.Errorf("store: run sweeper: %w: interval %v, want up to %v", ErrInvalid, every, MaxSweepEvery)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		if serial, n, err := db.Sweep(ctx, now); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			if ctx.Err() == nil {
				db.cfg.Logger.Error("store: sweep expired values", "err", err)
			}
		} else if n > 0 {
			db.cfg.Logger.Debug("store: swept expired values", "removed", n, "serial", serial)
		}
		if now.Sub(lastPrune) >= pruneEvery {
			if _, err := db.PruneJournal(ctx, now); err != nil {
				if errors.Is(err, ErrClosed) {
					return nil
				}
				if ctx.Err() == nil {
					db.cfg.Logger.Error("store: prune journal", "err", err)
				}
			} else {
				lastPrune = now
			}
		}
	}
}
