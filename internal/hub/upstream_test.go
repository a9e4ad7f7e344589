package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/store"
)

// fakeUpstreams is a provider world in memory: the TXT values per name, as
// an upstream DNS would hold them, and every call made.
type fakeUpstreams struct {
	mu      sync.Mutex
	txt     map[string][]string // fqdn -> values
	calls   []string            // "op provider name value"
	failAdd error
	failRm  error
	fields  []map[string]string // fields of every driver made
	// entered, when set, receives once per add, which then waits for
	// release: a provider call held in flight.
	entered, release chan struct{}
}

func newFakeUpstreams() *fakeUpstreams { return &fakeUpstreams{txt: map[string][]string{}} }

func (f *fakeUpstreams) ValueDriver(provider string, fields map[string]string) (upstream.Driver, error) {
	if provider != "cloudflare" && provider != "rfc2136" {
		return nil, upstream.ErrNoDriver
	}
	f.mu.Lock()
	f.fields = append(f.fields, fields)
	f.mu.Unlock()
	return fakeValueDriver{f, provider}, nil
}

func (f *fakeUpstreams) KeyAuthDriver(_, provider string, _ map[string]string) (upstream.KeyAuthDriver, error) {
	return fakeLegoDriver{f, provider}, nil
}
func (f *fakeUpstreams) HasValueDriver(p string) bool   { return p == "cloudflare" || p == "rfc2136" }
func (f *fakeUpstreams) HasKeyAuthDriver(p string) bool { return p != "cloudflare" }
func (f *fakeUpstreams) ReplacesSet(p string) bool      { return p == "rfc2136" }
func (f *fakeUpstreams) ValueProviders() []string       { return []string{"cloudflare", "rfc2136"} }

func (f *fakeUpstreams) record(op, provider, name, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+provider+" "+name+" "+value)
	switch op {
	case "add":
		if f.failAdd != nil {
			return f.failAdd
		}
		if !slices.Contains(f.txt[name], value) {
			f.txt[name] = append(f.txt[name], value)
		}
	case "set": // lego's rfc2136: the whole set replaced
		if f.failAdd != nil {
			return f.failAdd
		}
		f.txt[name] = []string{value}
	case "remove":
		if f.failRm != nil {
			return f.failRm
		}
		f.txt[name] = slices.DeleteFunc(f.txt[name], func(v string) bool { return v == value })
	}
	return nil
}

func (f *fakeUpstreams) values(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.txt[name])
}

func (f *fakeUpstreams) setFailures(add, rm error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAdd, f.failRm = add, rm
}

type fakeValueDriver struct {
	f        *fakeUpstreams
	provider string
}

func (d fakeValueDriver) Add(_ context.Context, fqdn, value string, _ uint32) error {
	if d.f.entered != nil {
		d.f.entered <- struct{}{}
		<-d.f.release
	}
	return d.f.record("add", d.provider, fqdn, value)
}

func (d fakeValueDriver) Remove(_ context.Context, fqdn, value string) error {
	return d.f.record("remove", d.provider, fqdn, value)
}

type fakeLegoDriver struct {
	f        *fakeUpstreams
	provider string
}

func (d fakeLegoDriver) Present(_ context.Context, domain, keyAuth string) error {
	v, _ := challengeValue("", keyAuth)
	op := "add"
	if d.f.ReplacesSet(d.provider) {
		op = "set"
	}
	return d.f.record(op, d.provider, "_acme-challenge."+domain+".", v)
}

func (d fakeLegoDriver) CleanUp(_ context.Context, domain, keyAuth string) error {
	v, _ := challengeValue("", keyAuth)
	return d.f.record("remove", d.provider, "_acme-challenge."+domain+".", v)
}

// upstreamService is a test service whose config "up" sends
// *.upstream.test through provider with a stored credential.
type upstreamService struct {
	*testService
	fake     *fakeUpstreams
	admin    Grant
	consumer Grant
	clock    *time.Time
	observed []string
}

