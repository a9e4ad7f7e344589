// Package dnsserver is the authoritative DNS server for the hub zone: it
// answers SOA, NS, glue and the TXT values of ACME challenges from an
// in-memory zone view, over UDP and TCP, on top of miekg/dns's server loop.
//
// Answers are written straight into wire form (Handler.Answer) rather than
// through dns.Msg.Pack: owners are compression pointers to the question, so
// the query's 0x20 case is kept for free, and a TXT hit copies prebuilt
// RDATA without allocating.
package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Server runs one miekg dns.Server per UDP socket and per TCP listener,
// each with our handler and accept function (not the package-global mux).
type Server struct {
	h   *Handler
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pcs     []net.PacketConn
	lns     []net.Listener
	servers []*dns.Server
	started bool
	errc    chan error
}

// New validates cfg and returns a server answering from z. Bind sockets
// with Listen or Attach, then Start (or Serve).
func New(cfg Config, z Zone) (*Server, error) {
	h, err := NewHandler(cfg, z)
	if err != nil {
		return nil, err
	}
	cfg, _ = cfg.validate() // NewHandler has checked it
	return &Server{h: h, cfg: cfg, log: cfg.Logger}, nil
}

// Handler returns the answer function the server uses.
func (s *Server) Handler() *Handler { return s.h }

// Listen binds UDP and TCP on each address ("127.0.0.1:53", "[::1]:0",
// ":53"). With port 0, UDP and TCP get the same free port, so one address
// serves both like a real nameserver.
func (s *Server) Listen(addrs ...string) error {
	var pcs []net.PacketConn
	var lns []net.Listener
	closeAll := func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		for _, l := range lns {
			_ = l.Close()
		}
	}
	for _, addr := range addrs {
		pc, l, err := listenPair(addr)
		if err != nil {
			closeAll()
			return err
		}
		pcs, lns = append(pcs, pc), append(lns, l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		closeAll()
		return errors.New("dnsserver: listen after start")
	}
	s.pcs, s.lns = append(s.pcs, pcs...), append(s.lns, lns...)
	return nil
}

func listenPair(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsserver: listen %q: %w", addr, err)
	}
	for range 20 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsserver: listen udp %s: %w", addr, err)
		}
		laddr := pc.LocalAddr().(*net.UDPAddr)
		bound := net.JoinHostPort(host, strconv.Itoa(laddr.Port))
		l, err := net.Listen("tcp", bound)
		if err == nil {
			if !laddr.IP.IsUnspecified() {
				pc = boundUDP{pc.(*net.UDPConn)}
			}
			return pc, l, nil
		}
		_ = pc.Close()
		if port != "0" {
			return nil, nil, fmt.Errorf("dnsserver: listen tcp %s: %w", bound, err)
		}
		// The TCP side of the free UDP port is taken: try another port.
	}
	return nil, nil, fmt.Errorf("dnsserver: listen %s: no port free for both udp and tcp", addr)
}

// boundUDP hides the *net.UDPConn type from miekg for a socket bound to one
// address: replies leave from that address anyway, so the per-packet
// control messages miekg uses to pick the source address of a wildcard
// socket (several allocations and a parse per query) are pure cost.
type boundUDP struct{ *net.UDPConn }

// Attach adds pre-opened sockets (systemd socket activation, tests);
// either may be nil.
func (s *Server) Attach(pc net.PacketConn, l net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc != nil {
		s.pcs = append(s.pcs, pc)
	}
	if l != nil {
		s.lns = append(s.lns, l)
	}
}

// Addrs returns the bound addresses: *net.UDPAddr and *net.TCPAddr values.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, pc := range s.pcs {
		out = append(out, pc.LocalAddr())
	}
	for _, l := range s.lns {
		out = append(out, l.Addr())
	}
	return out
}

