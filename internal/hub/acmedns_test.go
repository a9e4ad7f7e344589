package hub

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/store"
)

// acmeDNSService is a test service whose consumer is restricted to
// *.example.org, with the config "test" (*.example.org) also serving
// accounts without a domain, at most 5 accounts per owner.
type acmeDNSService struct {
	*testService
	consumer Grant // the consumer, as its token authenticates
	admin    Grant
	adminP   store.Principal
}

func newACMEDNSService(t *testing.T, edit func(*Config)) *acmeDNSService {
	t.Helper()
	ts := newTestService(t, "*.example.org", nil, func(c *Config) {
		c.ACMEDNSConfig, c.ACMEDNSMaxAccounts = "test", 5
		c.Failures = ratelimit.Config{Burst: 4, Per: time.Hour}
		if edit != nil {
			edit(c)
		}
	})
	g, err := ts.svc.Authenticate(t.Context(), ts.tok, testSource)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ts.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalUser, Name: "root", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return &acmeDNSService{testService: ts, consumer: g, adminP: admin,
		admin: Grant{Principal: Principal{ID: admin.ID, Name: admin.Name}, Assignments: []Assignment{{Role: RoleAdmin}}}}
}

func (ts *acmeDNSService) register(t *testing.T, g Grant, reg ACMEDNSRegistration) ACMEDNSAccount {
	t.Helper()
	a, err := ts.svc.RegisterACMEDNS(t.Context(), g, reg)
	if err != nil {
		t.Fatalf("register %+v: %v", reg, err)
	}
	return a
}

func (ts *acmeDNSService) update(a ACMEDNSAccount, txt string) error {
	_, err := ts.svc.UpdateACMEDNS(context.Background(), ACMEDNSUpdate{Username: a.Username, Password: a.Password,
		Subdomain: a.Subdomain, TXT: txt, Source: testSource})
	return err
}

