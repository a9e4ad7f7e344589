package zone

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Kind says what a looked-up name is in the zone.
type Kind uint8

const (
	// KindUnavailable means the view has not been loaded yet (no Reset so
	// far). It is the zero value so that an unloaded view never answers
	// authoritatively; the DNS server turns it into SERVFAIL.
	KindUnavailable Kind = iota
	// KindNXDomain means the name does not exist.
	KindNXDomain
	// KindNoData means the name exists without TXT values (the apex, a
	// delegation label).
	KindNoData
	// KindEmptyNonTerminal means the name only has names below it (RFC 8020:
	// NODATA).
	KindEmptyNonTerminal
	// KindTXT means the name has TXT values.
	KindTXT
)

func (k Kind) String() string {
	switch k {
	case KindUnavailable:
		return "unavailable"
	case KindNXDomain:
		return "nxdomain"
	case KindNoData:
		return "nodata"
	case KindEmptyNonTerminal:
		return "empty_non_terminal"
	case KindTXT:
		return "txt"
	}
	return "unknown"
}

// LookupResult is what the answer path needs about one name, read at one
// consistent moment together with the zone serial.
type LookupResult struct {
	Kind   Kind
	Serial int64
	// TTL of the TXT RRset: the smallest TTL of its values, since an RRset
	// has one TTL (RFC 2181 5.2).
	TTL uint32
	// Count is the number of TXT records in RData.
	Count int
	// RData holds the TXT records back to back, each as RDLENGTH (2 bytes)
	// then RDATA, sorted by value, ready to copy into a reply after an
	// owner, type, class and TTL. It is shared: never modify it.
	RData []byte
}

// Records calls fn with each TXT record's RDLENGTH+RDATA bytes.
func (r *LookupResult) Records(fn func(rr []byte)) {
	b := r.RData
	for len(b) >= 2 {
		n := 2 + int(binary.BigEndian.Uint16(b))
		fn(b[:n])
		b = b[n:]
	}
}

// View is the in-memory content of the hub zone for one origin, kept current
// by a Follower and read by the DNS server on every query.
//
// It is safe for concurrent use. Readers take a read lock: they never block
// each other and only wait for a writer's short critical section. Copy-on-write
// snapshots were not chosen because every change would copy a map of up to
// 100,000 names; instead an entry's RRset bytes are never modified in place,
// so a LookupResult stays valid after the lock is released.
type View struct {
	origin string // lower-case fqdn

	mu     sync.RWMutex
	names  map[string]*entry
	serial int64
	loaded bool
	count  int // names that exist (values or OpAddName)
}

// entry is one name of the view: a name that exists, or an ancestor of one.
type entry struct {
	// buf holds the TXT RRset: RDLENGTH+RDATA per value, sorted by value,
	// then each value's TTL (4 bytes) in the same order. It is replaced,
	// never modified in place, because readers keep slices of it.
	buf      []byte
	ttl      uint32 // smallest value TTL
	count    uint16 // values in buf
	added    bool   // made to exist by OpAddName
	children int32  // existing names below this one (ENT refcount)
}

func (e *entry) exists() bool { return e.count > 0 || e.added }

func (e *entry) rdata() []byte { return e.buf[:len(e.buf)-4*int(e.count)] }

// NewView returns an empty view for origin (a lower-case fqdn). It answers
// KindUnavailable until the first Reset.
func NewView(origin string) *View {
	return &View{origin: strings.ToLower(origin), names: make(map[string]*entry)}
}

// Origin returns the zone apex the view was made for.
func (v *View) Origin() string { return v.origin }

// Serial returns the serial of the content the view holds.
func (v *View) Serial() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.serial
}

// Loaded reports whether the view has been Reset at least once.
func (v *View) Loaded() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.loaded
}

// Len returns the number of names that exist (with values or added by OpAddName).
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.count
}

// Lookup tells what lowerFqdn (lower-case, trailing dot) is in the zone.
// Names outside the origin are reported as KindNXDomain: callers check
// the zone cut first.
func (v *View) Lookup(lowerFqdn string) LookupResult {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lookupLocked(lowerFqdn == v.origin, v.names[lowerFqdn])
}

