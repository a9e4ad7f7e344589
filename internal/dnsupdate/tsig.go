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
// allow-list, and the failure limits count per source network. A miekg dns.Server verifies before its
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
// decided (an error with the TSIG error set, FORMERR, SERVFAIL). The key
// is always looked up and the MAC checked, whatever the failure limits
// say: a message that verifies is never refused for others' failures.
func (x *exchange) verify(ctx context.Context) bool {
	h, t := x.h, x.req.IsTsig()
	x.tsig = t
	x.keyName = dns.CanonicalName(t.Hdr.Name)
	var s *Signed
	if !errors.As(x.r.TSIG, &s) || s.tsig == nil {
		// miekg could not take the TSIG apart (or the server gave us no
		// TSIG step): not a message we can verify.
		x.tsig = nil
		x.failure(ctx, dns.RcodeFormatError, 0, "malformed TSIG record")
		return false
	}
	k, err := h.b.Key(ctx, x.keyName, x.r.Source)
	var rc rcoder
	if errors.As(err, &rc) {
		// The backend cannot tell (starting, store down): not a verdict
		// on the key, so no TSIG error and nothing signed.
		x.tsig = nil
		x.failure(ctx, rc.Rcode(), 0, "key lookup failed")
		return false
	}
	if err != nil {
		x.failure(ctx, dns.RcodeNotAuth, badKey, "unknown or unusable key")
		return false
	}
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		x.failure(ctx, dns.RcodeNotAuth, badKey, "algorithm "+dns.CanonicalName(t.Algorithm)+" is not the key's")
		return false
	}
	mac, err := hex.DecodeString(t.MAC)
	hm := newHMAC(k.Algorithm, k.Secret)
	if err != nil || hm == nil || !macEqual(hm, s.data, mac) {
		x.failure(ctx, dns.RcodeNotAuth, badSig, "bad MAC")
		return false
	}
	// The time is checked after the MAC (RFC 8945 5.2.3; CVE-2017-3142),
	// within the request's Fudge but never more than MaxFudge.
	now := uint64(max(h.now().Unix(), 0))
	d := max(now, t.TimeSigned) - min(now, t.TimeSigned)
	if d > uint64(min(t.Fudge, MaxFudge)) {
		x.signer = &k // BADTIME replies are signed (RFC 8945 5.2.3)
		x.failure(ctx, dns.RcodeNotAuth, badTime, "time outside the fudge")
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

// failure answers a message that is unsigned or failed verification
// (tsigErr: its TSIG error, 0 for none) and spends a failure of its
// source network and, while that has room, of its key name. It is audited
// only while both had room, so a flood writes a bounded number of audit
// rows; the answer is the same either way, except that an unsigned UPDATE
// past its source's limit counts as "ratelimited".
func (x *exchange) failure(ctx context.Context, rcode int, tsigErr uint16, reason string) {
	h := x.h
	x.resp.Rcode, x.tsigErr = rcode, tsigErr
	if tsigErr != 0 {
		x.result = map[uint16]string{badKey: "badkey", badSig: "badsig", badTime: "badtime"}[tsigErr]
	}
	audit := h.failSrc.Spend(ratelimit.SourceKey(x.r.Source))
	if !audit && x.keyName == "" {
		x.result = "ratelimited"
	}
	if audit && x.keyName != "" {
		audit = h.failKey.Spend(x.keyName)
	}
	if !audit {
		h.log.DebugContext(ctx, "dns update refused; not audited (failure limit)", "tsig_key", x.keyName,
			"source", x.r.Source.String(), "rcode", dns.RcodeToString[rcode], "reason", reason)
		return
	}
	if tsigErr != 0 {
		reason = "tsig: " + reason
	}
	x.fail(ctx, rcode, reason)
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
