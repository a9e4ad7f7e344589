package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/rules"
)

// CheckDelegation checks _acme-challenge.<domain> against the expected
// CNAME target, through the recursive resolver and each authoritative
// nameserver of the domain's zone.
//
// domain may be in any form a user types (Unicode, upper case, trailing
// dot, "*." prefix); expectedTarget is a name in the hub zone. The zone
// is found by walking up from domain with NS queries to the recursive
// resolver; every address of every nameserver of the zone is then asked
// directly (RD=0), all at once, for CNAME and TXT at the name. The whole
// check takes about as long as its slowest few queries in sequence: the
// walk (usually two), resolving the nameservers, then one round to all
// of them. ctx ends it early; the result then says so.
//
// Only CNAME, TXT and (in referrals) NS records at the name are looked
// at. At most maxNSNames nameservers, maxAddrsPerNS addresses of each and
// maxTargets addresses in all are asked; all checks of c together stay
// within maxInFlight queries at once and queryRate a second.
func (c *Client) CheckDelegation(ctx context.Context, domain, expectedTarget string) DelegationResult {
	lc := *c
	lc.limited = true
	return lc.checkDelegation(ctx, domain, expectedTarget)
}

func (c *Client) checkDelegation(ctx context.Context, domain, expectedTarget string) (res DelegationResult) {
	res.Recursive = ServerAnswer{Server: "recursive"}
	res.CheckedAt = time.Now()
	base, _, err := rules.NormalizeIdentifier(domain)
	if err != nil {
		res.State, res.Detail = StateInvalid, fmt.Sprintf("%v.", err)
		return res
	}
	res.Domain = base
	res.Name = dns.Fqdn(rules.ChallengeName(base))
	res.Expected = fqdn(expectedTarget)
	if _, ok := dns.IsDomainName(res.Expected); !ok || res.Expected == "." {
		res.State, res.Detail = StateInvalid, fmt.Sprintf("The expected target %q is not a valid name.", expectedTarget)
		return res
	}

	// The recursive view is evidence only (it may be a cached past); it
	// runs beside the walk, which also needs the recursive resolver.
	var (
		wg  sync.WaitGroup
		rec ServerAnswer
	)
	wg.Go(func() { rec = c.recursiveAnswer(ctx, res.Name) })
	zone, nss, err := c.findZone(ctx, base+".")
	if err == nil {
		res.Zone = zone
		res.Nameservers = c.askNameservers(ctx, zone, res.Name, nss)
	}
	wg.Wait()
	res.Recursive = rec
	if err != nil {
		var nr *noReplyError
		res.ResolverDown = errors.As(err, &nr)
		res.State = StateUnreachable
		res.Detail = fmt.Sprintf("The zone of %s could not be found (%v); check the recursive resolver setting.", base, err)
		if res.ResolverDown {
			res.Detail = fmt.Sprintf("Recursive resolver unreachable: the zone of %s could not be looked up (%v); check the recursive resolver setting.", base, err)
		}
		return res
	}
	res.State, res.Detail = judge(res)
	return res
}

// nsHost is a nameserver of a zone, with its glue addresses if any.
type nsHost struct {
	name string
	glue []netip.Addr
}

// findZone walks up from name to the apex of the zone holding it: the
// closest enclosing name with an NS RRset, or the owner of the SOA in the
// authority section of a negative answer, whichever comes first. It
// returns the apex and its nameservers.
func (c *Client) findZone(ctx context.Context, name string) (string, []nsHost, error) {
	for n := name; ; n = parent(n) {
		r, _, err := c.askRecursive(ctx, n, dns.TypeNS)
		if err != nil {
			return "", nil, err
		}
		// A CNAME at n means n is not an apex (a CNAME has no siblings),
		// and the rest of the answer belongs to the target's zone.
		if !hasType(owned(r.Answer, n), dns.TypeCNAME) {
			if ns := nsHosts(r, n); len(ns) > 0 {
				return fqdn(n), ns, nil
			}
			for _, rr := range r.Ns {
				if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, n) {
					apex := fqdn(soa.Hdr.Name)
					ns, err := c.apexNS(ctx, apex)
					return apex, ns, err
				}
			}
		}
		if n == "." {
			return "", nil, errors.New("no zone apex found up to the root")
		}
	}
}