func newUpstreamService(t *testing.T, provider, engine string) *upstreamService {
	t.Helper()
	us := &upstreamService{fake: newFakeUpstreams()}
	now := time.Now()
	us.clock = &now
	us.testService = newTestService(t, "*.upstream.test", nil, func(c *Config) {
		c.Upstreams = us.fake
		c.UpstreamMaxAttempts = 3
		c.UpstreamObserve = func(p, e, op, result string, _ time.Duration) {
			us.observed = append(us.observed, strings.Join([]string{p, e, op, result}, " "))
		}
	})
	us.svc.now = func() time.Time { return *us.clock }
	us.admin = us.adminGrant(t, "alice", "*")
	fields := map[string]string{"CF_DNS_API_TOKEN": credValue}
	if provider == "rfc2136" {
		fields = map[string]string{"DNSUPDATE_NAMESERVER": "127.0.0.1:53", "DNSUPDATE_TSIG_KEY": "k.", "DNSUPDATE_TSIG_SECRET": credValue}
	}
	if _, err := us.svc.CreateCredential(t.Context(), us.admin, CredentialRequest{Name: "cred", Provider: provider, Fields: fields}); err != nil {
		t.Fatal(err)
	}
	// The config made by newTestService is delegated; make it upstream.
	cfgs, err := us.svc.ListManagedChallenges(t.Context(), us.admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.svc.UpdateManagedChallenge(t.Context(), us.admin, cfgs[0].ID, ManagedChallengeRequest{
		Name: "up", Provider: provider, Credential: "cred", Engine: engine, Rule: "*.upstream.test", Lifetime: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	us.consumer, err = us.svc.Authenticate(t.Context(), us.tok, testSource)
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func (us *upstreamService) advance(d time.Duration) { *us.clock = us.clock.Add(d) }

func (us *upstreamService) records(t *testing.T, state string) []UpstreamRecord {
	t.Helper()
	recs, err := us.svc.ListUpstreamRecords(t.Context(), us.admin, state, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

const upName = "_acme-challenge.upstream.test."

func TestUpstreamValueEngine(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	a, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "*.upstream.test", Value: "value-a-0123456789012345678901234567890123"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Live || a.Provider != "cloudflare" || a.RecordName != upName || a.Target != "" {
		t.Fatalf("present: %+v", a)
	}
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: "value-b-0123456789012345678901234567890123"}); err != nil {
		t.Fatal(err)
	}
	if got := us.fake.values(upName); len(got) != 2 {
		t.Fatalf("upstream holds %v, want both values", got)
	}
	if us.fake.fields[0]["CF_DNS_API_TOKEN"] != credValue {
		t.Fatal("the driver did not get the stored credential")
	}
	st, err := us.svc.Status(ctx, us.consumer, a.ID)
	if err != nil || !st.Live {
		t.Fatalf("status %+v, %v", st, err)
	}
	n, err := us.svc.Cleanup(ctx, us.consumer, "*.upstream.test", a.Value, testSource)
	if err != nil || n != 1 {
		t.Fatalf("cleanup: %d, %v", n, err)
	}
	if got := us.fake.values(upName); !slices.Equal(got, []string{"value-b-0123456789012345678901234567890123"}) {
		t.Fatalf("after cleanup upstream holds %v", got)
	}
	if st, _ := us.svc.Status(ctx, us.consumer, a.ID); st.Live {
		t.Fatal("cleaned-up value still live")
	}
	if recs := us.records(t, ""); len(recs) != 1 || recs[0].State != store.UpstreamLive {
		t.Fatalf("records %+v", recs)
	}
	// Every provider call is audited with provider, domain, result and
	// duration, and counted.
	evs, err := us.db.ListAudit(ctx, store.AuditFilter{Action: "upstream.present"})
	if err != nil || len(evs) != 2 || evs[0].Domain != "upstream.test" || evs[0].Result != "ok" ||
		!strings.Contains(evs[0].Detail, "provider cloudflare (value)") || !strings.HasSuffix(evs[0].Detail, "ms") {
		t.Fatalf("audit %+v, %v", evs, err)
	}
	if !slices.Contains(us.observed, "cloudflare value cleanup ok") {
		t.Fatalf("observed %v", us.observed)
	}
	// The credential's value is in no audit row.
	all, _ := us.db.ListAudit(ctx, store.AuditFilter{})
	for _, e := range all {
		if strings.Contains(e.Detail, credValue) {
			t.Fatalf("secret in audit: %+v", e)
		}
	}
}

func TestUpstreamLegoEngine(t *testing.T) {
	us := newUpstreamService(t, "rfc2136", EngineLego)
	ctx := t.Context()
	// A value-only client cannot be served by lego's provider.
	_, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: "value-a-0123456789012345678901234567890123"})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "key authorization") || !strings.Contains(err.Error(), "delegate") {
		t.Fatalf("value-only: %v", err)
	}
	a, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", KeyAuthorization: "token-a.thumb"})
	if err != nil {
		t.Fatal(err)
	}
	// lego's rfc2136 replaces the set: a second value is refused, the
	// first stays.
	_, err = us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "*.upstream.test", KeyAuthorization: "token-b.thumb"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "replaces every TXT value") {
		t.Fatalf("second value: %v", err)
	}
	if got := us.fake.values(upName); !slices.Equal(got, []string{a.Value}) {
		t.Fatalf("upstream holds %v", got)
	}
	// The same value again is no conflict.
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", KeyAuthorization: "token-a.thumb"}); err != nil {
		t.Fatal(err)
	}
	// A value-only clean-up works: the key authorization was recorded.
	if n, err := us.svc.Cleanup(ctx, us.consumer, "upstream.test", a.Value, testSource); err != nil || n != 1 {
		t.Fatalf("cleanup %d, %v", n, err)
	}
	if got := us.fake.values(upName); len(got) != 0 {
		t.Fatalf("upstream holds %v after cleanup", got)
	}
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "*.upstream.test", KeyAuthorization: "token-b.thumb"}); err != nil {
		t.Fatalf("after the first is gone: %v", err)
	}
}

