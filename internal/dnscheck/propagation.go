package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// defaultInterval is WaitPropagation's polling interval when none is given.
const defaultInterval = 250 * time.Millisecond

// CheckPropagation asks every address of every nameserver of zone for its
// SOA serial, and those at or past minSerial whether they serve value at
// name (TXT); addresses are mapped through Config.Addrs.
//
// name is the TXT owner in the hub zone. A nameserver mapped by name in
// Config.Addrs is asked at that one host:port; one without addresses is
// resolved through the recursive resolver. All addresses are asked at
// once. An address this host cannot reach at all (an IPv6 address on an
// IPv4-only host) is skipped and does not count; a nameserver with every
// address skipped does (its entries' Err says so). Everywhere is set only
// when every nameserver had an address asked and every address asked
// serves the value.
func (c *Client) CheckPropagation(ctx context.Context, zone string, servers []Nameserver, name, value string, minSerial uint32) PropagationResult {
	zone, name = fqdn(zone), fqdn(name)
	per := make([][]ServerStatus, len(servers))
	var wg sync.WaitGroup
	for i, ns := range servers {
		wg.Go(func() {
			nsName := fqdn(ns.Name)
			ts, err := c.targets(ctx, nsName, ns.Addrs, false)
			if err != nil {
				per[i] = []ServerStatus{{Server: nsName, Err: err.Error()}}
				return
			}
			per[i] = make([]ServerStatus, len(ts))
			var inner sync.WaitGroup
			for j, t := range ts {
				inner.Go(func() { per[i][j] = c.checkServer(ctx, nsName, t.hp, zone, name, value, minSerial) })
			}
			inner.Wait()
			if !slices.ContainsFunc(per[i], func(s ServerStatus) bool { return s.Skipped == "" }) {
				for j := range per[i] {
					per[i][j].Err = "every address of " + nsName + " skipped: this host cannot reach it"
				}
			}
		})
	}
	wg.Wait()
	res := PropagationResult{Name: name, Value: value, Servers: slices.Concat(per...), CheckedAt: time.Now()}
	res.Everywhere = len(res.Servers) > 0 && !slices.ContainsFunc(res.Servers, func(s ServerStatus) bool {
		return !s.Serves && (s.Skipped == "" || s.Err != "")
	})
	return res
}

// checkServer asks one address for the zone's SOA serial and, once it is
// current, for TXT at name. The serial comes first because a server
// that has not yet loaded the write may still serve the value from an
// earlier one (the same value presented twice): only a current server's
// answer says the write is visible there.
func (c *Client) checkServer(ctx context.Context, server, addr, zone, name, value string, minSerial uint32) ServerStatus {
	st := ServerStatus{Server: server, Addr: addr}
	r, err := c.askAuth(ctx, addr, zone, dns.TypeSOA)
	if isSkip(err) {
		st.Skipped = err.Error()
		return st
	}
	if err != nil {
		st.Err = "SOA " + zone + ": " + err.Error()
		return st
	}
	var soa *dns.SOA
	for _, rr := range owned(r.Answer, zone) {
		if s, ok := rr.(*dns.SOA); ok {
			soa = s
			break
		}
	}
	if soa == nil {
		st.Err = fmt.Sprintf("SOA %s: no SOA record in the answer (%s)", zone, dns.RcodeToString[r.Rcode])
		return st
	}
	st.Serial = soa.Serial
	st.Current = !serialLess(soa.Serial, minSerial)
	if !st.Current {
		return st
	}
	r, err = c.askAuth(ctx, addr, name, dns.TypeTXT)
	if err != nil {
		st.Err = "TXT " + name + ": " + err.Error()
		return st
	}
	for _, rr := range owned(r.Answer, name) {
		// The strings of one TXT record make one value: a value longer
		// than 255 bytes is split into several strings.
		if txt, ok := rr.(*dns.TXT); ok && strings.Join(txt.Txt, "") == value {
			st.Serves = true
			break
		}
	}
	return st
}

// askAuth asks addr without recursion and wants an authoritative answer:
// a reply without AA is a referral or a cached answer, from a server
// that is not authoritative for the zone (a lame delegation). The reply
// is returned, when there is one, even with an error.
func (c *Client) askAuth(ctx context.Context, addr, name string, qtype uint16) (*dns.Msg, error) {
	r, err := c.exchange(ctx, addr, newQuery(name, qtype, false))
	if err != nil {
		return nil, err
	}
	if err := answered(r); err != nil {
		return r, err
	}
	if !r.Authoritative {
		return r, errors.New("answered without the AA flag: not authoritative for the zone")
	}
	return r, nil
}

// WaitPropagation repeats CheckPropagation every interval until the value
// is everywhere or ctx ends, and returns the last result.
//
// The first check always runs, so the result is never empty. When ctx
// ends during a later check, the check before it is returned: an
// interrupted check would only say "ended" for the slow servers, where
// the one before says which lag and at what serial. interval <= 0 means
// 250 ms.
func (c *Client) WaitPropagation(ctx context.Context, zone string, servers []Nameserver, name, value string, minSerial uint32, interval time.Duration) PropagationResult {
	if interval <= 0 {
		interval = defaultInterval
	}
	last := c.CheckPropagation(ctx, zone, servers, name, value, minSerial)
	t := time.NewTimer(interval)
	defer t.Stop()
	for !last.Everywhere && !ended(ctx) {
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
		r := c.CheckPropagation(ctx, zone, servers, name, value, minSerial)
		if ended(ctx) && !r.Everywhere {
			return last
		}
		last = r
		t.Reset(interval)
	}
	return last
}

// serialLess reports whether SOA serial a is older than b in RFC 1982
// arithmetic: b-a wraps mod 2^32, and read as int32 it is positive
// exactly when b is ahead of a by less than 2^31.
func serialLess(a, b uint32) bool {
	return a != b && int32(b-a) > 0 //nolint:gosec // intentional two's-complement reinterpretation (RFC 1982)
}
