package dnscheck

import (
	"context"
	"sync"
	"time"
)

// limiter bounds queries: at most n in flight (a semaphore) and on
// average rate a second with bursts of burst (a token bucket, kept as the
// time the bucket would be full again, GCRA-style).
type limiter struct {
	sem   chan struct{}
	every time.Duration // one token
	burst int
	now   func() time.Time

	mu  sync.Mutex
	tat time.Time // when the bucket is full again; before now: full
}

func newLimiter(n, rate, burst int) *limiter {
	return &limiter{sem: make(chan struct{}, n), every: time.Second / time.Duration(rate), burst: burst, now: time.Now}
}

// acquire waits for a token and a free slot, or for ctx to end (its
// error then); release frees the slot.
func (l *limiter) acquire(ctx context.Context) (release func(), err error) {
	if d := l.reserve(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// reserve takes a token and returns how long to wait until it is due
// (0: now). A token is never given back: a caller that gives up while
// waiting still spent it, which only errs on the side of fewer queries.
func (l *limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.tat.Before(now) {
		l.tat = now
	}
	l.tat = l.tat.Add(l.every)
	return l.tat.Sub(now) - time.Duration(l.burst)*l.every
}
