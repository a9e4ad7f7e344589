package dnsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
	"github.com/acmehub/acmehub/internal/zone"
)

// Defaults for the zero fields of Config.
const (
	DefaultTTL            = time.Hour
	DefaultRefresh        = time.Hour
	DefaultRetry          = 10 * time.Minute
	DefaultExpire         = 7 * 24 * time.Hour
	DefaultMinimum        = 60 * time.Second // PROTOCOLS: small, so early lookups are not cached long
	DefaultQueryTimeout   = 2 * time.Second
	DefaultTCPIdleTimeout = 10 * time.Second
)

// ednsSize is the UDP payload size we advertise and the most we send over
// UDP (DNS flag day 2020), so answers never rely on IP fragmentation.
const ednsSize = 1232

// udpReadSize is the receive buffer for one UDP query: well above 1232 so
// padded and EDNS-sized queries (and later UPDATEs) are read whole.
const udpReadSize = 4096

// maxUDPSockets bounds Config.UDPSockets: each socket holds a goroutine
// and about 150 KiB of buffers (udpBatch packets of udpReadSize, and replies).
const maxUDPSockets = 256

// NS is one nameserver of the hub zone.
type NS struct {
	// Name is the nameserver's host name (fqdn; case and trailing dot optional).
	Name string
	// Addrs are its addresses, published as glue (A/AAAA) only when Name is
	// inside the hub zone, where they are required; ignored otherwise.
	Addrs []netip.Addr
}

// Config is the DNS server's part of the configuration. Zero fields take
// the defaults above.
type Config struct {
	// Origin is the hub zone, e.g. "acme.example.net." (required).
	Origin string
	// Nameservers are published as the apex NS RRset, in this order
	// (required, at least one). The first is the SOA MNAME.
	Nameservers []NS
	// Mbox is the SOA RNAME, the zone contact: "hostmaster.example.net." or
	// "hostmaster@example.net". Default: hostmaster.<Origin>.
	Mbox string
	// TTL of the SOA, NS and glue records. Default 1 h.
	TTL time.Duration
	// Refresh, Retry and Expire are the SOA timers for secondaries.
	// Defaults 1 h, 10 min, 7 days.
	Refresh, Retry, Expire time.Duration
	// Minimum is the SOA MINIMUM, the TTL of negative answers (RFC 2308):
	// keep it small so a lookup made before a value is set is not cached
	// for long. Default 60 s.
	Minimum time.Duration
	// QueryTimeout bounds how long a TCP connection may take to send its
	// first query and how long writing an answer may take. Default 2 s.
	QueryTimeout time.Duration
	// TCPIdleTimeout closes a TCP connection idle this long between
	// queries (RFC 7766). Default 10 s.
	TCPIdleTimeout time.Duration
	// UDPSockets is how many UDP sockets serve each listen address with a
	// specific IP, bound together with SO_REUSEPORT and each read in
	// batches by one goroutine. Linux only: elsewhere, and for wildcard
	// addresses (":53", "[::]:53"), one socket is served by miekg/dns.
	// Default (0): GOMAXPROCS at Listen. At most maxUDPSockets.
	UDPSockets int
	// Observer, if set, is called once per reply (metrics). qtype is 0 for
	// messages rejected before their question was parsed. It must be fast
	// and safe for concurrent use.
	Observer func(qtype uint16, rcode int, elapsed time.Duration)
	// Logger receives per-query lines at Debug and problems above. Nil discards.
	Logger *slog.Logger
	// Updates, if set, answers RFC 2136 UPDATE messages (TSIG-signed; for
	// the hub zone alone unless Gateway). Nil: every UPDATE is REFUSED.
	Updates *dnsupdate.Handler
	// Gateway makes this server the RFC 2136 gateway listener (Updates
	// required): UPDATE for any zone the keys cover and the SOA answers of
	// zone discovery, every other message REFUSED. It never answers from
	// the hub zone, so it reveals nothing the public listener keeps back.
	Gateway bool
}

