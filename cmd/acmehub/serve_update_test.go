package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
)

// TestLateBackendStarting: before the service exists a signed UPDATE is
// SERVFAIL (retry later), not BADKEY (which tells the client its key is
// wrong), and so is a signed zone-discovery query.
func TestLateBackendStarting(t *testing.T) {
	t.Parallel()
	h, err := dnsupdate.New(dnsupdate.Config{Backend: &lateBackend{}, Zone: "acme.example.net", MName: "ns1.example.net", RName: "h.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	k := dnsupdate.Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	serve := func(m *dns.Msg) *dns.Msg {
		t.Helper()
		m.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
		wire, _, err := dns.TsigGenerateWithProvider(m, k, "", false)
		if err != nil {
			t.Fatal(err)
		}
		req := new(dns.Msg)
		if err := req.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		r := new(dns.Msg)
		out := h.Serve(t.Context(), dnsupdate.Request{Msg: req, TSIG: dnsupdate.Inspect(req, wire),
			Source: netip.MustParseAddr("192.0.2.1"), Gateway: true, TCP: true})
		if err := r.Unpack(out); err != nil {
			t.Fatal(err)
		}
		return r
	}
	m := new(dns.Msg).SetUpdate("example.org.")
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.example.org.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"v"}}})
	if r := serve(m); r.Rcode != dns.RcodeServerFailure || r.IsTsig() != nil {
		t.Fatalf("update while starting: rcode %s, TSIG %v; want SERVFAIL, unsigned", dns.RcodeToString[r.Rcode], r.IsTsig())
	}
	if r := serve(new(dns.Msg).SetQuestion("_acme-challenge.example.org.", dns.TypeSOA)); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("signed discovery while starting: %s", dns.RcodeToString[r.Rcode])
	}
}
