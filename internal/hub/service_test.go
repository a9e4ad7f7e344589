package hub

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// testService is a service over a real SQLite file, with one managed
// challenge config for rule and a consumer allowed rule.
type testService struct {
	svc       *Service
	db        *store.DB
	path      string
	kr        *secret.Keyring
	principal store.Principal
	tok       secret.Token
}

// newTestService opens the store (editStore adjusts its config) and the
// service (edit adjusts its config).
func newTestService(tb testing.TB, rule string, editStore func(*store.Config), edit func(*Config)) *testService {
	tb.Helper()
	ctx := context.Background()
	ts := &testService{path: filepath.Join(tb.TempDir(), "hub.db")}
	scfg := store.Config{Path: ts.path}
	if editStore != nil {
		editStore(&scfg)
	}
	db, err := store.Open(ctx, scfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	ts.db = db
	key, err := secret.GenerateKey("k1")
	if err != nil {
		tb.Fatal(err)
	}
	if ts.kr, err = secret.NewKeyring(key); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.SaveConfigChecked(ctx, store.ChallengeConfig{Name: "test", Provider: store.ProviderDelegated, Rule: rule},
		func([]store.ChallengeConfig) error { return nil }); err != nil {
		tb.Fatal(err)
	}
	if ts.principal, err = db.CreatePrincipal(ctx, store.Principal{Kind: store.PrincipalApp, Name: "consumer", Enabled: true}); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: ts.principal.ID, Role: store.RoleChallengeConsumer, Domains: rule}); err != nil {
		tb.Fatal(err)
	}
	ts.tok = ts.newToken(tb, db)
	cfg := Config{Zone: "acme.example.net.", DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour}
	if edit != nil {
		edit(&cfg)
	}
	ts.svc = New(db, ts.kr, cfg)
	return ts
}

// newToken creates a token of the consumer through db.
func (ts *testService) newToken(tb testing.TB, db *store.DB) secret.Token {
	tb.Helper()
	tok, err := secret.NewToken()
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.CreateToken(context.Background(), store.Token{ClientID: tok.ClientID, PrincipalID: ts.principal.ID, SecretHash: ts.kr.HashSecret(tok.Secret)}); err != nil {
		tb.Fatal(err)
	}
	return tok
}

// other opens the database a second time, as the admin CLI in another
// process would: its writes reach the service only through the store.
func (ts *testService) other(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{Path: ts.path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

var testSource = netip.MustParseAddr("192.0.2.1")

// TestAuthenticateSeesChanges: the authentication cache follows changes
// made by another process on the very next request.
func TestAuthenticateSeesChanges(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	svc, tok := ts.svc, ts.tok
	other := ts.other(t)
	ctx := t.Context()
	present := func(tok secret.Token) error {
		g, err := svc.Authenticate(ctx, tok, testSource)
		if err != nil {
			return err
		}
		_, err = svc.Present(ctx, g, PresentRequest{Identifier: "www.example.org", Value: "v", Source: testSource})
		return err
	}
	wantErr := func(step string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", step, err, want)
		}
	}
	wantErr("first", present(tok), nil)
	wantErr("cached", present(tok), nil)

	wrong := tok
	wrong.Secret = ts.newToken(t, other).Secret // a valid secret of another token
	wantErr("wrong secret", present(wrong), ErrUnauthenticated)

	p := ts.principal
	p.Enabled = false
	if _, err := other.UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantErr("disabled", present(tok), ErrUnauthenticated)
	p.Enabled = true
	if _, err := other.UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantErr("enabled again", present(tok), nil)

	as, err := other.RoleAssignments(ctx, p.ID)
	if err != nil || len(as) != 1 {
		t.Fatalf("assignments %v %v", as, err)
	}
	if err := other.RemoveRoleAssignment(ctx, as[0].ID); err != nil {
		t.Fatal(err)
	}
	wantErr("role removed", present(tok), ErrForbidden)
	if _, err := other.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: p.ID, Role: store.RoleChallengeConsumer, Domains: "www.example.org"}); err != nil {
		t.Fatal(err)
	}
	wantErr("role back", present(tok), nil)

	unknown, err := secret.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	wantErr("unknown client id", present(unknown), ErrUnauthenticated)
	if err := other.CreateToken(ctx, store.Token{ClientID: unknown.ClientID, PrincipalID: p.ID, SecretHash: ts.kr.HashSecret(unknown.Secret)}); err != nil {
		t.Fatal(err)
	}
	wantErr("created since", present(unknown), nil)

	if err := other.RevokeToken(ctx, tok.ClientID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	wantErr("revoked", present(tok), ErrUnauthenticated)
	wantErr("the other token", present(unknown), nil)
}