// validate reports every problem at once and returns the config with
// defaults applied and names canonical.
func (c Config) validate() (Config, error) {
	var errs []error
	origin, err := zone.CanonicalOrigin(c.Origin)
	if err == nil {
		// Only plain labels, like the names the zone stores, so lookup keys
		// never need escapes.
		_, err = canonicalHost(origin)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("origin: %w", err))
		origin = ""
	}
	c.Origin = origin

	if len(c.Nameservers) == 0 {
		errs = append(errs, errors.New("nameservers: at least one is required"))
	}
	nss := make([]NS, 0, len(c.Nameservers))
	seen := map[string]bool{}
	for i, ns := range c.Nameservers {
		name, err := canonicalHost(ns.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("nameserver %d: %w", i+1, err))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("nameserver %s: listed twice", name))
		}
		seen[name] = true
		if origin != "" && dns.IsSubDomain(origin, name) {
			if len(ns.Addrs) == 0 {
				errs = append(errs, fmt.Errorf("nameserver %s: inside the zone, so it needs addresses (glue)", name))
			}
			for _, a := range ns.Addrs {
				if !a.IsValid() {
					errs = append(errs, fmt.Errorf("nameserver %s: invalid address", name))
				}
			}
		}
		nss = append(nss, NS{Name: name, Addrs: ns.Addrs})
	}
	c.Nameservers = nss

	if c.Mbox == "" && origin != "" {
		c.Mbox = "hostmaster." + origin
	}
	mbox, err := canonicalMbox(c.Mbox)
	if err != nil {
		errs = append(errs, fmt.Errorf("mbox: %w", err))
	}
	c.Mbox = mbox

	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"ttl", &c.TTL, DefaultTTL},
		{"refresh", &c.Refresh, DefaultRefresh},
		{"retry", &c.Retry, DefaultRetry},
		{"expire", &c.Expire, DefaultExpire},
		{"minimum", &c.Minimum, DefaultMinimum},
	}
	for _, d := range durations {
		if *d.d == 0 {
			*d.d = d.def
		}
		if *d.d < time.Second || *d.d > math.MaxInt32*time.Second {
			errs = append(errs, fmt.Errorf("%s: %v is not between 1s and 2^31-1 s", d.name, *d.d))
		}
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.QueryTimeout < 0 {
		errs = append(errs, fmt.Errorf("query timeout: %v is negative", c.QueryTimeout))
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.TCPIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("tcp idle timeout: %v is negative", c.TCPIdleTimeout))
	}
	if c.UDPSockets < 0 || c.UDPSockets > maxUDPSockets {
		errs = append(errs, fmt.Errorf("udp sockets: %d is not between 0 (one per CPU) and %d", c.UDPSockets, maxUDPSockets))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Gateway && c.Updates == nil {
		errs = append(errs, errors.New("gateway: needs an UPDATE handler"))
	}
	if c.Updates != nil && origin != "" && c.Updates.Zone() != origin {
		errs = append(errs, fmt.Errorf("updates: handler zone %s is not the origin %s", c.Updates.Zone(), origin))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("dnsserver: invalid config: %w", errors.Join(errs...))
	}
	return c, nil
}

// canonicalHost returns a host name as a lower-case fqdn of letters,
// digits, '-' and '_' (so its presentation form is also its lookup key).
func canonicalHost(name string) (string, error) {
	n := strings.ToLower(dns.Fqdn(strings.TrimSpace(name)))
	if n == "." {
		return "", fmt.Errorf("name %q is empty", name)
	}
	if _, ok := dns.IsDomainName(n); !ok || len(n) > 254 {
		return "", fmt.Errorf("invalid name %q", name)
	}
	for _, label := range dns.SplitDomainName(n) {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("invalid name %q", name)
		}
		for i := 0; i < len(label); i++ {
			if !plainByte(label[i]) {
				return "", fmt.Errorf("name %q has a character other than letters, digits, '-' and '_'", name)
			}
		}
	}
	return n, nil
}

// canonicalMbox accepts the SOA RNAME as a domain name or as an e-mail
// address (whose local part's dots are escaped, RFC 1035 8).
func canonicalMbox(mbox string) (string, error) {
	m := strings.TrimSpace(mbox)
	if local, domain, ok := strings.Cut(m, "@"); ok {
		if local == "" || domain == "" {
			return "", fmt.Errorf("invalid address %q", mbox)
		}
		m = strings.ReplaceAll(local, ".", `\.`) + "." + domain
	}
	m = strings.ToLower(dns.Fqdn(m))
	if _, ok := dns.IsDomainName(m); !ok || m == "." {
		return "", fmt.Errorf("invalid name %q", mbox)
	}
	if _, err := dns.PackDomainName(m, make([]byte, 256), 0, nil, false); err != nil {
		return "", fmt.Errorf("invalid name %q: %w", mbox, err)
	}
	return m, nil
}

// seconds converts a duration validated to be within 1 s and 2^31-1 s.
func seconds(d time.Duration) uint32 {
	return uint32(d / time.Second) //nolint:gosec // validated to fit
}
