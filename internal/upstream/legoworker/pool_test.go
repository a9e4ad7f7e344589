package legoworker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
)

// endpoint is a fake httpreq server owned by one credential set.
type endpoint struct {
	*httptest.Server
	user, pass string

	mu        sync.Mutex
	presented []string // "fqdn value" (default mode) or "domain token keyAuth" (RAW)
	badAuth   int

	block   atomic.Bool // hold /present until the client goes away
	failMsg string      // answer 500 with this body
}

func newEndpoint(t *testing.T, user, pass string) *endpoint {
	t.Helper()
	e := &endpoint{user: user, pass: pass}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || u != e.user || p != e.pass {
		e.mu.Lock()
		e.badAuth++
		e.mu.Unlock()
		http.Error(w, "wrong credentials", http.StatusUnauthorized)
		return
	}
	var m map[string]string
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	if e.block.Load() {
		// The body is read, so the server notices the killed worker's
		// connection closing.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	}
	if e.failMsg != "" {
		http.Error(w, e.failMsg, http.StatusInternalServerError)
		return
	}
	if r.URL.Path == "/present" {
		e.mu.Lock()
		if m["fqdn"] != "" {
			e.presented = append(e.presented, m["fqdn"]+" "+m["value"])
		} else {
			e.presented = append(e.presented, m["domain"]+" "+m["token"]+" "+m["keyAuth"])
		}
		e.mu.Unlock()
	}
}

func txtValue(keyAuth string) string {
	h := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// TestIsolation is the test: many concurrent calls over many
// credential sets; each fake endpoint sees only its own credentials and
// only the domains sent through its credential.
func TestIsolation(t *testing.T) {
	t.Parallel()
	const sets, calls = 20, 200
	p := newTestPool(t, PoolConfig{})
	eps := make([]*endpoint, sets)
	drivers := make([]upstream.KeyAuthDriver, sets)
	for i := range sets {
		eps[i] = newEndpoint(t, fmt.Sprintf("user-%02d", i), fmt.Sprintf("password-%02d-secret", i))
		fields := map[string]string{
			"HTTPREQ_ENDPOINT": eps[i].URL,
			"HTTPREQ_USERNAME": eps[i].user,
			"HTTPREQ_PASSWORD": eps[i].pass,
		}
		if i%2 == 1 {
			fields["HTTPREQ_MODE"] = "RAW" // the key authorization travels as is
		}
		drivers[i] = mustDriver(t, p, fmt.Sprintf("%d/1", i), "httpreq", fields)
	}

	want := make([][]string, sets)
	for n := range calls {
		i := n % sets
		domain := fmt.Sprintf("c%d.set%d.example.org", n, i)
		keyAuth := fmt.Sprintf("token%d.thumbprint%d", n, i)
		if i%2 == 1 {
			want[i] = append(want[i], domain+" "+fmt.Sprintf("token%d", n)+" "+keyAuth)
		} else {
			want[i] = append(want[i], "_acme-challenge."+domain+". "+txtValue(keyAuth))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for n := range calls {
		wg.Go(func() {
			i := n % sets
			domain := fmt.Sprintf("c%d.set%d.example.org", n, i)
			if err := drivers[i].Present(t.Context(), domain, fmt.Sprintf("token%d.thumbprint%d", n, i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("present: %v", err)
	}
	for i, e := range eps {
		e.mu.Lock()
		got := slices.Sorted(slices.Values(e.presented))
		bad := e.badAuth
		e.mu.Unlock()
		slices.Sort(want[i])
		if bad != 0 {
			t.Errorf("endpoint %d: %d requests with another set's credentials", i, bad)
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("endpoint %d saw %d records, want its own %d:\ngot  %q\nwant %q", i, len(got), len(want[i]), got, want[i])
		}
	}
}

// TestEnvironment: the worker's environment is exactly the credential's
// fields and the pool's three variables; nothing of the hub's (PATH,
// HOME, this test's variables) leaks in.
func TestEnvironment(t *testing.T) {
	t.Setenv("ACMEHUB_TEST_LEAK", "from-the-hub")
	p := newTestPool(t, PoolConfig{Resolvers: []string{"127.0.0.1:5353", "[::1]:53"}})
	d := mustDriver(t, p, "1/1", "envdump", map[string]string{"FOO_TOKEN": "abcdefgh", "FOO_ZONE": "example.org"})
	err := d.Present(t.Context(), "example.org", "tok.thumb")
	if err == nil {
		t.Fatal("envdump: want its report as an error")
	}
	want := "names=ACMEHUB_LEGO_PROVIDER,ACMEHUB_LEGO_RESOLVERS,FOO_TOKEN,FOO_ZONE,LEGO_DISABLE_CNAME_SUPPORT " +
		"provider=envdump resolvers=127.0.0.1:5353,[::1]:53 nocname=true"
	if !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("worker environment:\n got %v\nwant suffix %s", err, want)
	}
}

func TestDriverRefuses(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{})
	_, err := p.Driver("1/1", "cloudflare", map[string]string{"CF_DNS_API_TOKEN": "x"})
	if !errors.Is(err, upstream.ErrNoDriver) || !strings.Contains(err.Error(), "make build") {
		t.Errorf("provider not in this build: %v; want ErrNoDriver naming make build", err)
	}
	for name, fields := range map[string]map[string]string{
		"control variable": {"HTTPREQ_ENDPOINT": "http://127.0.0.1:1", envNoCNAME: "false"},
		"resolvers":        {envResolvers: "192.0.2.1:53"},
		"bad name":         {"A=B": "x"},
	} {
		if _, err := p.Driver("1/1", "httpreq", fields); !errors.Is(err, upstream.ErrConfig) {
			t.Errorf("%s: %v; want ErrConfig", name, err)
		}
	}
	if !Supported("httpreq") || Supported("cloudflare") || Supported("nonesuch") || !Supported("rfc2136") || !Supported("dnsupdate") {
		t.Errorf("Supported: httpreq %v rfc2136 %v dnsupdate %v cloudflare %v nonesuch %v",
			Supported("httpreq"), Supported("rfc2136"), Supported("dnsupdate"), Supported("cloudflare"), Supported("nonesuch"))
	}
}

// TestStartError: a credential lego cannot build a provider from fails
// the first call (and every later one) with ErrConfig naming the field.
func TestStartError(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{})
	for _, tc := range []struct{ provider, field, missing string }{
		{"httpreq", "HTTPREQ_USERNAME", "HTTPREQ_ENDPOINT"},
		{"rfc2136", "RFC2136_TSIG_KEY", "NAMESERVER"},
	} {
		d := mustDriver(t, p, tc.provider, tc.provider, map[string]string{tc.field: "some-value"})
		for range 2 {
			err := d.Present(t.Context(), "example.org", "tok.thumb")
			if !errors.Is(err, upstream.ErrConfig) || !strings.Contains(err.Error(), tc.missing) {
				t.Fatalf("%s without %s: %v; want ErrConfig naming it", tc.provider, tc.missing, err)
			}
		}
		if pid := pidOf(d); pid != 0 {
			t.Errorf("%s: failed worker %d still registered", tc.provider, pid)
		}
	}
}

// TestTimeout: a call that overruns (the ctx deadline or CallTimeout,
// whichever is sooner) kills its worker; the next call gets a fresh one.
func TestTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		callTimeout time.Duration
		ctxTimeout  time.Duration
	}{
		{"ctx deadline", time.Hour, 300 * time.Millisecond},
		// Starting the worker counts against the call's time: 2 s leaves
		// room for a race-built test binary starting on a loaded machine.
		{"call timeout", 2 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPool(t, PoolConfig{CallTimeout: tc.callTimeout})
			e := newEndpoint(t, "u", "secret-pw")
			d := mustDriver(t, p, "1/1", "httpreq", map[string]string{"HTTPREQ_ENDPOINT": e.URL, "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": "secret-pw"})
			if err := d.Present(t.Context(), "a.example.org", "t.x"); err != nil {
				t.Fatal(err)
			}
			pid := pidOf(d)

			e.block.Store(true)
			ctx := t.Context()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}
			err := d.Present(ctx, "b.example.org", "t.x")
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "worker stopped") {
				t.Fatalf("blocked call: %v; want a deadline error saying the worker stopped", err)
			}
			if !reaped(pid) {
				t.Errorf("timed-out worker %d still exists", pid)
			}

			e.block.Store(false)
			if err := d.Present(t.Context(), "c.example.org", "t.x"); err != nil {
				t.Fatalf("call after the timeout: %v", err)
			}
			if n := pidOf(d); n == pid || n == 0 {
				t.Errorf("after the timeout: worker %d, want a new one (old %d)", n, pid)
			}
		})
	}
}

