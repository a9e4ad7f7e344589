package dnsserver

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
	"github.com/acmehub/acmehub/internal/ratelimit"
)

// Names of the update tests. The public listener serves origin
// (acme.example.net.); the gateway any zone.
const (
	chalOrg  = "_acme-challenge.example.org."
	chalLbl  = "lbl." + origin                // a delegation label (lego's CNAME-followed name)
	chalNet  = "_acme-challenge.example.net." // another key's name
	keyOrg   = "org-key."
	keyOther = "other-key."
)

// fakeBackend is an in-memory dnsupdate.Backend: keys, the names each key
// may write, the TXT values, and a record of the calls.
type fakeBackend struct {
	mu        sync.Mutex
	keys      map[string]dnsupdate.Key
	scope     map[string][]string // key name -> names
	vals      map[string][]string
	refused   []string // "rcode reason"
	keyCalls  int
	failAdd   error
	stateless bool // the fuzz test's: nothing changes
}

func newFakeBackend() *fakeBackend {
	b := &fakeBackend{keys: map[string]dnsupdate.Key{}, scope: map[string][]string{}, vals: map[string][]string{}}
	b.addKey(keyOrg, dns.HmacSHA256, chalOrg, chalLbl)
	b.addKey(keyOther, dns.HmacSHA256, chalNet)
	return b
}

func (b *fakeBackend) addKey(name, alg string, names ...string) dnsupdate.Key {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := dnsupdate.Key{Name: name, Algorithm: alg, Secret: []byte("secret of " + name + " " + alg), Owner: name}
	b.keys[name] = k
	b.scope[name] = names
	return k
}

func (b *fakeBackend) key(name string) dnsupdate.Key {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys[name]
}

func (b *fakeBackend) Key(_ context.Context, name string, _ netip.Addr) (dnsupdate.Key, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keyCalls++
	k, ok := b.keys[name]
	if !ok {
		return dnsupdate.Key{}, errors.New("unknown key")
	}
	return k, nil
}

func (b *fakeBackend) Allowed(_ context.Context, key *dnsupdate.Key, name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, names := range b.scope {
		if (key == nil || key.Name == k) && slices.Contains(names, name) {
			return true
		}
	}
	return false
}

func (b *fakeBackend) Values(_ context.Context, _ dnsupdate.Key, name string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.vals[name]), nil
}

func (b *fakeBackend) Add(_ context.Context, _ dnsupdate.Key, name, value string, _ netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failAdd != nil {
		return b.failAdd
	}
	if !b.stateless && !slices.Contains(b.vals[name], value) {
		b.vals[name] = append(b.vals[name], value)
	}
	return nil
}

func (b *fakeBackend) Remove(_ context.Context, _ dnsupdate.Key, name, value string, _ netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.stateless {
		b.vals[name] = slices.DeleteFunc(b.vals[name], func(v string) bool { return v == value })
	}
	return nil
}

func (b *fakeBackend) Refused(_ context.Context, _ *dnsupdate.Key, _ string, _ netip.Addr, _, reason string, rcode int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.stateless {
		b.refused = append(b.refused, dns.RcodeToString[rcode]+" "+reason)
	}
}

func (b *fakeBackend) values(name string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := slices.Clone(b.vals[name])
	slices.Sort(v)
	return v
}

func (b *fakeBackend) set(name string, vals ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.vals[name] = vals
}

func (b *fakeBackend) refusals() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.refused)
}

