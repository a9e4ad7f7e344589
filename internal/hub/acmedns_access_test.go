package hub

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// challengeAdmin is a principal holding managed_challenge_admin for rule,
// as a grant.
func (ts *acmeDNSService) challengeAdmin(t *testing.T, name, rule string) Grant {
	t.Helper()
	p, err := ts.db.CreatePrincipal(t.Context(), store.Principal{Kind: store.PrincipalUser, Name: name, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.AddRoleAssignment(t.Context(), store.RoleAssignment{PrincipalID: p.ID, Role: store.RoleChallengeAdmin, Domains: rule}); err != nil {
		t.Fatal(err)
	}
	r, err := rules.Parse(rule)
	if err != nil {
		t.Fatal(err)
	}
	return Grant{Principal: Principal{ID: p.ID, Name: p.Name}, Assignments: []Assignment{{Role: RoleChallengeAdmin, Domains: r}}}
}

func (ts *acmeDNSService) accountCount(t *testing.T, owner int64) int {
	t.Helper()
	list, err := ts.db.ListACMEDNSAccounts(t.Context(), store.ACMEDNSFilter{OwnerPrincipalID: owner})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestACMEDNSRegisterForAnotherNeedsAdmin: an account owned by another
// principal counts against its caps and writes in its name, so only the
// admin role may make one; a challenge admin may name itself.
func TestACMEDNSRegisterForAnotherNeedsAdmin(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	ca := ts.challengeAdmin(t, "ca", "*.example.org")
	for _, reg := range []ACMEDNSRegistration{
		{Owner: "root"},
		{Owner: "ROOT"},
		{Owner: "consumer", Domain: "a.example.org"},
		{Owner: "nobody"}, // refused before the name is looked up: no probing
	} {
		if _, err := ts.svc.RegisterACMEDNS(ctx, ca, reg); !errors.Is(err, ErrForbidden) {
			t.Errorf("challenge admin, %+v: %v, want forbidden", reg, err)
		}
	}
	if n := ts.accountCount(t, ts.adminP.ID); n != 0 {
		t.Fatalf("root owns %d accounts made by a challenge admin", n)
	}
	if evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "acme_dns.register", Result: "denied"}); err != nil || len(evs) != 4 {
		t.Fatalf("refusals audited: %d %v", len(evs), err)
	}
	// Naming itself is registering for itself.
	own := ts.register(t, ca, ACMEDNSRegistration{Owner: "CA", Domain: "b.example.org"})
	if own.OwnerID != ca.Principal.ID {
		t.Fatalf("own account %+v", own)
	}
	// The admin may.
	if a := ts.register(t, ts.admin, ACMEDNSRegistration{Owner: "consumer"}); a.OwnerID != ts.principal.ID {
		t.Fatalf("admin-made account %+v", a)
	}
}

// TestACMEDNSAllowFromWithinToken: an account registered through a token
// limited to some networks is limited to them too.
func TestACMEDNSAllowFromWithinToken(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	tok, err := secret.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.db.CreateToken(ctx, store.Token{ClientID: tok.ClientID, PrincipalID: ts.principal.ID,
		SecretHash: ts.kr.HashSecret(tok.Secret), AllowCIDRs: []string{"198.51.100.0/24", "2001:db8::/32"}}); err != nil {
		t.Fatal(err)
	}
	inside := netip.MustParseAddr("198.51.100.7")
	g, err := ts.svc.Authenticate(ctx, tok, inside)
	if err != nil {
		t.Fatal(err)
	}
	// None asked: the token's list.
	a := ts.register(t, g, ACMEDNSRegistration{Source: inside})
	if got := prefixStrings(a.AllowFrom); !slices.Equal(got, []string{"198.51.100.0/24", "2001:db8::/32"}) {
		t.Fatalf("default allow-from %v", got)
	}
	// Within it: kept as asked.
	narrow := ts.register(t, g, ACMEDNSRegistration{AllowFrom: []netip.Prefix{
		netip.MustParsePrefix("198.51.100.128/25"), netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("::ffff:198.51.100.9/128"),
	}})
	if got := prefixStrings(narrow.AllowFrom); !slices.Equal(got, []string{"198.51.100.9/32", "198.51.100.128/25", "2001:db8:1::/48"}) {
		t.Fatalf("narrow allow-from %v", got)
	}
	for _, p := range []string{"10.0.0.0/8", "198.51.0.0/16", "0.0.0.0/0", "2001::/16"} {
		_, err := ts.svc.RegisterACMEDNS(ctx, g, ACMEDNSRegistration{AllowFrom: []netip.Prefix{netip.MustParsePrefix(p)}})
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrAllowFrom) || !strings.Contains(err.Error(), p) {
			t.Errorf("allow-from %s: %v", p, err)
		}
	}
	// The account keeps to the networks, and lives on, after its token is
	// revoked.
	if err := ts.db.RevokeToken(ctx, tok.ClientID, time.Now()); err != nil {
		t.Fatal(err)
	}
	upd := func(src string) error {
		_, err := ts.svc.UpdateACMEDNS(ctx, ACMEDNSUpdate{Username: a.Username, Password: a.Password, Subdomain: a.Subdomain,
			TXT: "v", Source: netip.MustParseAddr(src)})
		return err
	}
	if err := upd("203.0.113.5"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("update from outside the token's networks: %v", err)
	}
	if err := upd("198.51.100.8"); err != nil {
		t.Fatalf("update from inside: %v", err)
	}
	// A token without a list leaves the account's as asked (none: anywhere).
	if free := ts.register(t, ts.consumer, ACMEDNSRegistration{}); len(free.AllowFrom) != 0 {
		t.Fatalf("allow-from without a token list %v", free.AllowFrom)
	}
}

