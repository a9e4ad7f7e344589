package dnsupdate

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// An UPDATE (RFC 2136 3) is checked whole before anything is applied:
// its size (MaxRecords), the zone, then every prerequisite and every update
// RR for its form (FORMERR), its zone (NOTZONE) and the key's scope
// (REFUSED); then the prerequisites are evaluated (YXDOMAIN, NXDOMAIN,
// YXRRSET, NXRRSET); then the effective changes are applied in message
// order, and undone if one fails. Two concurrent UPDATEs are not
// serialised: each sees the values as they were when it read them. Only TXT records are ever
// written; the only data the prerequisites see are the TXT values the key
// may see, so they reveal nothing beyond the key's scope.

// prereq is one parsed prerequisite RR (RFC 2136 2.4).
type prereq struct {
	name  string
	kind  int    // one of the pre* constants
	rtype uint16 // the RRset's type (not for the name checks)
	value string // value-dependent TXT
}

const (
	preNameInUse    = iota // ANY ANY: NXDOMAIN if not
	preNameNotInUse        // NONE ANY: YXDOMAIN if in use
	preRRsetExists         // ANY type: NXRRSET if not
	preRRsetAbsent         // NONE type: YXRRSET if there
	preRRsetEquals         // IN type + rdata: NXRRSET unless the sets are equal
)

// change is one parsed update RR (RFC 2136 2.5).
type change struct {
	name  string
	kind  int
	value string
}

const (
	chAdd        = iota // IN TXT: add one value
	chDelete            // NONE TXT: delete one value
	chDeleteSet         // ANY TXT: delete the TXT RRset
	chDeleteName        // ANY ANY: delete every RRset, here every TXT value
)

// rejection is a reason to refuse the whole message.
type rejection struct {
	rcode  int
	reason string
}

func (x *exchange) update(ctx context.Context) {
	h, key := x.h, *x.key
	// The rate is spent first, once per prerequisite and update RR (each
	// costs backend reads or writes), all or nothing, so that no UPDATE of
	// a verified key, refused or not, escapes it; an oversized one costs
	// one.
	n := len(x.req.Answer) + len(x.req.Ns)
	cost := max(n, 1)
	if n > MaxRecords {
		cost = 1
	}
	if !h.updKey.SpendN(key.Name, cost) {
		x.limited()
		return
	}
	if n > MaxRecords {
		x.fail(ctx, dns.RcodeRefused, fmt.Sprintf("%d prerequisite and update records: at most %d per UPDATE", n, MaxRecords))
		return
	}
	q := x.req.Question[0]
	zone := dns.CanonicalName(q.Name)
	switch {
	case q.Qtype != dns.TypeSOA:
		x.fail(ctx, dns.RcodeFormatError, "zone type is not SOA")
		return
	case q.Qclass != dns.ClassINET:
		x.fail(ctx, dns.RcodeNotAuth, "zone class is not IN")
		return
	case !x.r.Gateway && zone != h.zone:
		// The public listener is authoritative for the hub zone alone.
		x.fail(ctx, dns.RcodeNotAuth, "not the hub zone")
		return
	}

	allowed := map[string]bool{}
	scope := func(name string) *rejection {
		ok, seen := allowed[name]
		if !seen {
			ok = h.b.Allowed(ctx, &key, name)
			allowed[name] = ok
		}
		if !ok {
			return &rejection{dns.RcodeRefused, "name " + name + " is outside the key's scope"}
		}
		return nil
	}
	prereqs := make([]prereq, 0, len(x.req.Answer))
	for _, rr := range x.req.Answer {
		p, rej := parsePrereq(rr, zone)
		if rej == nil {
			rej = scope(p.name)
		}
		if rej != nil {
			x.fail(ctx, rej.rcode, "prerequisite: "+rej.reason)
			return
		}
		prereqs = append(prereqs, p)
	}
	changes := make([]change, 0, len(x.req.Ns))
	for _, rr := range x.req.Ns {
		c, rej := parseChange(rr, zone)
		if rej == nil {
			rej = scope(c.name)
		}
		if rej != nil {
			x.fail(ctx, rej.rcode, "update: "+rej.reason)
			return
		}
		changes = append(changes, c)
	}

	// From the prerequisites' reads to the last undo, no other UPDATE of
	// this process touches these names.
	touched := make([]string, 0, len(prereqs)+len(changes))
	for _, p := range prereqs {
		touched = append(touched, p.name)
	}
	for _, c := range changes {
		touched = append(touched, c.name)
	}
	defer h.names.lock(touched)()

	values := map[string][]string{}
	lookup := func(name string) ([]string, error) {
		if v, ok := values[name]; ok {
			return v, nil
		}
		v, err := h.b.Values(ctx, key, name)
		if err != nil {
			return nil, err
		}
		values[name] = v
		return v, nil
	}
	if rcode, err := x.checkPrereqs(prereqs, lookup); err != nil {
		x.backendFailed(ctx, err, "read values")
		return
	} else if rcode != dns.RcodeSuccess {
		x.resp.Rcode = rcode // a prerequisite not met: a normal outcome, not audited
		return
	}

	// Atomic as far as the backend allows (RFC 2136 3.4.2.1): the
	// effective changes are worked out against the current values, applied
	// in order, and on a failure those already applied are undone.
	state := map[string][]string{}
	for _, c := range changes {
		if _, ok := state[c.name]; ok {
			continue
		}
		v, err := lookup(c.name)
		if err != nil {
			x.backendFailed(ctx, err, "read values")
			return
		}
		state[c.name] = slices.Clone(v)
	}
	ops := plan(changes, state)
	for i, o := range ops {
		if err := x.apply(ctx, key, o); err != nil {
			x.undo(ctx, key, ops[:i])
			x.backendFailed(ctx, err, "update "+o.name)
			return
		}
	}
}

