package acmetest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/providers/dns/httpreq"
)

// The upstream tests use Knot as the domain's own DNS: upstream.test is
// not delegated to the hub, whose managed challenge config names the
// rfc2136 provider and a stored credential with Knot's TSIG key.
const (
	upstreamZone = "upstream.test."
	upstreamName = "_acme-challenge.upstream.test."
)

// upstreamWait bounds each wait for something the hub does in the
// background (a sweep, a retry); the tests poll, so it only matters when
// the hub never does it.
const upstreamWait = 60 * time.Second

// upstream is a hub whose configs forward to Knot.
type upstream struct {
	knot   *Knot
	res    *Resolver // forwards upstream.test to Knot: Pebble's and the hub's resolver
	hub    *Hub
	hubCfg HubConfig // to start it again on the same data dir
	admin  string    // the bootstrap admin token
}

// startUpstream starts Knot for upstream.test, a Resolver forwarding the
// zone to it, and a hub using that Resolver as its check resolver (and so
// as lego's in the worker), with more serve flags args.
func startUpstream(t *testing.T, args ...string) *upstream {
	t.Helper()
	u := &upstream{knot: StartKnot(t, upstreamZone), res: NewResolver(t)}
	u.res.Forward(upstreamZone, u.knot.Addr)
	u.hubCfg = HubConfig{Args: append([]string{"--check-resolver", u.res.Addr()}, args...)}
	u.hub = StartHub(t, u.hubCfg)
	u.hubCfg.DataDir = u.hub.DataDir
	u.admin = u.hub.Token
	return u
}

// knotFields are the rfc2136 credential fields for k with secret, named as
// the hub's provider catalogue (lego v4.35.2) names them.
func knotFields(k *Knot, secret string) map[string]string {
	return map[string]string{
		"DNSUPDATE_NAMESERVER":     k.Addr,
		"DNSUPDATE_TSIG_KEY":       k.KeyName,
		"DNSUPDATE_TSIG_SECRET":    secret,
		"DNSUPDATE_TSIG_ALGORITHM": k.Algorithm,
	}
}

// credential stores an rfc2136 credential for Knot with secret.
func (u *upstream) credential(t *testing.T, name, secret string) {
	t.Helper()
	body := map[string]any{"name": name, "provider": "rfc2136", "fields": knotFields(u.knot, secret)}
	u.call(t, http.MethodPost, "/api/v1/credentials", bearer(u.admin), body).want(t, http.StatusCreated)
}

// config creates an rfc2136 managed challenge config for rule with
// credential and engine; lifetime in seconds, 0 for the default.
func (u *upstream) config(t *testing.T, name, credential, engine, rule string, lifetime int) {
	t.Helper()
	body := map[string]any{"name": name, "provider": "rfc2136", "credential": credential,
		"engine": engine, "rule": rule, "lifetime": lifetime}
	u.call(t, http.MethodPost, "/api/v1/managed-challenges", bearer(u.admin), body).want(t, http.StatusCreated)
}

// upstreamRecordWire is an upstream record as GET /api/v1/upstream-records
// lists it.
type upstreamRecordWire struct {
	ID            int64      `json:"id"`
	Provider      string     `json:"provider"`
	Engine        string     `json:"engine"`
	Domain        string     `json:"domain"`
	FQDN          string     `json:"fqdn"`
	Value         string     `json:"value"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// records lists the upstream records in state ("" for every state).
func (u *upstream) records(t *testing.T, state string) []upstreamRecordWire {
	t.Helper()
	path := "/api/v1/upstream-records"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	r := u.call(t, http.MethodGet, path, bearer(u.admin), nil)
	r.want(t, http.StatusOK)
	var out struct {
		Records []upstreamRecordWire `json:"upstream_records"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.Records == nil {
		t.Fatalf("GET %s: want {\"upstream_records\":[...]}: %v: %s", path, err, r.body)
	}
	return out.Records
}

