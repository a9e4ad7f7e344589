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
	qctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	dc := &dns.Client{Net: network, Timeout: c.timeout}
	conn, err := dc.DialContext(qctx, addr)
	if err != nil {
		return nil, c.queryError(ctx, err)
	}
	defer func() { _ = conn.Close() }()
	// miekg/dns only applies ctx's deadline to the socket; a cancelled ctx
	// must end the read too, so a caller that gives up is not kept waiting.
	stop := context.AfterFunc(qctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	r, _, err := dc.ExchangeWithConnContext(qctx, q, conn)
	if err != nil {
		return nil, c.queryError(ctx, err)
	}
	return r, nil
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
// failure.
func (c *Client) askRecursive(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	var err error
	for _, addr := range c.recursive {
		var r *dns.Msg
		r, err = c.exchange(ctx, addr, newQuery(name, qtype, true))
		if err == nil {
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
	return nil, "", err
}

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

// targets returns the host:port list to ask for nameserver name: its
// Config.Addrs entry if the name has one; otherwise each of addrs (or,
// without any, of the addresses the recursive resolver gives for name),
// mapped through Config.Addrs or on port 53.
func (c *Client) targets(ctx context.Context, name string, addrs []netip.Addr) ([]string, error) {
	ts, err := c.targetList(ctx, name, addrs, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.hp
	}
	return out, nil
}

// nsTarget is one address to ask, or why it must not be asked.
type nsTarget struct {
	hp      string // host:port
	refused string // non-empty: not asked, for this reason
}

// targetList is targets with the private-address guard: with guard set
// and Config.AllowPrivate off, an address that Config.Addrs does not map
// and that is not public (see privateReason) comes back refused.
func (c *Client) targetList(ctx context.Context, name string, addrs []netip.Addr, guard bool) ([]nsTarget, error) {
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
		if !seen[hp] {
			seen[hp] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// privateReason says why a nameserver address is not asked by delegation
// checks, or "" for a public address.
func privateReason(a netip.Addr) string {
	kind := ""
	switch {
	case a.IsLoopback():
		kind = "loopback"
	case a.IsPrivate():
		kind = "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		kind = "link-local"
	case a.IsUnspecified():
		kind = "unspecified"
	case a.IsMulticast():
		kind = "multicast"
	default:
		return ""
	}
	return "not asked: " + a.String() + " is a " + kind + " address (the check-private-addresses setting allows it)"
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
