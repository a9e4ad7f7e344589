// Package ratelimit limits events per key (a source address prefix, a
// client id) with token buckets in bounded memory. The hub uses it for
// failed authentications on every protocol, so that guessing tokens costs
// an attacker time and shows up in the audit log.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// Config sets one limiter's rate.
type Config struct {
	// Burst is how many events a key may have at once (>= 1).
	Burst int
	// Per is how long one event takes to be forgiven (> 0): a key may
	// sustain one event per Per after its burst is spent.
	Per time.Duration
	// MaxKeys bounds memory. When full, keys whose buckets have refilled
	// are dropped first (they carry no information); if none has, the new
	// key is treated as already limited, so a flood of fresh keys cannot
	// push out the keys being limited. Default 100,000.
	MaxKeys int
}

// Limiter is a set of token buckets, one per key. Safe for concurrent use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]bucket
}

// bucket stores when the bucket is full again; the level follows from it,
// so an idle bucket needs no updates.
type bucket struct{ fullAt time.Time }

// New returns a limiter; a Config with Burst < 1 or Per <= 0 limits nothing.
func New(cfg Config) *Limiter {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	return &Limiter{cfg: cfg, now: time.Now, buckets: map[string]bucket{}}
}

func (l *Limiter) disabled() bool { return l.cfg.Burst < 1 || l.cfg.Per <= 0 }

// capacity is the burst as a duration of forgiveness.
func (l *Limiter) capacity() time.Duration { return time.Duration(l.cfg.Burst) * l.cfg.Per }

// Limited reports whether key has no events left, without spending one.
func (l *Limiter) Limited(key string) bool {
	if l.disabled() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return len(l.buckets) >= l.cfg.MaxKeys && !l.evictLocked(l.now())
	}
	// Empty when less than one event's worth of room is left.
	return b.fullAt.Sub(l.now()) > l.capacity()-l.cfg.Per
}

// Spend records one event for key and reports whether it was within the
// limit (false: the key is now, or already was, limited).
func (l *Limiter) Spend(key string) bool { return l.SpendN(key, 1) }

// SpendN records n events for key if all fit within the limit, and none
// otherwise (false): a request that costs several events is admitted or
// refused whole, never half paid for.
func (l *Limiter) SpendN(key string, n int) bool {
	if l.disabled() || n <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.cfg.MaxKeys && !l.evictLocked(now) {
			return false
		}
		b.fullAt = now
	}
	if b.fullAt.Before(now) {
		b.fullAt = now
	}
	cost := time.Duration(n) * l.cfg.Per
	if b.fullAt.Sub(now) > l.capacity()-cost {
		return false // no room: spending nothing keeps the wait bounded
	}
	b.fullAt = b.fullAt.Add(cost)
	l.buckets[key] = b
	return true
}

// evictLocked drops refilled buckets and reports whether room was made.
func (l *Limiter) evictLocked(now time.Time) bool {
	before := len(l.buckets)
	for k, b := range l.buckets {
		if !b.fullAt.After(now) {
			delete(l.buckets, k)
		}
	}
	return len(l.buckets) < before
}

// Len is the number of keys tracked (for metrics and tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// SourceKey turns an address into the key of its network: the /24 of an
// IPv4 address and the /56 of an IPv6 one, since one attacker usually holds
// a whole prefix (the sizes NSD's response rate limiting uses).
func SourceKey(a netip.Addr) string {
	a = a.Unmap()
	if !a.IsValid() {
		return "invalid"
	}
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return "invalid"
	}
	return p.String()
}
