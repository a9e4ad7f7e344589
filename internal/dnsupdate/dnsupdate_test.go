package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/ratelimit"
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

// memBackend is a Backend with keys allowed everything, values in memory,
// failures on demand and a record of the calls that change or audit.
type memBackend struct {
	mu       sync.Mutex
	keys     map[string]Key
	keyErr   error // Key's error for every name, if set
	vals     map[string][]string
	failOn   map[string]error // "add v" or "remove v" -> error
	calls    []string         // "add name v", "remove name v"
	refused  []string         // "rcode reason"
	keyCalls int
	// hold, when set ("add v"), makes that change signal entered and
	// wait for release first: a backend call held in flight.
	hold             string
	entered, release chan struct{}
}

func newMem(keys ...Key) *memBackend {
	b := &memBackend{keys: map[string]Key{}, vals: map[string][]string{}, failOn: map[string]error{}}
	for _, k := range keys {
		b.keys[k.Name] = k
	}
	return b
}

func (b *memBackend) Key(_ context.Context, name string, _ netip.Addr) (Key, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keyCalls++
	if b.keyErr != nil {
		return Key{}, b.keyErr
	}
	k, ok := b.keys[name]
	if !ok {
		return Key{}, errors.New("unknown")
	}
	return k, nil
}

func (b *memBackend) Allowed(context.Context, *Key, string) bool { return true }

func (b *memBackend) Values(_ context.Context, _ Key, name string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.vals[name]), nil
}

func (b *memBackend) change(op, name, value string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, op+" "+name+" "+value)
	if err := b.failOn[op+" "+value]; err != nil {
		return err
	}
	b.vals[name] = slices.DeleteFunc(b.vals[name], func(v string) bool { return v == value })
	if op == "add" {
		b.vals[name] = append(b.vals[name], value)
	}
	return nil
}

