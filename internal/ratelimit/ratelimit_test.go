package ratelimit

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTest(cfg Config) (*Limiter, *clock) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	l := New(cfg)
	l.now = c.now
	return l, c
}

func TestBurstThenRefill(t *testing.T) {
	t.Parallel()
	l, c := newTest(Config{Burst: 3, Per: 10 * time.Second})
	for i := range 3 {
		if l.Limited("k") {
			t.Fatalf("limited before event %d", i)
		}
		if !l.Spend("k") {
			t.Fatalf("event %d refused within the burst", i)
		}
	}
	if !l.Limited("k") || l.Spend("k") {
		t.Fatal("the fourth event was allowed")
	}
	if l.Limited("other") {
		t.Fatal("keys are not independent")
	}
	// Refused events do not extend the wait.
	for range 100 {
		l.Spend("k")
	}
	c.advance(10 * time.Second)
	if l.Limited("k") || !l.Spend("k") {
		t.Fatal("one event per Per is not forgiven")
	}
	if l.Spend("k") {
		t.Fatal("more than one event forgiven after one Per")
	}
	c.advance(30 * time.Second)
	for i := range 3 {
		if !l.Spend("k") {
			t.Fatalf("full burst not restored (event %d)", i)
		}
	}
}

func TestBoundedMemory(t *testing.T) {
	t.Parallel()
	l, c := newTest(Config{Burst: 1, Per: time.Minute, MaxKeys: 10})
	for i := range 10 {
		l.Spend(fmt.Sprint("k", i))
	}
	// Full of limited keys: a new key is treated as limited rather than
	// evicting the ones being limited.
	if l.Spend("fresh") || !l.Limited("fresh") {
		t.Fatal("a fresh key pushed out limited ones")
	}
	if !l.Limited("k3") {
		t.Fatal("k3 forgotten")
	}
	c.advance(time.Minute)
	if !l.Spend("fresh") {
		t.Fatal("refilled buckets were not evicted to make room")
	}
	if l.Len() > 10 {
		t.Fatalf("%d keys tracked, cap 10", l.Len())
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	l := New(Config{})
	for range 1000 {
		if !l.Spend("k") || l.Limited("k") {
			t.Fatal("a zero config limits")
		}
	}
	if l.Len() != 0 {
		t.Fatal("a disabled limiter tracks keys")
	}
}

func TestConcurrentSpend(t *testing.T) {
	t.Parallel()
	l := New(Config{Burst: 50, Per: time.Hour})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if l.Spend("k") {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("%d events allowed, want exactly the burst of 50", allowed)
	}
}

func TestSourceKey(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"192.0.2.77":          "192.0.2.0/24",
		"::ffff:192.0.2.77":   "192.0.2.0/24",
		"2001:db8:1:2:3::4":   "2001:db8:1::/56",
		"2001:db8:1:ff:3::4":  "2001:db8:1::/56",
		"2001:db8:1:100:3::4": "2001:db8:1:100::/56",
	}
	for in, want := range tests {
		if got := SourceKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("SourceKey(%s) = %s, want %s", in, got, want)
		}
	}
	if SourceKey(netip.Addr{}) != "invalid" {
		t.Error("the zero address has a key")
	}
}

// TestSpendN: several events are admitted whole or not at all.
func TestSpendN(t *testing.T) {
	l := New(Config{Burst: 3, Per: time.Hour})
	if l.SpendN("k", 4) {
		t.Fatal("four events within a burst of three")
	}
	if !l.SpendN("k", 2) || !l.Spend("k") {
		t.Fatal("the refused SpendN spent something")
	}
	if l.Spend("k") || l.SpendN("k", 0) != true {
		t.Fatal("burst exceeded, or SpendN of nothing refused")
	}
}
