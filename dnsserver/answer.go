package dnsserver

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
	"github.com/acmehub/acmehub/internal/zone"
)

// Zone is the hub zone's content as the answer path needs it; *zone.View
// implements it. LookupBytes is called for every query from many goroutines:
// it must be safe for concurrent use, never block on I/O, and not retain
// lowerFqdn (a lower-case fqdn inside the origin, or the origin itself).
// Before the content is loaded it reports zone.KindUnavailable, which we
// answer with SERVFAIL rather than a cached-for-a-minute NXDOMAIN.
type Zone interface {
	LookupBytes(lowerFqdn []byte) zone.LookupResult
}

var _ Zone = (*zone.View)(nil)

// Transport is how a query arrived; it decides the reply size limit.
type Transport uint8

// Transports.
const (
	UDP Transport = iota + 1
	TCP
)

func (t Transport) String() string {
	if t == TCP {
		return "tcp"
	}
	return "udp"
}

// Header bits (RFC 1035 4.1.1).
const (
	hdrLen   = 12
	flagQR   = 1 << 15
	flagAA   = 1 << 10
	flagTC   = 1 << 9
	flagRD   = 1 << 8
	flagRA   = 1 << 7
	flagZ    = 1 << 6
	flagAD   = 1 << 5
	flagCD   = 1 << 4
	flagDO   = 1 << 15 // in the OPT TTL
	optLen   = 11      // root owner, type, class, TTL, RDLENGTH 0
	maxTCP   = dns.MaxMsgSize
	minUDP   = dns.MinMsgSize
	ptrQName = 0xC000 | hdrLen // compression pointer to the question name
)

// Handler answers queries for the hub zone. Its Answer method is a pure
// function of the query and the zone content; the server wraps it.
type Handler struct {
	zone       Zone
	log        *slog.Logger
	observe    func(qtype uint16, rcode int, elapsed time.Duration)
	originWire []byte // lower-case wire form
	originKey  []byte // lower-case presentation form, for LookupBytes

	soaTTL, negTTL uint32
	soaNames       []byte   // MNAME and RNAME, uncompressed
	soaTimers      [16]byte // REFRESH RETRY EXPIRE MINIMUM

	nsRRs     []byte // apex NS RRset, owners pointing at the question
	nsCount   uint16
	glue      []byte // A/AAAA of in-zone nameservers, full owners
	glueCount uint16
	hosts     map[string]*host    // in-zone nameserver names
	ents      map[string]struct{} // names between those and the apex

	updates  *dnsupdate.Handler // UPDATE (and, on a gateway, every message)
	gateway  bool
	inflight chan struct{} // bounds UPDATEs handed off by the UDP batch loops
}

// host holds the address RRsets of an in-zone nameserver, owners pointing
// at the question so the query's case is kept.
type host struct {
	a, aaaa   []byte
	na, naaaa uint16
}

// NewHandler validates cfg and prepares every static part of the answers.
func NewHandler(cfg Config, z Zone) (*Handler, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if z == nil {
		return nil, fmt.Errorf("dnsserver: nil zone")
	}
	h := &Handler{
		zone:       z,
		log:        cfg.Logger,
		observe:    cfg.Observer,
		originWire: packName(cfg.Origin),
		originKey:  []byte(cfg.Origin),
		soaTTL:     seconds(cfg.TTL),
		hosts:      map[string]*host{},
		ents:       map[string]struct{}{},
		updates:    cfg.Updates,
		gateway:    cfg.Gateway,
		inflight:   make(chan struct{}, maxInflightUpdates),
	}
	h.negTTL = min(h.soaTTL, seconds(cfg.Minimum))
	h.soaNames = append(packName(cfg.Nameservers[0].Name), packName(cfg.Mbox)...)
	for i, d := range []time.Duration{cfg.Refresh, cfg.Retry, cfg.Expire, cfg.Minimum} {
		binary.BigEndian.PutUint32(h.soaTimers[4*i:], seconds(d))
	}
	for _, ns := range cfg.Nameservers {
		wire := packName(ns.Name)
		h.nsRRs = appendRRHeader(h.nsRRs, ptrQName, dns.TypeNS, h.soaTTL, len(wire))
		h.nsRRs = append(h.nsRRs, wire...)
		h.nsCount++
		if !dns.IsSubDomain(cfg.Origin, ns.Name) {
			continue
		}
		hs := &host{}
		for _, a := range ns.Addrs {
			a = a.Unmap()
			rrtype, ip := dns.TypeAAAA, a.AsSlice()
			if a.Is4() {
				rrtype = dns.TypeA
			}
			h.glue = append(h.glue, wire...)
			h.glue = appendRRHeader(h.glue, noOwner, rrtype, h.soaTTL, len(ip))
			h.glue = append(h.glue, ip...)
			h.glueCount++
			if a.Is4() {
				hs.a = append(appendRRHeader(hs.a, ptrQName, rrtype, h.soaTTL, len(ip)), ip...)
				hs.na++
			} else {
				hs.aaaa = append(appendRRHeader(hs.aaaa, ptrQName, rrtype, h.soaTTL, len(ip)), ip...)
				hs.naaaa++
			}
		}
		h.hosts[ns.Name] = hs
		for n := ns.Name; ; {
			_, rest, _ := cutLabel(n)
			if len(rest) <= len(cfg.Origin) {
				break
			}
			h.ents[rest] = struct{}{}
			n = rest
		}
	}
	return h, nil
}

