package zone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultPollInterval is how often a Follower asks its Source for the serial
// when no interval is given.
const DefaultPollInterval = 250 * time.Millisecond

const (
	// chunkSerials bounds one ChangesSince read so a long catch-up does not
	// hold one huge batch (and the view's write lock) at once.
	chunkSerials = 1000
	// deliverTimeout bounds the synchronous catch-up inside Deliver, which
	// has no context of its own.
	deliverTimeout = 10 * time.Second
	maxRetryWait   = 5 * time.Second
	warnEvery      = 30 * time.Second
)

// SnapshotSink receives a snapshot from a SnapshotStreamer; *Loader
// implements it.
type SnapshotSink interface {
	// Grow tells about how many values and names will follow (a hint).
	Grow(values, names int)
	// Value receives one value. The sink may keep its strings.
	Value(v Value)
	// Name receives one name that exists without values (Snapshot.Names).
	Name(name string)
}

// SnapshotStreamer is an optional interface of a Source: StreamSnapshot
// delivers the content Snapshot returns one value and one name at a time,
// so that a large zone loads without the whole Snapshot in memory next to
// the View it becomes. A Follower uses it when its Source implements it.
type SnapshotStreamer interface {
	// StreamSnapshot feeds sink the complete zone content at one consistent
	// serial, in any order, and returns that serial. After an error, what
	// sink received is incomplete and must be discarded.
	StreamSnapshot(ctx context.Context, sink SnapshotSink) (serial int64, err error)
}

// Follower keeps a View current from a Source: a full Snapshot at start and
// after any gap, then journal changes, pushed in-process by Deliver and
// pulled by a poll loop that notices other writers (the admin CLI, other
// nodes). While the source fails, the view keeps serving what it has.
type Follower struct {
	src  Source
	view *View
	log  *slog.Logger
	poll time.Duration

	// mu makes Deliver, the poll loop and CatchUp one writer at a time, so
	// a catch-up never races a reload.
	mu     sync.Mutex
	loaded bool // a Snapshot has been loaded; guarded by mu

	wake      chan struct{}
	ready     chan struct{}
	readyOnce sync.Once

	// Owned by the Run goroutine.
	failingSince, lastWarn time.Time
}

// NewFollower returns a follower that keeps view current from src. A nil
// logger discards; pollInterval <= 0 means DefaultPollInterval.
func NewFollower(src Source, view *View, logger *slog.Logger, pollInterval time.Duration) *Follower {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if pollInterval <= 0 {
		pollInterval = DefaultPollInterval
	}
	return &Follower{
		src:   src,
		view:  view,
		log:   logger,
		poll:  pollInterval,
		wake:  make(chan struct{}, 1),
		ready: make(chan struct{}),
	}
}

// Ready is closed once the view holds a complete snapshot. Serve DNS only
// after it: an unloaded view answers SERVFAIL.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Notify wakes the poll loop to check the source now (e.g. on a PostgreSQL
// LISTEN notification). It never blocks.
func (f *Follower) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run loads a snapshot, retrying until it succeeds, then follows the source
// until ctx ends. It returns nil when ctx is cancelled: source errors are
// logged and retried, never fatal, because the view keeps serving.
func (f *Follower) Run(ctx context.Context) error {
	wait := f.poll
	for {
		f.mu.Lock()
		err := f.ensureLoadedLocked(ctx)
		f.mu.Unlock()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		f.log.Warn("zone: initial load failed; retrying", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, maxRetryWait)
	}

	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-f.wake:
		}
		err := f.sync(ctx)
		if ctx.Err() != nil {
			return nil
		}
		f.report(err)
	}
}

// report logs a failing source once, then every warnEvery while it keeps
// failing, and once when it recovers, rather than on every poll.
func (f *Follower) report(err error) {
	now := time.Now()
	switch {
	case err != nil && (f.failingSince.IsZero() || now.Sub(f.lastWarn) >= warnEvery):
		if f.failingSince.IsZero() {
			f.failingSince = now
		}
		f.lastWarn = now
		f.log.Warn("zone: following the source failed; serving the current view", "err", err,
			"serial", f.view.Serial(), "failing_for", now.Sub(f.failingSince).Round(time.Millisecond).String())
	case err == nil && !f.failingSince.IsZero():
		f.log.Info("zone: source reachable again", "serial", f.view.Serial(),
			"failed_for", now.Sub(f.failingSince).Round(time.Millisecond).String())
		f.failingSince = time.Time{}
	}
}

