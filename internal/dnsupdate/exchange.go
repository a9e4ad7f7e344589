package dnsupdate

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// Reply size limits: 512 bytes over UDP without EDNS, at most 1232 with
// it (DNS flag day 2020; the size the DNS server advertises).
const (
	minUDP   = dns.MinMsgSize
	ednsSize = 1232
)

// exchange is one message and its reply in the making.
type exchange struct {
	h    *Handler
	r    Request
	req  *dns.Msg
	resp *dns.Msg

	tsig    *dns.TSIG // the request's, when the reply carries a TSIG record
	keyName string    // the request's key name, canonical
	key     *Key      // the verified key
	signer  *Key      // the key the reply is signed with (verified, or BADTIME)
	tsigErr uint16
	result  string // for the observer: set for UPDATEs only when not "noerror"
}

func (x *exchange) serve(ctx context.Context) {
	req := x.req
	x.resp = new(dns.Msg)
	x.resp.SetReply(req)
	x.resp.RecursionAvailable = false
	if len(req.Question) != 1 || req.Question[0].Qclass == 0 {
		// miekg leaves the question out when the message is cut short in it.
		x.resp.Question = nil
		x.resp.Rcode = dns.RcodeFormatError
		x.done("formerr")
		return
	}

	var opt *dns.OPT
	for i, rr := range req.Extra {
		switch rr := rr.(type) {
		case *dns.OPT:
			if opt != nil || rr.Hdr.Name != "." {
				x.resp.Rcode = dns.RcodeFormatError // RFC 6891 6.1.1
				x.done("formerr")
				return
			}
			opt = rr
		case *dns.TSIG:
			if i != len(req.Extra)-1 {
				x.resp.Rcode = dns.RcodeFormatError // RFC 8945 5.1: TSIG must be last
				x.done("formerr")
				return
			}
		}
	}
	if opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(ednsSize)
		o.SetDo(opt.Do())
		x.resp.Extra = append(x.resp.Extra, o)
		if opt.Version() != 0 {
			x.resp.Rcode = dns.RcodeBadVers
			x.done("badvers")
			return
		}
	}

	isUpdate := req.Opcode == dns.OpcodeUpdate
	if req.IsTsig() != nil {
		if !x.verify(ctx) {
			x.done("")
			return
		}
	} else if isUpdate {
		x.unsigned(ctx)
		x.done("")
		return
	}
	switch {
	case isUpdate:
		x.update(ctx)
	case req.Opcode == dns.OpcodeQuery && x.r.Gateway:
		x.query(ctx)
	default:
		x.resp.Rcode = dns.RcodeRefused
	}
	x.done("")
}

// done reports an UPDATE's result to the observer.
func (x *exchange) done(result string) {
	if x.req.Opcode != dns.OpcodeUpdate || x.h.observe == nil {
		return
	}
	if result == "" {
		result = x.result
	}
	if result == "" {
		result = strings.ToLower(dns.RcodeToString[x.resp.Rcode])
	}
	x.h.observe(result)
}

// unsigned refuses an unsigned UPDATE (RFC 2136 3.3: we accept only
// signed ones), counting it as a failure of its source.
func (x *exchange) unsigned(ctx context.Context) {
	x.failure(ctx, dns.RcodeRefused, 0, "unsigned update")
}

// limited answers REFUSED without calling the backend.
func (x *exchange) limited() {
	x.resp.Rcode = dns.RcodeRefused
	x.result = "ratelimited"
	x.h.log.Debug("dns update rate limited", "tsig_key", x.keyName, "source", x.r.Source.String())
}

// fail sets rcode and audits the refusal.
func (x *exchange) fail(ctx context.Context, rcode int, reason string) {
	x.resp.Rcode = rcode
	key := x.key
	if key == nil {
		key = x.signer // BADTIME: the MAC verified
	}
	x.h.b.Refused(ctx, key, x.keyName, x.r.Source, x.zone(), reason, rcode)
	x.h.log.InfoContext(ctx, "dns update refused", "tsig_key", x.keyName, "source", x.r.Source.String(),
		"zone", x.zone(), "rcode", dns.RcodeToString[rcode], "reason", reason)
}

// zone is the request's zone (or question) name, canonical.
func (x *exchange) zone() string {
	if len(x.req.Question) == 0 {
		return ""
	}
	return dns.CanonicalName(x.req.Question[0].Name)
}

// reply packs the reply, signed when the request was verified (or failed
// with a TSIG error), within the transport's size limit: over it, the
// records are dropped and TC set, as the query path does.
func (x *exchange) reply() []byte {
	limit := dns.MaxMsgSize
	if !x.r.TCP {
		limit = minUDP
		if opt := x.req.IsEdns0(); opt != nil {
			limit = min(max(int(opt.UDPSize()), minUDP), ednsSize)
		}
	}
	b, err := x.pack()
	if err == nil && len(b) > limit {
		x.resp.Answer, x.resp.Ns = nil, nil
		x.resp.Truncated = true
		b, err = x.pack()
	}
	if err == nil && len(b) > limit {
		// Long names in the question and the TSIG record (which only a
		// request of about this size can bring): then the header alone,
		// so a reply never exceeds the limit.
		b = b[:12]
		clear(b[4:])
	}
	if err != nil {
		x.h.log.Error("dns update: reply does not pack; sent SERVFAIL", "err", err)
		return servfail(x.req)
	}
	return b
}

func (x *exchange) pack() ([]byte, error) {
	m := *x.resp
	m.Extra = slices0(x.resp.Extra)
	if x.tsig != nil {
		return x.sign(&m)
	}
	return m.Pack()
}

// slices0 copies s, so signing (which appends and cuts) leaves it alone.
func slices0(s []dns.RR) []dns.RR { return append([]dns.RR(nil), s...) }

// servfail is the reply of last resort: a bare header.
func servfail(req *dns.Msg) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, req.Id)
	binary.BigEndian.PutUint16(b[2:], 1<<15|uint16(req.Opcode&0xF)<<11|dns.RcodeServerFailure)
	return b
}

// rcoder is what backend errors implement to choose the rcode.
type rcoder interface{ Rcode() int }

// backendRcode is the rcode for a backend error: its own, or SERVFAIL.
func backendRcode(err error) int {
	var rc rcoder
	if errors.As(err, &rc) {
		return rc.Rcode()
	}
	return dns.RcodeServerFailure
}
