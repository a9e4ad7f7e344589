// Package legoworker runs lego's DNS providers, each credential set in its
// own worker process whose environment holds only that credential. lego
// configures providers from process-global environment variables, so one
// process per credential set is what keeps tenants apart.
package legoworker

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/internal/upstream/catalog"
)

// PoolConfig is how the hub starts and bounds workers.
type PoolConfig struct {
	// Command is the argv that starts a worker (the worker then calls
	// Main); default: this executable with the argument "lego-worker".
	Command []string
	// Resolvers are host:port recursive resolvers lego's zone lookups use
	// in the worker instead of /etc/resolv.conf and public resolvers;
	// none keeps lego's defaults.
	Resolvers []string
	// CallTimeout bounds one Present or CleanUp; 0 means 2 minutes. A
	// worker that overruns it is killed (the next call starts another).
	CallTimeout time.Duration
	// IdleTimeout stops a worker after this long without calls; 0 means
	// 10 minutes.
	IdleTimeout time.Duration
	// MaxWorkers caps running workers; 0 means 64. A call that needs one
	// more first stops the longest idle one, or fails when all are busy.
	MaxWorkers int
	Logger     *slog.Logger
}

// Pool owns the worker processes.
type Pool struct {
	cfg    PoolConfig
	cmdErr error // finding the default Command failed
	nextID atomic.Uint64

	mu      sync.Mutex
	workers map[string]*worker // by key and environment
	running int                // processes started and not yet reaped
	closed  bool

	procs       sync.WaitGroup // one per process, done once reaped
	janitorOnce sync.Once
	stopJanitor chan struct{}
	janitorDone chan struct{}
}

// NewPool returns a pool; no process starts until the first call.
func NewPool(cfg PoolConfig) *Pool { return newPool(cfg) }

// Driver returns the driver of one credential set. key names the set and
// its version (for example "7/3", credential id and generation): a new key
// gets a new worker, the old one stops when idle. fields are the
// credential's environment (lego's variable names). A provider not in this
// build fails with upstream.ErrNoDriver; construction errors (a field
// missing) come from the worker's start and wrap upstream.ErrConfig.
func (p *Pool) Driver(key, provider string, fields map[string]string) (upstream.KeyAuthDriver, error) {
	return p.driver(key, provider, fields)
}

// Close stops every worker and waits for them.
func (p *Pool) Close(ctx context.Context) error { return p.close(ctx) }

// Supported reports whether provider (a canonical catalogue code) is
// compiled into this build.
func Supported(provider string) bool { return compiled(canonical(provider)) }

// canonical maps a catalogue alias (dnsupdate) to its code (rfc2136);
// other names stay as given.
func canonical(provider string) string {
	if p, ok := catalog.Lookup(provider); ok {
		return p.Code
	}
	return provider
}

// Main is the worker process's entry point ("acmehub lego-worker"); it
// returns the exit code.
func Main() int { return workerMain() }
