// Package dnsupdate answers RFC 2136 dynamic UPDATE messages signed with
// TSIG (RFC 8945): the gateway through which certbot-dns-rfc2136, lego's
// rfc2136 provider, cert-manager and nsupdate publish ACME challenge TXT
// values. It also answers the SOA queries those clients use to find the
// zone, on the gateway listener. It knows nothing of the hub: the keys,
// the scope of each key and the values come from a Backend.
//
// The DNS server hands each message over with Handler.Serve; the reply is
// built here with miekg/dns (an UPDATE may allocate, unlike the query path).
package dnsupdate

import (
	"context"
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // RFC 8945 hmac-md5: certbot's and cert-manager's default
	"crypto/sha1" //nolint:gosec // RFC 8945 hmac-sha1: lego's default
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/ratelimit"
)

// Key is a TSIG key as the backend knows it.
type Key struct {
	Name      string // lower-case fqdn
	Algorithm string // miekg constant, e.g. dns.HmacSHA256 ("hmac-sha256.")
	Secret    []byte // raw HMAC key; never logged
	Owner     any    // the backend's identity for this key (a hub.Grant); opaque here
}

// Key is a dns.TsigProvider for messages signed with this key alone
// (clients in tests use it too). Unlike miekg/dns's own provider it does
// hmac-md5, which certbot and cert-manager default to.
var _ dns.TsigProvider = Key{}

// Generate returns the MAC of msg for the TSIG record t: dns.ErrSecret if
// t names another key, dns.ErrKeyAlg if another algorithm.
func (k Key) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	if !strings.EqualFold(dns.CanonicalName(t.Hdr.Name), k.Name) {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		return nil, dns.ErrKeyAlg
	}
	h := newHMAC(k.Algorithm, k.Secret)
	if h == nil {
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify checks the MAC of t over msg in constant time.
func (k Key) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.Generate(msg, t)
	if err != nil {
		return err
	}
	mac, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, mac) {
		return dns.ErrSig
	}
	return nil
}

// GoString keeps the secret out of %#v output.
func (k Key) GoString() string {
	return fmt.Sprintf("dnsupdate.Key{Name:%q, Algorithm:%q, Secret:REDACTED}", k.Name, k.Algorithm)
}

// String keeps the secret out of %v and %+v output.
func (k Key) String() string {
	return fmt.Sprintf("{Name:%s Algorithm:%s Secret:REDACTED}", k.Name, k.Algorithm)
}

// LogValue keeps the secret out of slog output.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", k.Name), slog.String("algorithm", k.Algorithm))
}

// newHMAC returns the HMAC of a TSIG algorithm (miekg's name), or nil.
func newHMAC(alg string, secret []byte) hash.Hash {
	switch alg {
	case dns.HmacMD5:
		return hmac.New(md5.New, secret)
	case dns.HmacSHA1:
		return hmac.New(sha1.New, secret)
	case dns.HmacSHA224:
		return hmac.New(sha256.New224, secret)
	case dns.HmacSHA256:
		return hmac.New(sha256.New, secret)
	case dns.HmacSHA384:
		return hmac.New(sha512.New384, secret)
	case dns.HmacSHA512:
		return hmac.New(sha512.New, secret)
	}
	return nil
}