// updateHandler returns a dnsupdate handler on be; limits off unless set.
func updateHandler(tb testing.TB, be dnsupdate.Backend, limits *dnsupdate.Limits, observe func(string)) *dnsupdate.Handler {
	tb.Helper()
	l := dnsupdate.Limits{
		FailuresPerSource: ratelimitOff, FailuresPerKey: ratelimitOff, UpdatesPerKey: ratelimitOff, QueriesPerSource: ratelimitOff,
	}
	if limits != nil {
		l = *limits
	}
	u, err := dnsupdate.New(dnsupdate.Config{
		Backend: be, Zone: origin, MName: "ns1.acme.example.net.", RName: "hostmaster.example.net.",
		Limits: l, Observer: observe,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// startUpdates runs the public listener and a gateway listener, both with
// an UPDATE handler on be, and returns their addresses.
func startUpdates(t *testing.T, be dnsupdate.Backend, limits *dnsupdate.Limits) (public, gateway string) {
	t.Helper()
	u := updateHandler(t, be, limits, nil)
	cfg := testConfig()
	cfg.Updates = u
	pub := startWith(t, cfg, testView(t), "127.0.0.1:0")
	cfg.Gateway = true
	gw := startWith(t, cfg, testView(t), "127.0.0.1:0")
	return pub.Addrs()[0].String(), gw.Addrs()[0].String()
}

// signed sends m signed with k (TSIG added here) and returns the reply.
// The client checks the reply's TSIG: err is that check's outcome.
func signed(t *testing.T, network, addr string, m *dns.Msg, k dnsupdate.Key) (*dns.Msg, error) {
	t.Helper()
	if m.IsTsig() == nil {
		m.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
	}
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, TsigProvider: k}
	r, _, err := c.ExchangeContext(t.Context(), m, addr)
	if r == nil {
		t.Fatalf("%s exchange: no reply: %v", network, err)
	}
	if r.Id != m.Id || !r.Response || r.Opcode != m.Opcode {
		t.Fatalf("reply id %d response %v opcode %d", r.Id, r.Response, r.Opcode)
	}
	return r, err
}

// mustSigned is signed for replies the client must accept as signed by k.
func mustSigned(t *testing.T, network, addr string, m *dns.Msg, k dnsupdate.Key) *dns.Msg {
	t.Helper()
	r, err := signed(t, network, addr, m, k)
	if err != nil {
		t.Fatalf("%s: reply's TSIG does not verify: %v (rcode %s)", network, err, dns.RcodeToString[r.Rcode])
	}
	if r.IsTsig() == nil {
		t.Fatalf("%s: reply to a signed message is unsigned", network)
	}
	return r
}

func txt(name, value string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 120}, Txt: []string{value}}
}

func updateMsg(zone string) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(zone)
	return m
}

func wantRcode(t *testing.T, r *dns.Msg, rcode int) {
	t.Helper()
	if r.Rcode != rcode {
		t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[rcode])
	}
}

func TestUpdateAlgorithms(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	pub, gw := startUpdates(t, be, nil)
	for _, alg := range []string{dns.HmacMD5, dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512} {
		for _, network := range []string{"udp", "tcp"} {
			k := be.addKey("k-"+strings.TrimSuffix(alg, ".")+"-"+network+".", alg, chalOrg, chalLbl)
			value := "v-" + network + "-" + strings.ReplaceAll(alg, ".", "-")
			// The hub zone on the public listener, a customer's zone on the gateway.
			m := updateMsg(origin)
			m.Insert([]dns.RR{txt(chalLbl, value)})
			wantRcode(t, mustSigned(t, network, pub, m, k), dns.RcodeSuccess)
			m = updateMsg("example.org.")
			m.Insert([]dns.RR{txt(chalOrg, value)})
			wantRcode(t, mustSigned(t, network, gw, m, k), dns.RcodeSuccess)
			if !slices.Contains(be.values(chalLbl), value) || !slices.Contains(be.values(chalOrg), value) {
				t.Fatalf("%s %s: value not added: %v %v", alg, network, be.values(chalLbl), be.values(chalOrg))
			}
		}
	}
}

