package loadtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/acmetest"
)

const (
	startupNames   = 100_000
	startupRuns    = 3    // starts per data dir; the median is reported
	burstQueries   = 5000 // after start-up, before the second RSS reading
	burstWorkers   = 16
	startupTarget  = time.Second
	burstMaxFailed = 0
)

// startSample is one start of `acmehub serve`.
type startSample struct {
	startup   time.Duration // exec to "api listening"
	cpu       time.Duration // CPU time used by then
	rssUp     int64         // VmRSS once up
	hwmUp     int64         // VmHWM once up
	hwmBurst  int64         // VmHWM after the query burst
	rssBurst  int64         // VmRSS after the query burst
	stop      time.Duration // SIGTERM to exit
	burstTime time.Duration
}

// TestLoadStartupAndRSS100k populates 100,000 names, then starts `acmehub
// serve` three times on that data dir and three times on an empty one
// (alternating), and reports the median start-up time (exec to the "api
// listening" log line, which comes after the zone is loaded) and peak RSS
// (VmHWM) once up and after a burst of queries. The target of 1 s start-up
// with 100k names is reported, not asserted.
func TestLoadStartupAndRSS100k(t *testing.T) {
	requireBench(t)
	acmetest.Binary(t) // build before timing anything

	cases := []struct {
		name  string
		dir   string
		names int
	}{
		{"empty", t.TempDir(), 0},
		{"100k", t.TempDir(), startupNames},
	}
	t0 := time.Now()
	populate(t, cases[1].dir, startupNames)
	t.Logf("populated %d names in %v (64 writers, synchronous NORMAL)", startupNames, time.Since(t0).Round(time.Millisecond))

	samples := map[string][]startSample{}
	for run := 1; run <= startupRuns; run++ {
		for _, c := range cases {
			s := measureStart(t, c.dir, c.names)
			samples[c.name] = append(samples[c.name], s)
			t.Logf("%-5s start %d: up in %7.1f ms (CPU %6.1f ms), VmRSS %6.1f MiB, VmHWM %6.1f MiB up / %6.1f MiB after %d queries (%v), stopped in %v",
				c.name, run, ms(s.startup), ms(s.cpu), mib(s.rssUp), mib(s.hwmUp), mib(s.hwmBurst), burstQueries,
				s.burstTime.Round(time.Millisecond), s.stop.Round(time.Millisecond))
		}
	}

	med := map[string]startSample{}
	for name, ss := range samples {
		med[name] = startSample{
			startup:  median(ss, func(s startSample) time.Duration { return s.startup }),
			cpu:      median(ss, func(s startSample) time.Duration { return s.cpu }),
			rssUp:    median(ss, func(s startSample) int64 { return s.rssUp }),
			hwmUp:    median(ss, func(s startSample) int64 { return s.hwmUp }),
			hwmBurst: median(ss, func(s startSample) int64 { return s.hwmBurst }),
			rssBurst: median(ss, func(s startSample) int64 { return s.rssBurst }),
		}
	}
	sizes := map[string]int64{}
	for _, c := range cases {
		sizes[c.name] = dbSize(t, c.dir)
	}

	e, f := med["empty"], med["100k"]
	var b strings.Builder
	fmt.Fprintf(&b, "medians of %d starts each (alternating empty, 100k; %d CPUs, loadavg now %s):\n", startupRuns, runtime.NumCPU(), loadAvg())
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "data dir\tnames\tstart-up ms\tCPU to up ms\tVmRSS up MiB\tVmHWM up MiB\tVmHWM after burst MiB\tdb files MiB\t\n")
	for _, c := range cases {
		m := med[c.name]
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t\n", c.name, c.names, ms(m.startup), ms(m.cpu),
			mib(m.rssUp), mib(m.hwmUp), mib(m.hwmBurst), mib(sizes[c.name]))
	}
	_ = tw.Flush()
	dHWM := f.hwmBurst - e.hwmBurst
	fmt.Fprintf(&b, "100k names cost %.0f ms of start-up and %.1f MiB of peak RSS over an empty hub (%.0f bytes of peak RSS and %.0f bytes of database per name)\n",
		ms(f.startup-e.startup), mib(dHWM), float64(dHWM)/startupNames, float64(sizes["100k"]-sizes["empty"])/startupNames)
	verdict := "MET"
	if f.startup > startupTarget {
		verdict = "NOT MET"
	}
	fmt.Fprintf(&b, "target start-up with 100k names <= %v: %s (median %.0f ms)", startupTarget, verdict, ms(f.startup))
	t.Logf("start-up and RSS:\n%s", b.String())
}

// measureStart starts the hub on dir, reads its memory once up, sends a
// burst of queries (checking the answers), reads its memory again and
// stops it with SIGTERM.
func measureStart(t *testing.T, dir string, names int) startSample {
	t.Helper()
	h := startHub(t, dir)
	var s startSample
	s.startup = h.Startup
	var err error
	if s.cpu, err = cpuTime(h.PID()); err != nil {
		t.Fatal(err)
	}
	st, err := procStatus(h.PID())
	if err != nil {
		t.Fatal(err)
	}
	s.rssUp, s.hwmUp = st["VmRSS"], st["VmHWM"]

	t0 := time.Now()
	if err := queryBurst(h.DNSAddr, names); err != nil {
		t.Fatalf("query burst: %v\nlogs:\n%s", err, h.Logs())
	}
	s.burstTime = time.Since(t0)
	if st, err = procStatus(h.PID()); err != nil {
		t.Fatal(err)
	}
	s.rssBurst, s.hwmBurst = st["VmRSS"], st["VmHWM"]

	t0 = time.Now()
	h.Stop(t) // fails the test unless acmehub exits cleanly
	s.stop = time.Since(t0)
	return s
}

// queryBurst sends burstQueries TXT queries over UDP from burstWorkers
// goroutines: random existing names (when names > 0) and one in ten a
// missing name, and checks each answer.
func queryBurst(addr string, names int) error {
	var failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		if failed.Add(1) == 1 {
			mu.Lock()
			firstErr = err
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for w := range burstWorkers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			conn, err := c.Dial(addr)
			if err != nil {
				fail(err)
				return
			}
			defer func() { _ = conn.Close() }()
			for q := w; q < burstQueries; q += burstWorkers {
				name, value := missingName(q), ""
				if names > 0 && q%10 != 0 {
					i := r.IntN(names)
					name, value = benchName(i), benchValue(i)
				}
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeTXT)
				m.RecursionDesired = false
				resp, _, err := c.ExchangeWithConn(m, conn)
				if err != nil {
					fail(fmt.Errorf("%s TXT: %w", name, err))
					continue
				}
				want := dns.RcodeSuccess
				if value == "" {
					want = dns.RcodeNameError
				}
				if err := checkAnswer(resp, want, value); err != nil {
					fail(fmt.Errorf("%s TXT: %w", name, err))
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > burstMaxFailed {
		return fmt.Errorf("%d of %d queries failed; first: %w", n, burstQueries, firstErr)
	}
	return nil
}

// dbSize is the size of the database files (main file, WAL, shared memory)
// in dir.
func dbSize(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(filepath.Join(dir, "acmehub.db"+suffix))
		if err == nil {
			total += fi.Size()
		} else if suffix == "" {
			t.Fatal(err)
		}
	}
	return total
}

func median[T int64 | time.Duration](ss []startSample, f func(startSample) T) T {
	v := make([]T, 0, len(ss))
	for _, s := range ss {
		v = append(v, f(s))
	}
	slices.Sort(v)
	return v[len(v)/2]
}
