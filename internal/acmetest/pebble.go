package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pebbleStartTimeout bounds how long StartPebble waits for Pebble to answer.
const pebbleStartTimeout = 20 * time.Second

// Pebble is a running Pebble ACME server (github.com/letsencrypt/pebble) on
// 127.0.0.1 that validates DNS-01 challenges through one resolver only.
type Pebble struct {
	listen, management string // host:port of the ACME and management listeners
	client             *http.Client
	logs               *SyncBuffer
}

// StartPebble builds Pebble once per test process, starts it with its own
// self-signed TLS certificate on free 127.0.0.1 ports, resolving every name
// through resolverAddr (host:port, queried over TCP), and waits until its
// directory and management API answer. t.Cleanup kills it by PID. Random
// VA sleeps, nonce rejections and authorization reuse are off, and
// Retry-After is one second, so an order completes in a few seconds.
func StartPebble(t *testing.T, resolverAddr string) *Pebble {
	t.Helper()
	bin := binary(t, pebblePackage)
	dir := t.TempDir()
	certPEM, keyPEM, pool, err := SelfSignedCert()
	if err != nil {
		t.Fatalf("acmetest: pebble certificate: %v", err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil, // loopback only, whatever the environment says
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		},
	}
	t.Cleanup(client.CloseIdleConnections)

	// Pebble cannot report the port it bound, so pick free ports and retry
	// when another process takes one first. The TLS check in waitReady
	// makes sure it is our Pebble that answers.
	var lastErr error
	for range 5 {
		p := &Pebble{client: client, logs: &SyncBuffer{}}
		p.listen, p.management, err = twoFreePorts()
		if err != nil {
			t.Fatalf("acmetest: pebble: %v", err)
		}
		cfg := filepath.Join(dir, "pebble-config.json")
		if err := writePebbleConfig(cfg, p.listen, p.management, certFile, keyFile); err != nil {
			t.Fatalf("acmetest: pebble: %v", err)
		}
		lastErr = p.start(t, bin, cfg, resolverAddr)
		if lastErr == nil {
			return p
		}
		if !strings.Contains(p.logs.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("acmetest: pebble: %v", lastErr)
	return nil
}

func (p *Pebble) start(t *testing.T, bin, cfg, resolverAddr string) error {
	t.Helper()
	cmd := exec.Command(bin, "-config", cfg, "-dnsserver", resolverAddr) //nolint:gosec // G204: our own build of pebble with our arguments
	cmd.Env = []string{
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_VA_ALWAYS_VALID=0",
		"PEBBLE_WFE_NONCEREJECT=0",
		"PEBBLE_AUTHZREUSE=0",
	}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := p.waitReady(exited, &waitErr); err != nil {
		stop()
		return fmt.Errorf("%w\n%s", err, p.logs)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("acmetest: pebble log:\n%s", p.logs)
		}
	})
	return nil
}

// waitReady polls the directory and the management API until both answer
// over TLS with our certificate, the process exits, or time runs out.
func (p *Pebble) waitReady(exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(pebbleStartTimeout)
	for {
		err := p.get(p.DirectoryURL(), nil)
		if err == nil {
			err = p.get("https://"+p.management+"/roots/0", nil)
		}
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited early: %w", *waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", pebbleStartTimeout, err)
		}
	}
}

func (p *Pebble) get(url string, body *[]byte) error {
	resp, err := p.client.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d", url, resp.StatusCode)
	}
	if body != nil {
		*body = b
	}
	return nil
}

// DirectoryURL is the ACME directory URL.
func (p *Pebble) DirectoryURL() string { return "https://" + p.listen + "/dir" }

// HTTPClient returns an HTTP client that trusts Pebble's TLS certificate
// and never uses a proxy. It is shared; don't change it.
func (p *Pebble) HTTPClient() *http.Client { return p.client }

// Roots returns Pebble's current issuing root, fetched from its management
// API, for verifying issued chains.
func (p *Pebble) Roots(t *testing.T) *x509.CertPool {
	t.Helper()
	var b []byte
	if err := p.get("https://"+p.management+"/roots/0", &b); err != nil {
		t.Fatalf("acmetest: pebble root: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("acmetest: pebble root: no certificate in %q", b)
	}
	return pool
}

// Logs returns what Pebble has written so far.
func (p *Pebble) Logs() string { return p.logs.String() }

func writePebbleConfig(path, listen, management, certFile, keyFile string) error {
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod int    `json:"validityPeriod"`
	}
	var cfg struct {
		Pebble struct {
			ListenAddress           string             `json:"listenAddress"`
			ManagementListenAddress string             `json:"managementListenAddress"`
			Certificate             string             `json:"certificate"`
			PrivateKey              string             `json:"privateKey"`
			HTTPPort                int                `json:"httpPort"`
			TLSPort                 int                `json:"tlsPort"`
			KeyAlgorithm            string             `json:"keyAlgorithm"`
			Profiles                map[string]profile `json:"profiles"`
			RetryAfter              struct {
				Authz int `json:"authz"`
				Order int `json:"order"`
			} `json:"retryAfter"`
		} `json:"pebble"`
	}
	c := &cfg.Pebble
	c.ListenAddress, c.ManagementListenAddress = listen, management
	c.Certificate, c.PrivateKey = certFile, keyFile
	// HTTP-01 and TLS-ALPN-01 are never used; these ports are only where
	// Pebble's VA would connect for them, nothing listens there.
	c.HTTPPort, c.TLSPort = 5002, 5001
	c.KeyAlgorithm = "ecdsa"
	c.Profiles = map[string]profile{"default": {Description: "acmetest", ValidityPeriod: 7 * 24 * 3600}}
	c.RetryAfter.Authz, c.RetryAfter.Order = 1, 1
	b, err := json.MarshalIndent(&cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("pebble config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("pebble config: %w", err)
	}
	return nil
}

// twoFreePorts returns two 127.0.0.1 addresses that were free a moment ago.
func twoFreePorts() (string, string, error) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = a.Close() }()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = b.Close() }()
	return a.Addr().String(), b.Addr().String(), nil
}

// SelfSignedCert makes an HTTPS certificate (for Pebble, or a TLS test of the hub): a self-signed ECDSA
// certificate for 127.0.0.1, ::1 and localhost, valid for a day, and a pool
// that trusts it.
func SelfSignedCert() (certPEM, keyPEM []byte, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "acmetest pebble"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, pool, nil
}