// Answer builds the reply to req in dst's storage (grown as needed) and
// returns it with its rcode (extended rcodes such as BADVERS included).
// It never fails: malformed queries get FORMERR, and an answer that does
// not fit the transport's limit is sent with TC set and no records.
// Apart from reading the zone it has no side effects.
func (h *Handler) Answer(dst []byte, req *dns.Msg, t Transport) ([]byte, int) {
	r := builder{b: slices.Grow(dst[:0], 512)[:hdrLen]}
	clear(r.b)
	binary.BigEndian.PutUint16(r.b, req.Id)
	r.flags = flagQR | uint16(req.Opcode&0xF)<<11
	if req.RecursionDesired {
		r.flags |= flagRD
	}
	if req.CheckingDisabled {
		r.flags |= flagCD
	}
	limit := maxTCP
	if t != TCP {
		limit = minUDP
	}

	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return r.fail(dns.RcodeFormatError) // RFC 6891 6.1.1; no OPT echoed
			}
			opt = o
		}
	}
	if opt != nil {
		if opt.Hdr.Name != "." {
			return r.fail(dns.RcodeFormatError)
		}
		r.edns, r.do = true, opt.Do()
		if t != TCP {
			limit = min(max(int(opt.UDPSize()), minUDP), ednsSize)
		}
		if opt.Version() != 0 {
			r.question(req)
			return r.fail(dns.RcodeBadVers)
		}
	}

	switch req.Opcode {
	case dns.OpcodeQuery:
	case dns.OpcodeNotify, dns.OpcodeUpdate:
		// No primaries to accept NOTIFY from; UPDATE reaches Answer only
		// without an UPDATE handler (see Handler.routed).
		r.question(req)
		return r.fail(dns.RcodeRefused)
	default:
		r.question(req)
		return r.fail(dns.RcodeNotImplemented)
	}
	if !r.question(req) {
		return r.fail(dns.RcodeFormatError)
	}
	q := req.Question[0]
	if q.Qclass == 0 {
		return r.fail(dns.RcodeFormatError) // reserved; also what miekg leaves for a question cut short
	}
	if q.Qclass != dns.ClassINET {
		return r.fail(dns.RcodeRefused) // CH version.bind and friends too
	}
	switch q.Qtype {
	case dns.TypeOPT:
		return r.fail(dns.RcodeFormatError)
	case dns.TypeAXFR, dns.TypeIXFR:
		return r.fail(dns.RcodeRefused) // no TSIG keys yet
	case dns.TypeMAILA, dns.TypeMAILB:
		return r.fail(dns.RcodeNotImplemented)
	}
	qname := r.b[hdrLen : r.qEnd-4]
	originOff, ok := h.zoneCut(qname)
	if !ok {
		return r.fail(dns.RcodeRefused)
	}

	// The lookup key is built in the reply buffer's spare room, which the
	// records appended below overwrite once it has been used.
	r.b = slices.Grow(r.b, 256)
	qname = r.b[hdrLen : r.qEnd-4]
	key, plain := lowerKey(r.b[len(r.b):len(r.b)], qname)
	var hst *host
	var res zone.LookupResult
	if plain {
		res = h.zone.LookupBytes(key)
		hst = h.hosts[string(key)]
		if _, ent := h.ents[string(key)]; ent && res.Kind == zone.KindNXDomain {
			res.Kind = zone.KindEmptyNonTerminal
		}
	} else {
		// A byte outside [a-z0-9-_]: no stored name has one. Still read the
		// serial for the SOA.
		res = h.zone.LookupBytes(h.originKey)
		if res.Kind != zone.KindUnavailable {
			res.Kind = zone.KindNXDomain
		}
	}
	if res.Kind == zone.KindUnavailable {
		return r.fail(dns.RcodeServerFailure)
	}

	r.flags |= flagAA
	apex := originOff == 0
	originPtr := uint16(0xC000 | (hdrLen + originOff)) //nolint:gosec // originOff < 256: names are at most 255 bytes
	switch qt := q.Qtype; {
	case apex && (qt == dns.TypeSOA || qt == dns.TypeANY):
		r.soa(h, ptrQName, h.soaTTL, res.Serial)
		r.an = 1
	case apex && qt == dns.TypeNS:
		r.b = append(r.b, h.nsRRs...)
		r.b = append(r.b, h.glue...)
		r.an, r.ar = h.nsCount, h.glueCount
	case hst != nil && qt == dns.TypeA && hst.na > 0:
		r.b, r.an = append(r.b, hst.a...), hst.na
	case hst != nil && qt == dns.TypeAAAA && hst.naaaa > 0:
		r.b, r.an = append(r.b, hst.aaaa...), hst.naaaa
	case res.Kind == zone.KindTXT && (qt == dns.TypeTXT || qt == dns.TypeANY):
		r.txt(&res)
	case hst != nil && qt == dns.TypeANY && hst.na > 0: // RFC 8482: one RRset
		r.b, r.an = append(r.b, hst.a...), hst.na
	case hst != nil && qt == dns.TypeANY && hst.naaaa > 0:
		r.b, r.an = append(r.b, hst.aaaa...), hst.naaaa
	case res.Kind == zone.KindNXDomain && hst == nil && !apex:
		r.rcode = dns.RcodeNameError
		r.soa(h, originPtr, h.negTTL, res.Serial)
		r.ns = 1
	default: // NODATA (RFC 2308 2.2), also for empty non-terminals (RFC 8020)
		r.soa(h, originPtr, h.negTTL, res.Serial)
		r.ns = 1
	}
	return r.finish(limit)
}