// TestACMEDNSUpdateFollowsOwnerRoles: an account stops with its owner's
// right to answer challenges (for its domain), changed by another process,
// on the very next request; the audit log says why.
func TestACMEDNSUpdateFollowsOwnerRoles(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, func(c *Config) { c.Failures.Burst = 100 })
	ctx := t.Context()
	free := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	bound := ts.register(t, ts.consumer, ACMEDNSRegistration{Domain: "www.example.org"})
	open, err := ts.svc.RegisterACMEDNSOpen(ctx, nil, testSource)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []ACMEDNSAccount{free, bound, open} {
		if err := ts.update(a, "v"); err != nil {
			t.Fatalf("before: %s: %v", a.Username, err)
		}
	}
	other := ts.other(t)
	roles, err := other.RoleAssignments(ctx, ts.principal.ID)
	if err != nil || len(roles) != 1 {
		t.Fatalf("roles %v %v", roles, err)
	}
	if err := other.RemoveRoleAssignment(ctx, roles[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, a := range []ACMEDNSAccount{free, bound} {
		if err := ts.update(a, "v"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("owner without roles: %s: %v", a.Username, err)
		}
	}
	// Open registrations have no roles to lose.
	if err := ts.update(open, "v"); err != nil {
		t.Fatalf("open registration: %v", err)
	}
	// A role elsewhere: the domainless account works again, the bound one
	// not (its domain is outside the owner's scope).
	if _, err := other.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: ts.principal.ID, Role: store.RoleChallengeConsumer,
		Domains: "other.example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := ts.update(free, "v"); err != nil {
		t.Fatalf("domainless, owner with a role: %v", err)
	}
	if err := ts.update(bound, "v"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bound, domain out of the owner's scope: %v", err)
	}
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "auth", Result: "failed_auth"})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, ev := range evs {
		details = append(details, ev.Detail)
	}
	for _, want := range []string{
		"acme-dns: owner consumer no longer holds a role allowing challenges",
		"acme-dns: the account's domain www.example.org is outside its owner consumer's scope for challenges",
	} {
		if !slices.Contains(details, want) {
			t.Errorf("no audit event %q in %q", want, details)
		}
	}
	// The scope back: the bound account works again.
	if _, err := other.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: ts.principal.ID, Role: store.RoleChallengeConsumer,
		Domains: "*.example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := ts.update(bound, "v"); err != nil {
		t.Fatalf("scope restored: %v", err)
	}
}

// TestACMEDNSLimiterKeys: failures are limited per well-formed username
// across networks; anything else sent as a username gets no key of its own.
func TestACMEDNSLimiterKeys(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil) // a burst of 4
	ctx := t.Context()
	try := func(username string, i int) error {
		src := netip.AddrFrom4([4]byte{10, byte(i), 0, 1}) // a network of its own each time
		_, err := ts.svc.UpdateACMEDNS(ctx, ACMEDNSUpdate{Username: username, Password: strings.Repeat("x", 40), Subdomain: "s", TXT: "v", Source: src})
		return err
	}
	junk := strings.Repeat("u", 16<<10)
	for i := range 8 {
		if err := try(junk, i); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("malformed username, attempt %d: %v", i, err)
		}
	}
	known := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	for i := range 4 {
		if err := try(strings.ToUpper(known.Username), 100+i); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("wrong password, attempt %d: %v", i, err)
		}
	}
	if err := try(known.Username, 200); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a username past its burst: %v", err)
	}
}

