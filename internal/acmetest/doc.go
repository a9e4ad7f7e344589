// Package acmetest is a test harness for issuing real certificates through
// acmehub: a small recursive-style DNS resolver the test controls
// (Resolver), Pebble as the ACME CA (StartPebble), the real acmehub binary
// (StartHub), lego's client library driving the order (ObtainCertificate)
// and a lego challenge.Provider that publishes DNS-01 values through
// acmehub's record API (HubProvider).
//
// It is for tests only: production code must never import it (a test in
// this package checks that cmd/acmehub does not depend on it). It has
// non-test files only so that other packages' tests can import it.
//
// Everything runs on 127.0.0.1 on ports chosen by the kernel, in temporary
// directories. Pebble resolves names only through the Resolver, lego's DNS
// lookups go only to the Resolver, and the Resolver forwards only to
// addresses the test names (acmehub's DNS server), so no query leaves the
// machine. The pebble and acmehub binaries are built once per test process
// with `go build` (pebble at the version go.mod pins with its tool
// directive); call RunTests from TestMain to remove them afterwards.
// SyncBuffer and DieWithParent are there for tests that run other servers
// the same way.
//
// lego keeps its DNS settings (recursive nameservers, timeout, SOA cache)
// and its logger in package variables, so ObtainCertificate runs one order
// at a time per process; parallel tests that call it are serialised.
package acmetest