func TestUpdateTSIGFailures(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	pub, _ := startUpdates(t, be, nil)
	good := be.key(keyOrg)
	for _, tc := range []struct {
		name    string
		key     dnsupdate.Key // what the client signs with
		skew    time.Duration
		rcode   int
		tsigErr uint16 // 0: no TSIG in the reply
		macLen  int
	}{
		{name: "unsigned", rcode: dns.RcodeRefused},
		{name: "unknown key", key: dnsupdate.Key{Name: "nobody.", Algorithm: dns.HmacSHA256, Secret: good.Secret}, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey},
		{name: "other algorithm", key: dnsupdate.Key{Name: keyOrg, Algorithm: dns.HmacSHA512, Secret: good.Secret}, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey},
		{name: "bad MAC", key: dnsupdate.Key{Name: keyOrg, Algorithm: dns.HmacSHA256, Secret: []byte("wrong")}, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadSig},
		{name: "time outside fudge", key: good, skew: -time.Hour, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadTime, macLen: 32},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				m := updateMsg(origin)
				m.Insert([]dns.RR{txt(chalLbl, "must-not-appear")})
				var r *dns.Msg
				if tc.key.Name == "" {
					r = exchange(t, network, pub, m)
				} else {
					m.SetTsig(tc.key.Name, tc.key.Algorithm, 300, time.Now().Add(tc.skew).Unix())
					r, _ = signed(t, network, pub, m, tc.key)
				}
				wantRcode(t, r, tc.rcode)
				ts := r.IsTsig()
				switch {
				case tc.tsigErr == 0 && ts != nil:
					t.Fatalf("TSIG in the reply: %v", ts)
				case tc.tsigErr != 0 && ts == nil:
					t.Fatal("no TSIG in the reply")
				case ts != nil:
					if ts.Error != tc.tsigErr || int(ts.MACSize) != tc.macLen || len(ts.MAC) != 2*tc.macLen {
						t.Fatalf("TSIG error %d MAC size %d (%q), want error %d MAC size %d", ts.Error, ts.MACSize, ts.MAC, tc.tsigErr, tc.macLen)
					}
					if !strings.EqualFold(ts.Hdr.Name, tc.key.Name) {
						t.Fatalf("TSIG owner %q", ts.Hdr.Name)
					}
					// BIND's tools check the time before the error: a zero
					// time makes them report unsynchronised clocks.
					if now := uint64(time.Now().Unix()); tc.tsigErr != dns.RcodeBadTime && (ts.TimeSigned+300 < now || ts.TimeSigned > now+300) {
						t.Fatalf("TSIG time signed %d, want about %d", ts.TimeSigned, now)
					}
					if tc.tsigErr == dns.RcodeBadTime && ts.OtherLen != 6 {
						t.Fatalf("BADTIME without the server's time: other len %d", ts.OtherLen)
					}
				}
				if v := be.values(chalLbl); len(v) != 0 {
					t.Fatalf("values changed: %v", v)
				}
			})
		}
	}
	if got := be.refusals(); len(got) != 10 {
		t.Fatalf("audited %d refusals, want 10: %q", len(got), got)
	}
}