func TestUpstreamFailuresAreRetriedThenReported(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", EngineValue)
	ctx := t.Context()
	a, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: "value-a-0123456789012345678901234567890123"})
	if err != nil {
		t.Fatal(err)
	}
	us.fake.setFailures(nil, fmt.Errorf("api says no"))
	_, err = us.svc.Cleanup(ctx, us.consumer, "upstream.test", a.Value, testSource)
	if !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "api says no") || !strings.Contains(err.Error(), "cloudflare") {
		t.Fatalf("cleanup: %v", err)
	}
	recs := us.records(t, store.UpstreamRemoving)
	if len(recs) != 1 || recs[0].Attempts != 1 || !strings.Contains(recs[0].LastError, "api says no") || recs[0].NextAttemptAt.IsZero() {
		t.Fatalf("removing %+v", recs)
	}
	if counts, _ := us.db.CountUpstreamRecords(ctx); counts[store.UpstreamRemoving] != 1 {
		t.Fatalf("states %v", counts)
	}
	// Not due yet: the sweep leaves it.
	if n := us.svc.SweepUpstream(ctx); n != 0 {
		t.Fatalf("swept %d before its next attempt", n)
	}
	// Two more failed attempts (max 3): failed, reported, no longer swept.
	for range 2 {
		us.advance(2 * time.Hour)
		if n := us.svc.SweepUpstream(ctx); n != 1 {
			t.Fatalf("swept %d", n)
		}
	}
	recs = us.records(t, store.UpstreamFailed)
	if len(recs) != 1 || recs[0].Attempts != 3 {
		t.Fatalf("failed %+v", recs)
	}
	us.advance(24 * time.Hour)
	if n := us.svc.SweepUpstream(ctx); n != 0 {
		t.Fatalf("a failed record was swept again (%d)", n)
	}
	// An admin retries once the provider works again: removed, forgotten.
	us.fake.setFailures(nil, nil)
	if err := us.svc.RetryUpstreamRecord(ctx, us.admin, recs[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := us.fake.values(upName); len(got) != 0 || len(us.records(t, "")) != 0 {
		t.Fatalf("after retry: upstream %v, records %+v", got, us.records(t, ""))
	}
	// Consumers see none of this.
	if _, err := us.svc.ListUpstreamRecords(ctx, us.consumer, "", 0, 10); !errors.Is(err, ErrForbidden) {
		t.Fatalf("consumer list: %v", err)
	}
}

func TestUpstreamFailedPresentLeavesARemoval(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	us.fake.setFailures(errors.New("timeout talking to the API"), nil)
	_, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: "value-a-0123456789012345678901234567890123"})
	if !errors.Is(err, ErrUpstream) {
		t.Fatalf("present: %v", err)
	}
	// Whether the provider wrote something is unknown: a removal is due.
	recs := us.records(t, store.UpstreamRemoving)
	if len(recs) != 1 || recs[0].Attempts != 0 {
		t.Fatalf("records %+v", recs)
	}
	us.fake.setFailures(nil, nil)
	us.advance(time.Minute)
	if n := us.svc.SweepUpstream(ctx); n != 1 || len(us.records(t, "")) != 0 {
		t.Fatalf("swept %d, records %+v", n, us.records(t, ""))
	}
}

