package legoworker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
)

// stopGrace is how long a stopping worker gets after SIGTERM and the end
// of its input before it is killed.
const stopGrace = 3 * time.Second

// errClosed is returned by calls after Close.
var errClosed = errors.New("legoworker: pool closed")

func (c *PoolConfig) setDefaults() {
	if c.CallTimeout <= 0 {
		c.CallTimeout = 2 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MaxWorkers <= 0 {
		c.MaxWorkers = 64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// worker is one credential set's slot: at most one process at a time.
type worker struct {
	key, provider string
	env           []string
	scrub         func(string) string
	// sem is held by whoever uses or replaces the process: one call at a
	// time, so calls for one credential are serialised here too.
	sem chan struct{}

	// Guarded by Pool.mu.
	proc     *process
	busy     bool
	lastUsed time.Time
	// pending are the values presented and not cleaned up yet (domain
	// and key authorization), with when: some lego providers remember
	// record ids in memory between Present and CleanUp, so a worker with
	// pending values is not stopped for idleness (until pendingHold).
	pending map[string]time.Time
}

// pendingHold bounds how long a pending value keeps its worker running:
// longer than any value's lifetime (the hub removes it by then).
const pendingHold = 25 * time.Hour

// process is one running worker process.
type process struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte   // stdout lines; closed at end of output
	killed  chan struct{} // closed by kill: nobody reads lines any more
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // the exit status, set before done closes
	once    sync.Once     // closes killed
}

func (pr *process) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// kill stops the process now and waits until it is reaped.
func (pr *process) kill() {
	pr.once.Do(func() { close(pr.killed) })
	_ = pr.cmd.Process.Kill() // fails only when it already exited
	<-pr.done
}

// stop asks the process to end (end of input, SIGTERM), kills it after
// grace and waits until it is reaped.
func (pr *process) stop(grace time.Duration) {
	_ = pr.stdin.Close()
	_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-pr.done:
	case <-t.C:
		pr.kill()
	}
}

// newPool is NewPool.
func newPool(cfg PoolConfig) *Pool {
	cfg.setDefaults()
	p := &Pool{cfg: cfg, workers: map[string]*worker{}, stopJanitor: make(chan struct{}), janitorDone: make(chan struct{})}
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			p.cmdErr = fmt.Errorf("legoworker: finding this executable to start workers: %w", err)
		}
		p.cfg.Command = []string{exe, "lego-worker"}
	}
	return p
}

func (p *Pool) driver(key, provider string, fields map[string]string) (upstream.KeyAuthDriver, error) {
	code := canonical(provider)
	if _, test := testProviders[code]; !test && !compiled(code) {
		return nil, fmt.Errorf("lego provider %q is not in this build; `make build` (tag allproviders) includes every provider: %w", provider, upstream.ErrNoDriver)
	}
	env := make([]string, 0, len(fields)+3)
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		v := fields[name]
		switch {
		case name == "" || strings.ContainsAny(name, "=\x00"):
			return nil, fmt.Errorf("%w: field name %q is not an environment variable name", upstream.ErrConfig, name)
		case controlVar(name):
			return nil, fmt.Errorf("%w: field %q is set by the hub", upstream.ErrConfig, name)
		case strings.ContainsRune(v, 0):
			return nil, fmt.Errorf("%w: field %q: value contains a NUL byte", upstream.ErrConfig, name)
		}
		env = append(env, name+"="+v)
	}
	env = append(env,
		envProvider+"="+code,
		envResolvers+"="+strings.Join(p.cfg.Resolvers, ","),
		envNoCNAME+"=true")

	// Same key with other fields (a caller that did not version its key)
	// gets its own worker rather than the stale one.
	id := key + "\x00" + strings.Join(env, "\x00")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errClosed
	}
	w := p.workers[id]
	if w == nil {
		w = &worker{key: key, provider: code, env: env, scrub: newScrubber(slices.Collect(maps.Values(fields))), sem: make(chan struct{}, 1)}
		p.workers[id] = w
	}
	return &driver{p: p, w: w}, nil
}

// driver is the KeyAuthDriver of one credential set.
type driver struct {
	p *Pool
	w *worker
}

func (d *driver) Present(ctx context.Context, domain, keyAuth string) error {
	err := d.p.call(ctx, d.w, "present", domain, keyAuth)
	if err == nil {
		d.p.mu.Lock()
		if d.w.pending == nil {
			d.w.pending = map[string]time.Time{}
		}
		d.w.pending[domain+"\x00"+keyAuth] = time.Now()
		d.p.mu.Unlock()
	}
	return err
}

func (d *driver) CleanUp(ctx context.Context, domain, keyAuth string) error {
	err := d.p.call(ctx, d.w, "cleanup", domain, keyAuth)
	if err == nil {
		d.p.mu.Lock()
		delete(d.w.pending, domain+"\x00"+keyAuth)
		d.p.mu.Unlock()
	}
	return err
}

