package dnsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/acmehub/acmehub/internal/dnsupdate"
)

// The UDP fast path. miekg's UDP server reads one packet per recvfrom,
// starts a goroutine for it and answers with one sendto: on a loaded
// server almost half the CPU went to those syscalls, and Answer itself was
// about 1%. For a listen address with a specific IP we instead bind
// Config.UDPSockets sockets to it with SO_REUSEPORT (the kernel spreads
// clients over them by address hash), and one goroutine per socket reads
// up to udpBatch packets with one recvmmsg, answers each inline into
// buffers it reuses, and sends the replies with one sendmmsg.
//
// A socket bound to one address sends from that address, so no control
// messages are needed. Wildcard binds keep miekg's loop, which reads the
// destination of each packet from IP_PKTINFO and replies from it: a
// multihomed host's resolvers drop replies from another address.
//
// The request pipeline (respond) is the one miekg's Server.serveDNS runs
// before calling a handler, built from the same parts (its header check,
// our acceptMsg, dns.Msg.Unpack, its FORMERR/NOTIMP reply through our
// guard), so both paths treat malformed input alike; FuzzServeDNS fuzzes
// respond and TestRespondMatchesMiekgTCP compares it with miekg's server.

// udpBatch is how many packets one recvmmsg/sendmmsg moves at most.
const udpBatch = 32

// verdict is what respond decided for one message.
type verdict uint8

const (
	dropped  verdict = iota // no reply: too short for a header, a response (QR=1), or a reject that does not pack
	rejected                // FORMERR or NOTIMP written as miekg would, before or instead of Answer
	answered                // Answer's reply
)

// respond answers one wire message m arriving over t, as the miekg path
// does: the reply is built in dst's storage (grown as needed), req is
// overwritten (Unpack resets every field it uses). It has no recover;
// serveUDP and the fuzz test are its callers.
//
// Messages for the UPDATE handler (see routed) are answered by it, with
// src as the client's address.
func (h *Handler) respond(dst []byte, req *dns.Msg, m []byte, t Transport, src net.Addr) ([]byte, int, verdict) {
	if len(m) < hdrLen {
		h.invalid(m, dns.ErrShortRead) // let the client hang: any reply can amplify
		return nil, 0, dropped
	}
	action := acceptMsg(dns.Header{
		Id:      binary.BigEndian.Uint16(m),
		Bits:    binary.BigEndian.Uint16(m[2:]),
		Qdcount: binary.BigEndian.Uint16(m[4:]),
		Ancount: binary.BigEndian.Uint16(m[6:]),
		Nscount: binary.BigEndian.Uint16(m[8:]),
		Arcount: binary.BigEndian.Uint16(m[10:]),
	})
	switch action {
	case dns.MsgIgnore:
		return nil, 0, dropped
	case dns.MsgAccept:
		err := req.Unpack(m)
		if err == nil && h.routed(req) {
			reply, rcode := h.update(req, dnsupdate.Inspect(req, m), src, t)
			return reply, rcode, answered
		}
		if err == nil {
			reply, rcode := h.Answer(dst, req, t)
			return reply, rcode, answered
		}
		h.invalid(m, err)
	default:
		// miekg has parsed only the header here; this also clears the
		// sections of the previous message.
		_ = req.Unpack(m[:hdrLen])
	}
	// miekg's reply to a message it rejects or cannot parse: the header
	// (and a question parsed before the error) with FORMERR, or NOTIMP
	// with the opcode kept. Our guard then clears the echoed flags and
	// caps its size.
	opcode := req.Opcode
	req.SetRcodeFormatError(req)
	req.Zero = false
	if action == dns.MsgRejectNotImplemented {
		req.Opcode, req.Rcode = opcode, dns.RcodeNotImplemented
	}
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	b, err := req.PackBuffer(dst[:cap(dst)])
	if err != nil || len(b) < hdrLen {
		return nil, 0, dropped
	}
	b = guardReply(b, t)
	return b, int(b[3] & 0xF), rejected
}

// serveUDP runs respond for one packet of a batch with the shell's
// extras: metrics, the Debug line and a recover that turns a panic into
// SERVFAIL for this packet only.
func (h *Handler) serveUDP(dst []byte, req *dns.Msg, m []byte, src net.Addr) (reply []byte, send bool) {
	debug := h.log.Enabled(background, slog.LevelDebug)
	var start time.Time
	if h.observe != nil || debug {
		start = time.Now()
	}
	built := false
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("dns: panic while answering; sent SERVFAIL", "panic", fmt.Sprint(p), "qname", qname(req))
			if !built {
				reply, send = servfail(req), true
			}
		}
	}()
	reply, rcode, v := h.respond(dst, req, m, UDP, src)
	built, send = true, v != dropped
	switch v {
	case answered:
		h.record(start, debug, req, rcode, len(reply), UDP, nil)
	case rejected:
		if h.observe != nil {
			h.observe(0, rcode, 0)
		}
	}
	return reply, send
}

