package hub

import "sync"

// genKey is the store's generation counters a cached entry was read at;
// unused positions are 0.
type genKey [3]int64

// newerThan reports whether k was read after o: every counter only grows,
// and all of k's are read in one query, so k is newer when none is lower
// and one is higher.
func (k genKey) newerThan(o genKey) bool {
	for i := range k {
		if k[i] < o[i] {
			return false
		}
	}
	return k != o
}

// genCache keeps entries read from the store at one set of generation
// counters. Whoever reads the counters before reading the store puts what
// it read under those counters; a later request that sees the counters
// moved drops everything. So a change committed by any process (which
// bumps its table's counter in the same transaction) is seen by every
// request that starts after the commit.
//
// Entries are immutable once put. The cache holds at most max entries; a
// put beyond that starts over, so a flood of keys (unknown client ids, say)
// costs store reads, never unbounded memory.
type genCache[V any] struct {
	max int

	mu      sync.Mutex
	gen     genKey
	entries map[string]V
}

func newGenCache[V any](maxEntries int) *genCache[V] {
	return &genCache[V]{max: maxEntries, entries: make(map[string]V)}
}

// get returns the entry for key if the cache is at gen.
func (c *genCache[V]) get(gen genKey, key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen.newerThan(c.gen) {
		c.gen, c.entries = gen, make(map[string]V)
	}
	var zero V
	if gen != c.gen {
		return zero, false // read before the cache moved on: bypass it
	}
	v, ok := c.entries[key]
	return v, ok
}

// put stores v, read from the store after gen was read, unless the cache
// moved past gen meanwhile.
func (c *genCache[V]) put(gen genKey, key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen.newerThan(c.gen) {
		c.gen, c.entries = gen, make(map[string]V)
	}
	if gen != c.gen {
		return
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.entries = make(map[string]V)
	}
	c.entries[key] = v
}
