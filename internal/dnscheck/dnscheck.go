// Package dnscheck asks DNS servers what the world sees: whether a domain's
// _acme-challenge name is delegated to the hub (CheckDelegation), and
// whether each of the hub zone's nameservers already serves a value
// (CheckPropagation). It only queries; it never changes anything.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Config says where to send queries.
type Config struct {
	// Recursive are recursive resolvers as host:port, asked in order until
	// one answers; empty means the system's (/etc/resolv.conf).
	Recursive []string
	// Addrs maps a nameserver, by its name (lower-case fqdn) or by one of
	// its addresses (as netip.Addr.String()), to the host:port to ask
	// instead: tests and odd networks need no port 53.
	Addrs map[string]string
	// Timeout bounds one query; 0 means 2 s. Each server is tried over
	// UDP, then over TCP when the answer is truncated.
	Timeout time.Duration
	// AllowPrivate lets CheckDelegation query a domain's nameserver at a
	// private, loopback, link-local, unspecified or multicast address
	// that Addrs does not map. Off, such an address is not asked (its
	// ServerAnswer.Err says why): a domain owner's NS records must not
	// make the hub send packets into its own network. The hub zone's own
	// nameservers (CheckPropagation) are the operator's and always asked.
	AllowPrivate bool
}

// defaultTimeout bounds one query when Config.Timeout is 0.
const defaultTimeout = 2 * time.Second

// resolvConf is read by New when Config.Recursive is empty.
const resolvConf = "/etc/resolv.conf"

// Bounds on what one delegation check sends: a domain's owner chooses its
// NS records, and so how many targets the hub would otherwise query.
// Nameservers past maxNSNames, addresses past maxAddrsPerNS and targets
// past maxTargets are not asked (the evidence says so).
const (
	maxNSNames    = 13 // as many as a root referral has
	maxAddrsPerNS = 4
	maxTargets    = 32
)

// Bounds on all delegation checks of one Client together, whatever
// their number (on-demand checks of many principals, the background
// checker): at most maxInFlight queries at once, and on average at most
// queryRate queries a second with bursts of queryBurst. They are
// constants, not settings: they only need to keep the hub from being a
// packet cannon, far above what a few thousand domains checked every few
// hours need. Propagation checks ask only the operator's own nameservers
// and are not bound by them.
const (
	maxInFlight = 64
	queryRate   = 200 // per second
	queryBurst  = 50
)

// Client sends the queries. It is safe for concurrent use.
type Client struct {
	cfg       Config
	recursive []string          // host:port, in the order asked
	addrs     map[string]string // Config.Addrs with canonical keys
	timeout   time.Duration

	// dial opens the socket of one query; tests replace it to simulate
	// a network the host cannot reach.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// lim bounds the delegation checks' queries; shared by every copy.
	lim *limiter
	// limited: this copy's queries take lim (CheckDelegation's copy).
	limited bool
}

// Timeout is the bound of one query (Config.Timeout or the default).
func (c *Client) Timeout() time.Duration { return c.timeout }

// New checks cfg and returns a client. With Config.Recursive empty it
// reads /etc/resolv.conf once, here.
func New(cfg Config) (*Client, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("dnscheck: timeout %v is negative", cfg.Timeout)
	}
	c := &Client{cfg: cfg, timeout: cfg.Timeout, addrs: make(map[string]string, len(cfg.Addrs)),
		dial: (&net.Dialer{}).DialContext, lim: newLimiter(maxInFlight, queryRate, queryBurst)}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	recursive := cfg.Recursive
	if len(recursive) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("dnscheck: no recursive resolver set, and %s: %w", resolvConf, err)
		}
		for _, s := range cc.Servers {
			recursive = append(recursive, net.JoinHostPort(s, cc.Port))
		}
		if len(recursive) == 0 {
			return nil, fmt.Errorf("dnscheck: no recursive resolver set, and none in %s", resolvConf)
		}
	}
	for _, r := range recursive {
		if err := checkHostPort(r); err != nil {
			return nil, fmt.Errorf("dnscheck: recursive resolver %q: %w", r, err)
		}
		c.recursive = append(c.recursive, r)
	}
	for k, v := range cfg.Addrs {
		if err := checkHostPort(v); err != nil {
			return nil, fmt.Errorf("dnscheck: address for %q: %q: %w", k, v, err)
		}
		c.addrs[addrKey(k)] = v
	}
	return c, nil
}