// TestCrashRestart: a worker killed between calls, or dying in one, is
// replaced by the next call.
func TestCrashRestart(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{})
	e := newEndpoint(t, "u", "secret-pw")
	d := mustDriver(t, p, "1/1", "httpreq", map[string]string{"HTTPREQ_ENDPOINT": e.URL, "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": "secret-pw"})
	if err := d.Present(t.Context(), "a.example.org", "t.x"); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(d)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "killed worker reaped", func() bool { return reaped(pid) })
	if err := d.Present(t.Context(), "b.example.org", "t.x"); err != nil {
		t.Fatalf("call after the crash: %v", err)
	}
	if n := pidOf(d); n == pid || n == 0 {
		t.Errorf("after the crash: worker %d, want a new one (old %d)", n, pid)
	}

	c := mustDriver(t, p, "2/1", "crash", map[string]string{"CRASH_X": "y"})
	err := c.Present(t.Context(), "example.org", "t.x")
	if err == nil || !strings.Contains(err.Error(), "exited during the call (exit status 3)") {
		t.Fatalf("worker dying in a call: %v", err)
	}
	if n := pidOf(c); n != 0 {
		t.Errorf("dead worker %d still registered", n)
	}
}

// TestIdleStop: an idle worker stops by itself, unless a value it
// presented is not cleaned up yet (some providers keep record ids in
// memory for CleanUp); the next call starts one.
func TestIdleStop(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{IdleTimeout: 100 * time.Millisecond})
	e := newEndpoint(t, "u", "secret-pw")
	d := mustDriver(t, p, "1/1", "httpreq", map[string]string{"HTTPREQ_ENDPOINT": e.URL, "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": "secret-pw"})
	if err := d.Present(t.Context(), "a.example.org", "t.x"); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(d)
	time.Sleep(500 * time.Millisecond) // five idle periods
	if pidOf(d) != pid {
		t.Fatal("a worker with a value not cleaned up was stopped for idleness")
	}
	if err := d.CleanUp(t.Context(), "a.example.org", "t.x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "idle worker stopped and reaped", func() bool { return pidOf(d) == 0 && reaped(pid) })
	if err := d.Present(t.Context(), "b.example.org", "t.x"); err != nil {
		t.Fatalf("call after the idle stop: %v", err)
	}
}

