package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Operation states, as Certify's ManagedChallengeOperationStates spells them.
const (
	opPending   = "pending"
	opRunning   = "running"
	opSucceeded = "succeeded"
	opFailed    = "failed"
)

// Errors of opStore.begin.
var (
	errOpsFull      = errors.New("no operation slot is free")
	errOpsOwnerFull = errors.New("the caller has too many unfinished operations")
	errOpsClosed    = errors.New("shutting down")
)

// operation is a snapshot of one background operation.
type operation struct {
	ID      string
	owner   string // whose unfinished operations it counts among
	Status  string // opPending, opRunning, opSucceeded or opFailed
	Request any    // what was asked, echoed to pollers
	Result  any    // set when completed; nil before
	Created time.Time
	Updated time.Time
	Started time.Time // zero while pending
	Ended   time.Time // zero until completed
}

func (op operation) completed() bool { return op.Status == opSucceeded || op.Status == opFailed }

// opFunc is the work of an operation. It returns the result to publish and
// whether it succeeded; it must honour ctx.
type opFunc func(ctx context.Context) (result any, ok bool)

// opSteps is the work of an operation in two steps: the first runs in a
// worker slot and, when it succeeds with a next step, next runs after the
// slot is freed (a wait that needs no worker), within the same timeout;
// its result is the operation's.
type opSteps func(ctx context.Context) (result any, ok bool, next opFunc)

// opStoreConfig bounds the store; zero fields take the defaults.
type opStoreConfig struct {
	// Max is how many operations are held at once (default 10,000). When
	// full, the oldest completed one is dropped if it completed at least
	// MinKeep ago; otherwise begin fails with errOpsFull.
	Max int
	// PerOwner is how many unfinished operations one owner may have
	// (default 64); beyond it begin fails with errOpsOwnerFull, so one
	// client cannot take every slot.
	PerOwner int
	// Keep is how long a completed operation stays readable (default 6 h).
	Keep time.Duration
	// MinKeep is how long a completed operation is safe from being dropped
	// to make room (default 2 min): long enough for its client's next poll
	// (Certify polls every 5 s), so a busy client cannot evict another's
	// result before it is read.
	MinKeep time.Duration
	// Workers is how many operations run at once (default 16); the others
	// wait as pending. An operation's second step (opSteps) takes none.
	Workers int
	// Timeout bounds an operation from its acceptance, waiting included
	// (default 60 s; the Certify API adds the hub's propagation wait).
	Timeout time.Duration
}

// defaultOpTimeout is opStoreConfig.Timeout when it is 0.
const defaultOpTimeout = 60 * time.Second

func (c opStoreConfig) withDefaults() opStoreConfig {
	if c.Max <= 0 {
		c.Max = 10_000
	}
	if c.PerOwner <= 0 {
		c.PerOwner = 64
	}
	if c.Keep <= 0 {
		c.Keep = 6 * time.Hour
	}
	if c.MinKeep <= 0 {
		c.MinKeep = 2 * time.Minute
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultOpTimeout
	}
	return c
}

// opStore holds background operations in memory only: a restart loses
// them, and a client polling one then gets 404 (Certify reports the
// operation as not found and the order fails or is retried). The random
// id is the only key, so it is the capability to read an operation.
// Safe for concurrent use.
type opStore struct {
	cfg  opStoreConfig
	log  *slog.Logger
	now  func() time.Time
	sem  chan struct{}   // one token per running operation
	stop context.Context // cancelled when a shutdown gives up waiting
	kill context.CancelFunc
	wg   sync.WaitGroup // background goroutines

	mu      sync.Mutex
	closed  bool
	byID    map[string]*operation
	done    []string       // ids of completed operations, oldest first
	pending map[string]int // unfinished operations per owner
}

func newOpStore(cfg opStoreConfig, log *slog.Logger) *opStore {
	cfg = cfg.withDefaults()
	stop, kill := context.WithCancel(context.Background())
	return &opStore{
		cfg: cfg, log: log, now: time.Now, sem: make(chan struct{}, cfg.Workers),
		stop: stop, kill: kill, byID: make(map[string]*operation), pending: make(map[string]int),
	}
}

// begin registers a pending operation of owner (the principal asking) and
// runs fn in the background. Its context keeps parent's values but not its
// cancellation (the client has gone by the time the work runs) and ends
// after cfg.Timeout.
func (o *opStore) begin(parent context.Context, owner string, request any, fn opFunc) (operation, error) {
	return o.beginSteps(parent, owner, request, func(ctx context.Context) (any, bool, opFunc) {
		result, ok := fn(ctx)
		return result, ok, nil
	})
}