// holding reports whether w has pending values young enough to keep its
// process (see worker.pending), dropping those past pendingHold. The
// caller holds p.mu.
func (w *worker) holding(now time.Time) bool {
	for k, at := range w.pending {
		if now.Sub(at) > pendingHold {
			delete(w.pending, k)
		}
	}
	return len(w.pending) > 0
}

// call runs one request in w's process, starting one if needed. lego's
// calls cannot be cancelled, so a call that overruns its deadline kills
// the process; the next call starts a fresh one.
func (p *Pool) call(ctx context.Context, w *worker, op, domain, keyAuth string) error {
	if p.cmdErr != nil {
		return p.cmdErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lego %s %s %s: %w", w.provider, op, domain, err)
	}
	limit := p.cfg.CallTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < limit {
		limit = time.Until(d)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	what := fmt.Sprintf("lego %s %s %s", w.provider, op, domain)

	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: timed out waiting for the credential's worker (busy with earlier calls): %w", what, ctx.Err())
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-w.sem
		return errClosed
	}
	w.busy = true
	pr := w.proc
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		w.busy = false
		w.lastUsed = time.Now()
		p.mu.Unlock()
		<-w.sem
	}()

	id := p.nextID.Add(1)
	b, _ := json.Marshal(request{ID: id, Op: op, Domain: domain, KeyAuth: keyAuth})
	b = append(b, '\n')
	// A worker that died since the last call is replaced; so is one whose
	// input is closed, which can only mean it died before reading this
	// request: it is safe to send it once more.
	for attempt := 0; ; attempt++ {
		if pr != nil && pr.exited() {
			p.forget(w, pr)
			pr = nil
		}
		if pr == nil {
			var err error
			if pr, err = p.start(ctx, w, what); err != nil {
				return err
			}
		}
		if _, err := pr.stdin.Write(b); err == nil {
			break
		} else if attempt > 0 {
			p.discard(w, pr)
			return fmt.Errorf("%s: worker stopped before the call", what)
		}
		p.discard(w, pr)
		pr = nil
	}
	select {
	case line, ok := <-pr.lines:
		var rep reply
		if !ok || json.Unmarshal(line, &rep) != nil || rep.ID != id {
			p.discard(w, pr)
			if !ok {
				return fmt.Errorf("%s: worker exited during the call (%s); the next call starts another", what, exitText(pr))
			}
			return fmt.Errorf("%s: worker broke the protocol; the next call starts another", what)
		}
		if rep.Error != "" {
			return fmt.Errorf("%s: %s", what, w.scrub(rep.Error))
		}
		return nil
	case <-ctx.Done():
		p.discard(w, pr)
		return fmt.Errorf("%s: no answer within %s, worker stopped (the provider call may have gone through): %w",
			what, limit.Round(time.Millisecond), ctx.Err())
	}
}

// start starts w's process and waits for its hello. The caller holds w.sem.
func (p *Pool) start(ctx context.Context, w *worker, what string) (*process, error) {
	if err := p.reserve(w); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...) //nolint:gosec // the hub's own binary, from its configuration
	cmd.Env = w.env                                             // exactly this: nothing inherited
	cmd.Stderr = &lineLogger{log: p.cfg.Logger.With("upstream", w.provider, "worker", w.key), scrub: w.scrub}
	cmd.WaitDelay = stopGrace // a leftover child holding stderr must not block the reaper
	stdin, err1 := cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	err := errors.Join(err1, err2)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		p.unreserve()
		p.cfg.Logger.Error("starting lego worker", "upstream", w.provider, "worker", w.key, "err", err)
		return nil, fmt.Errorf("%s: could not start a worker process", what)
	}
	pr := &process{cmd: cmd, stdin: stdin, lines: make(chan []byte), killed: make(chan struct{}), done: make(chan struct{})}
	go p.reap(pr, stdout)

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.kill()
		return nil, errClosed
	}
	w.proc = pr
	w.lastUsed = time.Now()
	p.mu.Unlock()
	p.cfg.Logger.Debug("lego worker started", "upstream", w.provider, "worker", w.key, "pid", cmd.Process.Pid)

	select {
	case line, ok := <-pr.lines:
		var h hello
		if ok && json.Unmarshal(line, &h) == nil && h.Ready {
			return pr, nil
		}
		p.discard(w, pr)
		if ok && h.Error != "" {
			return nil, fmt.Errorf("%s: %w: %s", what, upstream.ErrConfig, w.scrub(h.Error))
		}
		return nil, fmt.Errorf("%s: worker failed at start (%s)", what, exitText(pr))
	case <-ctx.Done():
		p.discard(w, pr)
		return nil, fmt.Errorf("%s: worker did not start in time: %w", what, ctx.Err())
	}
}

// reap reads pr's output until it ends, then waits for the process.
func (p *Pool) reap(pr *process, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		line := slices.Clone(sc.Bytes())
		select {
		case pr.lines <- line:
		case <-pr.killed:
		}
	}
	if sc.Err() != nil {
		// An oversized line: the protocol is broken; don't leave the
		// process blocked on a full pipe.
		_ = pr.cmd.Process.Kill()
	}
	close(pr.lines)
	pr.waitErr = pr.cmd.Wait()
	p.unreserve() // first: whoever waits on done sees the slot free
	close(pr.done)
}

