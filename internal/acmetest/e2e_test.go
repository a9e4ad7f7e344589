package acmetest

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/miekg/dns"
)

func TestMain(m *testing.M) { os.Exit(RunTests(m)) }

// TestIssueThroughHub issues a real certificate for example.test and
// *.example.test from Pebble with lego, the DNS-01 values published through
// acmehub's API and answered by acmehub's DNS server through the domain's
// _acme-challenge CNAME.
func TestIssueThroughHub(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: end-to-end issuance skipped in -short mode")
	}
	start := time.Now()
	buildBinaries(t)
	t.Logf("binaries ready after %v", time.Since(start).Round(time.Millisecond))

	const label = "k7x2p9"
	hub := StartHub(t, HubConfig{Zone: "acme.test."})
	res := NewResolver(t)
	res.Forward("acme.test.", hub.DNSAddr)
	res.SetRecords(domainZone(t, "example.test", label+".acme.test.")...)
	pebble := StartPebble(t, res.Addr())

	base, err := NewHubProvider(HubProviderConfig{
		BaseURL: hub.APIURL,
		Token:   hub.Token,
		Names:   map[string]string{"example.test": label},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Record what a resolver sees at the challenge name after each Present:
	// the second Present must leave both values there at once.
	provider := &watchingProvider{HubProvider: base, look: func() []string {
		return txtAt(t, res.Addr(), "_acme-challenge.example.test.")
	}}

	issueStart := time.Now()
	cert, err := ObtainCertificate(t, pebble, res.Addr(), provider, "example.test", "*.example.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("issued in %v (%v in all)", time.Since(issueStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	if got := provider.seen(); len(got) != 2 || len(got[1]) != 2 {
		t.Errorf("TXT values at _acme-challenge.example.test after each Present: %q, want one then two", got)
	}
	// Pebble's VA asked our resolver for the challenge name.
	if !slices.ContainsFunc(res.Queries(), func(q dns.Question) bool {
		return strings.EqualFold(q.Name, "_acme-challenge.example.test.") && q.Qtype == dns.TypeTXT
	}) {
		t.Error("the resolver never saw a TXT query for _acme-challenge.example.test.")
	}
	// CleanUp removed both values from the hub.
	if got := txtAt(t, hub.DNSAddr, label+".acme.test."); len(got) != 0 {
		t.Errorf("values left at %s.acme.test. after clean-up: %q", label, got)
	}

	leaf, intermediates := parseChain(t, cert.Certificate)
	if got, want := slices.Sorted(slices.Values(leaf.DNSNames)), []string{"*.example.test", "example.test"}; !slices.Equal(got, want) {
		t.Errorf("SANs %q, want %q", got, want)
	}
	for _, name := range []string{"example.test", "www.example.test"} {
		if _, err := leaf.Verify(x509.VerifyOptions{
			DNSName:       name,
			Roots:         pebble.Roots(t),
			Intermediates: intermediates,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("verify the chain for %s against Pebble's root: %v", name, err)
		}
	}
	key, err := certcrypto.ParsePEMPrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if signer, ok := key.(crypto.Signer); !ok || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
		t.Error("the private key does not match the certificate")
	}

	// The value published at a name the CNAME does not point to is never seen:
	// lego's pre-check, asking only our resolver, gives up before asking
	// Pebble to validate.
	wrong, err := NewHubProvider(HubProviderConfig{
		BaseURL:            hub.APIURL,
		Token:              hub.Token,
		Names:              map[string]string{"example.test": "elsewhere"},
		PropagationTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ObtainCertificate(t, pebble, res.Addr(), wrong, "example.test")
	if err == nil || !strings.Contains(err.Error(), "propagation") {
		t.Errorf("issued with the value at the wrong name, or failed otherwise: %v", err)
	}
	t.Logf("value at the wrong name: %v", err)
	if got := txtAt(t, hub.DNSAddr, "elsewhere.acme.test."); len(got) != 0 {
		t.Errorf("values left at elsewhere.acme.test. after the failed order: %q", got)
	}
}

// watchingProvider records, after each Present, the TXT values a resolver
// returns at the challenge name.
type watchingProvider struct {
	*HubProvider
	look func() []string
	mu   sync.Mutex
	vals [][]string
}

func (w *watchingProvider) Present(domain, token, keyAuth string) error {
	if err := w.HubProvider.Present(domain, token, keyAuth); err != nil {
		return err
	}
	got := w.look()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.vals = append(w.vals, got)
	return nil
}

func (w *watchingProvider) seen() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.vals)
}

// txtAt returns the TXT values server answers for name, sorted.
func txtAt(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	r, _, err := new(dns.Client).Exchange(m, server)
	if err != nil {
		t.Errorf("query %s at %s: %v", name, server, err)
		return nil
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	slices.Sort(out)
	return out
}

// parseChain splits a PEM bundle into the leaf and a pool of the rest.
func parseChain(t *testing.T, bundle []byte) (*x509.Certificate, *x509.CertPool) {
	t.Helper()
	var certs []*x509.Certificate
	for block, rest := pem.Decode(bundle); block != nil; block, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("want a leaf and its intermediate, got %d certificates", len(certs))
	}
	pool := x509.NewCertPool()
	for _, c := range certs[1:] {
		pool.AddCert(c)
	}
	return certs[0], pool
}

// TestNotImportedByProduction: the harness stays out of the binary.
func TestNotImportedByProduction(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", acmehubPackage).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/acmehub/acmehub/internal/acmetest" || strings.HasPrefix(pkg, "github.com/letsencrypt/pebble") {
			t.Errorf("cmd/acmehub depends on %s", pkg)
		}
	}
}