func TestUpdateRcodes(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	pub, gw := startUpdates(t, be, nil)
	k := be.key(keyOrg)
	a := &dns.A{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}}
	for _, tc := range []struct {
		name  string
		addr  string
		zone  string
		build func(m *dns.Msg)
		rcode int
	}{
		{"public: another zone", pub, "example.org.", func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalOrg, "v")}) }, dns.RcodeNotAuth},
		{"public: name outside the zone", pub, origin, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalOrg, "v")}) }, dns.RcodeNotZone},
		{"gateway: name outside the zone", gw, "example.org.", func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalNet, "v")}) }, dns.RcodeNotZone},
		{"gateway: prerequisite outside the zone", gw, "example.org.", func(m *dns.Msg) { m.RRsetUsed([]dns.RR{txt(chalNet, "")}) }, dns.RcodeNotZone},
		{"zone type not SOA", gw, "example.org.", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeTXT }, dns.RcodeFormatError},
		{"zone class not IN", gw, "example.org.", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeNotAuth},
		{"another key's name", gw, "example.net.", func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalNet, "v")}) }, dns.RcodeRefused},
		{"prerequisite on another key's name", gw, "example.net.", func(m *dns.Msg) { m.NameNotUsed([]dns.RR{txt(chalNet, "")}) }, dns.RcodeRefused},
		{"type A", gw, "example.org.", func(m *dns.Msg) { m.Insert([]dns.RR{a}) }, dns.RcodeRefused},
		{"delete A RRset", gw, "example.org.", func(m *dns.Msg) { m.RemoveRRset([]dns.RR{a}) }, dns.RcodeRefused},
		{"value with a space", gw, "example.org.", func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalOrg, "a b")}) }, dns.RcodeRefused},
		{"prerequisite with a TTL", gw, "example.org.", func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeANY, Class: dns.ClassANY, Ttl: 5}}}
		}, dns.RcodeFormatError},
		{"prerequisite class CH", gw, "example.org.", func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}}}
		}, dns.RcodeFormatError},
		{"delete RRset with a TTL", gw, "example.org.", func(m *dns.Msg) {
			m.Ns = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeTXT, Class: dns.ClassANY, Ttl: 60}}}
		}, dns.RcodeFormatError},
		{"add of type ANY", gw, "example.org.", func(m *dns.Msg) {
			m.Ns = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeANY, Class: dns.ClassINET}}}
		}, dns.RcodeFormatError},
		// One disallowed RR refuses the whole message: the first is not applied.
		{"one RR of two disallowed", gw, "example.org.", func(m *dns.Msg) {
			m.Insert([]dns.RR{txt(chalOrg, "v"), txt("www.example.org.", "v")})
		}, dns.RcodeRefused},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				m := updateMsg(tc.zone)
				tc.build(m)
				var r *dns.Msg
				if tc.rcode == dns.RcodeNotAuth {
					// miekg's client takes any NOTAUTH reply for a TSIG
					// failure and does not check its MAC: check its shape.
					r, _ = signed(t, network, tc.addr, m, k)
					if ts := r.IsTsig(); ts == nil || ts.Error != 0 || ts.MACSize != 32 {
						t.Fatalf("NOTAUTH reply to a verified message is not signed: %v", ts)
					}
				} else {
					r = mustSigned(t, network, tc.addr, m, k)
				}
				wantRcode(t, r, tc.rcode)
				if v := be.values(chalOrg); len(v) != 0 {
					t.Fatalf("values changed: %v", v)
				}
			})
		}
	}

	// Backend errors: their own rcode, or SERVFAIL.
	for _, tc := range []struct {
		err   error
		rcode int
	}{{rcodeErr(dns.RcodeRefused), dns.RcodeRefused}, {errors.New("disk full"), dns.RcodeServerFailure}} {
		be.mu.Lock()
		be.failAdd = tc.err
		be.mu.Unlock()
		m := updateMsg("example.org.")
		m.Insert([]dns.RR{txt(chalOrg, "v")})
		wantRcode(t, mustSigned(t, "tcp", gw, m, k), tc.rcode)
	}
}

type rcodeErr int

func (e rcodeErr) Error() string { return "refused by policy" }
func (e rcodeErr) Rcode() int    { return int(e) }