// LookupBytes is Lookup for a name in a byte slice; it does not allocate
// and does not retain lowerFqdn.
func (v *View) LookupBytes(lowerFqdn []byte) LookupResult {
	v.mu.RLock()
	defer v.mu.RUnlock()
	// The compiler turns this map index into a lookup without a copy.
	return v.lookupLocked(string(lowerFqdn) == v.origin, v.names[string(lowerFqdn)])
}

func (v *View) lookupLocked(apex bool, e *entry) LookupResult {
	r := LookupResult{Serial: v.serial}
	switch {
	case !v.loaded:
		r.Kind = KindUnavailable
	case e != nil && e.count > 0:
		r.Kind, r.TTL, r.Count, r.RData = KindTXT, e.ttl, int(e.count), e.rdata()
	case e != nil && e.added:
		r.Kind = KindNoData
	case e != nil && e.children > 0:
		r.Kind = KindEmptyNonTerminal
	case apex:
		r.Kind = KindNoData
	default:
		r.Kind = KindNXDomain
	}
	return r
}

// Reset replaces the whole content with s. Values and names may come in
// any order; a value given twice for a name keeps the last TTL.
func (v *View) Reset(s Snapshot) {
	l := v.NewLoader()
	l.Grow(len(s.Values), len(s.Names))
	for _, val := range s.Values {
		l.Value(val)
	}
	for _, name := range s.Names {
		l.Name(name)
	}
	l.Commit(s.Serial)
}

// A Loader builds the whole content of a View from values and names fed one
// at a time, in any order, and installs it with Commit: the result is the
// same as Reset with a Snapshot holding them, without that Snapshot having
// to exist. It builds outside the view's lock, so readers keep being served
// the old content meanwhile. It implements SnapshotSink.
//
// Consecutive values of one name (as sorted input delivers them) are
// collected into the name's RRset once; a name that comes back later is
// merged with what it got before. A Loader is for one goroutine and one
// load: do not use it after Commit.
//
// Entries are carved from chunks instead of being allocated one by one: a
// load makes one allocation per name fewer, and entries take 40 bytes, not
// 48. A chunk lives as long as any entry in it, so once Apply has removed
// most of a load's names, the rest can hold up to the load's chunks: never
// more than the load itself took. (RRset buffers are not carved: a name's
// values that arrive apart replace its buffer, and a dead buffer would keep
// its place in a chunk.)
type Loader struct {
	v     *View
	names map[string]*entry
	count int // names that exist

	entries []entry // chunk the next entries come from

	// The name whose consecutive values are being collected, and its value
	// set so far (a scratch slice reused from name to name).
	cur     *entry
	curName string
	set     []valueTTL
}

// NewLoader returns a Loader that will replace v's content.
func (v *View) NewLoader() *Loader {
	return &Loader{v: v, names: make(map[string]*entry)}
}

// Grow tells about how many values and names will follow, so the loader can
// size its map once: for values+names names, which overestimates when
// names hold several values. It only has an effect before the first value
// or name.
func (l *Loader) Grow(values, names int) {
	if n := values + names; n > 0 && len(l.names) == 0 {
		l.names = make(map[string]*entry, n)
	}
}

// Value adds one value. The loader may keep val's strings.
func (l *Loader) Value(val Value) {
	if l.cur == nil || val.Name != l.curName {
		// Names are lower-case by contract; lowering again is cheap (no
		// copy when already lower-case) and keeps a stray capital from
		// creating a name no query can reach.
		name := strings.ToLower(val.Name)
		if l.cur == nil || name != l.curName {
			l.flush()
			if !l.v.below(name) {
				return
			}
			l.start(name)
		}
	}
	l.set, _ = insertValue(l.set, val.Value, val.TTL)
}

// Name makes name exist without values (OpAddName).
func (l *Loader) Name(name string) {
	l.flush()
	if name = strings.ToLower(name); !l.v.below(name) {
		return
	}
	e := l.entry(name)
	before := e.exists()
	e.added = true
	l.created(name, e, before)
}

// Commit replaces the view's content with what the loader got, at serial.
func (l *Loader) Commit(serial int64) {
	l.flush()
	v := l.v
	v.mu.Lock()
	v.names, v.serial, v.count, v.loaded = l.names, serial, l.count, true
	v.mu.Unlock()
	*l = Loader{v: v}
}