// apexNS asks the recursive resolver for the NS RRset of apex.
func (c *Client) apexNS(ctx context.Context, apex string) ([]nsHost, error) {
	r, _, err := c.askRecursive(ctx, apex, dns.TypeNS)
	if err != nil {
		return nil, err
	}
	ns := nsHosts(r, apex)
	if len(ns) == 0 {
		return nil, fmt.Errorf("no NS records at %s", apex)
	}
	return ns, nil
}

// nsHosts returns the nameservers in r's answer owned by name, with any
// glue from the additional section. Past maxNSNames, one more entry with
// no name stands for the rest (not asked).
func nsHosts(r *dns.Msg, name string) []nsHost {
	var out []nsHost
	for _, rr := range owned(r.Answer, name) {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		h := nsHost{name: fqdn(ns.Ns)}
		if slices.ContainsFunc(out, func(o nsHost) bool { return o.name == h.name }) {
			continue
		}
		if len(out) == maxNSNames {
			return append(out, nsHost{})
		}
		h.glue = addrsOf(owned(r.Extra, ns.Ns))
		out = append(out, h)
	}
	return out
}

func hasType(rrs []dns.RR, t uint16) bool {
	return slices.ContainsFunc(rrs, func(rr dns.RR) bool { return rr.Header().Rrtype == t })
}

// recursiveAnswer asks the recursive resolver for CNAME at name.
func (c *Client) recursiveAnswer(ctx context.Context, name string) ServerAnswer {
	sa := ServerAnswer{Server: "recursive"}
	r, addr, err := c.askRecursive(ctx, name, dns.TypeCNAME)
	if err != nil {
		sa.Addr = strings.Join(c.recursive, ",")
		sa.Err = err.Error()
		return sa
	}
	sa.Addr, sa.Rcode = addr, dns.RcodeToString[r.Rcode]
	a := readAnswer(name, r)
	sa.CNAME, sa.Other = a.cname, a.other()
	return sa
}

// answer is what one server said about the name, from one or more
// replies, with the records kept for comparison.
type answer struct {
	cname  string
	others map[string]string // comparison key -> presentation format
}

func readAnswer(name string, replies ...*dns.Msg) answer {
	a := answer{others: map[string]string{}}
	for _, r := range replies {
		for _, rr := range owned(r.Answer, name) {
			if cn, ok := rr.(*dns.CNAME); ok {
				a.cname = fqdn(cn.Target)
				continue
			}
			// Compare without TTL (a cache counts it down) and owner case.
			cp := dns.Copy(rr)
			cp.Header().Ttl, cp.Header().Name = 0, strings.ToLower(name)
			a.others[cp.String()] = strings.ReplaceAll(rr.String(), "\t", " ")
		}
	}
	return a
}

