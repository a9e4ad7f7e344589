// Package rfc2136 is a value-level upstream driver that writes single TXT
// values with DNS UPDATE (RFC 2136), signed with TSIG (RFC 8945) when a key
// is configured. BIND, Knot, PowerDNS and many appliances accept it.
//
// Unlike lego's rfc2136 provider, which deletes the whole TXT RRset and
// inserts its value, Add sends one "add to an RRset" update and Remove one
// "delete an RR from an RRset" update (RFC 2136 §2.5.1, §2.5.4), so other
// values at the name (a wildcard's, another client's) stay.
package rfc2136

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/upstream"
)

// The credential fields, named as lego's rfc2136 provider names them.
const (
	fieldNameserver = "DNSUPDATE_NAMESERVER"
	fieldKey        = "DNSUPDATE_TSIG_KEY"
	fieldSecret     = "DNSUPDATE_TSIG_SECRET" //nolint:gosec // a field name, not a secret
	fieldAlgorithm  = "DNSUPDATE_TSIG_ALGORITHM"
	fieldZones      = "DNSUPDATE_ZONES"
	fieldFile       = "DNSUPDATE_TSIG_FILE"
)

// algorithms maps the accepted TSIG algorithm names, without the trailing
// dot, to miekg's names.
var algorithms = map[string]string{
	"hmac-md5":    dns.HmacMD5,
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// UDP is resent udpTries times, each try waiting at most the driver's
// timeout/4 (capped at maxUDPWait), so one lost datagram costs a short
// wait rather than the whole timeout; TCP then gets what is left.
const (
	udpTries   = 3
	maxUDPWait = 3 * time.Second
)

// Driver sends DNS UPDATE messages to one nameserver. It is safe for
// concurrent use: it holds only its configuration.
type Driver struct {
	server    string   // host:port
	keyName   string   // TSIG key name, fqdn; "" means unsigned
	secret    string   // base64 TSIG secret
	algorithm string   // miekg's algorithm name
	zones     []string // fqdns from DNSUPDATE_ZONES
	timeout   time.Duration
}

var _ upstream.Driver = (*Driver)(nil)

// New builds a driver from a credential's fields. A missing or invalid
// field gives an error wrapping upstream.ErrConfig that names the field.
func New(fields map[string]string, opts upstream.Options) (upstream.Driver, error) {
	d := &Driver{timeout: opts.Timeout}
	if d.timeout <= 0 {
		d.timeout = 30 * time.Second
	}
	get := func(k string) string { return strings.TrimSpace(fields[k]) }

	server, err := parseNameserver(get(fieldNameserver))
	if err != nil {
		return nil, fmt.Errorf("%w: %s %w", upstream.ErrConfig, fieldNameserver, err)
	}
	d.server = server

	// A key file is read by lego from the worker's file system; a stored
	// credential carries the key itself.
	if get(fieldFile) != "" {
		return nil, fmt.Errorf("%w: %s is not supported here; set %s and %s instead",
			upstream.ErrConfig, fieldFile, fieldKey, fieldSecret)
	}
	key, secret := get(fieldKey), get(fieldSecret)
	switch {
	case key == "" && secret == "":
		// Unsigned updates: some servers allow them by source address.
	case key == "":
		return nil, fmt.Errorf("%w: %s is missing (%s is set)", upstream.ErrConfig, fieldKey, fieldSecret)
	case secret == "":
		return nil, fmt.Errorf("%w: %s is missing (%s is set)", upstream.ErrConfig, fieldSecret, fieldKey)
	default:
		d.keyName = strings.ToLower(dns.Fqdn(key))
		if _, ok := dns.IsDomainName(d.keyName); !ok {
			return nil, fmt.Errorf("%w: %s is not a valid key name", upstream.ErrConfig, fieldKey)
		}
		if b, err := base64.StdEncoding.DecodeString(secret); err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%w: %s is not valid base64", upstream.ErrConfig, fieldSecret)
		}
		d.secret = secret
	}

	alg := strings.ToLower(strings.TrimSuffix(get(fieldAlgorithm), "."))
	if alg == "" {
		alg = "hmac-sha256"
	}
	d.algorithm = algorithms[alg]
	if d.algorithm == "" {
		return nil, fmt.Errorf("%w: %s must be one of hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512",
			upstream.ErrConfig, fieldAlgorithm)
	}

	for z := range strings.SplitSeq(get(fieldZones), ",") {
		z = strings.ToLower(dns.Fqdn(strings.TrimSpace(z)))
		if z == "." {
			continue // empty entry
		}
		if _, ok := dns.IsDomainName(z); !ok {
			return nil, fmt.Errorf("%w: %s holds an invalid zone name", upstream.ErrConfig, fieldZones)
		}
		d.zones = append(d.zones, z)
	}
	return d, nil
}