func (ts *acmeDNSService) valuesAt(t *testing.T, name string) map[string]store.Record {
	t.Helper()
	recs, err := ts.db.ListValues(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Record{}
	for _, r := range recs {
		out[r.Value] = r
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestACMEDNSRegisterUpdate(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	a := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	if !uuidRE.MatchString(a.Username) || len(a.Password) != 40 || !validACMEDNSPassword(a.Password) ||
		a.FullDomain != a.Subdomain+".acme.example.net" || a.Domain != "" || a.Owner != "consumer" || a.Config != "test" {
		t.Fatalf("account %+v", a)
	}
	name := a.FullDomain + "."
	v1, v2 := strings.Repeat("a", 43), strings.Repeat("b", 43)
	if err := ts.update(a, v1); err != nil {
		t.Fatal(err)
	}
	// Every live value is kept, each with its own expiry.
	if err := ts.update(a, v2); err != nil {
		t.Fatal(err)
	}
	vals := ts.valuesAt(t, name)
	if len(vals) != 2 {
		t.Fatalf("values %v", vals)
	}
	if exp := vals[v1].ExpiresAt; exp.Before(time.Now().Add(50*time.Minute)) || exp.After(time.Now().Add(70*time.Minute)) {
		t.Fatalf("expiry %s, want about an hour ahead", exp)
	}
	other := ts.register(t, ts.consumer, ACMEDNSRegistration{})

	for _, tc := range []struct {
		name string
		u    ACMEDNSUpdate
		want []error
	}{
		{"subdomain in upper case", ACMEDNSUpdate{Username: strings.ToUpper(a.Username), Password: a.Password,
			Subdomain: strings.ToUpper(a.Subdomain), TXT: "c"}, nil},
		{"wrong password", ACMEDNSUpdate{Username: a.Username, Password: other.Password, Subdomain: a.Subdomain, TXT: "x"},
			[]error{ErrUnauthenticated}},
		{"unknown username", ACMEDNSUpdate{Username: "11111111-1111-4111-8111-111111111111", Password: a.Password,
			Subdomain: a.Subdomain, TXT: "x"}, []error{ErrUnauthenticated}},
		{"malformed password", ACMEDNSUpdate{Username: a.Username, Password: "short", Subdomain: a.Subdomain, TXT: "x"},
			[]error{ErrUnauthenticated}},
		{"another account's subdomain", ACMEDNSUpdate{Username: a.Username, Password: a.Password, Subdomain: other.Subdomain, TXT: "x"},
			[]error{ErrForbidden}},
		{"bad txt", ACMEDNSUpdate{Username: a.Username, Password: a.Password, Subdomain: a.Subdomain, TXT: "bad\x00"},
			[]error{ErrInvalid, ErrBadTXT}},
		{"bad txt and wrong password: credentials first", ACMEDNSUpdate{Username: a.Username, Password: other.Password,
			Subdomain: a.Subdomain, TXT: ""}, []error{ErrUnauthenticated}},
	} {
		tc.u.Source = netip.MustParseAddr("203.0.113.9") // a network of its own: the limiter stays out of it
		got, err := ts.svc.UpdateACMEDNS(t.Context(), tc.u)
		for _, w := range tc.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v, want %v", tc.name, err, w)
			}
		}
		if tc.want == nil && (err != nil || got != tc.u.TXT) {
			t.Errorf("%s: %q %v", tc.name, got, err)
		}
	}
	if _, ok := ts.valuesAt(t, other.FullDomain+".")["x"]; ok {
		t.Fatal("a refused update wrote a value")
	}

	// The update and its audit event: detail acme-dns, the username as
	// token id, and no password anywhere in the audit log.
	evs, err := ts.db.ListAudit(t.Context(), store.AuditFilter{Action: "challenge.present", Result: "ok"})
	if err != nil || len(evs) == 0 {
		t.Fatalf("audit %v %v", evs, err)
	}
	if ev := evs[0]; ev.TokenID != a.Username || ev.Detail != "acme-dns" || ev.PrincipalID != ts.principal.ID || ev.Target != name {
		t.Fatalf("audit event %+v", ev)
	}
	assertNoSecretInAudit(t, ts.db, a.Password, other.Password)
}

func assertNoSecretInAudit(t *testing.T, db *store.DB, secrets ...string) {
	t.Helper()
	evs, err := db.ListAudit(t.Context(), store.AuditFilter{Limit: store.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		for _, s := range secrets {
			if strings.Contains(ev.Detail+ev.Target+ev.TokenID, s) {
				t.Fatalf("audit event %+v holds a password", ev)
			}
		}
	}
}

func TestACMEDNSUpdateChecks(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	inside := netip.MustParseAddr("198.51.100.7")
	limited := ts.register(t, ts.consumer, ACMEDNSRegistration{AllowFrom: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}})
	if len(limited.AllowFrom) != 1 || limited.AllowFrom[0].String() != "198.51.100.0/24" {
		t.Fatalf("allow from %v", limited.AllowFrom)
	}
	upd := func(a ACMEDNSAccount, src netip.Addr) error {
		_, err := ts.svc.UpdateACMEDNS(ctx, ACMEDNSUpdate{Username: a.Username, Password: a.Password, Subdomain: a.Subdomain, TXT: "v", Source: src})
		return err
	}
	if err := upd(limited, netip.MustParseAddr("203.0.113.1")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("outside allow-from: %v", err)
	}
	if err := upd(limited, inside); err != nil {
		t.Fatalf("inside allow-from: %v", err)
	}

	// A disabled owner stops its accounts at once; enabling restores them.
	p := ts.principal
	p.Enabled = false
	if _, err := ts.other(t).UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := upd(limited, inside); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("disabled owner: %v", err)
	}
	p.Enabled = true
	if _, err := ts.db.UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := upd(limited, inside); err != nil {
		t.Fatalf("enabled again: %v", err)
	}

	// Failures are limited per source network and username.
	fresh := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	wrong := fresh
	wrong.Password = strings.Repeat("x", 40)
	src := netip.MustParseAddr("192.0.2.77")
	for i := range 4 {
		if err := upd(wrong, src); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if err := upd(fresh, src); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after the burst: %v", err)
	}
	if evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "auth", Result: "rate_limited"}); err != nil || len(evs) != 1 {
		t.Fatalf("rate-limit audit %v %v", evs, err)
	}

	// Deleting the account (another process) ends it on the next request.
	if _, _, err := ts.other(t).DeleteACMEDNSAccount(ctx, limited.Username); err != nil {
		t.Fatal(err)
	}
	if err := upd(limited, inside); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("deleted account: %v", err)
	}
}