func TestUpstreamExpiryAndCrashedCalls(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: "value-a-0123456789012345678901234567890123"}); err != nil {
		t.Fatal(err)
	}
	// A call that died with its process: the record stayed "adding".
	if _, _, err := us.db.BeginUpstreamRecord(ctx, store.UpstreamRecord{
		ConfigID: 1, CredentialID: 1, Provider: "cloudflare", Engine: store.EngineValue, Domain: "upstream.test",
		FQDN: upName, Value: "value-c-0123456789012345678901234567890123", TTL: 60, State: store.UpstreamAdding,
		CreatedAt: *us.clock, ExpiresAt: us.clock.Add(time.Hour),
	}, store.UpstreamLimits{}); err != nil {
		t.Fatal(err)
	}
	us.fake.txt[upName] = append(us.fake.txt[upName], "value-c-0123456789012345678901234567890123")
	us.advance(30 * time.Minute) // stale "adding", value a not expired
	if n := us.svc.SweepUpstream(ctx); n != 1 {
		t.Fatalf("swept %d, want the stale call's record", n)
	}
	if got := us.fake.values(upName); !slices.Equal(got, []string{"value-a-0123456789012345678901234567890123"}) {
		t.Fatalf("upstream holds %v", got)
	}
	us.advance(time.Hour) // value a expired: removed without any clean-up
	if n := us.svc.SweepUpstream(ctx); n != 1 || len(us.fake.values(upName)) != 0 || len(us.records(t, "")) != 0 {
		t.Fatalf("expiry: swept %d, upstream %v", n, us.fake.values(upName))
	}
}

func TestUpstreamConfigValidation(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	save := func(g Grant, req ManagedChallengeRequest) error {
		req.Name = "other"
		if req.Rule == "" {
			req.Rule = "other.test"
		}
		_, err := us.svc.CreateManagedChallenge(ctx, g, req)
		return err
	}
	for _, c := range []struct {
		req  ManagedChallengeRequest
		want error
		text string
	}{
		{ManagedChallengeRequest{Provider: "nosuch", Credential: "cred"}, ErrInvalid, "providers list"},
		{ManagedChallengeRequest{Provider: "cloudflare"}, ErrInvalid, "needs a credential"},
		{ManagedChallengeRequest{Provider: "cloudflare", Credential: "missing"}, ErrInvalid, "does not exist"},
		{ManagedChallengeRequest{Provider: "route53", Credential: "cred"}, ErrInvalid, `is for provider "cloudflare"`},
		{ManagedChallengeRequest{Provider: "cloudflare", Credential: "cred", Engine: "lego"}, ErrUnsupported, "not in this build"},
		{ManagedChallengeRequest{Provider: "cloudflare", Credential: "cred", Engine: "magic"}, ErrInvalid, "engine"},
		{ManagedChallengeRequest{Provider: "delegated", Credential: "cred"}, ErrInvalid, "upstream providers"},
	} {
		err := save(us.admin, c.req)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%+v: %v, want %v containing %q", c.req, err, c.want, c.text)
		}
	}
	// An alias is stored as the catalogue's code; the id works too.
	if err := save(us.admin, ManagedChallengeRequest{Provider: "CloudFlare", Credential: "1"}); err != nil {
		t.Fatal(err)
	}
	// A challenge admin restricted to some domains may not route through
	// a credential (it reaches wherever the provider account does).
	restricted := us.adminGrant(t, "bob", "*.other.test")
	if err := save(restricted, ManagedChallengeRequest{Name: "r", Provider: "cloudflare", Credential: "cred", Rule: "x.other.test"}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("restricted admin: %v", err)
	}
	// acme-dns accounts need a delegated config.
	_, err := us.svc.RegisterACMEDNS(ctx, us.consumer, ACMEDNSRegistration{Domain: "upstream.test"})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("acme-dns for an upstream domain: %v", err)
	}
}

