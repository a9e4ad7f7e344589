package dnsupdate

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The behaviour over the wire (every rcode, prerequisite, algorithm and
// listener) is tested in dnsserver against a real server; these tests
// cover what the server cannot reach.

// oneKey is a Backend with one key allowed everything.
type oneKey struct{ k Key }

func (b oneKey) Key(_ context.Context, name string, _ netip.Addr) (Key, error) {
	if name != b.k.Name {
		return Key{}, errors.New("unknown")
	}
	return b.k, nil
}
func (oneKey) Allowed(context.Context, *Key, string) bool                    { return true }
func (oneKey) Values(context.Context, Key, string) ([]string, error)         { return nil, nil }
func (oneKey) Add(context.Context, Key, string, string, netip.Addr) error    { return nil }
func (oneKey) Remove(context.Context, Key, string, string, netip.Addr) error { return nil }
func (oneKey) Refused(context.Context, *Key, string, netip.Addr, string, string, int) {
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Zone: "", MName: "bad..name", RName: "h.example.net", Timeout: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"backend", "zone", "mname", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not mention %s", err, want)
		}
	}
	h, err := New(Config{Backend: oneKey{}, Zone: "ACME.Example.NET", MName: "ns1.example.net", RName: "h.example.net"})
	if err != nil || h.Zone() != "acme.example.net." {
		t.Fatalf("zone %q, err %v", h.Zone(), err)
	}
}

// TestKeyProvider: a Key signs and verifies as miekg's own provider does,
// md5 included, and refuses other keys' messages.
func TestKeyProvider(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacMD5, Secret: []byte("0123456789abcdef")}
	m := new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeSOA)
	m.SetTsig("K.Example.", dns.HmacMD5, 300, time.Now().Unix())
	b, _, err := dns.TsigGenerateWithProvider(m, k, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := dns.TsigVerifyWithProvider(slices.Clone(b), k, "", false); err != nil {
		t.Fatalf("verify: %v", err)
	}
	other := k
	other.Secret = []byte("other")
	if err := dns.TsigVerifyWithProvider(slices.Clone(b), other, "", false); !errors.Is(err, dns.ErrSig) {
		t.Fatalf("other secret: %v", err)
	}
	other = k
	other.Name = "j.example."
	if err := dns.TsigVerifyWithProvider(slices.Clone(b), other, "", false); !errors.Is(err, dns.ErrSecret) {
		t.Fatalf("other name: %v", err)
	}
	if s := k.GoString() + k.LogValue().String(); strings.Contains(s, "0123456789abcdef") {
		t.Fatalf("secret shown: %s", s)
	}
}

// TestServeTruncatesSignedUDP: a zone-discovery answer too big for 512
// bytes is sent with TC, no records, and still a valid signature.
func TestServeTruncatesSignedUDP(t *testing.T) {
	t.Parallel()
	long := strings.Repeat(strings.Repeat("a", 60)+".", 3)
	k := Key{Name: "key.example.", Algorithm: dns.HmacSHA512, Secret: []byte("secret")}
	h, err := New(Config{Backend: oneKey{k}, Zone: "acme.example.net", MName: "ns1." + long, RName: "hostmaster." + long})
	if err != nil {
		t.Fatal(err)
	}
	q := new(dns.Msg)
	q.SetQuestion("_acme-challenge.example.org.", dns.TypeSOA)
	q.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
	raw, _, err := dns.TsigGenerateWithProvider(q, k, "", false)
	if err != nil {
		t.Fatal(err)
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	for _, tcp := range []bool{false, true} {
		b := h.Serve(t.Context(), Request{Msg: req, TSIG: Inspect(req, raw), Gateway: true, TCP: tcp})
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if tcp != !r.Truncated || tcp != (len(r.Answer) == 1) || (!tcp && len(b) > 512) {
			t.Fatalf("tcp %v: TC %v, %d answers, %d bytes", tcp, r.Truncated, len(r.Answer), len(b))
		}
		if err := dns.TsigVerifyWithProvider(slices.Clone(b), k, req.IsTsig().MAC, false); err != nil {
			t.Fatalf("reply signature: %v", err)
		}
	}
}

func TestInspectUnsigned(t *testing.T) {
	t.Parallel()
	m := new(dns.Msg)
	m.SetUpdate("example.org.")
	m.SetEdns0(1232, false)
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if err := Inspect(m, raw); err != nil {
		t.Fatalf("unsigned: %v", err)
	}
}