// Start serves every bound socket and returns once all of them accept
// queries.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("dnsserver: already started")
	}
	n := len(s.pcs) + len(s.lns)
	if n == 0 {
		s.mu.Unlock()
		return errors.New("dnsserver: no sockets to serve")
	}
	s.started = true
	s.errc = make(chan error, n)
	up := make(chan struct{}, n)
	notify := func() { up <- struct{}{} }
	for _, pc := range s.pcs {
		s.servers = append(s.servers, &dns.Server{
			PacketConn:        pc,
			Net:               "udp",
			Handler:           &shell{h: s.h, t: UDP},
			UDPSize:           udpReadSize,
			MsgAcceptFunc:     acceptMsg,
			MsgInvalidFunc:    s.invalid,
			DecorateWriter:    s.h.guardWriter(UDP),
			NotifyStartedFunc: notify,
		})
	}
	for _, l := range s.lns {
		s.servers = append(s.servers, &dns.Server{
			Listener:          l,
			Net:               "tcp",
			Handler:           &shell{h: s.h, t: TCP},
			ReadTimeout:       s.cfg.QueryTimeout,
			IdleTimeout:       func() time.Duration { return s.cfg.TCPIdleTimeout },
			MaxTCPQueries:     -1, // the idle timeout ends connections, not a query count
			MsgAcceptFunc:     acceptMsg,
			MsgInvalidFunc:    s.invalid,
			DecorateWriter:    s.h.guardWriter(TCP),
			DecorateReader:    writeDeadline(s.cfg.QueryTimeout),
			NotifyStartedFunc: notify,
		})
	}
	servers := s.servers
	addrs := s.addrsLocked()
	s.mu.Unlock()

	for _, srv := range servers {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.errc <- fmt.Errorf("dnsserver: serve %s: %w", srv.Net, err)
			}
		}()
	}
	// Hear from every server, so none is still starting when a failure
	// makes us stop the others.
	var errs []error
	for range n {
		select {
		case <-up:
		case err := <-s.errc:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(append(errs, s.shutdown(context.Background()))...)
	}
	s.log.Info("dns server listening", "addrs", addrs)
	return nil
}

func (s *Server) addrsLocked() []string {
	var out []string
	for _, pc := range s.pcs {
		out = append(out, "udp/"+pc.LocalAddr().String())
	}
	for _, l := range s.lns {
		out = append(out, "tcp/"+l.Addr().String())
	}
	return out
}

// Serve starts the server if needed and answers until ctx ends (then it
// shuts down gracefully and returns nil) or a socket fails.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		if err := s.Start(); err != nil {
			return err
		}
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(err, s.Shutdown(sctx))
}

// Shutdown stops accepting queries and waits, within ctx, for the ones in
// progress. Sockets that were never started are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	if !started {
		for _, pc := range s.pcs {
			_ = pc.Close()
		}
		for _, l := range s.lns {
			_ = l.Close()
		}
	}
	s.mu.Unlock()
	if !started {
		return nil
	}
	return s.shutdown(ctx)
}

func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			// "server not started" means it already failed and stopped.
			if err := srv.ShutdownContext(ctx); err != nil && err.Error() != "dns: server not started" {
				errs[i] = fmt.Errorf("dnsserver: shut down %s: %w", srv.Net, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) invalid(m []byte, err error) {
	s.log.LogAttrs(context.Background(), slog.LevelDebug, "invalid dns message", slog.Int("size", len(m)), slog.Any("err", err))
}

// acceptMsg replaces miekg's default, which answers UPDATE with NOTIMP and
// rejects UPDATEs with several records. It passes QUERY, NOTIFY and UPDATE
// to the handler, drops responses (QR=1: never answer an answer), and
// rejects shapes no client sends before they are parsed: FORMERR for a
// question count other than one (a 12-byte reply), NOTIMP for other opcodes.
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&flagQR != 0 {
		return dns.MsgIgnore
	}
	switch int(dh.Bits>>11) & 0xF {
	case dns.OpcodeQuery:
		// IXFR carries one SOA in authority; OPT and TSIG are additional.
		if dh.Qdcount != 1 || dh.Ancount != 0 || dh.Nscount > 1 || dh.Arcount > 3 {
			return dns.MsgReject
		}
	case dns.OpcodeNotify:
		// RFC 1996 3.7: a NOTIFY may carry the new SOA in the answer section.
		if dh.Qdcount != 1 || dh.Ancount > 1 || dh.Nscount > 0 || dh.Arcount > 3 {
			return dns.MsgReject
		}
	case dns.OpcodeUpdate:
		if dh.Qdcount != 1 { // the zone section (RFC 2136 3.1.1)
			return dns.MsgReject
		}
	default:
		return dns.MsgRejectNotImplemented
	}
	return dns.MsgAccept
}