// metric is the value of the sample name{labels} in the hub's /metrics
// (labels must match exactly those given; others are ignored), or -1.
func (u *upstream) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	r := u.call(t, http.MethodGet, "/metrics", nil, nil)
	r.want(t, http.StatusOK)
	sum, found := 0.0, false
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		sample, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		got := map[string]string{}
		if _, ls, ok := strings.Cut(sample, "{"); ok {
			for _, kv := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					got[k] = strings.Trim(v, `"`)
				}
			}
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			t.Fatalf("metrics: %q: %v", line, err)
		}
		sum, found = sum+f, true
	}
	if !found {
		return -1
	}
	return sum
}

// apiReply is an HTTP answer with its problem code and detail, if any.
type apiReply struct {
	method, path string
	status       int
	body         []byte
	code, detail string
}

func (r apiReply) want(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s %s: %d %s, want %d", r.method, r.path, r.status, r.body, status)
	}
}

// wantProblem checks the status and the problem document's code.
func (r apiReply) wantProblem(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status || r.code != code {
		t.Fatalf("%s %s: %d %s, want %d with code %q", r.method, r.path, r.status, r.body, status, code)
	}
	if r.detail == "" {
		t.Fatalf("%s %s: no detail: %s", r.method, r.path, r.body)
	}
}

type authFunc func(*http.Request)

func bearer(token string) authFunc {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// basicToken is HTTP Basic auth with a token's client id and secret, as
// httpreq clients send it.
func basicToken(token string) authFunc {
	id, sec, _ := strings.Cut(token, ".")
	return func(r *http.Request) { r.SetBasicAuth(id, sec) }
}

// call sends body (JSON, when not nil) to the hub's API.
func (u *upstream) call(t *testing.T, method, path string, auth authFunc, body any) apiReply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u.hub.APIURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != nil {
		auth(req)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	r := apiReply{method: method, path: path, status: resp.StatusCode, body: raw}
	var prob struct{ Code, Detail string }
	if json.Unmarshal(raw, &prob) == nil {
		r.code, r.detail = prob.Code, prob.Detail
	}
	return r
}

// randomValue is a fresh value shaped like a DNS-01 TXT value.
func randomValue(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// keyAuthValue is the DNS-01 value of a key authorization.
func keyAuthValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// wantKnot fails t unless Knot answers exactly want at name.
func wantKnot(t *testing.T, k *Knot, what, name string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := k.TXT(t, name); !slices.Equal(got, want) {
		t.Fatalf("%s: Knot answers %s TXT %q, want %q", what, name, got, want)
	}
}

// eventually polls cond every 100 ms until it holds, failing t with what
// after upstreamWait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(upstreamWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, upstreamWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noSecrets fails t if text shows one of secrets.
func noSecrets(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a TSIG secret", what)
		}
	}
}

// TestUpstreamIssue issues a certificate for upstream.test and
// *.upstream.test from Pebble with lego's client, the values published
// through the hub's native API by a consumer and written by the hub into
// Knot (engine "value": the value-level RFC 2136 driver). Pebble resolves
// through a Resolver that forwards upstream.test to Knot, so it validates
// what Knot serves. lego presents both values before validating: both must
// be in Knot at once (a driver that replaced the set would fail the
// order), and both are gone from Knot after lego's clean-up.
func TestUpstreamIssue(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: end-to-end issuance skipped in -short mode")
	}
	buildBinaries(t)
	u := startUpstream(t)
	u.credential(t, "knot", u.knot.Secret)
	u.config(t, "upstream", "knot", "value", "upstream.test", 0)
	tok := u.hub.Consumer(t, "shop", "upstream.test")
	native, err := NewNativeProvider(NativeProviderConfig{BaseURL: u.hub.APIURL, Token: tok.String()})
	if err != nil {
		t.Fatal(err)
	}
	provider := &recordingProvider{NativeProvider: native, look: func() []string { return txtAt(t, u.knot.Addr, upstreamName) }}
	pebble := StartPebble(t, u.res.Addr())

	cert, err := ObtainCertificate(t, pebble, u.res.Addr(), provider, "upstream.test", "*.upstream.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := parseChain(t, cert.Certificate)
	if got, want := slices.Sorted(slices.Values(leaf.DNSNames)), []string{"*.upstream.test", "upstream.test"}; !slices.Equal(got, want) {
		t.Errorf("SANs %q, want %q", got, want)
	}
	presented, seen := provider.results()
	if len(presented) != 2 || presented[0] == presented[1] {
		t.Fatalf("values presented: %q, want two different ones", presented)
	}
	if len(seen) != 2 || !slices.Equal(seen[0], presented[:1]) || !slices.Equal(seen[1], slices.Sorted(slices.Values(presented))) {
		t.Errorf("Knot's TXT values at %s after each Present: %q, want %q then both of %q", upstreamName, seen, presented[:1], presented)
	}
	wantKnot(t, u.knot, "after lego's clean-up", upstreamName)
	if recs := u.records(t, ""); len(recs) != 0 {
		t.Errorf("upstream records after clean-up: %+v", recs)
	}
	noSecrets(t, "the hub's log", u.hub.Logs(), u.knot.Secret)
}

