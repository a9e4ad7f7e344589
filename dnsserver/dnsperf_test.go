package dnsserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

// TestDNSPerf measures queries per second with dnsperf on loopback against
// a zone of 100,000 names. It only runs when ACMEHUB_BENCH=1 (it loads both
// cores for ACMEHUB_DNSPERF_SECONDS, default 10); compare with Knot serving
// the same names to track the target (>= 0.5x Knot's qps).
func TestDNSPerf(t *testing.T) {
	if os.Getenv("ACMEHUB_BENCH") != "1" {
		t.Skip("set ACMEHUB_BENCH=1 to run the dnsperf load test")
	}
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		if os.Getenv("ACMEHUB_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("dnsperf not installed")
		}
		t.Skip("dnsperf not installed")
	}
	seconds := os.Getenv("ACMEHUB_DNSPERF_SECONDS")
	if seconds == "" {
		seconds = "10"
	}
	snap := zone.Snapshot{Serial: 1}
	for i := range 100_000 {
		snap.Values = append(snap.Values, zone.Value{Name: fmt.Sprintf("%08x-1b2c-4d5e-8f90-a1b2c3d4e5f6.%s", i, origin), Value: acmeValue, TTL: 60})
	}
	v := zone.NewView(origin)
	v.Reset(snap)
	_, addr := startServer(t, v)
	host, port, _ := net.SplitHostPort(addr)

	// Mostly hits, as during validation, with some NXDOMAIN and SOA walks.
	var qs strings.Builder
	for i := range 10_000 {
		switch i % 10 {
		case 8:
			fmt.Fprintf(&qs, "_acme-challenge.missing%d.%s TXT\n", i, origin)
		case 9:
			fmt.Fprintf(&qs, "%s SOA\n", origin)
		default:
			fmt.Fprintf(&qs, "%08x-1b2c-4d5e-8f90-a1b2c3d4e5f6.%s TXT\n", (i*7919)%100_000, origin)
		}
	}
	file := filepath.Join(t.TempDir(), "queries")
	if err := os.WriteFile(file, []byte(qs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, dnsperf, "-s", host, "-p", port, "-d", file, "-l", seconds, "-c", "8", "-q", "500").CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Queries per second:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no qps in dnsperf output:\n%s", out)
	}
	t.Logf("acmehub: %s queries/s\n%s", m[1], out)
}