func TestUpdatePrerequisites(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	_, gw := startUpdates(t, be, nil)
	k := be.key(keyOrg)
	name := func(rr dns.RR) []dns.RR { return []dns.RR{rr} }
	for _, tc := range []struct {
		name  string
		have  []string
		pre   func(m *dns.Msg)
		rcode int
	}{
		{"RRset exists: yes", []string{"a"}, func(m *dns.Msg) { m.RRsetUsed(name(txt(chalOrg, ""))) }, dns.RcodeSuccess},
		{"RRset exists: no", nil, func(m *dns.Msg) { m.RRsetUsed(name(txt(chalOrg, ""))) }, dns.RcodeNXRrset},
		{"RRset exists: other type", []string{"a"}, func(m *dns.Msg) {
			m.RRsetUsed(name(&dns.A{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeA}}))
		}, dns.RcodeNXRrset},
		{"RRset equals: yes", []string{"a", "b"}, func(m *dns.Msg) { m.Used([]dns.RR{txt(chalOrg, "b"), txt(chalOrg, "a")}) }, dns.RcodeSuccess},
		{"RRset equals: subset", []string{"a", "b"}, func(m *dns.Msg) { m.Used([]dns.RR{txt(chalOrg, "a")}) }, dns.RcodeNXRrset},
		{"RRset equals: none there", nil, func(m *dns.Msg) { m.Used([]dns.RR{txt(chalOrg, "a")}) }, dns.RcodeNXRrset},
		{"RRset absent: yes", nil, func(m *dns.Msg) { m.RRsetNotUsed(name(txt(chalOrg, ""))) }, dns.RcodeSuccess},
		{"RRset absent: no", []string{"a"}, func(m *dns.Msg) { m.RRsetNotUsed(name(txt(chalOrg, ""))) }, dns.RcodeYXRrset},
		{"name in use: yes", []string{"a"}, func(m *dns.Msg) { m.NameUsed(name(txt(chalOrg, ""))) }, dns.RcodeSuccess},
		{"name in use: no", nil, func(m *dns.Msg) { m.NameUsed(name(txt(chalOrg, ""))) }, dns.RcodeNameError},
		{"name not in use: yes", nil, func(m *dns.Msg) { m.NameNotUsed(name(txt(chalOrg, ""))) }, dns.RcodeSuccess},
		{"name not in use: no", []string{"a"}, func(m *dns.Msg) { m.NameNotUsed(name(txt(chalOrg, ""))) }, dns.RcodeYXDomain},
		{"RRset absent with data: malformed", nil, func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeTXT, Class: dns.ClassNONE}, Txt: []string{"x"}}}
		}, dns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be.set(chalOrg, tc.have...)
			m := updateMsg("example.org.")
			tc.pre(m)
			m.Insert([]dns.RR{txt(chalOrg, "new")})
			wantRcode(t, mustSigned(t, "udp", gw, m, k), tc.rcode)
			want := slices.Clone(tc.have)
			if tc.rcode == dns.RcodeSuccess {
				want = append(want, "new")
			}
			slices.Sort(want)
			if got := be.values(chalOrg); !slices.Equal(got, want) {
				t.Fatalf("values %v, want %v", got, want)
			}
		})
	}
}

// TestUpdateClientShapes sends what each client sends (PROTOCOLS.md 5).
func TestUpdateClientShapes(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	pub, gw := startUpdates(t, be, nil)
	k := be.key(keyOrg)
	send := func(addr, zone string, build func(m *dns.Msg)) {
		t.Helper()
		m := updateMsg(zone)
		build(m)
		wantRcode(t, mustSigned(t, "udp", addr, m, k), dns.RcodeSuccess)
	}
	check := func(name string, want ...string) {
		t.Helper()
		if got := be.values(name); !slices.Equal(got, want) {
			t.Fatalf("values at %s: %v, want %v", name, got, want)
		}
	}

	// lego: delete the RRset and insert, in one message, for the
	// CNAME-followed name in the hub zone; clean-up deletes the one RR.
	be.set(chalLbl, "stale")
	send(pub, origin, func(m *dns.Msg) { m.RemoveRRset([]dns.RR{txt(chalLbl, "")}); m.Insert([]dns.RR{txt(chalLbl, "lego")}) })
	check(chalLbl, "lego")
	send(pub, origin, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chalLbl, "lego")}) })
	check(chalLbl)

	// certbot and cert-manager: add one RR (domain and wildcard: two
	// values), delete each.
	send(gw, chalOrg, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalOrg, "one")}) })
	send(gw, chalOrg, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chalOrg, "two")}) })
	check(chalOrg, "one", "two")
	send(gw, chalOrg, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chalOrg, "one")}) })
	check(chalOrg, "two")
	// Deleting a value that is not there is a no-op (RFC 2136 3.4.2.4).
	send(gw, chalOrg, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chalOrg, "gone")}) })
	check(chalOrg, "two")

	// nsupdate: "update delete name TXT", and "update delete name".
	send(gw, "example.org.", func(m *dns.Msg) { m.RemoveRRset([]dns.RR{txt(chalOrg, "")}) })
	check(chalOrg)
	be.set(chalOrg, "x", "y")
	send(gw, "org.", func(m *dns.Msg) { m.RemoveName([]dns.RR{txt(chalOrg, "")}) })
	check(chalOrg)

	// A value split into several strings is one value.
	send(gw, "example.org.", func(m *dns.Msg) {
		m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: chalOrg, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"ab", "cd"}}})
	})
	check(chalOrg, "abcd")
}

