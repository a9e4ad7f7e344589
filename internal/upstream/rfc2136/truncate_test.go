package rfc2136

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// TestTruncatedRetriesOverTCP: a UDP reply with TC set makes the driver
// send the update again over TCP, and only the TCP reply counts.
func TestTruncatedRetriesOverTCP(t *testing.T) {
	var udp, tcp atomic.Int32
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
			udp.Add(1)
			m.Truncated = true
		} else if r.Opcode == dns.OpcodeUpdate && len(r.Ns) == 1 {
			tcp.Add(1)
		} else {
			m.Rcode = dns.RcodeFormatError
		}
		_ = w.WriteMsg(m)
	})
	// miekg's default accept function answers UPDATE with NOTIMP.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		_ = pc.Close()
		t.Skipf("port %d not free for TCP: %v", port, err)
	}
	for _, s := range []*dns.Server{
		{PacketConn: pc, Handler: handler, MsgAcceptFunc: accept},
		{Listener: l, Handler: handler, MsgAcceptFunc: accept},
	} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}

	d := newDriver(t, map[string]string{
		"DNSUPDATE_NAMESERVER": pc.LocalAddr().String(),
		"DNSUPDATE_ZONES":      "example.org",
	})
	if err := d.Add(t.Context(), "_acme-challenge.example.org.", "v", 60); err != nil {
		t.Fatal(err)
	}
	if udp.Load() != 1 || tcp.Load() != 1 {
		t.Fatalf("%d UDP and %d TCP updates, want 1 and 1", udp.Load(), tcp.Load())
	}
}
