package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP size we advertise: the DNS flag day 2020 value,
// large enough for every answer we ask for, small enough not to fragment.
const ednsSize = 1232

// newQuery builds a query for name and qtype; rd asks for recursion.
func newQuery(name string, qtype uint16, rd bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = rd
	m.SetEdns0(ednsSize, false)
	return m
}

// exchange sends q to addr over UDP, then over TCP when the reply is
// truncated. Each attempt is bounded by the client's timeout and by ctx;
// the reply is checked to be for q's question.
func (c *Client) exchange(ctx context.Context, addr string, q *dns.Msg) (*dns.Msg, error) {
	r, err := c.exchangeNet(ctx, "udp", addr, q)
	if err == nil && r.Truncated {
		r, err = c.exchangeNet(ctx, "tcp", addr, q)
	}
	if err != nil {
		return nil, err
	}
	want := q.Question[0]
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, want.Name) ||
		r.Question[0].Qtype != want.Qtype || r.Question[0].Qclass != want.Qclass {
		return nil, errors.New("the reply is for another question")
	}
	return r, nil
}

func (c *Client) exchangeNet(ctx context.Context, network, addr string, q *dns.Msg) (*dns.Msg, error) {
	if c.limited {
		release, err := c.lim.acquire(ctx)
		if err != nil {
			return nil, c.queryError(ctx, err)
		}
		defer release()
	}
	qctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	raw, err := c.dial(qctx, network, addr)
	if err != nil {
		if unreachableNet(err) {
			return nil, &skipError{err}
		}
		return nil, c.queryError(ctx, err)
	}
	conn := &dns.Conn{Conn: raw}
	defer func() { _ = conn.Close() }()
	// miekg/dns only applies ctx's deadline to the socket; a cancelled ctx
	// must end the read too, so a caller that gives up is not kept waiting.
	stop := context.AfterFunc(qctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	dc := &dns.Client{Net: network, Timeout: c.timeout}
	r, _, err := dc.ExchangeWithConnContext(qctx, q, conn)
	if err != nil {
		return nil, c.queryError(ctx, err)
	}
	return r, nil
}

// skipError is a query not sent because this host cannot reach the
// address at all: the socket could not even be opened.
type skipError struct{ err error }

func (e *skipError) Error() string {
	return "skipped: this host cannot reach the address (" + unreachableReason(e.err) + ")"
}

func (e *skipError) Unwrap() error { return e.err }

// unreachableNet reports whether a dial failed because the host has no
// way to the address (no route, the address family unsupported or not
// configured): on an IPv4-only host every IPv6 address fails so. Only
// dial errors count: a host unreachable reported later, for a packet
// sent, is the nameserver's problem.
func unreachableNet(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL)
}

func unreachableReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.EAFNOSUPPORT):
		return "address family not supported"
	}
	return "no local address of its family"
}

// isSkip reports whether err is a skipError.
func isSkip(err error) bool {
	var se *skipError
	return errors.As(err, &se)
}

// queryError turns a failed exchange into a short reason for the
// evidence: a timeout or refused port reads as such, not as a socket
// error with both addresses in it.
func (c *Client) queryError(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case ended(ctx):
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return fmt.Errorf("check ended before an answer: %w", cause)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer within %v", c.timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	}
	return err
}

// ended reports whether ctx is done or past its deadline: a socket
// deadline taken from ctx can pass before ctx's own timer marks it done.
func ended(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(d)
}

// rcodeError is a reply whose rcode gives no answer (SERVFAIL, REFUSED...).
type rcodeError struct{ rcode int }

func (e *rcodeError) Error() string { return "answered " + dns.RcodeToString[e.rcode] }

// answered reports whether r's rcode is an answer: NOERROR or NXDOMAIN.
func answered(r *dns.Msg) error {
	if r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError {
		return nil
	}
	return &rcodeError{r.Rcode}
}

// askRecursive asks the recursive resolvers in order until one answers
// (NOERROR or NXDOMAIN), and returns its reply and address, or the last
// failure: a noReplyError when none replied at all.
func (c *Client) askRecursive(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	var err error
	replied := false
	for _, addr := range c.recursive {
		var r *dns.Msg
		r, err = c.exchange(ctx, addr, newQuery(name, qtype, true))
		if err == nil {
			replied = true
			err = answered(r)
		}
		if err == nil {
			return r, addr, nil
		}
		err = fmt.Errorf("recursive resolver %s: %w", addr, err)
		if ctx.Err() != nil {
			break
		}
	}
	if !replied {
		err = &noReplyError{err}
	}
	return nil, "", err
}