// TestUpstreamCoexistence presents two values at one name through two
// protocols (the native API, and lego's httpreq default mode, both giving
// the value), with engine "value": Knot serves both, the records list
// both, and removing one keeps the other.
func TestUpstreamCoexistence(t *testing.T) {
	binary(t, acmehubPackage)
	u := startUpstream(t)
	u.credential(t, "knot", u.knot.Secret)
	u.config(t, "upstream", "knot", "value", "upstream.test", 0)
	tok := u.hub.Consumer(t, "shop", "upstream.test").String()
	a, b := randomValue(t), randomValue(t)

	r := u.call(t, http.MethodPost, "/api/v1/challenges", bearer(tok), map[string]string{"identifier": "upstream.test", "value": a})
	r.want(t, http.StatusCreated)
	var ch Challenge
	if err := json.Unmarshal(r.body, &ch); err != nil {
		t.Fatal(err)
	}
	if ch.RecordName != upstreamName || ch.Value != a {
		t.Errorf("present: record_name %q value %q, want %q and %q: %s", ch.RecordName, ch.Value, upstreamName, a, r.body)
	}
	wantKnot(t, u.knot, "after the native present", upstreamName, a)

	httpreqBody := map[string]string{"fqdn": upstreamName, "value": b}
	r = u.call(t, http.MethodPost, "/httpreq/present", basicToken(tok), httpreqBody)
	r.want(t, http.StatusOK)
	if !strings.Contains(string(r.body), `"`+b+`"`) {
		t.Errorf("httpreq present: the answer does not echo the value: %s", r.body)
	}
	wantKnot(t, u.knot, "after both presents", upstreamName, a, b)

	recs := u.records(t, "live")
	var vals []string
	for _, rec := range recs {
		vals = append(vals, rec.Value)
		if rec.Provider != "rfc2136" || rec.Engine != "value" || rec.Domain != "upstream.test" || rec.FQDN != upstreamName ||
			rec.State != "live" || rec.ID == 0 || rec.ExpiresAt.Before(rec.CreatedAt) {
			t.Errorf("live record %+v", rec)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(vals)), slices.Sorted(slices.Values([]string{a, b}))) {
		t.Errorf("live records' values %q, want %q and %q", vals, a, b)
	}

	r = u.call(t, http.MethodPost, "/api/v1/challenges/cleanup", bearer(tok), map[string]string{"identifier": "upstream.test", "value": a})
	r.want(t, http.StatusOK)
	if !strings.Contains(string(r.body), `"removed":1`) {
		t.Errorf("clean-up of a: %s, want removed 1", r.body)
	}
	wantKnot(t, u.knot, "after removing a", upstreamName, b)
	// Idempotent: a second clean-up removes nothing and disturbs nothing.
	u.call(t, http.MethodPost, "/api/v1/challenges/cleanup", bearer(tok), map[string]string{"identifier": "upstream.test", "value": a}).want(t, http.StatusOK)
	wantKnot(t, u.knot, "after removing a again", upstreamName, b)

	u.call(t, http.MethodPost, "/httpreq/cleanup", basicToken(tok), httpreqBody).want(t, http.StatusOK)
	wantKnot(t, u.knot, "after removing b", upstreamName)
	if recs := u.records(t, ""); len(recs) != 0 {
		t.Errorf("upstream records after both clean-ups: %+v", recs)
	}
}

