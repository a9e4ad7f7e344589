package acmetest

import (
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/secret"
)

// buildBinaries builds Pebble and acmehub at once: the first build of each
// is the slow part of an end-to-end test.
func buildBinaries(t *testing.T) {
	t.Helper()
	var wg sync.WaitGroup
	for _, pkg := range []string{pebblePackage, acmehubPackage} {
		wg.Go(func() { binary(t, pkg) })
	}
	wg.Wait()
}

// domainZone is what a domain's own DNS serves in the tests: its apex, and
// the _acme-challenge CNAME into the hub zone its owner adds once (none
// when target is "").
func domainZone(t *testing.T, domain, target string) []dns.RR {
	t.Helper()
	rrs := []dns.RR{
		RR(t, domain+". 3600 IN SOA ns1."+domain+". hostmaster."+domain+". 1 3600 600 86400 60"),
		RR(t, domain+". 3600 IN NS ns1."+domain+"."),
		RR(t, "ns1."+domain+". 3600 IN A 127.0.0.1"),
	}
	if target != "" {
		rrs = append(rrs, RR(t, "_acme-challenge."+domain+". 60 IN CNAME "+target))
	}
	return rrs
}

// delegated is where most end-to-end issuance tests start: a hub, a
// consumer allowed *.example.test with a native API client, example.test
// delegated with its CNAME served by the domain's own DNS (res), and
// Pebble validating through res.
type delegated struct {
	hub    *Hub
	tok    secret.Token
	native *NativeProvider
	target string // the CNAME target in the hub zone
	res    *Resolver
	pebble *Pebble
}

// startDelegated builds the binaries and sets up a delegated for a
// consumer principal of that name.
func startDelegated(t *testing.T, consumer string) delegated {
	t.Helper()
	buildBinaries(t)
	d := delegated{hub: StartHub(t, HubConfig{Zone: "acme.test."})}
	d.tok = d.hub.Consumer(t, consumer, "*.example.test")
	var err error
	d.native, err = NewNativeProvider(NativeProviderConfig{BaseURL: d.hub.APIURL, Token: d.tok.String()})
	if err != nil {
		t.Fatal(err)
	}
	// The hub chooses the delegation's name when it first accepts a
	// challenge for the domain, and the domain owner then adds the CNAME
	// once, before any order. The test does the same: one present through
	// the API with a throwaway value gives cname_target, the value is
	// cleaned up, and only then is the CNAME served. (Serving it lazily
	// from the first Present would hide a client that needs the CNAME
	// before presenting.)
	d.target = delegationTarget(t, d.native, "example.test")
	if !strings.HasSuffix(d.target, ".acme.test.") {
		t.Fatalf("cname_target %q is not in the hub zone", d.target)
	}
	d.res = NewResolver(t)
	d.res.Forward("acme.test.", d.hub.DNSAddr)
	d.res.SetRecords(domainZone(t, "example.test", d.target)...)
	d.pebble = StartPebble(t, d.res.Addr())
	return d
}
