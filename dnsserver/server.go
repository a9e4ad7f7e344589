// Package dnsserver is the authoritative DNS server for the hub zone: it
// answers SOA, NS, glue and the TXT values of ACME challenges from an
// in-memory zone view, over UDP and TCP. TCP and wildcard UDP binds use
// miekg/dns's server loop; UDP on a specific address uses our batched
// loops on Linux (udp.go).
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
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
)

// Server serves each UDP listen address with a specific IP through our
// batch loops (udp.go) on Linux, and every other UDP socket and every TCP
// listener through its own miekg dns.Server, each with our handler and
// accept function (not the package-global mux).
type Server struct {
	h   *Handler
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	udp     []udpSocket
	lns     []net.Listener
	servers []*dns.Server
	loops   sync.WaitGroup // the batch loops
	started bool
	errc    chan error
}

// udpSocket is one UDP listen address: either sockets bound to it
// together (SO_REUSEPORT), each served by a batch loop, or one socket
// served by miekg.
type udpSocket struct {
	conns []*net.UDPConn
	pc    net.PacketConn
}

func (u udpSocket) addr() net.Addr {
	if u.pc != nil {
		return u.pc.LocalAddr()
	}
	return u.conns[0].LocalAddr()
}

func (u udpSocket) close() {
	if u.pc != nil {
		_ = u.pc.Close()
	}
	for _, c := range u.conns {
		_ = c.Close()
	}
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
// serves both like a real nameserver. An address with a specific IP gets
// Config.UDPSockets UDP sockets on Linux (see udp.go).
func (s *Server) Listen(addrs ...string) error {
	n := s.cfg.UDPSockets
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	var us []udpSocket
	var lns []net.Listener
	closeAll := func() {
		for _, u := range us {
			u.close()
		}
		for _, l := range lns {
			_ = l.Close()
		}
	}
	for _, addr := range addrs {
		u, l, err := listenPair(addr, n)
		if err != nil {
			closeAll()
			return err
		}
		us, lns = append(us, u), append(lns, l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		closeAll()
		return errors.New("dnsserver: listen after start")
	}
	s.udp, s.lns = append(s.udp, us...), append(s.lns, lns...)
	return nil
}

// listenPair binds n UDP sockets (one unless batchUDP and a specific IP)
// and a TCP listener on addr, all on one port.
//
// With port 0 the first UDP socket picks the port. SO_REUSEPORT lets the
// kernel pick a port that another reuse-port socket of this user holds
// (another server in this process, say); the TCP listener, which does not
// share, catches that, and we try again. For the same reason a second
// acmehub on a fixed port fails at its TCP listener rather than sharing
// the first one's UDP traffic.
func listenPair(addr string, n int) (udpSocket, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return udpSocket{}, nil, fmt.Errorf("dnsserver: listen %q: %w", addr, err)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return udpSocket{}, nil, fmt.Errorf("dnsserver: listen udp %s: %w", addr, err)
	}
	batch := batchable(ua.IP)
	lc, bind := net.ListenConfig{}, addr
	if batch {
		lc.Control, bind = reusePort, ua.String()
	} else {
		n = 1
	}
	ctx := context.Background()
	for range 20 {
		var conns []*net.UDPConn
		closeUDP := func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}
		for at := bind; len(conns) < n; {
			pc, err := lc.ListenPacket(ctx, "udp", at)
			if err != nil {
				closeUDP()
				return udpSocket{}, nil, fmt.Errorf("dnsserver: listen udp %s: %w", at, err)
			}
			conns = append(conns, pc.(*net.UDPConn))
			at = pc.LocalAddr().String() // the others join the first one's port
		}
		laddr := conns[0].LocalAddr().(*net.UDPAddr)
		tcpAddr := laddr.String()
		if !batch {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(laddr.Port))
		}
		l, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			switch {
			case batch:
				return udpSocket{conns: conns}, l, nil
			case !laddr.IP.IsUnspecified():
				return udpSocket{pc: boundUDP{conns[0]}}, l, nil
			default:
				return udpSocket{pc: conns[0]}, l, nil
			}
		}
		closeUDP()
		if port != "0" {
			return udpSocket{}, nil, fmt.Errorf("dnsserver: listen tcp %s: %w", tcpAddr, err)
		}
		// The TCP side of the free UDP port is taken: try another port.
	}
	return udpSocket{}, nil, fmt.Errorf("dnsserver: listen %s: no port free for both udp and tcp", addr)
}

// batchable reports whether UDP on ip is served by the batch loops: on
// Linux, for a specific address. A wildcard socket (nil or unspecified)
// stays with miekg, which replies from each query's destination address.
func batchable(ip net.IP) bool {
	return batchUDP && ip != nil && !ip.IsUnspecified()
}

// boundUDP hides the *net.UDPConn type from miekg for a socket bound to one
// address (where the batch loops are not used): replies leave from that
// address anyway, so the per-packet control messages miekg uses to pick
// the source address of a wildcard socket (several allocations and a parse
// per query) are pure cost.
type boundUDP struct{ *net.UDPConn }