// builder assembles one reply.
type builder struct {
	b              []byte
	flags          uint16
	rcode          int
	qd, an, ns, ar uint16
	qEnd           int // end of the question section
	edns, do       bool
}

// question copies the query's only question, packed without compression
// so the answer's owners can point at it and keep its case (0x20).
func (r *builder) question(req *dns.Msg) bool {
	if len(req.Question) != 1 {
		return false
	}
	q := req.Question[0]
	r.b = slices.Grow(r.b, 300)
	end, err := dns.PackDomainName(q.Name, r.b[:cap(r.b)], hdrLen, nil, false)
	if err != nil || end-hdrLen > 255 || end == hdrLen {
		return false
	}
	r.b = binary.BigEndian.AppendUint16(r.b[:end], q.Qtype)
	r.b = binary.BigEndian.AppendUint16(r.b, q.Qclass)
	r.qd, r.qEnd = 1, len(r.b)
	return true
}

// fail finishes an error reply: no AA, no records, the question if set.
func (r *builder) fail(rcode int) ([]byte, int) {
	r.flags &^= flagAA
	r.rcode = rcode
	if rcode == dns.RcodeFormatError && r.qd == 0 {
		r.b = r.b[:hdrLen]
	}
	return r.finish(maxTCP)
}

// finish drops every record if the reply is over limit (TC set: an empty
// answer rather than a partial one, unlike dns.Msg.Truncate), adds the OPT
// and writes the header.
func (r *builder) finish(limit int) ([]byte, int) {
	reserve := 0
	if r.edns {
		reserve = optLen
	}
	if len(r.b)+reserve > limit {
		r.b = r.b[:max(r.qEnd, hdrLen)]
		r.an, r.ns, r.ar = 0, 0, 0
		r.flags |= flagTC
	}
	if r.edns {
		ttl := uint32(r.rcode>>4&0xFF) << 24 // the 8-bit extended rcode; version 0, no flags but DO
		if r.do {
			ttl |= flagDO
		}
		r.b = append(r.b, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), ednsSize>>8, ednsSize&0xFF)
		r.b = binary.BigEndian.AppendUint32(r.b, ttl)
		r.b = append(r.b, 0, 0)
		r.ar++
	}
	binary.BigEndian.PutUint16(r.b[2:], r.flags|uint16(r.rcode&0xF))
	binary.BigEndian.PutUint16(r.b[4:], r.qd)
	binary.BigEndian.PutUint16(r.b[6:], r.an)
	binary.BigEndian.PutUint16(r.b[8:], r.ns)
	binary.BigEndian.PutUint16(r.b[10:], r.ar)
	return r.b, r.rcode
}