func (b *memBackend) Add(_ context.Context, _ Key, name, value string, _ netip.Addr) error {
	if b.hold != "" && b.hold == "add "+value {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.change("add", name, value)
}

func (b *memBackend) Remove(_ context.Context, _ Key, name, value string, _ netip.Addr) error {
	return b.change("remove", name, value)
}

func (b *memBackend) Refused(_ context.Context, _ *Key, _ string, _ netip.Addr, _, reason string, rcode int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused = append(b.refused, dns.RcodeToString[rcode]+" "+reason)
}

func (b *memBackend) state() (vals map[string][]string, calls, refused []string, keyCalls int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	vals = map[string][]string{}
	for k, v := range b.vals {
		v = slices.Clone(v)
		slices.Sort(v)
		vals[k] = v
	}
	return vals, slices.Clone(b.calls), slices.Clone(b.refused), b.keyCalls
}

var limitsOff = Limits{
	FailuresPerSource: ratelimit.Config{Burst: -1}, FailuresPerKey: ratelimit.Config{Burst: -1},
	UpdatesPerKey: ratelimit.Config{Burst: -1}, QueriesPerSource: ratelimit.Config{Burst: -1},
}

func newHandler(t *testing.T, b Backend, limits Limits, log *slog.Logger) *Handler {
	t.Helper()
	h, err := New(Config{Backend: b, Zone: "acme.example.net", MName: "ns1.example.net", RName: "h.example.net",
		Limits: limits, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveMsg hands m, signed with signer unless nil, to h from src over TCP
// and returns the reply.
func serveMsg(t *testing.T, h *Handler, m *dns.Msg, signer *Key, src netip.Addr) *dns.Msg {
	t.Helper()
	var raw []byte
	var err error
	if signer != nil {
		if m.IsTsig() == nil {
			m.SetTsig(signer.Name, signer.Algorithm, 300, time.Now().Unix())
		}
		raw, _, err = dns.TsigGenerateWithProvider(m, *signer, "", false)
	} else {
		raw, err = m.Pack()
	}
	if err != nil {
		t.Fatal(err)
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(h.Serve(t.Context(), Request{Msg: req, TSIG: Inspect(req, raw), Source: src, Gateway: true, TCP: true})); err != nil {
		t.Fatal(err)
	}
	return r
}

const chal = "_acme-challenge.example.org."

func txtRR(name, value string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}}
}

func addMsg(values ...string) *dns.Msg {
	m := new(dns.Msg).SetUpdate("example.org.")
	for _, v := range values {
		m.Insert([]dns.RR{txtRR(chal, v)})
	}
	return m
}

func tsigErrOf(r *dns.Msg) int {
	if ts := r.IsTsig(); ts != nil {
		return int(ts.Error)
	}
	return -1
}

// TestFailureFloodBounded: failures from one network are answered as
// usual but audited only within the source's limit, failures naming one
// key only within the key name's limit, and neither limit ever refuses a
// message whose MAC verifies, from that network or for that name.
func TestFailureFloodBounded(t *testing.T) {
	t.Parallel()
	good := Key{Name: "good.example.", Algorithm: dns.HmacSHA256, Secret: []byte("good secret")}
	b := newMem(good)
	limits := limitsOff
	limits.FailuresPerSource = ratelimit.Config{Burst: 3, Per: time.Hour}
	limits.FailuresPerKey = ratelimit.Config{Burst: 2, Per: time.Hour}
	h := newHandler(t, b, limits, nil)
	src := netip.MustParseAddr("192.0.2.7")

	unknown := Key{Name: "nobody.example.", Algorithm: dns.HmacSHA256, Secret: []byte("x")}
	for i := range 10 {
		r := serveMsg(t, h, addMsg("v"), &unknown, src)
		if r.Rcode != dns.RcodeNotAuth || tsigErrOf(r) != dns.RcodeBadKey {
			t.Fatalf("unknown key %d: rcode %s TSIG error %d", i, dns.RcodeToString[r.Rcode], tsigErrOf(r))
		}
	}
	for i := range 5 {
		if r := serveMsg(t, h, addMsg("v"), nil, src); r.Rcode != dns.RcodeRefused {
			t.Fatalf("unsigned %d: %s", i, dns.RcodeToString[r.Rcode])
		}
	}
	_, _, refused, keyCalls := b.state()
	if len(refused) != 2 || keyCalls != 10 {
		// Two rows (the key name's limit), then none once the source's is spent.
		t.Fatalf("%d audit rows (%q), %d key lookups; want 2 and 10", len(refused), refused, keyCalls)
	}
	// The source is past its limit: a good key from there still works.
	if r := serveMsg(t, h, addMsg("from-flooded-net"), &good, src); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("good key from a flooded network: %s", dns.RcodeToString[r.Rcode])
	}

	// Bad MACs naming the good key from many networks: the key name's
	// limit stops the rows, never the key.
	bad := good
	bad.Secret = []byte("guess")
	for i := range 6 {
		r := serveMsg(t, h, addMsg("v"), &bad, netip.AddrFrom4([4]byte{198, 51, byte(i), 1}))
		if r.Rcode != dns.RcodeNotAuth || tsigErrOf(r) != dns.RcodeBadSig {
			t.Fatalf("bad MAC %d: rcode %s TSIG error %d", i, dns.RcodeToString[r.Rcode], tsigErrOf(r))
		}
	}
	if r := serveMsg(t, h, addMsg("after-guessing"), &good, netip.MustParseAddr("203.0.113.1")); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("good key after guesses at it: %s", dns.RcodeToString[r.Rcode])
	}
	vals, _, refused, _ := b.state()
	if len(refused) != 4 || !slices.Equal(vals[chal], []string{"after-guessing", "from-flooded-net"}) {
		t.Fatalf("audit %q, values %q", refused, vals[chal])
	}
}

// TestMalformedTSIGCounted: a TSIG the server could not take apart is
// FORMERR, spends the source's failures and is audited only within them.
func TestMalformedTSIGCounted(t *testing.T) {
	t.Parallel()
	good := Key{Name: "good.example.", Algorithm: dns.HmacSHA256, Secret: []byte("good secret")}
	b := newMem(good)
	limits := limitsOff
	limits.FailuresPerSource = ratelimit.Config{Burst: 2, Per: time.Hour}
	h := newHandler(t, b, limits, nil)
	src := netip.MustParseAddr("192.0.2.7")
	m := addMsg("v")
	m.SetTsig(good.Name, good.Algorithm, 300, time.Now().Unix())
	for range 4 {
		r := new(dns.Msg)
		if err := r.Unpack(h.Serve(t.Context(), Request{Msg: m, TSIG: nil, Source: src, TCP: true, Gateway: true})); err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeFormatError {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	}
	if _, _, refused, _ := b.state(); len(refused) != 2 {
		t.Fatalf("%d audit rows, want 2: %q", len(refused), refused)
	}
	if r := serveMsg(t, h, addMsg("ok"), &good, src); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("good key: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestUpdateAtomic: only effective changes reach the backend, and a
// failure undoes those already made, last first.
func TestUpdateAtomic(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	b := newMem(k)
	var logs strings.Builder
	var logMu sync.Mutex
	h := newHandler(t, b, limitsOff, slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil)))
	src := netip.MustParseAddr("192.0.2.7")
	b.vals[chal] = []string{"old", "keep"}

	// Re-adding "keep" and deleting "absent" are no-ops; the add of
	// "fails" fails: "new" is removed and "old" put back, in that order.
	b.failOn["add fails"] = errors.New("disk full")
	m := addMsg("new", "keep")
	m.Remove([]dns.RR{txtRR(chal, "old"), txtRR(chal, "absent")})
	m.Insert([]dns.RR{txtRR(chal, "fails")})
	if r := serveMsg(t, h, m, &k, src); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	vals, calls, _, _ := b.state()
	want := []string{"add " + chal + " new", "remove " + chal + " old", "add " + chal + " fails",
		"add " + chal + " old", "remove " + chal + " new"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls\n%q\nwant\n%q", calls, want)
	}
	if !slices.Equal(vals[chal], []string{"keep", "old"}) {
		t.Fatalf("values after the failed update: %q", vals[chal])
	}

	// The failure's own rcode is answered; an undo that fails is logged.
	b.mu.Lock()
	b.calls = nil
	b.failOn = map[string]error{"add bad": rcodeErr(dns.RcodeRefused), "add keep": errors.New("undo refused")}
	b.mu.Unlock()
	m = new(dns.Msg).SetUpdate("example.org.")
	m.RemoveRRset([]dns.RR{txtRR(chal, "")})
	m.Insert([]dns.RR{txtRR(chal, "bad")})
	if r := serveMsg(t, h, m, &k, src); r.Rcode != dns.RcodeRefused {
		t.Fatalf("rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	vals, calls, _, _ = b.state()
	if !slices.Equal(vals[chal], []string{"old"}) || len(calls) != 5 {
		t.Fatalf("values %q after calls %q", vals[chal], calls)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "undo failed") {
		t.Fatalf("no warning for the failed undo: %s", logs.String())
	}
}

type rcodeErr int

func (e rcodeErr) Error() string { return "rcode " + dns.RcodeToString[int(e)] }
func (e rcodeErr) Rcode() int    { return int(e) }

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestUpdateSizeAndRate: more than MaxRecords RRs is REFUSED with nothing
// applied, and the per-key rate is spent once per update RR.
func TestUpdateSizeAndRate(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	b := newMem(k)
	h := newHandler(t, b, limitsOff, nil)
	src := netip.MustParseAddr("192.0.2.7")
	values := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("v%d", i))
		}
		return out
	}
	m := addMsg(values(MaxRecords)...)
	m.Answer = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: chal, Rrtype: dns.TypeTXT, Class: dns.ClassNONE}}}
	r := serveMsg(t, h, m, &k, src)
	_, calls, refused, _ := b.state()
	if r.Rcode != dns.RcodeRefused || len(calls) != 0 || len(refused) != 1 || !strings.Contains(refused[0], "at most 32") {
		t.Fatalf("%d RRs: rcode %s, calls %d, audit %q", MaxRecords+1, dns.RcodeToString[r.Rcode], len(calls), refused)
	}
	if r := serveMsg(t, h, addMsg(values(MaxRecords)...), &k, src); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("%d RRs: %s", MaxRecords, dns.RcodeToString[r.Rcode])
	}

	limits := limitsOff
	limits.UpdatesPerKey = ratelimit.Config{Burst: 3, Per: time.Hour}
	h = newHandler(t, newMem(k), limits, nil)
	if r := serveMsg(t, h, addMsg("a", "b", "c"), &k, src); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("three RRs within a rate of three: %s", dns.RcodeToString[r.Rcode])
	}
	if r := serveMsg(t, h, addMsg("d"), &k, src); r.Rcode != dns.RcodeRefused {
		t.Fatalf("a fourth RR: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	// An UPDATE costing more than is left is refused whole and spends
	// nothing: a smaller one still passes.
	h = newHandler(t, newMem(k), limits, nil)
	if r := serveMsg(t, h, addMsg("a", "b", "c", "d"), &k, src); r.Rcode != dns.RcodeRefused {
		t.Fatalf("four RRs with a rate of three: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if r := serveMsg(t, h, addMsg("a"), &k, src); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("one RR after a refused bigger UPDATE: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestFudgeCapped: a request asking for an hour's window gets 300 s.
func TestFudgeCapped(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	h := newHandler(t, newMem(k), limitsOff, nil)
	for _, tc := range []struct {
		skew time.Duration
		want int
	}{{-250 * time.Second, dns.RcodeSuccess}, {-400 * time.Second, dns.RcodeNotAuth}, {400 * time.Second, dns.RcodeNotAuth}} {
		m := addMsg("v")
		m.SetTsig(k.Name, k.Algorithm, 3600, time.Now().Add(tc.skew).Unix())
		if r := serveMsg(t, h, m, &k, netip.MustParseAddr("192.0.2.7")); r.Rcode != tc.want {
			t.Fatalf("skew %v with fudge 3600: %s, want %s", tc.skew, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.want])
		}
	}
}

// TestDiscoveryLimited: unsigned SOA queries on the gateway are limited
// per source network; signed ones are not.
func TestDiscoveryLimited(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	limits := limitsOff
	limits.QueriesPerSource = ratelimit.Config{Burst: 2, Per: time.Hour}
	h := newHandler(t, newMem(k), limits, nil)
	src := netip.MustParseAddr("192.0.2.7")
	q := func() *dns.Msg { return new(dns.Msg).SetQuestion(chal, dns.TypeSOA) }
	for i, want := range []int{dns.RcodeSuccess, dns.RcodeSuccess, dns.RcodeRefused} {
		if r := serveMsg(t, h, q(), nil, src); r.Rcode != want {
			t.Fatalf("query %d: %s, want %s", i, dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
	}
	if r := serveMsg(t, h, q(), nil, netip.MustParseAddr("198.51.100.1")); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("another network: %s", dns.RcodeToString[r.Rcode])
	}
	if r := serveMsg(t, h, q(), &k, src); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("signed from the limited network: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestKeyLookupServfail: a key lookup error that carries SERVFAIL (the
// hub starting, the store down) is SERVFAIL, not BADKEY, and unsigned.
func TestKeyLookupServfail(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	b := newMem(k)
	b.keyErr = fmt.Errorf("starting: %w", rcodeErr(dns.RcodeServerFailure))
	h := newHandler(t, b, limitsOff, nil)
	r := serveMsg(t, h, addMsg("v"), &k, netip.MustParseAddr("192.0.2.7"))
	if r.Rcode != dns.RcodeServerFailure || r.IsTsig() != nil {
		t.Fatalf("rcode %s, TSIG %v", dns.RcodeToString[r.Rcode], r.IsTsig())
	}
}

// TestKeyFormatsHideSecret: %v, %+v, %s and %#v never print the secret.
func TestKeyFormatsHideSecret(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("TOPSECRET")}
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		for _, v := range []any{k, &k} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "84 79 80") /* the bytes as %v prints them */ ||
				!strings.Contains(out, "k.example.") {
				t.Fatalf("%s: %s", verb, out)
			}
		}
	}
}

// TestUpdatesOnOneNameSerialised: an UPDATE whose undo runs after another
// UPDATE of the same name re-added a value does not take that value away:
// the second waits for the first, undo included.
func TestUpdatesOnOneNameSerialised(t *testing.T) {
	t.Parallel()
	k := Key{Name: "k.example.", Algorithm: dns.HmacSHA256, Secret: []byte("secret")}
	b := newMem(k)
	b.failOn["add v2"] = errors.New("disk full")
	b.hold, b.entered, b.release = "add v2", make(chan struct{}), make(chan struct{})
	h := newHandler(t, b, limitsOff, nil)
	src := netip.MustParseAddr("192.0.2.7")
	first, second := make(chan int, 1), make(chan int, 1)
	go func() { first <- serveMsg(t, h, addMsg("v1", "v2"), &k, src).Rcode }()
	<-b.entered // the first added v1 and is writing v2
	go func() { second <- serveMsg(t, h, addMsg("v1"), &k, src).Rcode }()
	time.Sleep(300 * time.Millisecond) // room for the second to run, were it not serialised
	close(b.release)
	if rc := <-first; rc != dns.RcodeServerFailure {
		t.Fatalf("first: %s, want SERVFAIL", dns.RcodeToString[rc])
	}
	if rc := <-second; rc != dns.RcodeSuccess {
		t.Fatalf("second: %s", dns.RcodeToString[rc])
	}
	if vals, _, _, _ := b.state(); !slices.Equal(vals[chal], []string{"v1"}) {
		t.Fatalf("values %v: the first UPDATE's undo removed the value the second added", vals[chal])
	}
}