// op is one effective change: add or remove one value at a name.
type op struct {
	add         bool
	name, value string
}

// plan turns the changes into the effective ones, in order, given the
// current values by name (state, modified): an add of a value already
// there and a delete of one that is not are no-ops (RFC 2136 3.4.2).
func plan(changes []change, state map[string][]string) []op {
	var ops []op
	for _, c := range changes {
		vals := state[c.name]
		switch c.kind {
		case chAdd:
			if !slices.Contains(vals, c.value) {
				state[c.name] = append(vals, c.value)
				ops = append(ops, op{add: true, name: c.name, value: c.value})
			}
		case chDelete:
			if i := slices.Index(vals, c.value); i >= 0 {
				state[c.name] = slices.Delete(vals, i, i+1)
				ops = append(ops, op{name: c.name, value: c.value})
			}
		default: // the RRset, or every RRset at the name: only TXT ones here
			for _, v := range vals {
				ops = append(ops, op{name: c.name, value: v})
			}
			state[c.name] = nil
		}
	}
	return ops
}

// apply makes one change; TTLs in the message are ignored (the hub's
// configuration decides them).
func (x *exchange) apply(ctx context.Context, key Key, o op) error {
	if o.add {
		return x.h.b.Add(ctx, key, o.name, o.value, x.r.Source)
	}
	return x.h.b.Remove(ctx, key, o.name, o.value, x.r.Source)
}

// undo reverts applied changes, last first, best effort: with its own
// timeout, since the failure may have been the request's deadline.
func (x *exchange) undo(ctx context.Context, key Key, applied []op) {
	if len(applied) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.h.timeout)
	defer cancel()
	for i := len(applied) - 1; i >= 0; i-- {
		o := applied[i]
		o.add = !o.add
		if err := x.apply(ctx, key, o); err != nil {
			x.h.log.WarnContext(ctx, "dns update: undo failed; the update is partly applied",
				"tsig_key", x.keyName, "zone", x.zone(), "name", o.name, "err", err)
		}
	}
}