// batchConn is the batch API of ipv4.PacketConn and ipv6.PacketConn
// (their Message types are both socket.Message).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpLoop serves one socket: it owns the buffers of its batch.
type udpLoop struct {
	h       *Handler
	conn    batchConn
	uc      *net.UDPConn    // for the replies of handed-off UPDATEs
	wg      *sync.WaitGroup // tracks the handed-off UPDATEs (the server's loops)
	in, out []ipv4.Message
	replies [][]byte // reply storage, one per slot of out
	req     dns.Msg
}

func newUDPLoop(h *Handler, c *net.UDPConn) *udpLoop {
	l := &udpLoop{h: h, conn: ipv4.NewPacketConn(c), uc: c, wg: new(sync.WaitGroup)}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		l.conn = ipv6.NewPacketConn(c)
	}
	l.in = make([]ipv4.Message, udpBatch)
	l.out = make([]ipv4.Message, udpBatch)
	l.replies = make([][]byte, udpBatch)
	rd := make([]byte, udpBatch*udpReadSize)
	for i := range l.in {
		l.in[i].Buffers = [][]byte{rd[i*udpReadSize : (i+1)*udpReadSize : (i+1)*udpReadSize]}
		l.out[i].Buffers = make([][]byte, 1)
		l.replies[i] = make([]byte, 0, 512)
	}
	return l
}

// serve reads, answers and writes batches until the socket is closed.
func (l *udpLoop) serve() error {
	for {
		n, err := l.conn.ReadBatch(l.in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if temporary(err) {
				l.h.log.LogAttrs(background, slog.LevelDebug, "dns: udp read failed", slog.Any("err", err))
				continue
			}
			return err
		}
		if err := l.write(l.process(l.in[:n])); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// process answers a batch of received packets and returns the replies,
// in order, addressed to their senders; packets that get no reply (see
// respond) take no slot.
func (l *udpLoop) process(in []ipv4.Message) []ipv4.Message {
	k := 0
	for i := range in {
		m := in[i].Buffers[0][:in[i].N]
		if l.h.routedWire(m) {
			if !l.handOff(m, in[i].Addr) {
				l.h.log.LogAttrs(background, slog.LevelDebug, "dns: too many updates in flight; dropped one", slog.Any("from", in[i].Addr))
			}
			continue
		}
		reply, send := l.h.serveUDP(l.replies[k], &l.req, m, in[i].Addr)
		if !send {
			continue
		}
		if cap(reply) <= maxTCP+512 {
			l.replies[k] = reply[:0] // keep a buffer that grew, within reason
		}
		l.out[k].Buffers[0] = reply
		l.out[k].Addr = in[i].Addr
		k++
	}
	return l.out[:k]
}

// write sends the replies, skipping one that fails (sendmmsg reports an
// error only when the first message of the call could not be sent).
func (l *udpLoop) write(ms []ipv4.Message) error {
	for len(ms) > 0 {
		n, err := l.conn.WriteBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			l.h.log.LogAttrs(background, slog.LevelDebug, "dns: udp send failed", slog.Any("to", ms[0].Addr), slog.Any("err", err))
			n = 1
		}
		ms = ms[max(n, 1):]
	}
	return nil
}

// record is the per-query bookkeeping after an answer: metrics and the
// Debug line.
func (h *Handler) record(start time.Time, debug bool, req *dns.Msg, rcode, size int, t Transport, err error) {
	var qtype uint16
	if len(req.Question) == 1 {
		qtype = req.Question[0].Qtype
	}
	if h.observe != nil {
		h.observe(qtype, rcode, time.Since(start))
	}
	if debug {
		h.log.LogAttrs(background, slog.LevelDebug, "dns query",
			slog.String("qname", qname(req)), slog.String("qtype", dns.Type(qtype).String()),
			slog.String("rcode", dns.RcodeToString[rcode]), slog.String("proto", t.String()),
			slog.Int("size", size), slog.Float64("duration", time.Since(start).Seconds()), slog.Any("err", err))
	}
}

// invalid logs a message that gets no answer of its own (miekg's
// MsgInvalidFunc).
func (h *Handler) invalid(m []byte, err error) {
	h.log.LogAttrs(background, slog.LevelDebug, "invalid dns message", slog.Int("size", len(m)), slog.Any("err", err))
}

// guardReply makes a reply built by miekg's rules (for a message rejected
// or not parsed) safe, in place: clear the echoed AA, TC, RA, Z and AD
// bits and never send more than 512 bytes over UDP (a bare header with TC
// instead).
func guardReply(b []byte, t Transport) []byte {
	if len(b) < hdrLen {
		return b
	}
	b[2] &^= byte((flagAA | flagTC) >> 8)
	b[3] &^= byte(flagRA | flagZ | flagAD)
	if t == UDP && len(b) > minUDP {
		b = b[:hdrLen]
		clear(b[4:hdrLen])
		b[2] |= byte(flagTC >> 8)
	}
	return b
}