// TestMaxWorkers: at the cap a new worker first stops the longest idle
// one; when every worker is busy the call fails clearly.
func TestMaxWorkers(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{MaxWorkers: 2})
	var ds []upstream.KeyAuthDriver
	var eps []*endpoint
	for i := range 3 {
		e := newEndpoint(t, "u", "secret-pw")
		eps = append(eps, e)
		ds = append(ds, mustDriver(t, p, fmt.Sprintf("%d/1", i), "httpreq", map[string]string{"HTTPREQ_ENDPOINT": e.URL, "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": "secret-pw"}))
	}
	present := func(i int) error { return ds[i].Present(t.Context(), "example.org", "t.x") }
	for i := range 2 {
		if err := present(i); err != nil {
			t.Fatal(err)
		}
	}
	first := pidOf(ds[0])
	if err := present(2); err != nil { // stops worker 0, the longest idle
		t.Fatal(err)
	}
	if pidOf(ds[0]) != 0 || !reaped(first) || pidOf(ds[1]) == 0 || pidOf(ds[2]) == 0 {
		t.Fatalf("at the cap: workers %d %d %d, want the first stopped", pidOf(ds[0]), pidOf(ds[1]), pidOf(ds[2]))
	}

	// Both running workers busy: a third credential cannot get one.
	eps[1].block.Store(true)
	eps[2].block.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, i := range []int{1, 2} {
		wg.Go(func() { _ = ds[i].Present(ctx, "example.org", "t.x") })
	}
	eventually(t, "both workers busy", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return ds[1].(*driver).w.busy && ds[2].(*driver).w.busy
	})
	err := present(0)
	cancel()
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "all 2 lego workers are busy") {
		t.Fatalf("every worker busy: %v", err)
	}
}