func (r *builder) soa(h *Handler, owner uint16, ttl uint32, serial int64) {
	r.b = appendRRHeader(r.b, owner, dns.TypeSOA, ttl, len(h.soaNames)+20)
	r.b = append(r.b, h.soaNames...)
	r.b = binary.BigEndian.AppendUint32(r.b, uint32(serial)) //nolint:gosec // published mod 2^32 (RFC 1982)
	r.b = append(r.b, h.soaTimers[:]...)
}

func (r *builder) txt(res *zone.LookupResult) {
	rd := res.RData
	for len(rd) >= 2 {
		n := 2 + int(binary.BigEndian.Uint16(rd))
		r.b = append(r.b, ptrQName>>8, ptrQName&0xFF, 0, byte(dns.TypeTXT), 0, byte(dns.ClassINET))
		r.b = binary.BigEndian.AppendUint32(r.b, res.TTL)
		r.b = append(r.b, rd[:n]...)
		rd = rd[n:]
		r.an++
	}
}

// noOwner tells appendRRHeader the caller wrote the owner itself.
const noOwner = 0

// appendRRHeader appends an owner (a compression pointer, or nothing for
// noOwner), type, class IN, TTL and RDLENGTH (of RDATA we built: small).
func appendRRHeader(b []byte, owner, rrtype uint16, ttl uint32, rdlen int) []byte {
	if owner != noOwner {
		b = binary.BigEndian.AppendUint16(b, owner)
	}
	b = binary.BigEndian.AppendUint16(b, rrtype)
	b = binary.BigEndian.AppendUint16(b, dns.ClassINET)
	b = binary.BigEndian.AppendUint32(b, ttl)
	return binary.BigEndian.AppendUint16(b, uint16(rdlen)) //nolint:gosec // rdlen <= 512: names, addresses and a SOA
}

// zoneCut reports whether the uncompressed wire name is the origin or below
// it, and where the origin starts within it. Comparing wire labels (not
// presentation strings) keeps escaped dots from fooling it.
func (h *Handler) zoneCut(name []byte) (int, bool) {
	for i := 0; i < len(name); {
		switch rest := len(name) - i; {
		case rest == len(h.originWire):
			return i, equalFold(name[i:], h.originWire)
		case rest < len(h.originWire) || name[i] == 0:
			return 0, false
		}
		i += 1 + int(name[i])
	}
	return 0, false
}

// lowerKey writes the lower-case presentation form of an uncompressed wire
// name into dst's spare capacity. plain is false when a label holds a byte
// other than letters, digits, '-' and '_': such names are never stored, and
// their presentation form would need escapes.
func lowerKey(dst, name []byte) (key []byte, plain bool) {
	plain = true
	for i := 0; i < len(name) && name[i] != 0; {
		n := int(name[i])
		for _, c := range name[i+1 : i+1+n] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if !plainByte(c) {
				plain = false
			}
			dst = append(dst, c)
		}
		dst = append(dst, '.')
		i += 1 + n
	}
	return dst, plain
}

// plainByte reports whether c may appear in a stored name's label.
func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// packName returns the uncompressed wire form of a validated fqdn.
func packName(name string) []byte {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(name, b, 0, nil, false)
	if err != nil {
		panic(fmt.Sprintf("dnsserver: pack validated name %q: %v", name, err))
	}
	return b[:n]
}

// cutLabel splits a plain fqdn (no escapes) at its first dot.
func cutLabel(name string) (label, rest string, ok bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return name[:i], name[i+1:], true
		}
	}
	return name, "", false
}
