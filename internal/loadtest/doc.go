// Package loadtest holds the load comparisons run by `make bench`: dnsperf
// against the real `acmehub serve` binary and against Knot DNS serving the
// same zone on loopback (TestLoadDNSPerfVsKnot), and start-up time and peak
// RSS of a hub holding 100,000 names against an empty one
// (TestLoadStartupAndRSS100k).
//
// The tests build cmd/acmehub and run it through the internal/acmetest
// harness, start every server on free 127.0.0.1 ports in temporary
// directories and stop every process they start. They run only
// with ACMEHUB_BENCH=1 and skip otherwise; a missing dnsperf or knotd makes
// them skip too, or fail with ACMEHUB_TEST_REQUIRE_ALL=1. Speed targets
// (acmehub at least half of Knot's queries per second, start-up within 1 s
// with 100k names) are reported with t.Logf, not asserted; lost queries
// (more than 5%) and wrong answers fail the test.
//
// The package has no non-test code.
package loadtest