// Deliver applies changes just committed by this process's store writer,
// in commit order, right after the commit (without holding store locks that
// ChangesSince needs). On a gap it catches up from the source synchronously,
// so when Deliver returns the view includes those serials unless the source
// failed; then the error is logged and the poll loop retries.
func (f *Follower) Deliver(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := ErrGap
	if f.loaded {
		err = f.view.Apply(changes)
	}
	if err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	last := changes[len(changes)-1].Serial
	if err := f.catchUpLocked(ctx, last); err != nil {
		f.log.Warn("zone: catching up after a delivered change failed", "err", err, "serial", last)
		f.Notify()
	}
}

// CatchUp returns once the view holds serial (or a later one), reading the
// source as needed; it waits for a source that is behind until ctx ends.
func (f *Follower) CatchUp(ctx context.Context, serial int64) error {
	for {
		f.mu.Lock()
		err := f.catchUpLocked(ctx, serial)
		f.mu.Unlock()
		if err == nil {
			return nil
		}
		if !sleep(ctx, min(f.poll, 20*time.Millisecond)) {
			return fmt.Errorf("zone: catch up to serial %d: %w (last: %w)", serial, ctx.Err(), err)
		}
	}
}

// sync brings the view to the source's current serial.
func (f *Follower) sync(ctx context.Context) error {
	// Read the view's serial before the source's: the view never runs ahead
	// of the source, so a source serial below it means the store really went
	// back (a restore), not that Deliver raced this call.
	before := f.view.Serial()
	latest, err := f.src.Serial(ctx)
	if err != nil {
		return fmt.Errorf("zone: read source serial: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if latest < before {
		f.log.Info("zone: source serial went back; reloading", "serial", latest, "view_serial", before)
		return f.reloadLocked(ctx)
	}
	return f.catchUpLocked(ctx, latest)
}

// catchUpLocked applies journal changes until the view holds target,
// reloading the whole snapshot on a gap (once: a second gap is an error).
func (f *Follower) catchUpLocked(ctx context.Context, target int64) error {
	reloaded := !f.loaded
	if err := f.ensureLoadedLocked(ctx); err != nil {
		return err
	}
	for f.view.Serial() < target {
		cur := f.view.Serial()
		changes, err := f.src.ChangesSince(ctx, cur, chunkSerials)
		if err == nil {
			err = f.view.Apply(changes)
		}
		switch {
		case errors.Is(err, ErrGap) && !reloaded:
			f.log.Info("zone: journal gap; reloading", "serial", cur, "target", target, "err", err)
			if err := f.reloadLocked(ctx); err != nil {
				return err
			}
			reloaded = true
			continue
		case err != nil:
			return fmt.Errorf("zone: read changes since %d: %w", cur, err)
		case f.view.Serial() == cur:
			return fmt.Errorf("zone: source has no changes after serial %d (want %d)", cur, target)
		}
	}
	return nil
}

func (f *Follower) ensureLoadedLocked(ctx context.Context) error {
	if f.loaded {
		return nil
	}
	return f.reloadLocked(ctx)
}

func (f *Follower) reloadLocked(ctx context.Context) error {
	if st, ok := f.src.(SnapshotStreamer); ok {
		l := f.view.NewLoader()
		serial, err := st.StreamSnapshot(ctx, l)
		if err != nil {
			return fmt.Errorf("zone: load snapshot: %w", err)
		}
		l.Commit(serial)
	} else {
		s, err := f.src.Snapshot(ctx)
		if err != nil {
			return fmt.Errorf("zone: load snapshot: %w", err)
		}
		f.view.Reset(s)
	}
	f.loaded = true
	f.readyOnce.Do(func() { close(f.ready) })
	f.log.Debug("zone: snapshot loaded", "serial", f.view.Serial(), "names", f.view.Len())
	return nil
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