// parseNameserver accepts "host" or "host:port" (IPv6 literals bare or in
// brackets) and returns host:port, with port 53 by default.
func parseNameserver(s string) (string, error) {
	if s == "" {
		return "", errors.New("is missing")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "53"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", errors.New("has an invalid port")
	}
	if host == "" || strings.ContainsAny(host, " /[]") {
		return "", errors.New("has an invalid host")
	}
	if net.ParseIP(host) == nil {
		if _, ok := dns.IsDomainName(host); !ok {
			return "", errors.New("has an invalid host")
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Add publishes value at fqdn with one UPDATE that adds a single TXT RR;
// the server ignores a duplicate RR, so adding a present value succeeds.
func (d *Driver) Add(ctx context.Context, fqdn, value string, ttl uint32) error {
	return d.update(ctx, fqdn, value, ttl, true)
}

// Remove deletes exactly that TXT RR with one UPDATE; deleting an RR that
// is not there is not an error in RFC 2136.
func (d *Driver) Remove(ctx context.Context, fqdn, value string) error {
	return d.update(ctx, fqdn, value, 0, false)
}

func (d *Driver) update(ctx context.Context, fqdn, value string, ttl uint32, add bool) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	fqdn = strings.ToLower(dns.Fqdn(fqdn))
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return fmt.Errorf("rfc2136: invalid name %q", fqdn)
	}
	zone, err := d.zone(ctx, fqdn)
	if err != nil {
		return err
	}
	rr := &dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
		Txt: txtStrings(value),
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		m.Remove([]dns.RR{rr}) // class NONE, TTL 0: delete this RR only
	}
	op := "add"
	if !add {
		op = "remove"
	}
	if err := d.exchange(ctx, m); err != nil {
		return fmt.Errorf("rfc2136: %s TXT at %s (zone %s) via %s: %w", op, fqdn, zone, d.server, err)
	}
	return nil
}