// TestUpstreamLegoProvider goes through lego's own rfc2136 provider in a
// worker process (engine "lego"), the key authorization coming from lego's
// httpreq provider library in RAW mode: the value appears in Knot and
// lego's clean-up removes it. lego's rfc2136 provider replaces the whole
// TXT set, so a second value at the name while the first is live is
// refused (409 conflict) and the first stays in Knot. A credential with a
// wrong TSIG secret gives a clear 502 and changes nothing; a request with
// only a value gets 501 naming the remedies.
func TestUpstreamLegoProvider(t *testing.T) {
	binary(t, acmehubPackage)
	u := startUpstream(t)
	wrong := RandomTSIGSecret(t)
	u.credential(t, "knot", u.knot.Secret)
	u.credential(t, "knot-bad", wrong)
	u.config(t, "upstream", "knot", "lego", "upstream.test", 0)
	u.config(t, "upstream-bad", "knot-bad", "lego", "bad.upstream.test", 0)
	u.config(t, "upstream-bad-value", "knot-bad", "value", "bad2.upstream.test", 0)
	tok := u.hub.Consumer(t, "traefik", "upstream.test").String()

	endpoint, err := url.Parse(u.hub.APIURL + "/httpreq")
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpreq.NewDefaultConfig()
	cfg.Endpoint, cfg.Mode = endpoint, "RAW"
	cfg.Username, cfg.Password, _ = strings.Cut(tok, ".")
	cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	lego, err := httpreq.NewDNSProviderConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ka1, ka2 := "token1."+randomValue(t), "token2."+randomValue(t)
	v1, v2 := keyAuthValue(ka1), keyAuthValue(ka2)

	if err := lego.Present("upstream.test", "token1", ka1); err != nil {
		t.Fatalf("present: %v", err)
	}
	wantKnot(t, u.knot, "after lego's present", upstreamName, v1)
	recs := u.records(t, "live")
	if len(recs) != 1 || recs[0].Engine != "lego" || recs[0].Provider != "rfc2136" || recs[0].Value != v1 || recs[0].FQDN != upstreamName {
		t.Errorf("live records %+v, want one lego record of %q", recs, v1)
	}

	t.Run("second value while the first is live: conflict", func(t *testing.T) {
		// lego's client presents a domain and its wildcard under one name.
		err := lego.Present("upstream.test", "token2", ka2)
		if err == nil || !strings.Contains(err.Error(), "409") {
			t.Errorf("lego present of a second value: %v, want 409", err)
		}
		raw := map[string]string{"domain": "upstream.test", "token": "token2", "keyAuth": ka2}
		u.call(t, http.MethodPost, "/httpreq/present", basicToken(tok), raw).wantProblem(t, http.StatusConflict, "conflict")
		native := map[string]string{"identifier": "*.upstream.test", "key_authorization": ka2}
		r := u.call(t, http.MethodPost, "/api/v1/challenges", bearer(tok), native)
		r.wantProblem(t, http.StatusConflict, "conflict")
		t.Logf("conflict: %s", r.detail)
		wantKnot(t, u.knot, "after the refused presents", upstreamName, v1)
	})

	t.Run("value only: unsupported, names the remedies", func(t *testing.T) {
		r := u.call(t, http.MethodPost, "/api/v1/challenges", bearer(tok), map[string]string{"identifier": "upstream.test", "value": v2})
		r.wantProblem(t, http.StatusNotImplemented, "not_implemented")
		if d := strings.ToLower(r.detail); !strings.Contains(d, "delegat") || !strings.Contains(d, "value-level") {
			t.Errorf("detail %q does not name the remedies (delegate the domain, or a value-level provider)", r.detail)
		}
		t.Logf("unsupported: %s", r.detail)
		// lego's httpreq default mode sends only the value too.
		u.call(t, http.MethodPost, "/httpreq/present", basicToken(tok), map[string]string{"fqdn": upstreamName, "value": v2}).
			wantProblem(t, http.StatusNotImplemented, "not_implemented")
		wantKnot(t, u.knot, "after the value-only presents", upstreamName, v1)
	})

	if err := lego.CleanUp("upstream.test", "token1", ka1); err != nil {
		t.Fatalf("clean-up: %v", err)
	}
	wantKnot(t, u.knot, "after lego's clean-up", upstreamName)
	// With the first value gone the name is free again.
	if err := lego.Present("upstream.test", "token2", ka2); err != nil {
		t.Fatalf("present after the clean-up: %v", err)
	}
	wantKnot(t, u.knot, "after the second present", upstreamName, v2)
	if err := lego.CleanUp("upstream.test", "token2", ka2); err != nil {
		t.Fatalf("second clean-up: %v", err)
	}
	wantKnot(t, u.knot, "after the second clean-up", upstreamName)

	t.Run("a name and its wildcard at once: one wins, the other gets 409", func(t *testing.T) {
		// What lego's client does for example.test + *.example.test.
		kas := []string{"token4." + randomValue(t), "token5." + randomValue(t)}
		errs := make([]error, len(kas))
		var wg sync.WaitGroup
		for i, ka := range kas {
			wg.Go(func() { errs[i] = lego.Present("upstream.test", "token", ka) })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won < 0:
				won = i
			case err == nil:
				t.Fatalf("both concurrent presents succeeded; lego's rfc2136 provider would have replaced one")
			case !strings.Contains(err.Error(), "409"):
				t.Fatalf("concurrent present %d: %v, want 409", i, err)
			}
		}
		if won < 0 {
			t.Fatalf("neither concurrent present succeeded: %v", errs)
		}
		wantKnot(t, u.knot, "after the concurrent presents", upstreamName, keyAuthValue(kas[won]))
		if err := lego.CleanUp("upstream.test", "token", kas[won]); err != nil {
			t.Fatal(err)
		}
		wantKnot(t, u.knot, "after its clean-up", upstreamName)
	})

	t.Run("wrong TSIG secret: clear 502, Knot unchanged", func(t *testing.T) {
		for _, c := range []struct{ engine, domain string }{{"lego", "bad.upstream.test"}, {"value", "bad2.upstream.test"}} {
			raw := map[string]string{"domain": c.domain, "token": "token3", "keyAuth": "token3." + randomValue(t)}
			r := u.call(t, http.MethodPost, "/httpreq/present", basicToken(u.admin), raw)
			r.wantProblem(t, http.StatusBadGateway, "upstream_failed")
			noSecrets(t, "the 502 answer", string(r.body), u.knot.Secret, wrong)
			t.Logf("engine %s, wrong secret: %s", c.engine, r.detail)
			wantKnot(t, u.knot, "after the failed present", "_acme-challenge."+c.domain+".")
		}
		wantKnot(t, u.knot, "after the failed presents", upstreamName)
	})
	noSecrets(t, "the hub's log", u.hub.Logs(), u.knot.Secret, wrong)
}

