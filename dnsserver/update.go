package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"slices"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
)

// RFC 2136 UPDATE goes to the dnsupdate handler, as does every message on
// a gateway listener (UPDATE for any zone and zone discovery). Queries on
// the public listener never do: their path (Answer) is unchanged and
// allocation-free.

// maxInflightUpdates bounds the routed messages being answered at once:
// those the UDP batch loops have handed to goroutines (an UPDATE waits on
// the store or an upstream provider, which must not stall the queries
// behind it in the batch) and those miekg's loops (TCP, wildcard UDP)
// answer. Past the bound a UDP message is dropped (its client retries),
// like a full socket buffer, and a TCP one REFUSED.
const maxInflightUpdates = 256

// routed reports whether req is for the UPDATE handler.
func (h *Handler) routed(req *dns.Msg) bool {
	return h.updates != nil && (h.gateway || req.Opcode == dns.OpcodeUpdate)
}

// routedWire is routed for a raw message before it is parsed (a header
// at least, QR clear).
func (h *Handler) routedWire(m []byte) bool {
	return h.updates != nil && len(m) >= hdrLen && m[2]&0x80 == 0 &&
		(h.gateway || int(m[2]>>3&0xF) == dns.OpcodeUpdate)
}

// update answers a routed message. tsig is the server's TSIG step (see
// dnsupdate.Request.TSIG); src the client's address.
func (h *Handler) update(req *dns.Msg, tsig error, src net.Addr, t Transport) ([]byte, int) {
	r := dnsupdate.Request{Msg: req, TSIG: tsig, Source: addrOf(src), Gateway: h.gateway, TCP: t == TCP}
	if h.gateway && req.Opcode == dns.OpcodeQuery {
		r.Serial = uint32(h.zone.LookupBytes(h.originKey).Serial) //nolint:gosec // published mod 2^32 (RFC 1982)
	}
	reply := h.updates.Serve(context.Background(), r)
	rcode := 0
	if len(reply) >= hdrLen {
		rcode = int(reply[3] & 0xF)
	}
	return reply, rcode
}

// updateBounded is update for miekg's loops, within the in-flight bound
// the batch loops' handOff takes: ok is false, and nothing is done, when
// the bound is reached.
func (h *Handler) updateBounded(req *dns.Msg, tsig error, src net.Addr, t Transport) (reply []byte, rcode int, ok bool) {
	select {
	case h.inflight <- struct{}{}:
	default:
		return nil, 0, false
	}
	defer func() { <-h.inflight }()
	reply, rcode = h.update(req, tsig, src, t)
	return reply, rcode, true
}

// refusedHeader is a bare REFUSED header for req.
func refusedHeader(req *dns.Msg) []byte {
	b := servfail(req)
	b[3] = b[3]&^0xF | dns.RcodeRefused
	return b
}

// addrOf is the IP address of a UDP or TCP address (invalid otherwise).
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// handOff answers a routed UDP message m from addr in its own goroutine,
// writing the reply on c; it reports false when too many are in flight.
func (l *udpLoop) handOff(m []byte, addr net.Addr) bool {
	select {
	case l.h.inflight <- struct{}{}:
	default:
		return false
	}
	m = slices.Clone(m) // the batch's buffers are reused
	l.wg.Go(func() {
		defer func() { <-l.h.inflight }()
		reply, send := l.h.serveUDP(nil, new(dns.Msg), m, addr)
		if send {
			_, _ = l.uc.WriteTo(reply, addr) // a closed socket at shutdown: nothing to do
		}
	})
	return true
}
