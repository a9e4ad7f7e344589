package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/acmehub/acmehub/internal/dnscheck"
)

// Propagation is where a challenge value is served: per address of every
// hub nameserver, its SOA serial, whether that is at or past the write's,
// and whether it answers the value.
type Propagation struct {
	dnscheck.PropagationResult
	// Detail says why a wait did not run ("too many waits"); "" when it
	// ran or none was asked. The result is then one check.
	Detail string
}

// Bounds of propagation checks.
const (
	// defaultMaxWait is Config.MaxWait when it is 0.
	defaultMaxWait = 2 * time.Minute
	// pollInterval is how often a wait asks the nameservers again.
	pollInterval = 250 * time.Millisecond
	// shareFor is how long one round of queries answers every status read
	// and wait on the same value and serial, so many callers cost one
	// round: as long as a wait's poll interval.
	shareFor = pollInterval
	// MaxWaitsPerPrincipal is how many waits one principal may have
	// running at once; beyond it, a wait is one check (Propagation.Detail).
	MaxWaitsPerPrincipal = 32
	// defaultQueryTimeout is dnscheck's per-query timeout when a client
	// does not say its own.
	defaultQueryTimeout = 2 * time.Second
)

// statusBound bounds one round of propagation queries: per address an SOA
// then a TXT query, each bounded by the check timeout, plus a margin for
// the scheduling and a retry over TCP of a short answer.
func statusBound(queryTimeout time.Duration) time.Duration {
	return 2*queryTimeout + time.Second
}

// PropagationEnabled reports whether the hub can check propagation: it has
// a DNS check client and knows its nameservers.
func (s *Service) PropagationEnabled() bool {
	return s.propagationClient() != nil && len(s.cfg.Nameservers) > 0
}

func (s *Service) propagationClient() *dnscheck.Client {
	if s.cfg.PropagationCheck != nil {
		return s.cfg.PropagationCheck
	}
	return s.cfg.DNSCheck
}

// queryTimeout is the propagation client's per-query timeout (the
// check-timeout setting).
func (s *Service) queryTimeout() time.Duration {
	if c := s.propagationClient(); c != nil {
		return c.Timeout()
	}
	return defaultQueryTimeout
}

// PropagationMaxWait is the longest wait WaitPropagation accepts.
func (s *Service) PropagationMaxWait() time.Duration {
	if s.cfg.MaxWait <= 0 {
		return defaultMaxWait
	}
	return s.cfg.MaxWait
}