// TestUpstreamNothingForgotten: a value whose client never cleans up is
// removed from Knot when it expires, even when the hub was killed before
// that and started again on its data dir; and a removal that fails (Knot
// stopped) is listed as removing with its error and counted in the
// metrics, until an admin forgets it.
func TestUpstreamNothingForgotten(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: upstream expiry across a restart skipped in -short mode")
	}
	binary(t, acmehubPackage)
	u := startUpstream(t, "--upstream-sweep-interval", "1s")
	u.credential(t, "knot", u.knot.Secret)
	u.config(t, "upstream", "knot", "value", "upstream.test", 3)
	tok := u.hub.Consumer(t, "shop", "upstream.test").String()

	a := randomValue(t)
	r := u.call(t, http.MethodPost, "/api/v1/challenges", bearer(tok), map[string]string{"identifier": "upstream.test", "value": a})
	r.want(t, http.StatusCreated)
	var ch Challenge
	if err := json.Unmarshal(r.body, &ch); err != nil || ch.ExpiresAt == nil {
		t.Fatalf("present: %v: %s", err, r.body)
	}
	wantKnot(t, u.knot, "after the present", upstreamName, a)

	// The hub dies before the value expires; once it has expired, the
	// value is still in Knot (nothing else removes it) ...
	u.hub.Kill(t)
	time.Sleep(time.Until(ch.ExpiresAt.Add(time.Second)))
	wantKnot(t, u.knot, "expired while the hub was down", upstreamName, a)
	// ... until the hub runs again on the same data dir.
	u.hub = StartHub(t, u.hubCfg)
	eventually(t, "the expired value removed from Knot after the restart", func() bool {
		return len(u.knot.TXT(t, upstreamName)) == 0
	})
	eventually(t, "no upstream records left", func() bool { return len(u.records(t, "")) == 0 })

	// A removal that fails is reported, not forgotten.
	b := randomValue(t)
	u.call(t, http.MethodPost, "/api/v1/challenges", bearer(tok), map[string]string{"identifier": "upstream.test", "value": b}).
		want(t, http.StatusCreated)
	wantKnot(t, u.knot, "after the second present", upstreamName, b)
	u.knot.Stop()
	var rec upstreamRecordWire
	eventually(t, "the record listed as removing with its error", func() bool {
		recs := u.records(t, "removing")
		if len(recs) == 1 && recs[0].LastError != "" && recs[0].Attempts >= 1 {
			rec = recs[0]
			return true
		}
		return false
	})
	if rec.Value != b || rec.FQDN != upstreamName || rec.Engine != "value" || rec.NextAttemptAt == nil {
		t.Errorf("removing record %+v", rec)
	}
	noSecrets(t, "last_error", rec.LastError, u.knot.Secret)
	t.Logf("last_error: %s", rec.LastError)
	if live := u.records(t, "live"); len(live) != 0 {
		t.Errorf("live records while the removal fails: %+v", live)
	}
	eventually(t, `acmehub_upstream_records{state="removing"} 1`, func() bool {
		return u.metric(t, "acmehub_upstream_records", map[string]string{"state": "removing"}) == 1
	})
	calls := map[string]string{"provider": "rfc2136", "engine": "value"}
	total := u.metric(t, "acmehub_upstream_calls_total", calls)
	good := 0.0
	for _, res := range []string{"ok", "success"} {
		if n := u.metric(t, "acmehub_upstream_calls_total", map[string]string{"provider": "rfc2136", "engine": "value", "result": res}); n > 0 {
			good += n
		}
	}
	// Besides the successful calls (two adds, one removal), the failed
	// removals are counted.
	if total < 0 || total-good < 1 {
		t.Errorf("acmehub_upstream_calls_total{provider=rfc2136,engine=value}: %v in all, %v successful; want failed removals counted", total, good)
	}

	id := strconv.FormatInt(rec.ID, 10)
	// A retry now fails again (502, as a present would), or is queued.
	r = u.call(t, http.MethodPost, "/api/v1/upstream-records/"+id+"/retry", bearer(u.admin), nil)
	if r.status/100 != 2 && (r.status != http.StatusBadGateway || r.code != "upstream_failed") {
		t.Errorf("retry with Knot down: %d %s, want 502 upstream_failed or 2xx", r.status, r.body)
	}
	noSecrets(t, "the retry's answer", string(r.body), u.knot.Secret)
	if recs := u.records(t, ""); len(recs) != 1 || recs[0].ID != rec.ID || recs[0].State == "live" {
		t.Errorf("records after a retry with Knot down: %+v", recs)
	}
	// A consumer may not touch the records.
	if r := u.call(t, http.MethodDelete, "/api/v1/upstream-records/"+id, bearer(tok), nil); r.status != http.StatusForbidden {
		t.Errorf("consumer DELETE: %d %s, want 403", r.status, r.body)
	}
	r = u.call(t, http.MethodDelete, "/api/v1/upstream-records/"+id, bearer(u.admin), nil)
	if r.status/100 != 2 {
		t.Fatalf("forget: %d %s", r.status, r.body)
	}
	if recs := u.records(t, ""); len(recs) != 0 {
		t.Errorf("records after forgetting: %+v", recs)
	}
	eventually(t, `acmehub_upstream_records{state="removing"} 0`, func() bool {
		return u.metric(t, "acmehub_upstream_records", map[string]string{"state": "removing"}) <= 0
	})
	noSecrets(t, "the hub's log", u.hub.Logs(), u.knot.Secret)
}
