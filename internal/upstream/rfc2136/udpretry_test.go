package rfc2136

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/upstream"
)

// TestLostUDPIsResent: the server drops the first UDP update, as a lossy
// path would; the driver resends after a short wait and succeeds over UDP
// (one attempt holding the whole timeout would have failed).
func TestLostUDPIsResent(t *testing.T) {
	var udp, tcp atomic.Int32
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if _, ok := w.RemoteAddr().(*net.UDPAddr); !ok {
			tcp.Add(1)
		} else if udp.Add(1) == 1 {
			return // dropped: no reply at all
		}
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Opcode != dns.OpcodeUpdate || len(r.Ns) != 1 {
			m.Rcode = dns.RcodeFormatError
		}
		_ = w.WriteMsg(m)
	})
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: handler, MsgAcceptFunc: accept}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })

	// A 4s timeout gives 1s UDP tries. No TCP listener here: a single UDP
	// try fails, so only a resend can succeed.
	d, err := New(map[string]string{
		"DNSUPDATE_NAMESERVER": pc.LocalAddr().String(),
		"DNSUPDATE_ZONES":      "example.org",
	}, upstream.Options{Timeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(t.Context(), "_acme-challenge.example.org.", "v", 60); err != nil {
		t.Fatal(err)
	}
	if udp.Load() != 2 || tcp.Load() != 0 {
		t.Fatalf("%d UDP and %d TCP updates, want 2 and 0", udp.Load(), tcp.Load())
	}
}