// Backend is what the UPDATE handler needs (the hub implements it). Its
// methods are called concurrently, with a context bounded by
// Config.Timeout; names are lower-case fqdns.
type Backend interface {
	// Key looks the TSIG key up for a message from src (src invalid: not checked now).
	// An error means BADKEY (unknown, revoked, expired, src outside the key's
	// allow-list) unless it implements interface{ Rcode() int }: then that
	// rcode is answered, unsigned (SERVFAIL: the backend cannot tell now).
	// It is called for every signed message, before any failure limit, so
	// it must be cheap for unknown names too.
	Key(ctx context.Context, name string, src netip.Addr) (Key, error)
	// Allowed reports whether key (nil: an unsigned query) may write TXT values at name
	// ("_acme-challenge.<domain>." or a hub-zone name a CNAME points to).
	Allowed(ctx context.Context, key *Key, name string) bool
	// Values are the TXT values published at name as key may see them.
	Values(ctx context.Context, key Key, name string) ([]string, error)
	// Add and Remove change one TXT value at name; errors implementing
	// interface{ Rcode() int } choose the rcode (REFUSED, ...); others are SERVFAIL.
	// Adding a value already there and removing one that is not are no-ops (RFC 2136 3.4.2).
	Add(ctx context.Context, key Key, name, value string, src netip.Addr) error
	Remove(ctx context.Context, key Key, name, value string, src netip.Addr) error
	// Refused records a refused or failed UPDATE (audit): key nil when unsigned or unknown.
	Refused(ctx context.Context, key *Key, keyName string, src netip.Addr, zone, reason string, rcode int)
}

// Defaults for the zero fields of Config.
const (
	DefaultTimeout = 10 * time.Second
	DefaultFudge   = 300 // seconds, RFC 8945 10
	DefaultSOATTL  = 60 * time.Second
)

// MaxFudge caps the time window a request may ask for in its TSIG Fudge
// (seconds): a client cannot widen the replay window past RFC 8945's
// recommended 300 s.
const MaxFudge = 300

// MaxRecords is the most prerequisite plus update RRs one UPDATE may
// carry; more is REFUSED with nothing applied. Clients send one to four.
const MaxRecords = 32

// Default rate limits (see Limits).
var (
	DefaultFailuresPerSource = ratelimit.Config{Burst: 20, Per: 3 * time.Second}
	DefaultFailuresPerKey    = ratelimit.Config{Burst: 20, Per: 3 * time.Second}
	DefaultUpdatesPerKey     = ratelimit.Config{Burst: 120, Per: 500 * time.Millisecond}
	DefaultQueriesPerSource  = ratelimit.Config{Burst: 60, Per: time.Second}
)

// Limits are the rate limits; a zero Config takes the default above, a
// Burst < 0 turns that limit off.
//
// A message whose TSIG verifies is never refused by a failure limit: the
// failure limits only bound the work and the audit rows failures cause.
// Signed messages are always looked up and verified.
type Limits struct {
	// FailuresPerSource counts unsigned UPDATEs and failed verifications
	// (BADKEY, BADSIG, BADTIME, a malformed TSIG) per source network
	// (ratelimit.SourceKey). Past it an unsigned UPDATE is REFUSED without
	// audit; a failed verification is answered as usual but not audited.
	FailuresPerSource ratelimit.Config
	// FailuresPerKey counts failed verifications per key name; it refuses
	// nothing, past it they are no longer audited.
	FailuresPerKey ratelimit.Config
	// UpdatesPerKey counts update RRs of verified UPDATEs per key (an
	// UPDATE without any counts one); past it REFUSED.
	UpdatesPerKey ratelimit.Config
	// QueriesPerSource counts unsigned zone-discovery queries on the
	// gateway per source network; past it REFUSED.
	QueriesPerSource ratelimit.Config
}

// Config configures a Handler. Zero fields take the defaults above.
type Config struct {
	// Backend looks keys up, scopes and applies changes (required).
	Backend Backend
	// Zone is the hub zone (fqdn, required): the only zone an UPDATE on
	// the public listener may name.
	Zone string
	// MName and RName are the SOA fields of the gateway's zone-discovery
	// answers: the hub's first nameserver and its contact (fqdns, required).
	MName, RName string
	// SOATTL is the TTL of those SOA answers. Default 60 s.
	SOATTL time.Duration
	// Timeout bounds the backend calls for one message. Default 10 s.
	Timeout time.Duration
	// Limits are the rate limits.
	Limits Limits
	// Observer, if set, is called once per UPDATE with its result:
	// "noerror", an rcode name in lower case ("refused", "nxrrset", ...),
	// a TSIG error ("badkey", "badsig", "badtime") or "ratelimited".
	// It must be fast and safe for concurrent use.
	Observer func(result string)
	// Now is the clock (TSIG times). Nil: time.Now.
	Now func() time.Time
	// Logger gets one line per refused UPDATE at Info and backend failures
	// at Warn. Nil discards.
	Logger *slog.Logger
}