// shell is the thin ServeDNS around Answer: one pooled buffer, one write,
// a recover that turns a panic into SERVFAIL, metrics and a Debug line.
type shell struct {
	h *Handler
	t Transport
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

var background = context.Background()

// ServeDNS implements dns.Handler.
func (s *shell) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	h := s.h
	debug := h.log.Enabled(background, slog.LevelDebug)
	var start time.Time
	if h.observe != nil || debug {
		start = time.Now()
	}
	bp := bufPool.Get().(*[]byte)
	written := false
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("dns: panic while answering; sent SERVFAIL", "panic", fmt.Sprint(p), "qname", qname(req))
			if !written {
				_, _ = w.Write(servfail(req))
			}
		}
		bufPool.Put(bp)
	}()

	reply, rcode := h.Answer(*bp, req, s.t)
	written = true
	_, err := w.Write(reply)
	if cap(reply) <= maxTCP+512 {
		*bp = reply[:0] // keep a buffer that grew, within reason
	}

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
			slog.String("rcode", dns.RcodeToString[rcode]), slog.String("proto", s.t.String()),
			slog.Int("size", len(reply)), slog.Float64("duration", time.Since(start).Seconds()), slog.Any("err", err))
	}
}

func qname(req *dns.Msg) string {
	if len(req.Question) == 0 {
		return ""
	}
	return req.Question[0].Name
}

// servfail is the reply of last resort: a bare header.
func servfail(req *dns.Msg) []byte {
	b := make([]byte, hdrLen)
	binary.BigEndian.PutUint16(b, req.Id)
	flags := flagQR | uint16(req.Opcode&0xF)<<11 | dns.RcodeServerFailure
	if req.RecursionDesired {
		flags |= flagRD
	}
	binary.BigEndian.PutUint16(b[2:], flags)
	return b
}

// guardWriter wraps the replies miekg writes itself (FORMERR for a message
// that does not parse, our MsgReject and MsgRejectNotImplemented); our own
// replies bypass it. miekg builds those from the query's header, so clear
// the echoed AA, TC, RA, Z and AD bits, never send more than 512 bytes over
// UDP, and count them for metrics.
func (h *Handler) guardWriter(t Transport) dns.DecorateWriter {
	return func(w dns.Writer) dns.Writer { return &guard{w: w, h: h, t: t} }
}

type guard struct {
	w dns.Writer
	h *Handler
	t Transport
}

func (g *guard) Write(b []byte) (int, error) {
	if len(b) >= hdrLen {
		// A copy: Write must not modify its argument. These replies are rare.
		b = slices.Clone(b)
		b[2] &^= byte((flagAA | flagTC) >> 8)
		b[3] &^= byte(flagRA | flagZ | flagAD)
		if g.t == UDP && len(b) > minUDP {
			b = b[:hdrLen]
			clear(b[4:hdrLen])
			b[2] |= byte(flagTC >> 8)
		}
		if g.h.observe != nil {
			g.h.observe(0, int(b[3]&0xF), 0)
		}
	}
	return g.w.Write(b)
}

// writeDeadline bounds each TCP answer's write, so a client that stops
// reading cannot hold a goroutine past the query timeout.
func writeDeadline(d time.Duration) dns.DecorateReader {
	return func(r dns.Reader) dns.Reader { return tcpReader{Reader: r, write: d} }
}

type tcpReader struct {
	dns.Reader
	write time.Duration
}

func (r tcpReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	m, err := r.Reader.ReadTCP(conn, timeout)
	if err == nil {
		_ = conn.SetWriteDeadline(time.Now().Add(r.write))
	}
	return m, err
}
