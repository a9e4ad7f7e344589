package dnsupdate

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"slices"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/ratelimit"
)

// Verification is deferred to the handler because only the handler knows
// the client's address: the backend's key lookup checks the key's source
// allow-list and counts failures per source network, and the rate limits
// must refuse before any lookup. A miekg dns.Server verifies before its
// handler runs and tells it only TsigStatus(), so its TsigProvider is
// Deferred: its Verify does no check but returns the bytes the MAC covers
// as a *Signed "error", which the handler then checks.

// Deferred is the dns.TsigProvider to give a miekg dns.Server (its
// TsigProvider field): w.TsigStatus() then holds a *Signed for the
// handler's Request.TSIG. Replies are signed by Handler.Serve, not by
// miekg (write them with Write, not WriteMsg).
type Deferred struct{}

var _ dns.TsigProvider = Deferred{}

var errNoSigning = errors.New("dnsupdate: the deferred TSIG provider does not sign")

// Generate always fails: Handler.Serve signs replies itself.
func (Deferred) Generate([]byte, *dns.TSIG) ([]byte, error) { return nil, errNoSigning }

// Verify returns a *Signed holding a copy of msg (miekg hands us storage
// it reuses for the next packet).
func (Deferred) Verify(msg []byte, t *dns.TSIG) error {
	return &Signed{data: slices.Clone(msg), tsig: t}
}

// Signed is a TSIG-signed message whose MAC the handler has yet to check:
// the bytes the MAC covers (RFC 8945 4.3.3) and the TSIG record.
type Signed struct {
	data []byte
	tsig *dns.TSIG
}

func (*Signed) Error() string { return "dnsupdate: TSIG verification deferred to the handler" }

// Inspect is the TSIG step for a server that has the raw message m
// (the batched UDP path): nil if req is unsigned, else what a miekg
// server with the Deferred provider would report. m is not modified.
func Inspect(req *dns.Msg, m []byte) error {
	if req.IsTsig() == nil {
		return nil
	}
	return dns.TsigVerifyWithProvider(slices.Clone(m), Deferred{}, "", false)
}

// TSIG errors (RFC 8945 5.2), carried in the reply's TSIG record with
// rcode NOTAUTH.
const (
	badSig  = dns.RcodeBadSig
	badKey  = dns.RcodeBadKey
	badTime = dns.RcodeBadTime
)

// verify checks the request's TSIG. It returns false when the reply is
// decided (an error with the TSIG error set, FORMERR or a rate limit).
func (x *exchange) verify(ctx context.Context) bool {
	h, t := x.h, x.req.IsTsig()
	x.tsig = t
	x.keyName = dns.CanonicalName(t.Hdr.Name)
	src := ratelimit.SourceKey(x.r.Source)
	if h.failSrc.Limited(src) || h.failKey.Limited(x.keyName) {
		x.tsig = nil // no TSIG in the reply: nothing was looked at
		x.limited()
		return false
	}
	var s *Signed
	if !errors.As(x.r.TSIG, &s) || s.tsig == nil {
		// miekg could not take the TSIG apart (or the server gave us no
		// TSIG step): not a message we can verify.
		x.tsig = nil
		x.fail(ctx, dns.RcodeFormatError, "malformed TSIG record")
		return false
	}
	k, err := h.b.Key(ctx, x.keyName, x.r.Source)
	if err != nil {
		x.tsigFail(ctx, badKey, "unknown or unusable key")
		return false
	}
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		x.tsigFail(ctx, badKey, "algorithm "+dns.CanonicalName(t.Algorithm)+" is not the key's")
		return false
	}
	mac, err := hex.DecodeString(t.MAC)
	hm := newHMAC(k.Algorithm, k.Secret)
	if err != nil || hm == nil || !macEqual(hm, s.data, mac) {
		x.tsigFail(ctx, badSig, "bad MAC")
		return false
	}
	// The time is checked after the MAC (RFC 8945 5.2.3; CVE-2017-3142).
	now := uint64(max(h.now().Unix(), 0))
	d := max(now, t.TimeSigned) - min(now, t.TimeSigned)
	if d > uint64(t.Fudge) {
		x.signer = &k // BADTIME replies are signed (RFC 8945 5.2.3)
		x.tsigFail(ctx, badTime, "time outside the fudge")
		return false
	}
	x.key, x.signer = &k, &k
	return true
}

// macEqual compares the MAC of data with mac in constant time. A
// truncated MAC (RFC 8945 5.2.2.1) is not accepted: no client sends one.
func macEqual(h hash.Hash, data, mac []byte) bool {
	h.Write(data)
	return len(mac) == h.Size() && hmac.Equal(h.Sum(nil), mac)
}

// tsigFail answers NOTAUTH with a TSIG error, spends a failure of the
// source and the key name, and audits.
func (x *exchange) tsigFail(ctx context.Context, tsigErr uint16, reason string) {
	x.h.failSrc.Spend(ratelimit.SourceKey(x.r.Source))
	x.h.failKey.Spend(x.keyName)
	x.tsigErr = tsigErr
	x.result = map[uint16]string{badKey: "badkey", badSig: "badsig", badTime: "badtime"}[tsigErr]
	x.resp.Rcode = dns.RcodeNotAuth
	x.h.b.Refused(ctx, x.signer, x.keyName, x.r.Source, x.zone(), "tsig: "+reason, dns.RcodeNotAuth)
	x.h.log.InfoContext(ctx, "dns update refused", "tsig_key", x.keyName, "source", x.r.Source.String(), "reason", "tsig: "+reason)
}

// tsigRecord is the reply's TSIG record before signing.
func (x *exchange) tsigRecord(id uint16) *dns.TSIG {
	t := &dns.TSIG{
		// Canonical forms: miekg miscounts an empty name when packing.
		Hdr:        dns.RR_Header{Name: x.keyName, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  dns.CanonicalName(x.tsig.Algorithm),
		TimeSigned: uint64(max(x.h.now().Unix(), 0)),
		Fudge:      DefaultFudge,
		OrigId:     id,
		Error:      x.tsigErr,
	}
	if x.tsigErr == badTime {
		// RFC 8945 5.2.3: the request's time, so the client can check the
		// MAC, and ours in Other Data (48 bits).
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], t.TimeSigned)
		t.TimeSigned = x.tsig.TimeSigned
		t.OtherLen, t.OtherData = 6, hex.EncodeToString(b[2:])
	}
	return t
}

// sign packs m with the reply's TSIG record: signed with the verified key,
// or with an empty MAC for BADKEY and BADSIG (RFC 8945 5.3.2), which miekg
// leaves unsigned.
func (x *exchange) sign(m *dns.Msg) ([]byte, error) {
	m.Extra = append(m.Extra, x.tsigRecord(m.Id))
	if x.signer == nil {
		// Packed as is: miekg's signer would zero Time Signed for these
		// errors, and BIND's tools then report unsynchronised clocks
		// instead of BADKEY or BADSIG.
		return m.Pack()
	}
	b, _, err := dns.TsigGenerateWithProvider(m, *x.signer, x.tsig.MAC, false)
	return b, err
}