func TestGatewayZoneDiscovery(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	pub, gw := startUpdates(t, be, nil)
	k := be.key(keyOrg)
	soaAnswer := func(t *testing.T, q, r *dns.Msg) {
		t.Helper()
		wantRcode(t, r, dns.RcodeSuccess)
		if !r.Authoritative || r.RecursionAvailable || len(r.Answer) != 1 {
			t.Fatalf("AA %v RA %v answer %v", r.Authoritative, r.RecursionAvailable, r.Answer)
		}
		soa, ok := r.Answer[0].(*dns.SOA)
		if !ok || soa.Hdr.Name != q.Question[0].Name || soa.Ns != "ns1.acme.example.net." || soa.Serial != testSer {
			t.Fatalf("answer %v", r.Answer[0])
		}
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			// Unsigned, as certbot and lego ask (0x20 case kept).
			q := query("_ACME-challenge.Example.org.", dns.TypeSOA)
			soaAnswer(t, q, exchange(t, network, gw, q))
			q = query(chalLbl, dns.TypeSOA)
			q.RecursionDesired = true // lego sets RD
			soaAnswer(t, q, exchange(t, network, gw, q))
			// Signed: the key's names only, and the reply is signed.
			q = query(chalOrg, dns.TypeSOA)
			soaAnswer(t, q, mustSigned(t, network, gw, q, k))
			wantRcode(t, mustSigned(t, network, gw, query(chalNet, dns.TypeSOA), k), dns.RcodeRefused)

			// Names no key may write, parents, other types: REFUSED.
			for _, q := range []*dns.Msg{
				query("example.org.", dns.TypeSOA), query("www.example.org.", dns.TypeSOA),
				query(chalOrg, dns.TypeTXT), query(origin, dns.TypeSOA), query(chalOrg, dns.TypeNS),
				withOpcode(query(chalOrg, dns.TypeSOA), dns.OpcodeNotify),
			} {
				r := exchange(t, network, gw, q)
				if r.Rcode != dns.RcodeRefused || r.Authoritative || len(r.Answer)+len(r.Ns) != 0 {
					t.Fatalf("%v: rcode %s AA %v answer %v ns %v", q.Question[0], dns.RcodeToString[r.Rcode], r.Authoritative, r.Answer, r.Ns)
				}
			}
			// The public listener never claims a customer's zone.
			r := exchange(t, network, pub, query(chalOrg, dns.TypeSOA))
			if r.Rcode != dns.RcodeRefused || r.Authoritative {
				t.Fatalf("public listener: rcode %s AA %v", dns.RcodeToString[r.Rcode], r.Authoritative)
			}
			// ... and answers its own zone as before, signed query or not.
			r = mustSignedOrPlain(t, network, pub, query(origin, dns.TypeSOA), k)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
				t.Fatalf("public apex SOA: %v", r)
			}
		})
	}
}

// mustSignedOrPlain sends a signed query to the public listener, whose
// query answers are not signed (they never were).
func mustSignedOrPlain(t *testing.T, network, addr string, m *dns.Msg, k dnsupdate.Key) *dns.Msg {
	t.Helper()
	r, err := signed(t, network, addr, m, k)
	if err != nil && r.IsTsig() != nil {
		t.Fatalf("reply TSIG: %v", err)
	}
	return r
}