// TestChallengeAudit: every present and clean-up leaves exactly one audit
// event, whether it was committed with the value or on its own.
func TestChallengeAudit(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, func(c *Config) { c.MaxValuesPerPrincipal = 1 })
	svc, tok := ts.svc, ts.tok
	ctx := t.Context()
	g, err := svc.Authenticate(ctx, tok, testSource)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want string // action=result
	}{
		{"present", func() error {
			_, err := svc.Present(ctx, g, PresentRequest{Identifier: "a.example.org", Value: "v1", Source: testSource})
			return err
		}, "challenge.present=ok"},
		{"over the cap", func() error {
			_, err := svc.Present(ctx, g, PresentRequest{Identifier: "a.example.org", Value: "v2", Source: testSource})
			if !errors.Is(err, ErrLimit) {
				return fmt.Errorf("%w, want ErrLimit", err)
			}
			return nil
		}, "challenge.present=refused"},
		{"outside the scope", func() error {
			_, err := svc.Present(ctx, g, PresentRequest{Identifier: "example.net", Value: "v1", Source: testSource})
			if !errors.Is(err, ErrForbidden) {
				return fmt.Errorf("%w, want ErrForbidden", err)
			}
			return nil
		}, "challenge.present=denied"},
		{"clean up", func() error {
			n, err := svc.Cleanup(ctx, g, "a.example.org", "v1", testSource)
			if err == nil && n != 1 {
				return fmt.Errorf("removed %d", n)
			}
			return err
		}, "challenge.cleanup=ok"},
		{"clean up again", func() error {
			n, err := svc.Cleanup(ctx, g, "a.example.org", "v1", testSource)
			if err == nil && n != 0 {
				return fmt.Errorf("removed %d", n)
			}
			return err
		}, "challenge.cleanup=ok"},
		{"clean up, never presented", func() error {
			_, err := svc.Cleanup(ctx, g, "b.example.org", "v1", testSource)
			return err
		}, "challenge.cleanup=ok"},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		evs, err := ts.db.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != i+1 {
			t.Fatalf("%s: %d audit events, want %d", st.name, len(evs), i+1)
		}
		e := evs[0]
		if got := e.Action + "=" + e.Result; got != st.want || e.PrincipalID != g.Principal.ID || e.TokenID != tok.ClientID ||
			e.Source != testSource.String() || e.At.IsZero() {
			t.Fatalf("%s: event %+v, want %s", st.name, e, st.want)
		}
	}
}

// TestDelegationCacheSeesDeletion: a delegation deleted by another process
// is not used by the next present, which delegates the domain afresh.
func TestDelegationCacheSeesDeletion(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	svc, tok := ts.svc, ts.tok
	other := ts.other(t)
	ctx := t.Context()
	present := func(value string) Challenge {
		t.Helper()
		g, err := svc.Authenticate(ctx, tok, testSource)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := svc.Present(ctx, g, PresentRequest{Identifier: "a.example.org", Value: value, Source: testSource})
		if err != nil {
			t.Fatal(err)
		}
		st, err := svc.Status(ctx, g, ch.ID)
		if err != nil || !st.Live || st.Target != ch.Target {
			t.Fatalf("status %+v %v", st, err)
		}
		return ch
	}
	first := present("v1")
	if again := present("v2"); again.Target != first.Target {
		t.Fatalf("target moved from %s to %s", first.Target, again.Target)
	}
	d, err := other.DelegationByDomain(ctx, "a.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteDelegation(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	next := present("v3")
	if next.Target == first.Target {
		t.Fatalf("present after the deletion used the deleted delegation %s", first.Target)
	}
	if vs, err := ts.db.ListValues(ctx, next.Target); err != nil || len(vs) != 1 || vs[0].Value != "v3" {
		t.Fatalf("values at %s: %+v %v", next.Target, vs, err)
	}
}

func TestGenCache(t *testing.T) {
	t.Parallel()
	c := newGenCache[int](2)
	at := func(a, b int64) genKey { return genKey{a, b} }
	c.put(at(1, 1), "a", 1)
	if v, ok := c.get(at(1, 1), "a"); !ok || v != 1 {
		t.Fatalf("get = %d %v", v, ok)
	}
	// An older reader bypasses the cache and cannot put into it.
	if _, ok := c.get(at(1, 0), "a"); ok {
		t.Fatal("older generation hit")
	}
	c.put(at(0, 1), "b", 2)
	if _, ok := c.get(at(1, 1), "b"); ok {
		t.Fatal("older put kept")
	}
	// A newer one starts over.
	if _, ok := c.get(at(1, 2), "a"); ok {
		t.Fatal("stale entry after a bump")
	}
	if _, ok := c.get(at(1, 1), "a"); ok {
		t.Fatal("the cache went back")
	}
	// At most max entries.
	for i, k := range []string{"a", "b", "c"} {
		c.put(at(1, 2), k, i)
	}
	if _, ok := c.get(at(1, 2), "a"); ok {
		t.Fatal("more than max entries kept")
	}
	if v, ok := c.get(at(1, 2), "c"); !ok || v != 2 {
		t.Fatalf("newest entry: %d %v", v, ok)
	}
}