// backendFailed answers a backend error with its rcode (or SERVFAIL).
func (x *exchange) backendFailed(ctx context.Context, err error, what string) {
	rcode := backendRcode(err)
	if rcode == dns.RcodeServerFailure {
		x.h.log.WarnContext(ctx, "dns update: backend failed", "tsig_key", x.keyName, "zone", x.zone(), "op", what, "err", err)
	}
	x.fail(ctx, rcode, fmt.Sprintf("%s: %v", what, err))
}

// parsePrereq checks one prerequisite RR's form and zone (RFC 2136 3.2.1).
func parsePrereq(rr dns.RR, zone string) (prereq, *rejection) {
	hdr := rr.Header()
	p := prereq{name: dns.CanonicalName(hdr.Name), rtype: hdr.Rrtype}
	if hdr.Ttl != 0 {
		return p, &rejection{dns.RcodeFormatError, "TTL is not 0"}
	}
	if !dns.IsSubDomain(zone, p.name) {
		return p, &rejection{dns.RcodeNotZone, "name " + p.name + " is outside zone " + zone}
	}
	if isMeta(hdr.Rrtype) && hdr.Rrtype != dns.TypeANY {
		return p, &rejection{dns.RcodeFormatError, "meta type " + dns.TypeToString[hdr.Rrtype]}
	}
	switch hdr.Class {
	case dns.ClassANY, dns.ClassNONE:
		if hdr.Rdlength != 0 {
			return p, &rejection{dns.RcodeFormatError, "class ANY or NONE with data"}
		}
		switch {
		case hdr.Class == dns.ClassANY && hdr.Rrtype == dns.TypeANY:
			p.kind = preNameInUse
		case hdr.Class == dns.ClassANY:
			p.kind = preRRsetExists
		case hdr.Rrtype == dns.TypeANY:
			p.kind = preNameNotInUse
		default:
			p.kind = preRRsetAbsent
		}
	case dns.ClassINET:
		if hdr.Rrtype == dns.TypeANY {
			return p, &rejection{dns.RcodeFormatError, "type ANY with data"}
		}
		p.kind = preRRsetEquals
		if t, ok := rr.(*dns.TXT); ok {
			v, rej := txtValue(t)
			if rej != nil {
				return p, rej
			}
			p.value = v
		}
	default:
		return p, &rejection{dns.RcodeFormatError, "class " + dns.ClassToString[hdr.Class]}
	}
	return p, nil
}

// checkPrereqs evaluates the prerequisites in order (RFC 2136 3.2.5): the
// first that fails gives the rcode. Only TXT RRsets exist at the names a
// key may write.
func (x *exchange) checkPrereqs(ps []prereq, lookup func(string) ([]string, error)) (int, error) {
	equals := map[string][]string{} // value-dependent sets, by name (TXT only)
	var other []string              // value-dependent on a type we never hold
	for _, p := range ps {
		if p.kind == preRRsetEquals {
			if p.rtype == dns.TypeTXT {
				equals[p.name] = append(equals[p.name], p.value)
			} else {
				other = append(other, p.name)
			}
			continue
		}
		v, err := lookup(p.name)
		if err != nil {
			return 0, err
		}
		hasTXT := len(v) > 0
		switch p.kind {
		case preNameInUse:
			if !hasTXT {
				return dns.RcodeNameError, nil
			}
		case preNameNotInUse:
			if hasTXT {
				return dns.RcodeYXDomain, nil
			}
		case preRRsetExists:
			if p.rtype != dns.TypeTXT || !hasTXT {
				return dns.RcodeNXRrset, nil
			}
		case preRRsetAbsent:
			if p.rtype == dns.TypeTXT && hasTXT {
				return dns.RcodeYXRrset, nil
			}
		}
	}
	if len(other) > 0 {
		return dns.RcodeNXRrset, nil
	}
	for _, name := range sortedKeys(equals) {
		v, err := lookup(name)
		if err != nil {
			return 0, err
		}
		if !sameSet(v, equals[name]) {
			return dns.RcodeNXRrset, nil
		}
	}
	return dns.RcodeSuccess, nil
}