// TestClose: Close stops every worker, busy ones included, and reaps them;
// later calls fail.
func TestClose(t *testing.T) {
	t.Parallel()
	p := NewPool(PoolConfig{Command: workerCommand(t)})
	var pids []int
	var ds []upstream.KeyAuthDriver
	var eps []*endpoint
	for i := range 3 {
		e := newEndpoint(t, "u", "secret-pw")
		eps = append(eps, e)
		d := mustDriver(t, p, fmt.Sprintf("%d/1", i), "httpreq", map[string]string{"HTTPREQ_ENDPOINT": e.URL, "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": "secret-pw"})
		if err := d.Present(t.Context(), "example.org", "t.x"); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pidOf(d))
		ds = append(ds, d)
	}
	eps[0].block.Store(true)
	busy := make(chan error, 1)
	go func() { busy <- ds[0].Present(t.Context(), "b.example.org", "t.x") }()
	eventually(t, "worker busy", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return ds[0].(*driver).w.busy
	})

	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !reaped(pid) {
			t.Errorf("worker %d survived Close", pid)
		}
	}
	if err := <-busy; err == nil {
		t.Error("the call in progress at Close succeeded")
	}
	if err := ds[1].Present(t.Context(), "example.org", "t.x"); !errors.Is(err, errClosed) {
		t.Errorf("call after Close: %v", err)
	}
	if _, err := p.Driver("9/1", "httpreq", map[string]string{"HTTPREQ_ENDPOINT": "x"}); !errors.Is(err, errClosed) {
		t.Errorf("driver after Close: %v", err)
	}
}

// TestScrubbing: credential values never come back in errors or logs,
// even when the provider's API or the provider itself echoes them.
func TestScrubbing(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	p := newTestPool(t, PoolConfig{Logger: debugLogger(&logs)})
	e := newEndpoint(t, "someuser", "hunter2-very-secret")
	e.failMsg = "bad login someuser:hunter2-very-secret"
	d := mustDriver(t, p, "1/1", "httpreq", map[string]string{"HTTPREQ_ENDPOINT": e.URL, "HTTPREQ_USERNAME": "someuser", "HTTPREQ_PASSWORD": "hunter2-very-secret"})
	err := d.Present(t.Context(), "example.org", "t.x")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "someuser") ||
		!strings.Contains(err.Error(), "bad login [redacted]:[redacted]") {
		t.Fatalf("endpoint echoing the password: %v", err)
	}

	c := mustDriver(t, p, "2/1", "chatty", map[string]string{"CHATTY_TOKEN": "tok-0123456789"})
	if err := c.Present(t.Context(), "example.org", "t.x"); err != nil {
		t.Fatalf("a provider printing to stdout must not break the protocol: %v", err)
	}
	eventually(t, "stderr logged", func() bool { return strings.Count(logs.String(), "token is [redacted]") == 2 })
	if strings.Contains(logs.String(), "tok-0123456789") {
		t.Errorf("credential in the logs:\n%s", logs.String())
	}
}

func TestScrubber(t *testing.T) {
	t.Parallel()
	s := newScrubber([]string{"abc", "secret", "secret-longer", "secret"})
	got := s("abc secret secret-longer")
	if want := "abc [redacted] [redacted]"; got != want {
		t.Errorf("scrub = %q, want %q", got, want)
	}
	// Encoded as providers echo them: in a URL, or base64.
	enc := newScrubber([]string{"p@ss word/+x"})
	if got := enc("url p%40ss+word%2F%2Bx path p@ss%20word%2F+x b64 cEBzcyB3b3JkLyt4"); strings.Contains(got, "ss") {
		t.Errorf("encoded secret survives: %q", got)
	}
	if got := newScrubber(nil)("as is"); got != "as is" {
		t.Errorf("no values: %q", got)
	}
}

func TestLineLogger(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	l := &lineLogger{log: debugLogger(&logs), scrub: newScrubber([]string{"SECRETVALUE"})}
	long := strings.Repeat("x", maxLogLine-5) + "SECRETVALUE" + strings.Repeat("y", maxLogBuf)
	for _, chunk := range []string{"first ", "line\nsec", "ond SECRETVALUE\n", long, "\nafter\n"} {
		if _, err := l.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, want := range []string{"first line", "second [redacted]", "[truncated]", "after"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%.300s", want, out)
		}
	}
	if strings.Contains(out, "SECRET") || strings.Count(out, "\n") != 4 || strings.Contains(out, "yyy") {
		t.Errorf("secret, extra lines or an uncut line in the log (%d lines):\n%.500s", strings.Count(out, "\n"), out)
	}
}
