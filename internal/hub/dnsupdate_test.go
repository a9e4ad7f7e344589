package hub

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/dnsupdate"
	"github.com/acmehub/acmehub/store"
)

// The RFC 2136 backend against a real service: what a key may write, that
// writes are Present and Cleanup, and how refusals reach the client and
// the audit log. The wire protocol itself is tested in dnsserver and
// internal/acmetest.

// updateKey creates a TSIG key for the principal and looks it up as the
// gateway does, returning it with its base64 secret.
func updateKey(t *testing.T, ts *testService, principal string) (dnsupdate.Key, string) {
	t.Helper()
	issued := mustTSIG(t, ts, TSIGKeyRequest{Principal: principal})
	k, err := ts.svc.UpdateBackend().Key(t.Context(), issued.Name, testSource)
	if err != nil {
		t.Fatalf("look up key %s: %v", issued.Name, err)
	}
	if _, ok := k.Owner.(Grant); !ok || k.Name != issued.Name || k.Algorithm != issued.Algorithm {
		t.Fatalf("looked-up key %#v for %s", k, issued.Name)
	}
	return k, issued.Secret
}

// narrowPrincipal adds a consumer allowed only rule.
func narrowPrincipal(t *testing.T, ts *testService, name, rule string) {
	t.Helper()
	p, err := ts.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalApp, Name: name, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.AddRoleAssignment(t.Context(), store.RoleAssignment{PrincipalID: p.ID, Role: store.RoleChallengeConsumer, Domains: rule}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateBackendAllowed(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	b := ts.svc.UpdateBackend()
	key, _ := updateKey(t, ts, "consumer")
	narrowPrincipal(t, ts, "narrow", "a.example.org")
	narrow, _ := updateKey(t, ts, "narrow")

	// A delegation for www.example.org (made by a first Present) and one
	// for a.example.org: their hub-zone names are writable by name.
	g := grantOf(t, key)
	www, err := ts.svc.Present(ctx, g, PresentRequest{Identifier: "www.example.org", Value: "setup", Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ts.svc.Present(ctx, g, PresentRequest{Identifier: "a.example.org", Value: "setup", Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(www.Target, ".acme.example.net.") || !strings.HasSuffix(a.Target, ".acme.example.net.") {
		t.Fatalf("targets %q %q are not in the hub zone", www.Target, a.Target)
	}

	tests := []struct {
		name                     string
		qname                    string
		key, narrowKey, unsigned bool
	}{
		{"challenge name", "_acme-challenge.www.example.org.", true, false, true},
		{"challenge name, any case", "_ACME-Challenge.WWW.Example.Org.", true, false, true},
		{"the rule's apex", "_acme-challenge.example.org.", true, false, true},
		{"narrow key's own name", "_acme-challenge.a.example.org.", true, true, true},
		{"delegation name", www.Target, true, false, true},
		{"narrow key's delegation", a.Target, true, true, true},
		{"two labels below the rule", "_acme-challenge.x.www.example.org.", false, false, false},
		{"no config covers it", "_acme-challenge.example.net.", false, false, false},
		{"not a challenge name", "www.example.org.", false, false, false},
		{"a TXT name under a challenge name", "x._acme-challenge.www.example.org.", false, false, false},
		{"unknown hub-zone label", "nosuchlabel.acme.example.net.", false, false, false},
		{"the hub zone's apex", "acme.example.net.", false, false, false},
		{"root", ".", false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.Allowed(ctx, &key, tc.qname); got != tc.key {
				t.Errorf("key allowed %s: %v, want %v", tc.qname, got, tc.key)
			}
			if got := b.Allowed(ctx, &narrow, tc.qname); got != tc.narrowKey {
				t.Errorf("narrow key allowed %s: %v, want %v", tc.qname, got, tc.narrowKey)
			}
			// nil: an unsigned zone-discovery query, decided by the configs' rules alone.
			if got := b.Allowed(ctx, nil, tc.qname); got != tc.unsigned {
				t.Errorf("unsigned allowed %s: %v, want %v", tc.qname, got, tc.unsigned)
			}
		})
	}

	// A key whose owner is not a grant (never made by this backend) is allowed nothing.
	stranger := key
	stranger.Owner = "not a grant"
	if b.Allowed(ctx, &stranger, "_acme-challenge.www.example.org.") {
		t.Error("a key without a grant is allowed")
	}
	// A config for example.net makes its names allowed for unsigned
	// discovery, but not for a key whose owner's role does not cover it.
	if _, err := ts.db.SaveConfigChecked(ctx, store.ChallengeConfig{Name: "net", Provider: store.ProviderDelegated, Rule: "example.net"},
		func([]store.ChallengeConfig) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if !b.Allowed(ctx, nil, "_acme-challenge.example.net.") {
		t.Error("unsigned: a name a config's rule covers is not allowed")
	}
	if b.Allowed(ctx, &key, "_acme-challenge.example.net.") {
		t.Error("a key is allowed a name outside its owner's role")
	}
}

func grantOf(t *testing.T, k dnsupdate.Key) Grant {
	t.Helper()
	g, ok := k.Owner.(Grant)
	if !ok {
		t.Fatalf("key %s has no grant", k.Name)
	}
	return g
}

// rcodeOf is the rcode an UPDATE answers for err (as dnsupdate picks it).
func rcodeOf(err error) int {
	var rc interface{ Rcode() int }
	if errors.As(err, &rc) {
		return rc.Rcode()
	}
	return dns.RcodeServerFailure
}

func TestUpdateBackendAddRemove(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, func(c *Config) { c.MaxValuesPerPrincipal = 3 })
	ctx := t.Context()
	b := ts.svc.UpdateBackend()
	key, _ := updateKey(t, ts, "consumer")
	g := grantOf(t, key)
	const name = "_acme-challenge.www.example.org."
	values := func() []string {
		t.Helper()
		v, err := ts.svc.ChallengeValues(ctx, g, "www.example.org")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(v)
		return v
	}

	if err := b.Add(ctx, key, name, "value-1", testSource); err != nil {
		t.Fatalf("add: %v", err)
	}
	if got := values(); !slices.Equal(got, []string{"value-1"}) {
		t.Fatalf("values after add: %q", got)
	}
	// The delegation's hub-zone name (a CNAME-following client) is the same set.
	d, err := ts.db.DelegationByDomain(ctx, "www.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, key, d.Name, "value-2", testSource); err != nil {
		t.Fatalf("add at %s: %v", d.Name, err)
	}
	for _, n := range []string{name, d.Name} {
		v, err := b.Values(ctx, key, n)
		slices.Sort(v)
		if err != nil || !slices.Equal(v, []string{"value-1", "value-2"}) {
			t.Fatalf("values at %s: %q %v", n, v, err)
		}
	}
	if err := b.Add(ctx, key, name, "value-1", testSource); err != nil {
		t.Fatalf("adding a value already there: %v", err)
	}
	if got := values(); !slices.Equal(got, []string{"value-1", "value-2"}) {
		t.Fatalf("values after adding one again: %q", got)
	}
	if err := b.Remove(ctx, key, name, "value-1", testSource); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := values(); !slices.Equal(got, []string{"value-2"}) {
		t.Fatalf("values after remove: %q", got)
	}
	if err := b.Remove(ctx, key, name, "value-1", testSource); err != nil {
		t.Fatalf("removing an absent value: %v", err)
	}

	// Present and Cleanup did the work: they audit as challenge.present/cleanup.
	for _, action := range []string{"challenge.present", "challenge.cleanup"} {
		evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: action, Result: "ok"})
		if err != nil || len(evs) == 0 {
			t.Fatalf("no %s audit event: %v", action, err)
		}
		if evs[0].TokenID != key.Name || evs[0].Source != testSource.String() {
			t.Errorf("%s event %+v: want token %s from %s", action, evs[0], key.Name, testSource)
		}
	}

	// Refusals: REFUSED, and nothing changed.
	narrowPrincipal(t, ts, "narrow", "a.example.org")
	narrow, _ := updateKey(t, ts, "narrow")
	refused := []struct {
		name string
		do   func() error
	}{
		{"out of the key's scope", func() error { return b.Add(ctx, narrow, name, "value-3", testSource) }},
		{"remove out of scope", func() error { return b.Remove(ctx, narrow, name, "value-2", testSource) }},
		{"no config", func() error { return b.Add(ctx, key, "_acme-challenge.example.net.", "value-3", testSource) }},
		{"unknown hub-zone label", func() error { return b.Add(ctx, key, "nosuchlabel.acme.example.net.", "value-3", testSource) }},
		{"no value", func() error { return b.Add(ctx, key, name, "", testSource) }},
		{"values out of scope", func() error { _, err := b.Values(ctx, narrow, name); return err }},
	}
	for _, tc := range refused {
		err := tc.do()
		if err == nil || rcodeOf(err) != dns.RcodeRefused {
			t.Errorf("%s: %v (rcode %s), want REFUSED", tc.name, err, dns.RcodeToString[rcodeOf(err)])
		}
	}
	// Over the principal's cap (3): a limit is REFUSED too.
	for i, v := range []string{"cap-1", "cap-2", "cap-3"} {
		err := b.Add(ctx, key, "_acme-challenge.b.example.org.", v, testSource)
		if i < 2 && err != nil {
			t.Fatalf("add %s: %v", v, err)
		}
		if i == 2 && (err == nil || rcodeOf(err) != dns.RcodeRefused) {
			t.Errorf("over the cap: %v, want REFUSED", err)
		}
	}
	if got := values(); !slices.Equal(got, []string{"value-2"}) {
		t.Fatalf("values after the refusals: %q", got)
	}

	// A key without a grant, and a store that fails: SERVFAIL.
	stranger := key
	stranger.Owner = nil
	if err := b.Add(ctx, stranger, name, "value-4", testSource); rcodeOf(err) != dns.RcodeServerFailure {
		t.Errorf("a key without a grant: %v, want SERVFAIL", err)
	}
}

func TestUpdateBackendStoreFailure(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	b := ts.svc.UpdateBackend()
	key, _ := updateKey(t, ts, "consumer")
	if err := ts.db.Close(); err != nil {
		t.Fatal(err)
	}
	err := b.Add(t.Context(), key, "_acme-challenge.www.example.org.", "v", testSource)
	if err == nil || rcodeOf(err) != dns.RcodeServerFailure {
		t.Fatalf("add with the store closed: %v, want SERVFAIL", err)
	}
}

// TestUpdateBackendRefusedAudit: a refused UPDATE, through the real
// handler with this backend, answers REFUSED, changes nothing and leaves
// one dns.update event naming the key and its owner, never its secret.
func TestUpdateBackendRefusedAudit(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	b := ts.svc.UpdateBackend()
	key, secret := updateKey(t, ts, "consumer")
	h, err := dnsupdate.New(dnsupdate.Config{Backend: b, Zone: "acme.example.net.", MName: "ns1.example.net.", RName: "hostmaster.example.net."})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(m *dns.Msg, signer *dnsupdate.Key) *dns.Msg {
		t.Helper()
		var wire []byte
		if signer != nil {
			m.SetTsig(signer.Name, signer.Algorithm, 300, time.Now().Unix())
			wire, _, err = dns.TsigGenerateWithProvider(m, *signer, "", false)
		} else {
			wire, err = m.Pack()
		}
		if err != nil {
			t.Fatal(err)
		}
		req := new(dns.Msg)
		if err := req.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		out := h.Serve(ctx, dnsupdate.Request{Msg: req, TSIG: dnsupdate.Inspect(req, wire), Source: testSource, Gateway: true, TCP: true})
		resp := new(dns.Msg)
		if err := resp.Unpack(out); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	txt := func(name, value string) dns.RR {
		return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}}
	}
	client := dnsupdate.Key{Name: key.Name, Algorithm: key.Algorithm, Secret: mustBase64(t, secret)}

	// In scope: NOERROR, and the value is there.
	m := new(dns.Msg).SetUpdate("example.org.")
	m.Insert([]dns.RR{txt("_acme-challenge.www.example.org.", "in-scope")})
	if r := serve(m, &client); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("in-scope update: %s", dns.RcodeToString[r.Rcode])
	}
	// Out of scope, in the same message as an in-scope add: REFUSED, nothing applied.
	m = new(dns.Msg).SetUpdate("example.net.")
	m.Insert([]dns.RR{txt("_acme-challenge.example.net.", "out-of-scope")})
	if r := serve(m, &client); r.Rcode != dns.RcodeRefused {
		t.Fatalf("out-of-scope update: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg).SetUpdate(".")
	m.Insert([]dns.RR{txt("_acme-challenge.a.example.org.", "half"), txt("_acme-challenge.example.net.", "half")})
	if r := serve(m, &client); r.Rcode != dns.RcodeRefused {
		t.Fatalf("half out-of-scope update: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if v, err := ts.svc.ChallengeValues(ctx, grantOf(t, key), "a.example.org"); err != nil || len(v) != 0 {
		t.Fatalf("a refused message changed a.example.org: %q %v", v, err)
	}
	// Unsigned: REFUSED, audited without a principal.
	m = new(dns.Msg).SetUpdate("example.org.")
	m.Insert([]dns.RR{txt("_acme-challenge.www.example.org.", "unsigned")})
	if r := serve(m, nil); r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned update: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "dns.update"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d dns.update events, want 3: %+v", len(evs), evs)
	}
	var signed, unsigned int
	for _, ev := range evs {
		if ev.Result != "refused" || !strings.Contains(ev.Detail, "REFUSED") || ev.Source != testSource.String() {
			t.Errorf("event %+v: want result refused, REFUSED in the detail, source %s", ev, testSource)
		}
		for _, s := range []string{secret, string(client.Secret)} {
			if strings.Contains(ev.Detail+ev.Target+ev.TokenID, s) {
				t.Errorf("event %+v contains the key's secret", ev)
			}
		}
		switch ev.PrincipalID {
		case ts.principal.ID:
			signed++
			if ev.TokenID != key.Name || !strings.Contains(ev.Detail, key.Name) || !strings.Contains(ev.Detail, "outside the key's scope") {
				t.Errorf("signed event %+v: want the key %s and the reason", ev, key.Name)
			}
		case 0:
			unsigned++
			if !strings.Contains(ev.Detail, "(none)") || !strings.Contains(ev.Detail, "unsigned") {
				t.Errorf("unsigned event %+v", ev)
			}
		}
	}
	if signed != 2 || unsigned != 1 {
		t.Errorf("%d signed and %d unsigned events, want 2 and 1", signed, unsigned)
	}

	// NOTAUTH (a TSIG that does not verify) is audited as denied.
	b.Refused(ctx, nil, "nosuchkey.", testSource, "example.org.", "bad key", dns.RcodeNotAuth)
	if evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "dns.update", Result: "denied"}); err != nil || len(evs) != 1 ||
		!strings.Contains(evs[0].Detail, "nosuchkey.") || !strings.Contains(evs[0].Detail, "NOTAUTH") {
		t.Errorf("NOTAUTH events %+v %v", evs, err)
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUpdateBackendOneRowPerFailure: through the real handler, an unknown
// key or a bad MAC writes one dns.update row (denied) and no auth row,
// and a key lookup the store cannot answer is SERVFAIL, not BADKEY.
func TestUpdateBackendOneRowPerFailure(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	b := ts.svc.UpdateBackend()
	key, sec := updateKey(t, ts, "consumer")
	h, err := dnsupdate.New(dnsupdate.Config{Backend: b, Zone: "acme.example.net.", MName: "ns1.example.net.", RName: "hostmaster.example.net."})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(signer dnsupdate.Key) *dns.Msg {
		t.Helper()
		m := new(dns.Msg).SetUpdate("example.org.")
		m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.www.example.org.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"v"}}})
		m.SetTsig(signer.Name, signer.Algorithm, 300, time.Now().Unix())
		wire, _, err := dns.TsigGenerateWithProvider(m, signer, "", false)
		if err != nil {
			t.Fatal(err)
		}
		req := new(dns.Msg)
		if err := req.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(h.Serve(ctx, dnsupdate.Request{Msg: req, TSIG: dnsupdate.Inspect(req, wire), Source: testSource, Gateway: true, TCP: true})); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, signer := range []dnsupdate.Key{
		{Name: "nosuchkey.example.", Algorithm: dns.HmacSHA256, Secret: []byte("x")},
		{Name: key.Name, Algorithm: key.Algorithm, Secret: []byte("wrong")},
	} {
		if r := serve(signer); r.Rcode != dns.RcodeNotAuth {
			t.Fatalf("%s: rcode %s", signer.Name, dns.RcodeToString[r.Rcode])
		}
	}
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, ev := range evs {
		if ev.Action == "dns.update" || ev.Action == "auth" {
			rows = append(rows, ev.Action+" "+ev.Result+" "+ev.Detail)
		}
	}
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "dns.update denied") || !strings.HasPrefix(rows[1], "dns.update denied") {
		t.Fatalf("audit rows %q, want two dns.update denied", rows)
	}

	if err := ts.db.Close(); err != nil {
		t.Fatal(err)
	}
	var rc interface{ Rcode() int }
	if _, err := b.Key(ctx, key.Name, testSource); !errors.As(err, &rc) || rc.Rcode() != dns.RcodeServerFailure {
		t.Fatalf("key lookup with the store closed: %v", err)
	}
	if r := serve(dnsupdate.Key{Name: key.Name, Algorithm: key.Algorithm, Secret: mustBase64(t, sec)}); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("update with the store closed: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}