// checkHostPort accepts host:port with a numeric port.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("port must be a number from 1 to 65535")
	}
	return nil
}

// addrKey is the Addrs key for a nameserver name or address: an address
// as netip.Addr.String() (IPv4-mapped IPv6 unmapped), a name as a
// lower-case fqdn.
func addrKey(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return fqdn(s)
}

// fqdn lower-cases a name and adds the trailing dot.
func fqdn(s string) string {
	return dns.Fqdn(strings.ToLower(s))
}

// State is the outcome of a delegation check.
type State string

// The states, from the domain owner's point of view.
const (
	StateOK           State = "ok"           // every authoritative server has the CNAME to the expected target
	StateMissing      State = "missing"      // no CNAME at _acme-challenge.<domain>
	StateWrongTarget  State = "wrong_target" // a CNAME to somewhere else
	StateConflict     State = "conflict"     // other records beside or instead of the CNAME
	StateInconsistent State = "inconsistent" // the domain's authoritative servers disagree
	StateUnreachable  State = "unreachable"  // some server(s) gave no answer
	// StateInvalid: the domain or the expected target is not a valid
	// name; nothing was asked.
	StateInvalid State = "invalid"
)

// ServerAnswer is what one server said about the challenge name.
type ServerAnswer struct {
	Server string   // nameserver name (fqdn), or "recursive"
	Addr   string   // host:port asked
	Rcode  string   // "NOERROR", "NXDOMAIN", ...; "" when no answer
	CNAME  string   // the CNAME target at the name (fqdn), "" if none
	Other  []string // other records at the name itself, in presentation format
	// Delegated: the name (or a name between it and the zone) is
	// delegated away by NS records to these nameservers (a referral).
	Delegated []string
	Err       string // why there was no usable answer; "" when there was
	// Skipped: not asked because this host cannot reach the address at
	// all (no route, the address family is not supported: an IPv6
	// address on an IPv4-only host). Not an error of the nameserver.
	Skipped string

	same string // CNAME and Other without TTLs, to compare servers
}

// DelegationResult is one check of a domain's delegation, with the evidence.
type DelegationResult struct {
	Domain   string // base domain, A-labels, no trailing dot
	Name     string // "_acme-challenge.<domain>."
	Expected string // the CNAME target that should be there (fqdn)
	State    State
	// Detail says in one sentence what is wrong and what to do.
	Detail string
	// Zone is the domain's zone apex found by walking up (fqdn), "" if not found.
	Zone        string
	Recursive   ServerAnswer
	Nameservers []ServerAnswer // one per authoritative server address asked
	// CheckedAt is when the check started: of two checks, the one started
	// later saw the later world, whichever finished last.
	CheckedAt time.Time
	// ResolverDown: the recursive resolver gave no reply at all, so the
	// zone could not be found. The result (State unreachable) then says
	// something about the hub, not about the domain.
	ResolverDown bool
}

// Nameserver is one nameserver of the hub zone.
type Nameserver struct {
	Name  string // fqdn
	Addrs []netip.Addr
}

// ServerStatus says whether one hub nameserver address serves a value.
type ServerStatus struct {
	Server string // nameserver name
	Addr   string // host:port asked
	Serial uint32 // the zone's SOA serial it answered; 0 when none
	// Current: its serial is at or past the write's (RFC 1982).
	Current bool
	// Serves: it answers the value at the name.
	Serves bool
	Err    string
	// Skipped: not asked, as this host cannot reach the address (see
	// ServerAnswer.Skipped); it does not count against Everywhere unless
	// every address of its nameserver is skipped (then Err says so).
	Skipped string
}

// PropagationResult is the state of one value on every hub nameserver.
type PropagationResult struct {
	Name, Value string
	// Everywhere: every address asked serves the value, and every
	// nameserver had an address asked.
	Everywhere bool
	Servers    []ServerStatus
	CheckedAt  time.Time
}