// Attach adds pre-opened sockets (systemd socket activation, tests);
// either may be nil. On Linux a *net.UDPConn bound to a specific IP is
// served by a batch loop, any other packet socket by miekg.
func (s *Server) Attach(pc net.PacketConn, l net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc != nil {
		u := udpSocket{pc: pc}
		if c, ok := pc.(*net.UDPConn); ok {
			if a, ok := c.LocalAddr().(*net.UDPAddr); ok && batchable(a.IP) {
				u = udpSocket{conns: []*net.UDPConn{c}}
			}
		}
		s.udp = append(s.udp, u)
	}
	if l != nil {
		s.lns = append(s.lns, l)
	}
}

// Addrs returns the bound addresses: one *net.UDPAddr per UDP listen
// address (or attached socket), then the *net.TCPAddr values.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, u := range s.udp {
		out = append(out, u.addr())
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
	if len(s.udp)+len(s.lns) == 0 {
		s.mu.Unlock()
		return errors.New("dnsserver: no sockets to serve")
	}
	s.started = true
	var loops []*udpLoop
	for _, u := range s.udp {
		for _, c := range u.conns {
			l := newUDPLoop(s.h, c)
			l.wg = &s.loops // shutdown waits for handed-off UPDATEs too
			loops = append(loops, l)
		}
	}
	n := len(loops)
	for _, u := range s.udp {
		if u.pc != nil {
			n++
		}
	}
	n += len(s.lns)
	s.errc = make(chan error, n)
	up := make(chan struct{}, n)
	notify := func() { up <- struct{}{} }
	for _, u := range s.udp {
		if u.pc == nil {
			continue
		}
		s.servers = append(s.servers, &dns.Server{
			PacketConn:        u.pc,
			Net:               "udp",
			Handler:           &shell{h: s.h, t: UDP},
			UDPSize:           udpReadSize,
			MsgAcceptFunc:     acceptMsg,
			MsgInvalidFunc:    s.h.invalid,
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
			MsgInvalidFunc:    s.h.invalid,
			DecorateWriter:    s.h.guardWriter(TCP),
			DecorateReader:    writeDeadline(s.cfg.QueryTimeout),
			NotifyStartedFunc: notify,
		})
	}
	if s.h.updates != nil {
		// miekg checks TSIG before our handler runs; the check is deferred
		// to the UPDATE handler, which knows the client (dnsupdate.Deferred).
		for _, srv := range s.servers {
			srv.TsigProvider = dnsupdate.Deferred{}
		}
	}
	servers := s.servers
	addrs := s.addrsLocked()
	batched := len(loops)
	for _, l := range loops {
		s.loops.Go(func() {
			notify() // the socket is bound: packets queue until the first read
			if err := l.serve(); err != nil {
				s.errc <- fmt.Errorf("dnsserver: serve udp: %w", err)
			}
		})
	}
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
	s.log.Info("dns server listening", "addrs", addrs, "udp_batch_sockets", batched)
	return nil
}

func (s *Server) addrsLocked() []string {
	var out []string
	for _, u := range s.udp {
		out = append(out, "udp/"+u.addr().String())
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
		for _, u := range s.udp {
			u.close()
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
	// Closing a batch loop's socket ends its read or write; the replies of
	// the batch in hand are dropped, as the kernel drops the packets still
	// queued on the socket.
	for _, u := range s.udp {
		if u.pc == nil {
			u.close()
		}
	}
	s.mu.Unlock()
	errs := make([]error, len(servers)+1)
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			// "server not started" means it already failed and stopped.
			if err := srv.ShutdownContext(ctx); err != nil && err.Error() != "dns: server not started" {
				errs[i] = fmt.Errorf("dnsserver: shut down %s: %w", srv.Net, err)
			}
		})
	}
	wg.Go(func() {
		done := make(chan struct{})
		go func() { s.loops.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs[len(servers)] = fmt.Errorf("dnsserver: shut down udp: %w", ctx.Err())
		}
	})
	wg.Wait()
	return errors.Join(errs...)
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

	var reply []byte
	var rcode int
	if h.routed(req) {
		var ok bool
		if reply, rcode, ok = h.updateBounded(req, w.TsigStatus(), w.RemoteAddr(), s.t); !ok {
			// Too many in flight: as the batch loops, UDP is dropped (the
			// client retries); TCP, where a silent drop holds the
			// connection, gets REFUSED.
			if s.t != TCP {
				h.log.LogAttrs(background, slog.LevelDebug, "dns: too many updates in flight; dropped one", slog.Any("from", w.RemoteAddr()))
				return
			}
			reply, rcode = refusedHeader(req), dns.RcodeRefused
		}
	} else {
		reply, rcode = h.Answer(*bp, req, s.t)
	}
	written = true
	_, err := w.Write(reply)
	if cap(reply) <= maxTCP+512 {
		*bp = reply[:0] // keep a buffer that grew, within reason
	}

	h.record(start, debug, req, rcode, len(reply), s.t, err)
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
// replies bypass it. miekg builds those from the query's header, so
// guardReply clears the echoed flags and caps the size; the guard also
// counts them for metrics. The batch loops apply guardReply themselves.
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
		b = guardReply(slices.Clone(b), g.t)
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
