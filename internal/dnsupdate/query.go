package dnsupdate

import (
	"context"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/ratelimit"
)

// SOA timers of the zone-discovery answers: nobody transfers these tiny
// zones, so they only need to be valid and short.
const (
	soaRefresh = 60
	soaRetry   = 60
	soaExpire  = 600
	soaMinimum = 60
)

// query answers a query on the gateway listener. Zone discovery is the
// only thing it does: certbot's plugin asks the configured server for the
// SOA of the record name and then of each parent, and takes the first
// answer with NOERROR, AA and the SOA in the answer section as the zone;
// lego does the same walk. Each name a key may write is answered as the
// apex of its own tiny zone, so the walk ends on the name itself and the
// UPDATE that follows names that zone. Signed queries are answered for
// the key's names only, unsigned ones for a name some key may write;
// everything else is REFUSED, so the gateway never claims other names.
// Unsigned queries are limited per source network (REFUSED past it): they
// cost lookups, and each tells whether the hub covers a name.
func (x *exchange) query(ctx context.Context) {
	q := x.req.Question[0]
	name := dns.CanonicalName(q.Name)
	if x.key == nil && !x.h.querySrc.Spend(ratelimit.SourceKey(x.r.Source)) {
		x.resp.Rcode = dns.RcodeRefused
		return
	}
	if q.Qtype != dns.TypeSOA || q.Qclass != dns.ClassINET || !x.h.b.Allowed(ctx, x.key, name) {
		x.resp.Rcode = dns.RcodeRefused
		return
	}
	serial := x.r.Serial
	if serial == 0 {
		serial = 1
	}
	x.resp.Authoritative = true
	x.resp.Answer = []dns.RR{&dns.SOA{
		Hdr:     dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: x.h.soaTTL},
		Ns:      x.h.mname,
		Mbox:    x.h.rname,
		Serial:  serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  soaMinimum,
	}}
}