// start begins collecting the values of name, continuing its set if name
// came before.
func (l *Loader) start(name string) {
	e := l.entry(name)
	l.cur, l.curName = e, name
	l.set = e.appendValues(l.set[:0])
}

// flush stores the collected set in its entry.
func (l *Loader) flush() {
	e, name := l.cur, l.curName
	if e == nil {
		return
	}
	l.cur, l.curName = nil, ""
	before := e.exists()
	e.setValues(l.set)
	clear(l.set) // drop the value strings the scratch slice still holds
	l.created(name, e, before)
	if !e.exists() && e.children <= 0 {
		delete(l.names, name) // every value was refused
	}
}

// created counts name, whose entry is e, and its ancestors' children once
// name has come to exist (it existed before if before).
func (l *Loader) created(name string, e *entry, before bool) {
	if before || !e.exists() {
		return
	}
	l.count++
	l.v.eachAncestor(name, func(a string) { l.entry(a).children++ })
}

// loaderEntries is the number of entries in a Loader's chunk (40 KiB).
const loaderEntries = 1024

// entry returns name's entry, adding a new one from the chunk if needed.
func (l *Loader) entry(name string) *entry {
	e := l.names[name]
	if e == nil {
		if len(l.entries) == cap(l.entries) {
			l.entries = make([]entry, 0, loaderEntries)
		}
		l.entries = l.entries[:len(l.entries)+1]
		e = &l.entries[len(l.entries)-1]
		l.names[name] = e
	}
	return e
}

// Apply applies journal changes. Changes at or below the current serial are
// skipped (redelivery is harmless); the rest must continue from Serial()+1
// with contiguous, non-decreasing serials, otherwise Apply returns an error
// wrapping ErrGap and changes nothing. Readers see all of a call or none.
// Changes for names outside the origin (or the apex itself) are ignored, and
// so are values beyond the limits (MaxWireValueLen, MaxValuesPerName) that
// keep every RRset encodable.
func (v *View) Apply(changes []Change) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := 0
	for i < len(changes) && changes[i].Serial <= v.serial {
		i++
	}
	changes = changes[i:]
	if len(changes) == 0 {
		return nil
	}
	prev := v.serial
	for _, c := range changes {
		if c.Serial != prev && c.Serial != prev+1 {
			return fmt.Errorf("zone: change serial %d after serial %d: %w", c.Serial, prev, ErrGap)
		}
		prev = c.Serial
	}
	for _, c := range changes {
		// Names are lower-case by contract; lowering again is cheap here and
		// keeps a stray capital from creating a name no query can reach.
		if c.Name = strings.ToLower(c.Name); v.below(c.Name) {
			v.applyLocked(c)
		}
	}
	v.serial = prev
	return nil
}

func (v *View) applyLocked(c Change) {
	e := v.names[c.Name]
	if e == nil {
		if c.Op == OpRemoveValue || c.Op == OpRemoveName {
			return
		}
		e = &entry{}
		v.names[c.Name] = e
	}
	before := e.exists()
	switch c.Op {
	case OpAddValue:
		if vals, ok := insertValue(e.values(), c.Value, c.TTL); ok {
			e.setValues(vals)
		}
	case OpRemoveValue:
		vals := e.values()
		if j, ok := findValue(vals, c.Value); ok {
			e.setValues(slices.Delete(vals, j, j+1))
		}
	case OpAddName:
		e.added = true
	case OpRemoveName:
		e.added = false
	}
	after := e.exists()
	if before != after {
		delta := int32(1)
		if !after {
			delta = -1
		}
		v.count += int(delta)
		v.eachAncestor(c.Name, func(a string) {
			ae := v.names[a]
			if ae == nil {
				ae = &entry{}
				v.names[a] = ae
			}
			ae.children += delta
			if !ae.exists() && ae.children <= 0 {
				delete(v.names, a)
			}
		})
	}
	if !e.exists() && e.children <= 0 {
		delete(v.names, c.Name)
	}
}