// txtStrings splits value into character-strings of at most 255 bytes and
// escapes backslashes, which miekg's packer reads as escapes.
func txtStrings(value string) []string {
	var out []string
	for len(value) > 255 {
		out = append(out, value[:255])
		value = value[255:]
	}
	out = append(out, value)
	for i, s := range out {
		out[i] = strings.ReplaceAll(s, `\`, `\\`)
	}
	return out
}

// zone is the longest DNSUPDATE_ZONES entry containing fqdn or, without
// one, the zone whose SOA the nameserver serves at fqdn or the nearest
// ancestor.
func (d *Driver) zone(ctx context.Context, fqdn string) (string, error) {
	best := ""
	for _, z := range d.zones {
		if dns.IsSubDomain(z, fqdn) && len(z) > len(best) {
			best = z
		}
	}
	if best != "" {
		return best, nil
	}
	for name := fqdn; ; {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeSOA)
		m.RecursionDesired = false
		r, err := d.roundTrip(ctx, m, false)
		if err != nil {
			return "", fmt.Errorf("rfc2136: find the zone of %s via %s: %w", fqdn, d.server, err)
		}
		if r.Rcode == dns.RcodeSuccess {
			for _, a := range r.Answer {
				if soa, ok := a.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, name) {
					return strings.ToLower(name), nil
				}
			}
		}
		off, end := dns.NextLabel(name, 0)
		if end {
			return "", fmt.Errorf("rfc2136: %s serves no zone containing %s; set %s", d.server, fqdn, fieldZones)
		}
		name = name[off:]
	}
}

// exchange sends m (see roundTrip) and checks the reply's rcode and TSIG.
func (d *Driver) exchange(ctx context.Context, m *dns.Msg) error {
	r, err := d.roundTrip(ctx, m, d.keyName != "")
	// A reply with an error rcode is often unsigned (BADSIG, BADKEY), so
	// miekg's verification fails; the rcode is the better explanation.
	if r != nil && r.Rcode != dns.RcodeSuccess {
		return d.rcodeError(r)
	}
	if err != nil {
		if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrTime) {
			return fmt.Errorf("the reply's TSIG signature does not verify (%w): check %s and %s", err, fieldKey, fieldSecret)
		}
		return err
	}
	if d.keyName != "" && r.IsTsig() == nil {
		return errors.New("the reply is not TSIG-signed")
	}
	return nil
}

// roundTrip sends m over UDP, resending after a short wait when no reply
// comes, and over TCP when the reply is truncated or every UDP try timed
// out. Resending an UPDATE is safe: adding a present RR or deleting an
// absent one changes nothing.
func (d *Driver) roundTrip(ctx context.Context, m *dns.Msg, sign bool) (*dns.Msg, error) {
	wait := min(d.timeout/4, maxUDPWait)
	for range udpTries {
		tctx, cancel := context.WithTimeout(ctx, wait)
		r, err := d.send(tctx, m, "udp", sign)
		cancel()
		switch {
		case err == nil && r.Truncated:
			return d.send(ctx, m, "tcp", sign)
		case err == nil || r != nil || ctx.Err() != nil || !timedOut(err):
			return r, err // an answer, a verification error, or a hard failure
		}
	}
	return d.send(ctx, m, "tcp", sign)
}

// timedOut reports whether err is a read that got no reply in time.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// send exchanges a copy of m, signed when sign is set (signing changes the
// message, so each attempt starts from m and gets a fresh TSIG time).
func (d *Driver) send(ctx context.Context, m *dns.Msg, network string, sign bool) (*dns.Msg, error) {
	m = m.Copy()
	// Timeout replaces miekg's 2s default read deadline, so ctx's deadline
	// (a UDP try's, or what is left for TCP) is the one that applies.
	c := &dns.Client{Net: network, Timeout: d.timeout}
	if sign {
		c.TsigSecret = map[string]string{d.keyName: d.secret}
		m.SetTsig(d.keyName, d.algorithm, 300, time.Now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, d.server)
	return r, err
}

// rcodeError explains an error reply; it never includes the secret.
// NOTAUTH means a bad key only when the reply's TSIG says so (RFC 8945
// §5.2): otherwise the server does not serve the zone or the key is not
// allowed to update it.
func (d *Driver) rcodeError(r *dns.Msg) error {
	tsigErr := uint16(0)
	if t := r.IsTsig(); t != nil {
		tsigErr = t.Error
	}
	switch {
	case tsigErr == dns.RcodeBadTime:
		return errors.New("the nameserver rejected the TSIG time (NOTAUTH/BADTIME): check the clocks")
	case tsigErr == dns.RcodeBadSig || tsigErr == dns.RcodeBadKey:
		return fmt.Errorf("the TSIG key or secret is wrong (%s/%s): check %s, %s and %s",
			rcodeName(r.Rcode), rcodeName(int(tsigErr)), fieldKey, fieldSecret, fieldAlgorithm)
	case r.Rcode == dns.RcodeNotAuth && d.keyName == "":
		return errors.New("the nameserver answered NOTAUTH: it is not authoritative for the zone, or it requires a TSIG key")
	case r.Rcode == dns.RcodeNotAuth:
		return fmt.Errorf("the nameserver answered NOTAUTH: it is not authoritative for the zone (check %s), or this key may not update it", fieldZones)
	case r.Rcode == dns.RcodeRefused:
		return errors.New("the nameserver refused the update (REFUSED): updates may be disabled for the zone or not allowed for this key")
	case r.Rcode == dns.RcodeNotZone:
		return fmt.Errorf("the name is not in the zone (NOTZONE): check %s", fieldZones)
	default:
		return fmt.Errorf("the nameserver answered %s", rcodeName(r.Rcode))
	}
}

func rcodeName(code int) string {
	if s, ok := dns.RcodeToString[code]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(code)
}