// TestUpstreamRacesWithACallInFlight: while a present's provider call is in
// flight, the same value again is refused as busy, and a clean-up makes it
// due at once: the sweep removes it right after the write, so the value is
// neither forgotten upstream nor left there until its expiry.
func TestUpstreamRacesWithACallInFlight(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	us.fake.entered, us.fake.release = make(chan struct{}), make(chan struct{})
	const v = "value-a-0123456789012345678901234567890123"
	done := make(chan error, 1)
	go func() {
		_, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: v})
		done <- err
	}()
	<-us.fake.entered // the write is in flight
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: v}); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "right now") {
		t.Fatalf("identical present during the write: %v", err)
	}
	if n, err := us.svc.Cleanup(ctx, us.consumer, "upstream.test", v, testSource); err != nil || n != 1 {
		t.Fatalf("cleanup during the write: %d, %v", n, err)
	}
	us.fake.entered = nil
	close(us.fake.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := us.fake.values(upName); len(got) != 1 {
		t.Fatalf("after the write: %v", got)
	}
	if n := us.svc.SweepUpstream(ctx); n != 1 || len(us.fake.values(upName)) != 0 || len(us.records(t, "")) != 0 {
		t.Fatalf("sweep after the cleaned-up write: %d swept, upstream %v, records %+v", n, us.fake.values(upName), us.records(t, ""))
	}
}

// TestUpstreamSweepLosesToRePresent: a value presented again after the
// sweep read it as expired keeps its new expiry: the sweep's claim fails
// and the value stays.
func TestUpstreamSweepLosesToRePresent(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	const v = "value-a-0123456789012345678901234567890123"
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: v}); err != nil {
		t.Fatal(err)
	}
	us.advance(2 * time.Hour)
	due, err := us.db.DueUpstreamRecords(ctx, *us.clock, us.clock.Add(-time.Hour), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due %+v, %v", due, err)
	}
	// The client presents again between the sweep's read and its claim.
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: v}); err != nil {
		t.Fatal(err)
	}
	if removed, err := us.svc.removeUpstream(ctx, Grant{}, due[0]); removed || err != nil {
		t.Fatalf("stale removal: removed %v, %v", removed, err)
	}
	if got := us.fake.values(upName); len(got) != 1 {
		t.Fatalf("upstream holds %v, want the re-presented value", got)
	}
}

// TestUpstreamStrayAfterConfigChange: a value written upstream before the
// domain's config became delegated is removed by the client's clean-up.
func TestUpstreamStrayAfterConfigChange(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	const v = "value-a-0123456789012345678901234567890123"
	if _, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: v}); err != nil {
		t.Fatal(err)
	}
	cfgs, err := us.svc.ListManagedChallenges(ctx, us.admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.svc.UpdateManagedChallenge(ctx, us.admin, cfgs[0].ID, ManagedChallengeRequest{
		Name: "up", Rule: "*.upstream.test",
	}); err != nil {
		t.Fatal(err)
	}
	n, err := us.svc.Cleanup(ctx, us.consumer, "upstream.test", v, testSource)
	if err != nil || n != 1 || len(us.fake.values(upName)) != 0 || len(us.records(t, "")) != 0 {
		t.Fatalf("cleanup: %d, %v; upstream %v", n, err, us.fake.values(upName))
	}
}

// TestUpstreamValuesPerName: a name holds at most 32 upstream values.
func TestUpstreamValuesPerName(t *testing.T) {
	us := newUpstreamService(t, "cloudflare", "")
	ctx := t.Context()
	for i := range maxPerName + 1 {
		_, err := us.svc.Present(ctx, us.consumer, PresentRequest{Identifier: "upstream.test", Value: fmt.Sprintf("value-%02d-012345678901234567890123456789012", i)})
		if i < maxPerName && err != nil {
			t.Fatal(err)
		}
		if i == maxPerName && !errors.Is(err, ErrLimit) {
			t.Fatalf("value %d: %v, want the limit", i, err)
		}
	}
	vals, err := us.svc.ChallengeValues(ctx, us.consumer, "upstream.test")
	if err != nil || len(vals) != maxPerName {
		t.Fatalf("ChallengeValues: %d, %v", len(vals), err)
	}
}