func TestUpdateRateLimits(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	per := time.Hour // nothing refills during the test
	_, gw := startUpdates(t, be, &dnsupdate.Limits{
		FailuresPerSource: ratelimitCfg(3, per),
		FailuresPerKey:    ratelimitCfg(100, per),
		UpdatesPerKey:     ratelimitCfg(2, per),
	})
	k := be.key(keyOrg)
	add := func() *dns.Msg { m := updateMsg("example.org."); m.Insert([]dns.RR{txt(chalOrg, "v")}); return m }

	// Two updates per key, then REFUSED (signed: the key was verified).
	for i, want := range []int{dns.RcodeSuccess, dns.RcodeSuccess, dns.RcodeRefused} {
		if r := mustSigned(t, "tcp", gw, add(), k); r.Rcode != want {
			t.Fatalf("update %d: rcode %s, want %s", i+1, dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
	}
	// Failures from this source past its limit are still answered
	// (looked up and verified), not audited, and never stop a good key.
	bad := dnsupdate.Key{Name: keyOther, Algorithm: dns.HmacSHA256, Secret: []byte("guess")}
	before := len(be.refusals())
	for range 5 {
		r, _ := signed(t, "udp", gw, add(), bad)
		wantRcode(t, r, dns.RcodeNotAuth)
		if ts := r.IsTsig(); ts == nil || ts.Error != dns.RcodeBadSig {
			t.Fatalf("bad MAC past the limit: TSIG %v", ts)
		}
	}
	if n := len(be.refusals()) - before; n != 3 {
		t.Fatalf("%d failures audited, want 3 (the source's limit)", n)
	}
	m := updateMsg("example.net.")
	m.Insert([]dns.RR{txt(chalNet, "v")})
	wantRcode(t, mustSigned(t, "udp", gw, m, be.key(keyOther)), dns.RcodeSuccess)
}

// TestUpdateInflightMiekg: miekg's loops (TCP, wildcard UDP) take the
// in-flight bound the batch loops take: when it is full an UPDATE is not
// run, REFUSED over TCP and dropped over UDP.
func TestUpdateInflightMiekg(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	cfg := testConfig()
	cfg.Updates = updateHandler(t, be, nil, nil)
	s := startWith(t, cfg, testView(t), "0.0.0.0:0")
	_, port, _ := strings.Cut(s.Addrs()[0].String(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(s.Addrs()[0].String(), ":")
	}
	addr := "127.0.0.1:" + port
	k := be.key(keyOrg)
	msg := func(v string) *dns.Msg { m := updateMsg(origin); m.Insert([]dns.RR{txt(chalLbl, v)}); return m }
	h := s.Handler()
	for range cap(h.inflight) {
		h.inflight <- struct{}{}
	}
	r, _ := signed(t, "tcp", addr, msg("full-tcp"), k)
	wantRcode(t, r, dns.RcodeRefused)
	m := msg("full-udp")
	m.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
	wire, _, err := dns.TsigGenerateWithProvider(m, k, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if reply := rawUDP(t, addr, wire, 300*time.Millisecond); reply != nil {
		t.Fatalf("UDP update answered while the bound is full: %d bytes", len(reply))
	}
	be.mu.Lock()
	calls := be.keyCalls
	be.mu.Unlock()
	if calls != 0 || len(be.values(chalLbl)) != 0 || len(be.refusals()) != 0 {
		t.Fatalf("the handler ran: %d key lookups, values %v, audit %q", calls, be.values(chalLbl), be.refusals())
	}
	// Room again: both answer, and the slots taken are given back.
	for range cap(h.inflight) {
		<-h.inflight
	}
	wantRcode(t, mustSigned(t, "tcp", addr, msg("tcp"), k), dns.RcodeSuccess)
	wantRcode(t, mustSigned(t, "udp", addr, msg("udp"), k), dns.RcodeSuccess)
	if len(h.inflight) != 0 {
		t.Fatalf("%d slots still taken", len(h.inflight))
	}
}

func TestUpdateObserverAndNoHandler(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	var mu sync.Mutex
	var results []string
	u := updateHandler(t, be, nil, func(r string) { mu.Lock(); results = append(results, r); mu.Unlock() })
	cfg := testConfig()
	cfg.Updates = u
	addr := startWith(t, cfg, testView(t), "127.0.0.1:0").Addrs()[0].String()
	k := be.key(keyOrg)
	m := updateMsg(origin)
	m.Insert([]dns.RR{txt(chalLbl, "v")})
	mustSigned(t, "udp", addr, m, k)
	m = updateMsg(origin)
	m.Insert([]dns.RR{txt(chalLbl, "v")})
	exchange(t, "tcp", addr, m)
	r, _ := signed(t, "tcp", addr, func() *dns.Msg { m := updateMsg(origin); m.Insert([]dns.RR{txt(chalLbl, "v")}); return m }(),
		dnsupdate.Key{Name: "nobody.", Algorithm: dns.HmacSHA1, Secret: []byte("x")})
	wantRcode(t, r, dns.RcodeNotAuth)
	mu.Lock()
	if want := []string{"noerror", "refused", "badkey"}; !slices.Equal(results, want) {
		t.Errorf("observed %q, want %q", results, want)
	}
	mu.Unlock()

	// Without an UPDATE handler every UPDATE is REFUSED, as before.
	plain := startWith(t, testConfig(), testView(t), "127.0.0.1:0").Addrs()[0].String()
	r, _ = signed(t, "udp", plain, m, k)
	wantRcode(t, r, dns.RcodeRefused)
}

func TestUpdateConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Gateway = true
	if _, err := New(cfg, testView(t)); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("gateway without handler: %v", err)
	}
	u, err := dnsupdate.New(dnsupdate.Config{Backend: newFakeBackend(), Zone: "other.example.", MName: "ns1.example.net", RName: "h.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Updates = u
	if _, err := New(cfg, testView(t)); err == nil || !strings.Contains(err.Error(), "not the origin") {
		t.Fatalf("handler for another zone: %v", err)
	}
}

var ratelimitOff = ratelimit.Config{Burst: -1}

func ratelimitCfg(burst int, per time.Duration) ratelimit.Config {
	return ratelimit.Config{Burst: burst, Per: per}
}

// TestUpdateMiekgUDP covers miekg's UDP loop (wildcard binds), where the
// TSIG step runs in miekg with the Deferred provider.
func TestUpdateMiekgUDP(t *testing.T) {
	t.Parallel()
	be := newFakeBackend()
	cfg := testConfig()
	cfg.Updates = updateHandler(t, be, nil, nil)
	s := startWith(t, cfg, testView(t), "0.0.0.0:0")
	_, port, _ := strings.Cut(s.Addrs()[0].String(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(s.Addrs()[0].String(), ":")
	}
	addr := "127.0.0.1:" + port
	k := be.addKey("md5-key.", dns.HmacMD5, chalLbl)
	m := updateMsg(origin)
	m.Insert([]dns.RR{txt(chalLbl, "miekg-udp")})
	wantRcode(t, mustSigned(t, "udp", addr, m, k), dns.RcodeSuccess)
	if got := be.values(chalLbl); !slices.Equal(got, []string{"miekg-udp"}) {
		t.Fatalf("values %v", got)
	}
	bad := k
	bad.Secret = []byte("wrong")
	m = updateMsg(origin)
	m.Remove([]dns.RR{txt(chalLbl, "miekg-udp")})
	r, _ := signed(t, "udp", addr, m, bad)
	if ts := r.IsTsig(); r.Rcode != dns.RcodeNotAuth || ts == nil || ts.Error != dns.RcodeBadSig || ts.MACSize != 0 {
		t.Fatalf("bad MAC: rcode %s TSIG %v", dns.RcodeToString[r.Rcode], ts)
	}
	if got := be.values(chalLbl); len(got) != 1 {
		t.Fatalf("values changed: %v", got)
	}
}
