package acmetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	stdlog "log"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/registration"
)

// legoMu serialises ObtainCertificate: lego's dns01 package keeps its
// recursive nameservers, DNS timeout and SOA cache in package variables.
var legoMu sync.Mutex

// ObtainCertificate registers a new account (fresh ECDSA P-256 key) with
// Pebble through lego's client library and orders one certificate for
// domains (an ECDSA P-256 key, the chain bundled), solving DNS-01 only, with
// provider. lego's DNS lookups (CNAME following, the propagation pre-check,
// any SOA walk) go to resolverAddr alone: the pre-check requires the value
// to be visible there, and the check of authoritative nameservers (which
// lego would query on port 53) is off.
//
// Pebble sends Retry-After on pending authorizations but not on the
// response to a challenge, and lego then waits 5 s (randomised to 2.5-7.5 s)
// before its second look whenever Pebble's check was not already done, so
// lego's HTTP client here adds "Retry-After: 1" to challenge responses that
// lack one: an order takes about a second instead of up to 15.
//
// Errors of the order itself are returned, so a test can expect failure;
// lego's log lines go to t.Log. Calls are serialised process-wide, and lego
// keeps resolverAddr as its nameserver after the call returns.
func ObtainCertificate(t *testing.T, p *Pebble, resolverAddr string, provider challenge.Provider, domains ...string) (*certificate.Resource, error) {
	t.Helper()
	legoMu.Lock()
	defer legoMu.Unlock()
	logTo(t.Logf)
	defer logTo(nil)
	dns01.ClearFqdnCache()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("account key: %w", err)
	}
	user := &acmeUser{key: key}
	cfg := lego.NewConfig(user)
	cfg.CADirURL = p.DirectoryURL()
	base := p.HTTPClient()
	cfg.HTTPClient = &http.Client{Timeout: base.Timeout, Transport: retryAfterTransport{base.Transport}}
	cfg.UserAgent = "acmehub-acmetest"
	cfg.Certificate.KeyType = certcrypto.EC256
	cfg.Certificate.Timeout = 30 * time.Second
	client, err := lego.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("lego client for %s: %w", p.DirectoryURL(), err)
	}
	err = client.Challenge.SetDNS01Provider(provider,
		dns01.AddRecursiveNameservers([]string{resolverAddr}),
		dns01.AddDNSTimeout(2*time.Second),
		dns01.DisableAuthoritativeNssPropagationRequirement(),
		dns01.RecursiveNSsPropagationRequirement(),
	)
	if err != nil {
		return nil, fmt.Errorf("dns-01 provider: %w", err)
	}
	reg, err := client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		return nil, fmt.Errorf("register account: %w", err)
	}
	user.reg = reg
	res, err := client.Certificate.Obtain(certificate.ObtainRequest{Domains: domains, Bundle: true})
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", strings.Join(domains, ", "), err)
	}
	return res, nil
}

// retryAfterTransport adds "Retry-After: 1" to responses to POSTs to
// Pebble's challenge URLs ("/chalZ/...") that carry none; see
// ObtainCertificate.
type retryAfterTransport struct{ base http.RoundTripper }

func (rt retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/chalZ/") && resp.Header.Get("Retry-After") == "" {
		resp.Header.Set("Retry-After", "1")
	}
	return resp, err
}

// acmeUser is the lego account: a key and, once registered, its resource.
type acmeUser struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (*acmeUser) GetEmail() string                          { return "" }
func (u *acmeUser) GetRegistration() *registration.Resource { return u.reg }
func (u *acmeUser) GetPrivateKey() crypto.PrivateKey        { return u.key }

// lego logs through one package-global logger. It is pointed once at
// legoLogWriter, which forwards to the test running ObtainCertificate.
var (
	legoLogOnce sync.Once
	legoLogMu   sync.Mutex
	legoLogf    func(format string, args ...any)
)

type legoLogWriter struct{}

func (legoLogWriter) Write(p []byte) (int, error) {
	legoLogMu.Lock()
	defer legoLogMu.Unlock()
	if legoLogf != nil {
		legoLogf("lego: %s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// logTo sends lego's log lines to logf, or drops them when logf is nil.
func logTo(logf func(format string, args ...any)) {
	legoLogOnce.Do(func() { legolog.Logger = stdlog.New(legoLogWriter{}, "", stdlog.Ltime|stdlog.Lmicroseconds) })
	legoLogMu.Lock()
	defer legoLogMu.Unlock()
	legoLogf = logf
}
