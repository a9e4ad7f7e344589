package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ProxyTrust says which forwarded-for header to believe, and from whom.
// The zero value trusts no header: the source is the TCP peer, which is
// the only address a client cannot forge.
type ProxyTrust struct {
	// Header is "X-Forwarded-For" or "X-Real-IP"; empty disables.
	Header string
	// Proxies are the peers allowed to set Header.
	Proxies []netip.Prefix
}

func (p ProxyTrust) trusted(a netip.Addr) bool {
	for _, pr := range p.Proxies {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request is attributed to, for allow-lists,
// rate limits and the audit log. Behind trusted proxies it is the right-most
// address of the header that is not itself a trusted proxy: addresses to its
// left were written by the client and prove nothing.
func (p ProxyTrust) clientAddr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if p.Header == "" || !peer.IsValid() || !p.trusted(peer) {
		return peer
	}
	values := r.Header.Values(p.Header)
	if len(values) == 0 {
		return peer
	}
	hops := strings.Split(strings.Join(values, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer // a malformed hop: trust nothing beyond the peer
		}
		a = a.Unmap()
		if !p.trusted(a) {
			return a
		}
	}
	return peer
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