// other returns the other records in presentation format, sorted.
func (a answer) other() []string {
	var out []string
	for _, s := range a.others {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// key identifies the answer for comparing servers: TTLs may differ
// (the same record loaded at another time on a secondary).
func (a answer) key() string {
	keys := make([]string, 0, len(a.others))
	for k := range a.others {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return a.cname + "\n" + strings.Join(keys, "\n")
}

// askNameservers asks every address of every nameserver of zone, all at
// once, for CNAME and TXT at name, within the bounds of CheckDelegation.
// A nameserver without any address gets one entry with the reason.
func (c *Client) askNameservers(ctx context.Context, zone, name string, nss []nsHost) []ServerAnswer {
	per := make([][]ServerAnswer, len(nss))
	tss := make([][]nsTarget, len(nss))
	var wg sync.WaitGroup
	for i, ns := range nss {
		if ns.name == "" {
			per[i] = []ServerAnswer{{Server: "(more nameservers)", Err: fmt.Sprintf("not asked: more than %d nameservers", maxNSNames)}}
			continue
		}
		wg.Go(func() {
			ts, err := c.targets(ctx, ns.name, ns.glue, true)
			if err != nil {
				per[i] = []ServerAnswer{{Server: ns.name, Err: err.Error()}}
			}
			tss[i] = ts
		})
	}
	wg.Wait()
	// The total bound, in the order the zone lists its nameservers.
	budget := maxTargets
	for _, ts := range tss {
		for j := range ts {
			switch {
			case ts[j].refused != "":
			case budget == 0:
				ts[j].refused = fmt.Sprintf("not asked: more than %d nameserver addresses in all", maxTargets)
			default:
				budget--
			}
		}
	}
	for i, ts := range tss {
		if ts == nil {
			continue
		}
		per[i] = make([]ServerAnswer, len(ts))
		for j, t := range ts {
			if t.refused != "" {
				per[i][j] = ServerAnswer{Server: nss[i].name, Addr: t.hp, Err: t.refused}
				continue
			}
			wg.Go(func() { per[i][j] = c.askAuthoritative(ctx, zone, nss[i].name, t.hp, name) })
		}
	}
	wg.Wait()
	return slices.Concat(per...)
}

// askAuthoritative asks one authoritative address of zone for CNAME and
// TXT at name, at once, without recursion. Both must be answered, with AA
// set, unless the reply is a referral: the name is delegated away by NS.
func (c *Client) askAuthoritative(ctx context.Context, zone, server, addr, name string) ServerAnswer {
	sa := ServerAnswer{Server: server, Addr: addr}
	var (
		replies [2]*dns.Msg
		errs    [2]error
		wg      sync.WaitGroup
	)
	for i, qtype := range []uint16{dns.TypeCNAME, dns.TypeTXT} {
		wg.Go(func() {
			replies[i], errs[i] = c.askAuth(ctx, addr, name, qtype)
		})
	}
	wg.Wait()
	// The rcode of the first reply, even one that was no answer (REFUSED).
	for _, r := range replies {
		if r != nil {
			sa.Rcode = dns.RcodeToString[r.Rcode]
			break
		}
	}
	for _, r := range replies {
		if to := referral(r, zone, name); to != nil {
			sa.Delegated, sa.same = to, "delegated\n"+strings.Join(to, "\n")
			return sa
		}
	}
	if isSkip(errs[0]) || isSkip(errs[1]) {
		sa.Skipped = cmp.Or(errs[0], errs[1]).Error()
		return sa
	}
	if err := errors.Join(errs[0], errs[1]); err != nil {
		if errs[0] != nil && errs[1] != nil && errs[0].Error() == errs[1].Error() {
			err = errs[0]
		}
		sa.Err = strings.ReplaceAll(err.Error(), "\n", "; ")
		return sa
	}
	a := readAnswer(name, replies[0], replies[1])
	sa.CNAME, sa.Other, sa.same = a.cname, a.other(), a.key()
	return sa
}

// referral returns the nameservers a reply without AA delegates name to:
// NS records in its authority section owned by name or by a name between
// it and zone (below zone: the zone's own NS is no delegation). nil when
// r is no such referral.
func referral(r *dns.Msg, zone, name string) []string {
	if r == nil || r.Authoritative || r.Rcode != dns.RcodeSuccess || len(r.Answer) > 0 {
		return nil
	}
	var to []string
	for _, rr := range r.Ns {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		owner := fqdn(ns.Hdr.Name)
		if owner == zone || !dns.IsSubDomain(zone, owner) || !dns.IsSubDomain(owner, fqdn(name)) {
			continue
		}
		if t := fqdn(ns.Ns); !slices.Contains(to, t) {
			to = append(to, t)
		}
	}
	slices.Sort(to)
	return to
}

// judge decides the state from the nameservers' answers. A nameserver
// answers when at least one of its addresses gave a usable answer: the
// others may be skipped (this host cannot reach them, such as IPv6 on an
// IPv4-only host) or fail, and a CA reaching the nameserver gets the
// answer of one that works. Precedence, the first that applies:
//
//  1. unreachable: some nameserver answered on none of its addresses, as
//     nothing can be said about what the world sees from it;
//  2. inconsistent: the answers disagree (CNAME target, other records or
//     a delegation by NS), so what a CA gets depends on the server it asks;
//  3. conflict: other records at the name, with or without the CNAME,
//     which a CNAME forbids and which some servers then answer instead;
//     or the name delegated away by NS;
//  4. missing: no CNAME;
//  5. wrong_target: a CNAME elsewhere;
//  6. ok.
func judge(res DelegationResult) (State, string) {
	want := fmt.Sprintf("%q", res.Name+" CNAME "+res.Expected)
	var (
		down     []string
		answered []ServerAnswer
	)
	// The nameservers in order, each with its addresses' answers.
	var order []string
	byNS := map[string][]ServerAnswer{}
	for _, ns := range res.Nameservers {
		if _, ok := byNS[ns.Server]; !ok {
			order = append(order, ns.Server)
		}
		byNS[ns.Server] = append(byNS[ns.Server], ns)
	}
	for _, name := range order {
		var ok, failed []ServerAnswer
		for _, a := range byNS[name] {
			switch {
			case a.Err == "" && a.Skipped == "":
				ok = append(ok, a)
			case a.Err != "":
				failed = append(failed, a)
			}
		}
		answered = append(answered, ok...)
		switch {
		case len(ok) > 0:
		case len(failed) == 0:
			down = append(down, name+": every address skipped, as this host cannot reach them (an IPv6-only nameserver seen from an IPv4-only host?)")
		default:
			for _, a := range failed {
				down = append(down, serverLabel(a)+": "+a.Err)
			}
		}
	}
	switch {
	case len(res.Nameservers) == 0:
		return StateUnreachable, fmt.Sprintf("No nameserver of %s could be asked; check its NS records.", res.Zone)
	case len(down) > 0:
		return StateUnreachable, fmt.Sprintf("No usable answer from %s; make sure every nameserver of %s is up and serves the zone.",
			strings.Join(down, ", "), res.Zone)
	}
	first := answered[0]
	for _, ns := range answered[1:] {
		if ns.same != first.same {
			var says []string
			for _, ns := range answered {
				says = append(says, serverLabel(ns)+" "+describe(ns))
			}
			return StateInconsistent, fmt.Sprintf("The nameservers of %s disagree (%s); update them all (a secondary may lag, or a provider was missed) to serve only %s.",
				res.Zone, strings.Join(says, "; "), want)
		}
	}
	switch {
	case len(first.Delegated) > 0:
		return StateConflict, fmt.Sprintf("%s is delegated by NS to %s; replace with the CNAME %s.",
			res.Name, strings.Join(first.Delegated, ", "), want)
	case len(first.Other) > 0 && first.CNAME != "":
		return StateConflict, fmt.Sprintf("%s has other records beside its CNAME (%s); remove them and keep only %s.",
			res.Name, strings.Join(first.Other, ", "), want)
	case len(first.Other) > 0:
		return StateConflict, fmt.Sprintf("%s has other records instead of a CNAME (%s); replace them with %s.",
			res.Name, strings.Join(first.Other, ", "), want)
	case first.CNAME == "":
		return StateMissing, fmt.Sprintf("There is no CNAME at %s on the nameservers of %s; add %s.", res.Name, res.Zone, want)
	case first.CNAME != res.Expected:
		return StateWrongTarget, fmt.Sprintf("%s is a CNAME to %s, not to %s; change it to %s.", res.Name, first.CNAME, res.Expected, want)
	}
	detail := fmt.Sprintf("Every nameserver of %s answers %s.", res.Zone, want)
	if r := res.Recursive; r.Err == "" && r.CNAME != res.Expected {
		detail = fmt.Sprintf("Every nameserver of %s answers %s; the recursive resolver still has %s cached until its TTL runs out.",
			res.Zone, want, describe(r))
	}
	return StateOK, detail
}

func serverLabel(sa ServerAnswer) string {
	if sa.Addr == "" {
		return sa.Server
	}
	return sa.Server + " (" + sa.Addr + ")"
}

// describe says in a few words what a server answered.
func describe(sa ServerAnswer) string {
	if len(sa.Delegated) > 0 {
		return "a delegation by NS to " + strings.Join(sa.Delegated, ", ")
	}
	s := "no CNAME"
	if sa.CNAME != "" {
		s = "CNAME " + sa.CNAME
	}
	if len(sa.Other) > 0 {
		s += " and " + strings.Join(sa.Other, ", ")
	}
	return s
}