// beginSteps is begin with work in two steps (opSteps).
func (o *opStore) beginSteps(parent context.Context, owner string, request any, fn opSteps) (operation, error) {
	// crypto/rand.Text: 26 base32 characters, 130 bits.
	id := rand.Text()
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return operation{}, errOpsClosed
	}
	if o.pending[owner] >= o.cfg.PerOwner {
		return operation{}, errOpsOwnerFull
	}
	o.pruneLocked(now)
	if len(o.byID) >= o.cfg.Max {
		// o.done is oldest first: if its head is too young, all are.
		if len(o.done) == 0 || now.Sub(o.byID[o.done[0]].Ended) < o.cfg.MinKeep {
			return operation{}, errOpsFull
		}
		delete(o.byID, o.done[0])
		o.done = o.done[1:]
	}
	op := &operation{ID: id, owner: owner, Status: opPending, Request: request, Created: now, Updated: now}
	o.byID[id] = op
	o.pending[owner]++
	o.wg.Add(1) // under mu, before closed can be set: see shutdown
	go o.run(parent, id, fn)
	return *op, nil
}

func (o *opStore) run(parent context.Context, id string, fn opSteps) {
	defer o.wg.Done()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), o.cfg.Timeout)
	defer cancel()
	defer context.AfterFunc(o.stop, cancel)()

	var (
		result any
		ok     bool
		next   opFunc
	)
	select {
	case o.sem <- struct{}{}:
		o.update(id, func(op *operation, now time.Time) { op.Status, op.Started = opRunning, now })
		result, ok, next = o.call(ctx, id, fn)
		<-o.sem
	case <-ctx.Done():
		// Never got a slot: fn answers for a context that has ended, so the
		// failure has the same shape as any other.
		result, ok, next = o.call(ctx, id, fn)
	}
	if ok && next != nil {
		result, ok, _ = o.call(ctx, id, func(ctx context.Context) (any, bool, opFunc) {
			result, ok := next(ctx)
			return result, ok, nil
		})
	}
	o.update(id, func(op *operation, now time.Time) {
		op.Status, op.Result, op.Ended = opFailed, result, now
		if ok {
			op.Status = opSucceeded
		}
		o.done = append(o.done, id)
		if o.pending[op.owner]--; o.pending[op.owner] <= 0 {
			delete(o.pending, op.owner)
		}
	})
}

// call runs fn, turning a panic into a failed operation without a result.
func (o *opStore) call(ctx context.Context, id string, fn opSteps) (result any, ok bool, next opFunc) {
	defer func() {
		if v := recover(); v != nil {
			o.log.ErrorContext(ctx, "operation panic", "operation", id, "panic", v)
			result, ok, next = nil, false, nil
		}
	}()
	return fn(ctx)
}

func (o *opStore) update(id string, f func(op *operation, now time.Time)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if op, ok := o.byID[id]; ok {
		now := o.now()
		f(op, now)
		op.Updated = now
	}
}

// pruneLocked drops completed operations older than cfg.Keep. They complete
// in the order of o.done and all live equally long, so the expired ones are
// at its front.
func (o *opStore) pruneLocked(now time.Time) {
	for len(o.done) > 0 {
		op := o.byID[o.done[0]]
		if op != nil && now.Sub(op.Ended) <= o.cfg.Keep {
			return
		}
		delete(o.byID, o.done[0])
		o.done = o.done[1:]
	}
}

// get returns a snapshot of the operation; false when it is unknown or
// expired.
func (o *opStore) get(id string) (operation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	op, ok := o.byID[id]
	if !ok || op.completed() && o.now().Sub(op.Ended) > o.cfg.Keep {
		return operation{}, false
	}
	return *op, true
}

// shutdown refuses new operations and waits for those accepted, pending
// ones included, to finish. When ctx ends first it cancels them and
// returns without waiting further.
func (o *opStore) shutdown(ctx context.Context) error {
	o.mu.Lock()
	// Every wg.Add happened under mu before this, so Wait below cannot
	// race with a new Add.
	o.closed = true
	o.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		o.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		o.kill()
		return nil
	case <-ctx.Done():
		o.kill()
		return fmt.Errorf("waiting for background operations: %w", ctx.Err())
	}
}