func exitText(pr *process) string {
	<-pr.done
	if pr.waitErr == nil {
		return "exit status 0"
	}
	return pr.waitErr.Error()
}

// discard kills pr and clears it from w.
func (p *Pool) discard(w *worker, pr *process) {
	pr.kill()
	p.forget(w, pr)
}

func (p *Pool) forget(w *worker, pr *process) {
	p.mu.Lock()
	if w.proc == pr {
		w.proc = nil
	}
	p.mu.Unlock()
}

// reserve takes a process slot for w, first stopping the longest idle
// other worker when MaxWorkers are running. It also starts the idle
// janitor with the first process.
func (p *Pool) reserve(self *worker) error {
	p.janitorOnce.Do(func() { go p.janitor() })
	skip := map[*worker]bool{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed {
			return errClosed
		}
		if p.running < p.cfg.MaxWorkers {
			p.running++
			p.procs.Add(1) // under mu and before closed: Close's Wait sees it
			return nil
		}
		var victim *worker
		for _, w := range p.workers {
			if w != self && w.proc != nil && !w.busy && !skip[w] && (victim == nil || w.lastUsed.Before(victim.lastUsed)) {
				victim = w
			}
		}
		if victim == nil {
			return fmt.Errorf("all %d lego workers are busy; retry later", p.cfg.MaxWorkers)
		}
		select {
		case victim.sem <- struct{}{}:
		default:
			skip[victim] = true // it just became busy
			continue
		}
		pr := victim.proc
		victim.proc = nil
		p.mu.Unlock()
		if pr != nil {
			pr.stop(stopGrace) // its reaper frees the slot
		}
		<-victim.sem
		p.mu.Lock()
	}
}

func (p *Pool) unreserve() {
	p.mu.Lock()
	p.running--
	p.mu.Unlock()
	p.procs.Done()
}

// janitor stops workers idle for IdleTimeout.
func (p *Pool) janitor() {
	defer close(p.janitorDone)
	tick := max(p.cfg.IdleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.stopJanitor:
			return
		case <-t.C:
		}
		p.mu.Lock()
		for _, w := range p.workers {
			if w.proc == nil || w.busy || time.Since(w.lastUsed) < p.cfg.IdleTimeout || w.holding(time.Now()) {
				continue
			}
			select {
			case w.sem <- struct{}{}:
			default:
				continue
			}
			pr := w.proc
			w.proc = nil
			go func() {
				pr.stop(stopGrace)
				<-w.sem
			}()
			p.cfg.Logger.Debug("lego worker idle, stopping", "upstream", w.provider, "worker", w.key)
		}
		p.mu.Unlock()
	}
}

func (p *Pool) close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var procs []*process
	for _, w := range p.workers {
		if w.proc != nil {
			procs = append(procs, w.proc)
			w.proc = nil
		}
	}
	p.mu.Unlock()

	// The janitor starts with the first process; make sure it either
	// never will or has ended.
	p.janitorOnce.Do(func() { close(p.janitorDone) })
	close(p.stopJanitor)
	<-p.janitorDone

	for _, pr := range procs {
		go pr.stop(stopGrace)
	}
	all := make(chan struct{})
	go func() {
		p.procs.Wait() // also those stopped by the janitor or a timeout
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		for _, pr := range procs {
			go pr.kill()
		}
		<-all // SIGKILL: reaped promptly
		return fmt.Errorf("legoworker: close: %w (workers killed)", ctx.Err())
	}
}

// lineLogger logs a worker's stderr at debug level, line by line, scrubbed
// of the credential's values and capped in length.
type lineLogger struct {
	log   *slog.Logger
	scrub func(string) string
	buf   []byte
	skip  bool // the current line overflowed and was logged already
}

const (
	maxLogLine  = 2048     // longest stderr line logged
	maxLogBuf   = 64 << 10 // longest line kept to scrub before cutting it
	logTruncMsg = " [truncated]"
)

func (l *lineLogger) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := slices.Index(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if !l.skip {
			l.buf = append(l.buf, chunk[:min(len(chunk), maxLogBuf-len(l.buf))]...)
			if len(l.buf) == maxLogBuf {
				l.emit()
				l.skip = true
			}
		}
		if i < 0 {
			break
		}
		if !l.skip {
			l.emit()
		}
		l.skip = false
		b = b[i+1:]
	}
	return n, nil
}

// emit logs the buffered line: scrubbed first, then cut, so a cut never
// leaves part of a secret.
func (l *lineLogger) emit() {
	line := l.scrub(string(l.buf))
	l.buf = l.buf[:0]
	if len(line) > maxLogLine {
		line = line[:maxLogLine] + logTruncMsg
	}
	l.log.Debug("lego worker: " + line)
}