func TestACMEDNSRegisterRules(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()

	// With a domain: scope and rules now; a delegated domain keeps its label.
	ch, err := ts.svc.Present(ctx, ts.consumer, PresentRequest{Identifier: "www.example.org", Value: "v", Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	a := ts.register(t, ts.consumer, ACMEDNSRegistration{Domain: "*.www.example.org"})
	if a.Domain != "www.example.org" || a.FullDomain+"." != ch.Target {
		t.Fatalf("account on a delegated domain: %+v, delegation %s", a, ch.Target)
	}
	for _, tc := range []struct {
		name string
		g    Grant
		reg  ACMEDNSRegistration
		want error
	}{
		{"outside the consumer's scope", ts.consumer, ACMEDNSRegistration{Domain: "example.net"}, ErrForbidden},
		{"consumer for another owner", ts.consumer, ACMEDNSRegistration{Domain: "a.example.org", Owner: "root"}, ErrForbidden},
		{"admin, no config matches", ts.admin, ACMEDNSRegistration{Domain: "example.net"}, ErrForbidden},
		{"admin, unknown owner", ts.admin, ACMEDNSRegistration{Domain: "a.example.org", Owner: "nobody"}, ErrNotFound},
		{"no role", Grant{Principal: ts.consumer.Principal}, ACMEDNSRegistration{}, ErrForbidden},
	} {
		if _, err := ts.svc.RegisterACMEDNS(ctx, tc.g, tc.reg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// An admin creates an account for the consumer, which can use it.
	forConsumer := ts.register(t, ts.admin, ACMEDNSRegistration{Domain: "b.example.org", Owner: "consumer"})
	if forConsumer.OwnerID != ts.principal.ID || forConsumer.Config != "test" {
		t.Fatalf("admin-made account %+v", forConsumer)
	}
	if err := ts.update(forConsumer, "v"); err != nil {
		t.Fatal(err)
	}
	// The cap: five accounts per owner (a, forConsumer and three more).
	for range 3 {
		ts.register(t, ts.consumer, ACMEDNSRegistration{})
	}
	if _, err := ts.svc.RegisterACMEDNS(ctx, ts.consumer, ACMEDNSRegistration{}); !errors.Is(err, ErrLimit) {
		t.Fatalf("over the cap: %v", err)
	}
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "acme_dns.register"})
	if err != nil || len(evs) < 5 {
		t.Fatalf("register audit %v %v", evs, err)
	}

	// Without acme-dns-config, accounts without a domain are refused.
	bare := newACMEDNSService(t, func(c *Config) { c.ACMEDNSConfig = "" })
	if _, err := bare.svc.RegisterACMEDNS(ctx, bare.consumer, ACMEDNSRegistration{}); !errors.Is(err, ErrUnsupported) ||
		!strings.Contains(err.Error(), "acme-dns-config") {
		t.Fatalf("no acme-dns-config: %v", err)
	}
}

func TestACMEDNSOpenRegistration(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	a, err := ts.svc.RegisterACMEDNSOpen(ctx, nil, testSource)
	if err != nil || a.Owner != ACMEDNSPublicPrincipal || a.Domain != "" {
		t.Fatalf("open registration %+v %v", a, err)
	}
	p, err := ts.db.PrincipalByName(ctx, ACMEDNSPublicPrincipal)
	if err != nil || p.Kind != store.PrincipalApp || !p.Enabled {
		t.Fatalf("public principal %+v %v", p, err)
	}
	if roles, _ := ts.db.RoleAssignments(ctx, p.ID); len(roles) != 0 {
		t.Fatalf("public principal has roles %v", roles)
	}
	if err := ts.update(a, "v"); err != nil {
		t.Fatal(err)
	}
	// Disabling the principal stops every such account and registration.
	p.Enabled = false
	if _, err := ts.db.UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := ts.update(a, "v"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("update while disabled: %v", err)
	}
	if _, err := ts.svc.RegisterACMEDNSOpen(ctx, nil, testSource); !errors.Is(err, ErrForbidden) {
		t.Fatalf("register while disabled: %v", err)
	}
}

func TestACMEDNSBindAndStorage(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	a := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	b := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	theirs := ts.register(t, ts.admin, ACMEDNSRegistration{})

	// Domainless labels are outside every scope for the native API.
	if _, err := ts.svc.Present(ctx, ts.admin, PresentRequest{Identifier: a.FullDomain, Value: "v"}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("present at a domainless label: %v", err)
	}
	if _, err := ts.svc.ACMEDNSAccountForDomain(ctx, ts.consumer, "www.example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before binding: %v", err)
	}
	bound, err := ts.svc.BindACMEDNS(ctx, ts.consumer, "www.example.org", a.Username, a.Password)
	if err != nil || bound.Domain != "www.example.org" || bound.Password != a.Password || bound.Subdomain != a.Subdomain {
		t.Fatalf("bind %+v %v", bound, err)
	}
	if _, err := ts.svc.BindACMEDNS(ctx, ts.consumer, "WWW.example.org.", a.Username, a.Password); err != nil {
		t.Fatalf("bind again: %v", err)
	}
	for _, tc := range []struct {
		name           string
		g              Grant
		domain, u, pwd string
		want           error
	}{
		{"outside the scope", ts.consumer, "example.net", b.Username, b.Password, ErrForbidden},
		{"another principal's account", ts.consumer, "c.example.org", theirs.Username, theirs.Password, ErrForbidden},
		{"wrong password", ts.consumer, "c.example.org", b.Username, a.Password, ErrForbidden},
		{"bound to another domain", ts.consumer, "c.example.org", a.Username, a.Password, ErrConflict},
		{"domain on another label", ts.consumer, "www.example.org", b.Username, b.Password, ErrConflict},
	} {
		if _, err := ts.svc.BindACMEDNS(ctx, tc.g, tc.domain, tc.u, tc.pwd); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	got, err := ts.svc.ACMEDNSAccountForDomain(ctx, ts.consumer, "*.www.example.org")
	if err != nil || got.Username != a.Username || got.Password != a.Password {
		t.Fatalf("lego storage get %+v %v", got, err)
	}
	if _, err := ts.svc.ACMEDNSAccountForDomain(ctx, ts.consumer, "example.net"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("lego storage get outside the scope: %v", err)
	}
	all, err := ts.svc.ACMEDNSAccountsByDomain(ctx, ts.consumer)
	if err != nil || len(all) != 1 || all["www.example.org"].Password != a.Password {
		t.Fatalf("lego storage list %+v %v", all, err)
	}
	// After binding, updates go by the rules for the domain.
	if err := ts.update(a, "v"); err != nil {
		t.Fatal(err)
	}

	// Visibility: a consumer sees and reveals its own accounts only.
	list, _, err := ts.svc.ListACMEDNS(ctx, ts.consumer, ACMEDNSFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("consumer list %+v %v", list, err)
	}
	for _, acc := range list {
		if acc.Password != "" {
			t.Fatal("a list shows a password")
		}
	}
	if _, err := ts.svc.GetACMEDNS(ctx, ts.consumer, theirs.Username, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reveal another's: %v", err)
	}
	if err := ts.svc.DeleteACMEDNS(ctx, ts.consumer, theirs.Username); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete another's: %v", err)
	}
	if got, err := ts.svc.GetACMEDNS(ctx, ts.admin, a.Username, true); err != nil || got.Password != a.Password || got.Owner != "consumer" {
		t.Fatalf("admin reveal %+v %v", got, err)
	}
	if all, _, err := ts.svc.ListACMEDNS(ctx, ts.admin, ACMEDNSFilter{Domain: "www.example.org"}); err != nil || len(all) != 1 {
		t.Fatalf("admin list by domain %+v %v", all, err)
	}
	if evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "acme_dns.reveal"}); err != nil || len(evs) < 2 {
		t.Fatalf("reveal audit %v %v", evs, err)
	}

	// Deleting a domainless account removes its label.
	if err := ts.svc.DeleteACMEDNS(ctx, ts.consumer, b.Username); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.DelegationByName(ctx, b.Subdomain); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("label of a deleted domainless account: %v", err)
	}
	// A bound one keeps its delegation.
	if err := ts.svc.DeleteACMEDNS(ctx, ts.admin, a.Username); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.DelegationByDomain(ctx, "www.example.org"); err != nil {
		t.Fatal(err)
	}
	assertNoSecretInAudit(t, ts.db, a.Password, b.Password, theirs.Password)
}

func TestACMEDNSDelegationViews(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	a := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	ds, _, err := ts.svc.ListDelegations(ctx, ts.admin, DelegationFilter{})
	if err != nil || len(ds) != 1 || ds[0].Domain != "" || ds[0].CNAME != (CNAMERecord{}) || ds[0].Target != a.FullDomain+"." {
		t.Fatalf("domainless delegation in the list %+v %v", ds, err)
	}
	if _, err := ts.svc.GetDelegation(ctx, ts.admin, a.FullDomain); !errors.Is(err, ErrForbidden) {
		t.Fatalf("get by its hub-zone name: %v", err)
	}
}