// Snapshot returns the content of the view (names and values sorted), for
// zone transfers and tests.
func (v *View) Snapshot() Snapshot {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := Snapshot{Serial: v.serial}
	for name, e := range v.names {
		for _, val := range e.values() {
			s.Values = append(s.Values, Value{Name: name, Value: val.value, TTL: val.ttl})
		}
		if e.added {
			s.Names = append(s.Names, name)
		}
	}
	sort.Slice(s.Values, func(i, j int) bool {
		a, b := s.Values[i], s.Values[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Value < b.Value
	})
	sort.Strings(s.Names)
	return s
}

// below reports whether name is strictly below the origin.
func (v *View) below(name string) bool {
	return len(name) > len(v.origin) && strings.HasSuffix(name, v.origin) &&
		name[len(name)-len(v.origin)-1] == '.'
}

// eachAncestor calls fn for every name between name and the origin, both
// excluded. Stored names have no escaped dots, so splitting at '.' is exact.
func (v *View) eachAncestor(name string, fn func(string)) {
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return
		}
		name = name[i+1:]
		if len(name) <= len(v.origin) {
			return
		}
		fn(name)
	}
}

// Limits far above what the store accepts (255-byte values, 32 per name);
// they only keep corrupt input from overflowing RDLENGTH or the count.
const (
	MaxWireValueLen  = 8192
	MaxValuesPerName = 1024
)

type valueTTL struct {
	value string
	ttl   uint32
}

func findValue(vals []valueTTL, value string) (int, bool) {
	return slices.BinarySearchFunc(vals, value, func(a valueTTL, v string) int {
		return strings.Compare(a.value, v)
	})
}

// insertValue inserts value into the sorted set or updates its TTL. It
// refuses values the wire cannot carry (ok false).
func insertValue(vals []valueTTL, value string, ttl uint32) (_ []valueTTL, ok bool) {
	j, found := findValue(vals, value)
	switch {
	case found:
		vals[j].ttl = ttl
		return vals, true
	case len(value) > MaxWireValueLen || len(vals) >= MaxValuesPerName:
		return vals, false
	}
	return slices.Insert(vals, j, valueTTL{value, ttl}), true
}

// values decodes the entry's set.
func (e *entry) values() []valueTTL {
	if e.count == 0 {
		return nil
	}
	return e.appendValues(make([]valueTTL, 0, e.count))
}

// appendValues appends the entry's decoded set to vals.
func (e *entry) appendValues(vals []valueTTL) []valueTTL {
	if e.count == 0 {
		return vals
	}
	rd := e.rdata()
	ttls := e.buf[len(rd):]
	for i := 0; len(rd) >= 2; i++ {
		n := int(binary.BigEndian.Uint16(rd))
		vals = append(vals, valueTTL{decodeTXT(rd[2 : 2+n]), binary.BigEndian.Uint32(ttls[4*i:])})
		rd = rd[2+n:]
	}
	return vals
}

// setValues encodes a sorted set into a fresh buffer.
func (e *entry) setValues(vals []valueTTL) {
	if len(vals) == 0 {
		e.buf, e.ttl, e.count = nil, 0, 0
		return
	}
	size := 4 * len(vals)
	for _, v := range vals {
		size += 2 + txtLen(v.value)
	}
	buf := make([]byte, 0, size)
	minTTL := vals[0].ttl
	for _, v := range vals {
		buf = binary.BigEndian.AppendUint16(buf, uint16(txtLen(v.value))) //nolint:gosec // at most MaxWireValueLen+33 bytes
		buf = appendTXT(buf, v.value)
		minTTL = min(minTTL, v.ttl)
	}
	for _, v := range vals {
		buf = binary.BigEndian.AppendUint32(buf, v.ttl)
	}
	e.buf, e.ttl, e.count = buf, minTTL, uint16(len(vals)) //nolint:gosec // at most MaxValuesPerName
}

// txtLen is the RDATA length of value as TXT character-strings of at most
// 255 bytes each (values are validated to one string; longer ones are split
// rather than dropped).
func txtLen(value string) int {
	if value == "" {
		return 1
	}
	return len(value) + (len(value)+254)/255
}

func appendTXT(b []byte, value string) []byte {
	if value == "" {
		return append(b, 0)
	}
	for len(value) > 0 {
		n := min(len(value), 255)
		b = append(b, byte(n))
		b = append(b, value[:n]...)
		value = value[n:]
	}
	return b
}

func decodeTXT(rd []byte) string {
	var sb strings.Builder
	sb.Grow(len(rd))
	for len(rd) > 0 {
		n := int(rd[0])
		sb.Write(rd[1 : 1+n])
		rd = rd[1+n:]
	}
	return sb.String()
}