// WaitPropagation checks every hub nameserver for a challenge that an
// authorised Present or Status returned, again every 250 ms until all serve
// its value or wait ends, and returns the last result (Everywhere false
// names the laggards: Lagging). wait <= 0 means one check, bounded by
// statusBound; a wait beyond PropagationMaxWait is refused with ErrInvalid.
//
// Checks are shared: concurrent callers on the same value and serial, and
// those within 250 ms of a round, get that round's result. A principal
// (Challenge.Principal) with MaxWaitsPerPrincipal waits running gets one
// check instead of a wait, and Propagation.Detail says so.
//
// Nameservers are compared with the serial of the write (Challenge.Serial)
// so that one still serving an older copy of the same value is not taken
// for current; without it (ids from before serials were kept), with the
// zone's serial now, which is stricter.
func (s *Service) WaitPropagation(ctx context.Context, ch Challenge, wait time.Duration) (Propagation, error) {
	if ch.Upstream() {
		// Written into the domain's own DNS (upstream.go): its provider's
		// nameservers serve it, not the hub's.
		return Propagation{}, fmt.Errorf("%w: %s is served by the domain's own nameservers (provider %s), not the hub's; the hub does not check them",
			ErrUnsupported, ch.RecordName, ch.Provider)
	}
	if !s.PropagationEnabled() {
		return Propagation{}, fmt.Errorf("%w: propagation checks are off on this hub", ErrUnsupported)
	}
	if wait > s.PropagationMaxWait() {
		return Propagation{}, fmt.Errorf("%w: wait %s is longer than the hub's maximum %s", ErrInvalid, wait, s.PropagationMaxWait())
	}
	serial := ch.Serial
	if serial <= 0 {
		var err error
		if serial, err = s.db.Serial(ctx); err != nil {
			return Propagation{}, fmt.Errorf("propagation of %s: %w", ch.Target, err)
		}
	}
	// The zone publishes the counter mod 2^32 (RFC 1982 compares it).
	key := propKey{name: ch.Target, value: ch.Value, serial: uint32(serial)} //nolint:gosec // intentional truncation: the SOA serial is the counter mod 2^32
	st := s.prop
	var detail string
	if wait > 0 && !st.enter(ch.Principal) {
		wait, detail = 0, fmt.Sprintf("too many waits: this principal already has %d running; checked once without waiting", MaxWaitsPerPrincipal)
	} else if wait > 0 {
		defer st.leave(ch.Principal)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The first round is awaited whatever the wait (it is bounded by
	// statusBound), so there is always a result.
	last, err := s.sharedCheck(ctx, st, key)
	if err != nil {
		return Propagation{}, fmt.Errorf("propagation of %s: %w", ch.Target, err)
	}
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	for !last.Everywhere && wctx.Err() == nil {
		select {
		case <-wctx.Done():
		case <-t.C:
			// A round the wait's end interrupts is dropped: the one
			// before says which servers lag and at what serial.
			if r, err := s.sharedCheck(wctx, st, key); err == nil {
				last = r
			}
			t.Reset(pollInterval)
		}
	}
	return Propagation{PropagationResult: last, Detail: detail}, nil
}

// Lag is one nameserver address that does not serve a value yet.
type Lag struct {
	Server string // nameserver name (fqdn)
	Addr   string // host:port asked; "" when none was found
	Reason string // "serial 8, not current yet", the query's error, ...
}

func (l Lag) String() string {
	who := l.Server
	if l.Addr != "" {
		who += " (" + l.Addr + ")"
	}
	return who + ": " + l.Reason
}

// Lagging lists the nameserver addresses of p that do not serve the value
// yet, with why. Addresses this host cannot reach at all (Skipped) do not
// lag: Everywhere does not count them either.
func Lagging(p Propagation) []Lag {
	var out []Lag
	for _, sv := range p.Servers {
		if sv.Serves || sv.Skipped != "" && sv.Err == "" {
			continue
		}
		why := fmt.Sprintf("serial %d, not current yet", sv.Serial)
		switch {
		case sv.Err != "":
			why = sv.Err
		case sv.Current:
			why = fmt.Sprintf("serial %d, value not answered", sv.Serial)
		}
		out = append(out, Lag{Server: sv.Server, Addr: sv.Addr, Reason: why})
	}
	return slices.Clip(out)
}

// propKey is what one round of propagation queries asks.
type propKey struct {
	name, value string
	serial      uint32
}

// flight is one round of queries; done is closed once res is set.
type flight struct {
	done  chan struct{}
	res   dnscheck.PropagationResult
	ended time.Time // set with res, under propState.mu
}

// propState is the propagation checks' shared state: rounds in flight or
// just ended, and the waits running per principal.
type propState struct {
	mu      sync.Mutex
	flights map[propKey]*flight
	waits   map[int64]int
}

func newPropState() *propState {
	return &propState{flights: map[propKey]*flight{}, waits: map[int64]int{}}
}

// sharedCheck returns the result of a round for key: the one in flight,
// one that ended less than shareFor ago, or a new one. The round runs
// apart from ctx (other callers may share it), bounded by statusBound;
// ctx only bounds how long this caller waits for it.
func (s *Service) sharedCheck(ctx context.Context, st *propState, key propKey) (dnscheck.PropagationResult, error) {
	st.mu.Lock()
	f := st.flights[key]
	if f == nil || !f.ended.IsZero() && time.Since(f.ended) >= shareFor {
		f = &flight{done: make(chan struct{})}
		st.flights[key] = f
		// Not bound by this caller's end: others may share the round.
		go s.fly(context.WithoutCancel(ctx), st, key, f)
	}
	st.mu.Unlock()
	select {
	case <-f.done:
		return f.res, nil
	case <-ctx.Done():
		return dnscheck.PropagationResult{}, ctx.Err()
	}
}

// fly runs the round f and keeps it for shareFor after it ends.
func (s *Service) fly(ctx context.Context, st *propState, key propKey, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, statusBound(s.queryTimeout()))
	defer cancel()
	res := s.propagationClient().CheckPropagation(ctx, s.cfg.Zone, s.cfg.Nameservers, key.name, key.value, key.serial)
	st.mu.Lock()
	f.res, f.ended = res, time.Now()
	st.mu.Unlock()
	close(f.done)
	time.AfterFunc(shareFor, func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.flights[key] == f {
			delete(st.flights, key)
		}
	})
}

// enter counts a wait of principal, or returns false when it already has
// MaxWaitsPerPrincipal running; leave ends one.
func (st *propState) enter(principal int64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.waits[principal] >= MaxWaitsPerPrincipal {
		return false
	}
	st.waits[principal]++
	return true
}

func (st *propState) leave(principal int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.waits[principal]--; st.waits[principal] <= 0 {
		delete(st.waits, principal)
	}
}