// parseChange checks one update RR (RFC 2136 3.4.1): TXT only.
func parseChange(rr dns.RR, zone string) (change, *rejection) {
	hdr := rr.Header()
	c := change{name: dns.CanonicalName(hdr.Name)}
	if !dns.IsSubDomain(zone, c.name) {
		return c, &rejection{dns.RcodeNotZone, "name " + c.name + " is outside zone " + zone}
	}
	switch hdr.Class {
	case dns.ClassINET, dns.ClassNONE:
		if isMeta(hdr.Rrtype) {
			return c, &rejection{dns.RcodeFormatError, "meta type " + dns.TypeToString[hdr.Rrtype]}
		}
		if hdr.Class == dns.ClassNONE && hdr.Ttl != 0 {
			return c, &rejection{dns.RcodeFormatError, "delete with a TTL"}
		}
		t, ok := rr.(*dns.TXT)
		if !ok {
			return c, &rejection{dns.RcodeRefused, "type " + dns.TypeToString[hdr.Rrtype] + " (only TXT records are accepted)"}
		}
		v, rej := txtValue(t)
		if rej != nil {
			return c, rej
		}
		c.kind, c.value = chAdd, v
		if hdr.Class == dns.ClassNONE {
			c.kind = chDelete
		}
	case dns.ClassANY:
		if hdr.Ttl != 0 || hdr.Rdlength != 0 {
			return c, &rejection{dns.RcodeFormatError, "delete RRset with a TTL or data"}
		}
		switch hdr.Rrtype {
		case dns.TypeANY:
			c.kind = chDeleteName
		case dns.TypeTXT:
			c.kind = chDeleteSet
		default:
			if isMeta(hdr.Rrtype) {
				return c, &rejection{dns.RcodeFormatError, "meta type " + dns.TypeToString[hdr.Rrtype]}
			}
			return c, &rejection{dns.RcodeRefused, "type " + dns.TypeToString[hdr.Rrtype] + " (only TXT records are accepted)"}
		}
	default:
		return c, &rejection{dns.RcodeFormatError, "class " + dns.ClassToString[hdr.Class]}
	}
	return c, nil
}

// txtValue joins a TXT record's strings into one value (ACME values are
// one string). miekg presents bytes outside printable ASCII, quotes and
// backslashes as escapes; no ACME value has them.
func txtValue(t *dns.TXT) (string, *rejection) {
	v := strings.Join(t.Txt, "")
	if v == "" || strings.ContainsAny(v, `\"`) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", &rejection{dns.RcodeRefused, "TXT value is empty or not printable ASCII without spaces"}
	}
	return v, nil
}

// isMeta reports the types no update or prerequisite may carry as data
// (RFC 2136 3.4.1.2): ANY, AXFR, IXFR, MAILA, MAILB, OPT, TSIG, TKEY.
func isMeta(t uint16) bool {
	switch t {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return true
	}
	return false
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// nameLocks is a fixed set of mutexes, a name hashed to one: enough to
// serialise UPDATEs on the same names without a lock per name.
type nameLocks [64]sync.Mutex

// lock locks the stripes of names, in stripe order (so two callers never
// wait on each other crosswise), and returns the unlock.
func (l *nameLocks) lock(names []string) (unlock func()) {
	var held [len(nameLocks{})]bool
	for _, n := range names {
		h := fnv.New32a()
		_, _ = h.Write([]byte(strings.ToLower(n)))
		held[h.Sum32()%uint32(len(l))] = true
	}
	for i, on := range held {
		if on {
			l[i].Lock()
		}
	}
	return func() {
		for i, on := range held {
			if on {
				l[i].Unlock()
			}
		}
	}
}