// noReplyError: no recursive resolver replied at all (a failure of the
// hub's side, not an answer about the name asked).
type noReplyError struct{ err error }

func (e *noReplyError) Error() string { return e.err.Error() }
func (e *noReplyError) Unwrap() error { return e.err }

// resolve finds the addresses of a nameserver name through the recursive
// resolver, asking A and AAAA at once.
func (c *Client) resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		addrs []netip.Addr
		errs  []error
	)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() {
			r, _, err := c.askRecursive(ctx, name, qtype)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			addrs = append(addrs, addrsOf(r.Answer)...)
		})
	}
	wg.Wait()
	if len(addrs) > 0 {
		return addrs, nil
	}
	if len(errs) == 2 {
		return nil, fmt.Errorf("resolve %s: %w", name, errs[0])
	}
	return nil, fmt.Errorf("resolve %s: no A or AAAA record", name)
}

// addrsOf returns the addresses of the A and AAAA records in rrs,
// whatever their owner (a resolver may have followed a CNAME).
func addrsOf(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// nsTarget is one address to ask, or why it must not be asked.
type nsTarget struct {
	hp      string // host:port
	refused string // non-empty: not asked, for this reason
}

// targets returns the host:port list to ask for nameserver name: its
// Config.Addrs entry if the name has one; otherwise each of addrs (or,
// without any, of the addresses the recursive resolver gives for name),
// mapped through Config.Addrs or on port 53. With guard, past
// maxAddrsPerNS one entry without an address stands for the rest.
//
// With guard set (a domain owner's nameservers) and Config.AllowPrivate
// off, an address that Config.Addrs does not map and that is not public
// (see privateReason) comes back refused.
func (c *Client) targets(ctx context.Context, name string, addrs []netip.Addr, guard bool) ([]nsTarget, error) {
	if hp, ok := c.addrs[fqdn(name)]; ok {
		return []nsTarget{{hp: hp}}, nil
	}
	if len(addrs) == 0 {
		var err error
		if addrs, err = c.resolve(ctx, name); err != nil {
			return nil, err
		}
	}
	var out []nsTarget
	seen := map[string]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		key := a.String()
		t := nsTarget{}
		hp, ok := c.addrs[key]
		if !ok {
			hp = net.JoinHostPort(key, "53")
			if guard && !c.cfg.AllowPrivate {
				t.refused = privateReason(a)
			}
		}
		t.hp = hp
		if seen[hp] {
			continue
		}
		seen[hp] = true
		if guard && len(out) == maxAddrsPerNS {
			// One entry stands for the rest.
			return append(out, nsTarget{refused: fmt.Sprintf("not asked: more than %d addresses", maxAddrsPerNS)}), nil
		}
		out = append(out, t)
	}
	return out, nil
}

// specialRanges are the address ranges a domain's nameserver must not
// be at (RFC 6890 and the IANA special-purpose registries): private,
// shared, loopback, link-local, documentation, benchmarking, multicast,
// reserved, and IPv6 ranges that translate to IPv4 (NAT64, 6to4) and so
// could reach the same places. An IPv4-mapped IPv6 address is judged by
// its IPv4 address.
var specialRanges = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // holds 255.255.255.255, the broadcast address
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// privateReason says why a nameserver address is not asked by delegation
// checks, or "" for a public address.
func privateReason(a netip.Addr) string {
	a = a.Unmap() // ::ffff:0:0/96: judged by the IPv4 address inside
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return "not asked: " + a.String() + " is a " + r.kind + " address (the check-private-addresses setting allows it)"
		}
	}
	return ""
}

// owned returns the records in rrs owned by name (case-insensitive).
func owned(rrs []dns.RR, name string) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if strings.EqualFold(rr.Header().Name, name) {
			out = append(out, rr)
		}
	}
	return out
}

// parent returns the name one label up from fqdn name; "." stays ".".
func parent(name string) string {
	if name == "." {
		return "."
	}
	i, _ := dns.NextLabel(name, 0)
	if i >= len(name) {
		return "."
	}
	return name[i:]
}