// Handler answers UPDATE messages and the gateway's queries. Safe for
// concurrent use.
type Handler struct {
	b            Backend
	zone         string
	mname, rname string
	soaTTL       uint32
	timeout      time.Duration
	observe      func(string)
	now          func() time.Time
	log          *slog.Logger

	failSrc, failKey, updKey, querySrc *ratelimit.Limiter

	// names serialises UPDATEs touching the same names, so one's undo
	// never reverts what another (a client's retry) applied meanwhile.
	names nameLocks
}

// New validates cfg and returns a handler.
func New(cfg Config) (*Handler, error) {
	var errs []error
	if cfg.Backend == nil {
		errs = append(errs, errors.New("backend is required"))
	}
	names := []struct {
		what string
		v    *string
	}{{"zone", &cfg.Zone}, {"mname", &cfg.MName}, {"rname", &cfg.RName}}
	for _, n := range names {
		name := dns.CanonicalName(strings.TrimSpace(*n.v))
		if _, ok := dns.IsDomainName(name); !ok || name == "." {
			errs = append(errs, fmt.Errorf("%s: invalid name %q", n.what, *n.v))
		}
		*n.v = name
	}
	if cfg.SOATTL == 0 {
		cfg.SOATTL = DefaultSOATTL
	}
	if cfg.SOATTL < time.Second || cfg.SOATTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("soa ttl: %v is not between 1s and 24h", cfg.SOATTL))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %v is negative", cfg.Timeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("dnsupdate: invalid config: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	limiter := func(c, def ratelimit.Config) *ratelimit.Limiter {
		if c.Burst == 0 && c.Per == 0 {
			c.Burst, c.Per = def.Burst, def.Per
		}
		return ratelimit.New(c) // Burst < 1 limits nothing
	}
	return &Handler{
		b:        cfg.Backend,
		zone:     cfg.Zone,
		mname:    cfg.MName,
		rname:    cfg.RName,
		soaTTL:   uint32(cfg.SOATTL / time.Second), //nolint:gosec // validated: at most a day
		timeout:  cfg.Timeout,
		observe:  cfg.Observer,
		now:      cfg.Now,
		log:      cfg.Logger,
		failSrc:  limiter(cfg.Limits.FailuresPerSource, DefaultFailuresPerSource),
		failKey:  limiter(cfg.Limits.FailuresPerKey, DefaultFailuresPerKey),
		updKey:   limiter(cfg.Limits.UpdatesPerKey, DefaultUpdatesPerKey),
		querySrc: limiter(cfg.Limits.QueriesPerSource, DefaultQueriesPerSource),
	}, nil
}

// Zone is the hub zone (lower-case fqdn).
func (h *Handler) Zone() string { return h.zone }

// Request is one message for the handler.
type Request struct {
	// Msg is the parsed message (one question: acceptMsg checked it).
	Msg *dns.Msg
	// TSIG is the outcome of the server's TSIG step: what
	// dns.ResponseWriter.TsigStatus returns on a miekg server whose
	// TsigProvider is Deferred, or Inspect(raw message) elsewhere. Nil
	// when the message is unsigned.
	TSIG error
	// Source is the client's address (for key allow-lists, limits, audit).
	Source netip.Addr
	// Gateway is set on the gateway listener: UPDATE for any zone and SOA
	// discovery; on the public listener only the hub zone.
	Gateway bool
	// TCP is set for TCP (no size limit short of 64 KiB).
	TCP bool
	// Serial is the hub zone's serial for SOA answers (0: 1 is used).
	Serial uint32
}

// Serve answers r and returns the wire reply. It never fails: malformed
// messages get FORMERR, backend failures SERVFAIL.
func (h *Handler) Serve(ctx context.Context, r Request) []byte {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	x := &exchange{h: h, r: r, req: r.Msg}
	x.serve(ctx)
	return x.reply()
}