// TestACMEDNSListPaging: following next_after yields every visible
// account once, for the admin, a challenge admin whose pages are thinned
// by visibility, and a consumer whose one account is behind many others.
func TestACMEDNSListPaging(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, func(c *Config) { c.ACMEDNSMaxAccounts = 0 })
	ctx := t.Context()
	ca := ts.challengeAdmin(t, "ca", "www.example.org")
	var all, caSees, consumerSees []string
	for range 17 {
		all = append(all, ts.register(t, ts.admin, ACMEDNSRegistration{}).Username)
	}
	for _, d := range []string{"a.example.org", "b.example.org"} {
		all = append(all, ts.register(t, ts.admin, ACMEDNSRegistration{Domain: d}).Username)
	}
	for range 2 {
		u := ts.register(t, ts.admin, ACMEDNSRegistration{Domain: "www.example.org"}).Username
		all, caSees = append(all, u), append(caSees, u)
	}
	own := ts.register(t, ca, ACMEDNSRegistration{}).Username
	all, caSees = append(all, own), append(caSees, own)
	mine := ts.register(t, ts.consumer, ACMEDNSRegistration{}).Username
	all, consumerSees = append(all, mine), append(consumerSees, mine)

	pages := func(g Grant, f ACMEDNSFilter) []string {
		t.Helper()
		var got []string
		for range 100 {
			page, next, err := ts.svc.ListACMEDNS(ctx, g, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > f.Limit {
				t.Fatalf("a page of %d, limit %d", len(page), f.Limit)
			}
			for _, a := range page {
				got = append(got, a.Username)
			}
			if next == "" {
				return got
			}
			f.AfterID = next
		}
		t.Fatal("paging does not end")
		return nil
	}
	for _, tc := range []struct {
		name string
		g    Grant
		want []string
	}{
		{"admin", ts.admin, all},
		{"challenge admin", ca, caSees},
		{"consumer", ts.consumer, consumerSees},
	} {
		slices.Sort(tc.want)
		if got := pages(tc.g, ACMEDNSFilter{Limit: 5}); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %d accounts %v, want %d %v", tc.name, len(got), got, len(tc.want), tc.want)
		}
	}
	// The consumer's one account is on its first page, which is the last.
	if page, next, err := ts.svc.ListACMEDNS(ctx, ts.consumer, ACMEDNSFilter{Limit: 1}); err != nil || len(page) != 1 || next == "" {
		t.Fatalf("consumer, limit 1: %v %q %v", page, next, err)
	}
	if page, next, err := ts.svc.ListACMEDNS(ctx, ts.consumer, ACMEDNSFilter{Limit: 5}); err != nil || len(page) != 1 || next != "" {
		t.Fatalf("consumer, limit 5: %v %q %v", page, next, err)
	}
}

// TestACMEDNSListOwnerFilter: a caller who may see only its own accounts
// learns nothing about other principals from the owner filter.
func TestACMEDNSListOwnerFilter(t *testing.T) {
	t.Parallel()
	ts := newACMEDNSService(t, nil)
	ctx := t.Context()
	ts.register(t, ts.admin, ACMEDNSRegistration{})
	mine := ts.register(t, ts.consumer, ACMEDNSRegistration{})
	for owner, want := range map[string]int{"root": 0, "nobody": 0, "consumer": 1, "CONSUMER": 1, "": 1} {
		page, next, err := ts.svc.ListACMEDNS(ctx, ts.consumer, ACMEDNSFilter{Owner: owner})
		if err != nil || len(page) != want || next != "" || want == 1 && page[0].Username != mine.Username {
			t.Errorf("consumer, owner %q: %v %q %v", owner, page, next, err)
		}
	}
	if _, _, err := ts.svc.ListACMEDNS(ctx, ts.admin, ACMEDNSFilter{Owner: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("admin, unknown owner: %v", err)
	}
	if page, _, err := ts.svc.ListACMEDNS(ctx, ts.admin, ACMEDNSFilter{Owner: "consumer"}); err != nil || len(page) != 1 {
		t.Errorf("admin, owner consumer: %v %v", page, err)
	}
}

func TestACMEDNSNewerThan(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := ACMEDNSAccount{Username: "00000000-0000-4000-8000-00000000000a", CreatedAt: at}
	b := ACMEDNSAccount{Username: "00000000-0000-4000-8000-00000000000b", CreatedAt: at}
	c := ACMEDNSAccount{Username: "00000000-0000-4000-8000-000000000000", CreatedAt: at.Add(time.Millisecond)}
	if !b.NewerThan(a) || a.NewerThan(b) || !c.NewerThan(b) || b.NewerThan(c) || a.NewerThan(a) {
		t.Fatal("NewerThan: want creation, then username, strictly")
	}
	sa := store.ACMEDNSAccount{Username: a.Username, CreatedAt: at}
	sb := store.ACMEDNSAccount{Username: b.Username, CreatedAt: at}
	if !newer(sb, sa) || newer(sa, sb) {
		t.Fatal("newer disagrees with NewerThan")
	}
}
