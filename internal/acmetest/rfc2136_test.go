package acmetest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
	"github.com/miekg/dns"
)

// The RFC 2136 gateway end to end: real clients (lego's rfc2136 provider
// as a library, certbot with python3-certbot-dns-rfc2136, nsupdate) sign
// UPDATEs with TSIG keys the hub issued and send them to the hub's gateway
// listener (--gateway-listen); Pebble validates through example.test's
// _acme-challenge CNAME into the hub zone, which only the hub serves.

// gateway is a hub with a gateway listener, set up as startDelegated
// does: a consumer principal "rfc2136" allowed *.example.test, the
// delegation of example.test (target) whose CNAME the domain's DNS (res)
// serves, and Pebble validating through res.
type gateway struct {
	hub    *Hub
	addr   string // the gateway listener, 127.0.0.1:port
	port   int
	target string
	res    *Resolver
	pebble *Pebble
}

const gatewayPrincipal = "rfc2136"

func startGateway(t *testing.T) *gateway {
	t.Helper()
	buildBinaries(t)
	port := FreePort(t)
	g := &gateway{port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	g.hub = StartHub(t, HubConfig{Zone: "acme.test.", Args: []string{"--gateway-listen", g.addr}})
	tok := g.hub.Consumer(t, gatewayPrincipal, "*.example.test")
	native, err := NewNativeProvider(NativeProviderConfig{BaseURL: g.hub.APIURL, Token: tok.String()})
	if err != nil {
		t.Fatal(err)
	}
	g.target = delegationTarget(t, native, "example.test")
	g.res = NewResolver(t)
	g.res.Forward("acme.test.", g.hub.DNSAddr)
	g.res.SetRecords(domainZone(t, "example.test", g.target)...)
	g.pebble = StartPebble(t, g.res.Addr())
	return g
}

// issuedTSIGKey is the answer of POST /api/v1/tsig-keys (what the tests read).
type issuedTSIGKey struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Principal string `json:"principal"`
	Secret    string `json:"secret"`
	Forms     struct {
		BIND    string `json:"bind"`
		Certbot string `json:"certbot"`
		Lego    string `json:"lego"`
	} `json:"forms"`
}

// tsigKeyAPI creates a TSIG key for principal through the admin API with
// the bootstrap admin token.
func (g *gateway) tsigKeyAPI(t *testing.T, principal, algorithm string) issuedTSIGKey {
	t.Helper()
	body := map[string]any{"principal": principal, "algorithm": algorithm, "title": "acmetest", "server": "127.0.0.1", "port": g.port}
	r := (&upstream{hub: g.hub}).call(t, http.MethodPost, "/api/v1/tsig-keys", bearer(g.hub.Token), body)
	r.want(t, http.StatusCreated)
	var k issuedTSIGKey
	if err := json.Unmarshal(r.body, &k); err != nil || k.Name == "" || k.Secret == "" || k.Principal != principal {
		t.Fatalf("POST /api/v1/tsig-keys: %v: %s", err, r.body)
	}
	return k
}

// cli runs `acmehub args...` on the hub's database and returns stdout.
func (g *gateway) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args = append(args, "--db", filepath.Join(g.hub.DataDir, "acmehub.db"), "--key-file", filepath.Join(g.hub.DataDir, "acmehub.key"))
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = []string{}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("acmehub %s: %v\n%s%s", strings.Join(args[:2], " "), err, out, stderr.String())
	}
	return string(out)
}

// noSecretInLogs fails the test if the hub logged a key's secret.
func (g *gateway) noSecretInLogs(t *testing.T, secrets ...string) {
	t.Helper()
	logs := g.hub.Logs()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the hub's log contains a TSIG secret")
		}
	}
}

// soaAt asks server for the SOA of name (RD clear, as certbot does),
// signed with key when it is not nil.
func soaAt(t *testing.T, server, name string, key *rfc2136Key) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeSOA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	if key != nil {
		m.SetTsig(key.name, key.alg, 300, time.Now().Unix())
		c.TsigSecret = map[string]string{key.name: key.secret}
	}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("SOA %s at %s: %v", name, server, err)
	}
	return r
}

type rfc2136Key struct{ name, alg, secret string }

// TestRFC2136Lego: lego's rfc2136 provider as a library against the
// gateway, with a key made by the admin API. Present makes the value
// visible on the hub's public DNS at the delegation (lego follows the
// _acme-challenge CNAME and finds the zone by asking the gateway), CleanUp
// removes it; then lego's client obtains a certificate for example.test
// and *.example.test from Pebble through it. A key of a principal allowed
// only example.net is REFUSED and changes nothing. Zone discovery: the
// gateway answers the SOA of names some rule covers (unsigned) or the
// key's names (signed), the public listener never does.
func TestRFC2136Lego(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: RFC 2136 issuance skipped in -short mode")
	}
	g := startGateway(t)
	k := g.tsigKeyAPI(t, gatewayPrincipal, "hmac-sha256")
	if k.Algorithm != "hmac-sha256" || !strings.Contains(k.Forms.Lego, "DNSUPDATE_NAMESERVER="+g.addr) ||
		!strings.Contains(k.Forms.Lego, "DNSUPDATE_TSIG_SECRET="+k.Secret) {
		t.Fatalf("key %s (%s); lego form:\n%s", k.Name, k.Algorithm, k.Forms.Lego)
	}
	provider := func(t *testing.T, k issuedTSIGKey) *rfc2136.DNSProvider {
		t.Helper()
		p, err := rfc2136.NewDNSProviderConfig(&rfc2136.Config{
			Nameserver: g.addr, TSIGKey: k.Name, TSIGSecret: k.Secret, TSIGAlgorithm: k.Algorithm,
			DNSTimeout: 5 * time.Second, TTL: 60,
			// lego's defaults (60 s between challenges, 60 s propagation) made fast.
			SequenceInterval: 100 * time.Millisecond, PropagationTimeout: 30 * time.Second, PollingInterval: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := provider(t, k)
	signed := &rfc2136Key{k.Name, dns.Fqdn(k.Algorithm), k.Secret}
	const challenge = "_acme-challenge.example.test."

	t.Run("zone discovery", func(t *testing.T) {
		for _, tc := range []struct {
			name, server, qname string
			key                 *rfc2136Key
			want                int
		}{
			{"unsigned, a name a rule covers", g.addr, challenge, nil, dns.RcodeSuccess},
			{"signed, the key's name", g.addr, challenge, signed, dns.RcodeSuccess},
			{"the delegation's name", g.addr, g.target, signed, dns.RcodeSuccess},
			{"no rule covers it", g.addr, "_acme-challenge.example.org.", nil, dns.RcodeRefused},
			{"not a challenge name", g.addr, "example.test.", nil, dns.RcodeRefused},
			{"the public listener", g.hub.DNSAddr, challenge, nil, dns.RcodeRefused},
		} {
			r := soaAt(t, tc.server, tc.qname, tc.key)
			if r.Rcode != tc.want {
				t.Errorf("%s: SOA %s: %s, want %s", tc.name, tc.qname, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.want])
				continue
			}
			if tc.want != dns.RcodeSuccess {
				if len(r.Answer) != 0 {
					t.Errorf("%s: a refusal with an answer: %v", tc.name, r.Answer)
				}
				continue
			}
			if !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA ||
				!strings.EqualFold(r.Answer[0].Header().Name, tc.qname) {
				t.Errorf("%s: SOA %s: want AA and the SOA owned by the name in the answer, got %v", tc.name, tc.qname, r)
			}
		}
	})

	t.Run("present and clean up", func(t *testing.T) {
		legoMu.Lock() // lego's CNAME lookups use its package-wide resolver
		defer legoMu.Unlock()
		_ = dns01.AddRecursiveNameservers([]string{g.res.Addr()})(nil)
		for _, cname := range []bool{true, false} {
			dns01.ClearFqdnCache()
			if !cname {
				// lego then writes _acme-challenge.example.test itself.
				t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
			}
			keyAuth := "token." + randomValue(t)
			sum := sha256.Sum256([]byte(keyAuth))
			value := base64.RawURLEncoding.EncodeToString(sum[:])
			if err := p.Present("example.test", "token", keyAuth); err != nil {
				t.Fatalf("present (follow CNAME %v): %v", cname, err)
			}
			if got := txtAt(t, g.hub.DNSAddr, g.target); !slices.Equal(got, []string{value}) {
				t.Fatalf("TXT at %s after present (follow CNAME %v) = %q, want %q", g.target, cname, got, value)
			}
			if got := txtAt(t, g.res.Addr(), challenge); !slices.Equal(got, []string{value}) {
				t.Fatalf("TXT at %s through the CNAME = %q, want %q", challenge, got, value)
			}
			if err := p.CleanUp("example.test", "token", keyAuth); err != nil {
				t.Fatalf("clean up (follow CNAME %v): %v", cname, err)
			}
			if got := txtAt(t, g.hub.DNSAddr, g.target); len(got) != 0 {
				t.Fatalf("TXT at %s after clean-up = %q", g.target, got)
			}
		}
	})

	t.Run("another domain's key", func(t *testing.T) {
		g.hub.Consumer(t, "netonly", "*.example.net")
		other := g.tsigKeyAPI(t, "netonly", "hmac-sha512")
		before := (&upstream{hub: g.hub}).metric(t, "acmehub_dns_updates_total", map[string]string{"result": "refused"})
		legoMu.Lock()
		_ = dns01.AddRecursiveNameservers([]string{g.res.Addr()})(nil)
		dns01.ClearFqdnCache()
		err := provider(t, other).Present("example.test", "token", "token.refused")
		legoMu.Unlock()
		if err == nil || !strings.Contains(err.Error(), "REFUSED") {
			t.Fatalf("present with a key for example.net: %v, want REFUSED", err)
		}
		if got := txtAt(t, g.hub.DNSAddr, g.target); len(got) != 0 {
			t.Errorf("a refused UPDATE changed %s: %q", g.target, got)
		}
		// Signed with that key, the gateway does not answer the discovery query either.
		r := soaAt(t, g.addr, challenge, &rfc2136Key{other.Name, dns.Fqdn(other.Algorithm), other.Secret})
		if r.Rcode != dns.RcodeRefused {
			t.Errorf("signed SOA %s with a key for example.net: %s, want REFUSED", challenge, dns.RcodeToString[r.Rcode])
		}
		after := (&upstream{hub: g.hub}).metric(t, "acmehub_dns_updates_total", map[string]string{"result": "refused"})
		if after < before+1 {
			t.Errorf("acmehub_dns_updates_total{result=refused} went from %v to %v", before, after)
		}
		g.noSecretInLogs(t, other.Secret)
	})

	t.Run("issue", func(t *testing.T) {
		cert, err := ObtainCertificate(t, g.pebble, g.res.Addr(), p, "example.test", "*.example.test")
		if err != nil {
			t.Fatalf("obtain through the gateway: %v", err)
		}
		checkCert(t, g.pebble, cert.Certificate, "example.test", "*.example.test")
		if got := txtAt(t, g.hub.DNSAddr, g.target); len(got) != 0 {
			t.Errorf("values left at %s after lego's clean-up: %q", g.target, got)
		}
	})
	g.noSecretInLogs(t, k.Secret)
}

// TestRFC2136Certbot: the real certbot with the Debian plugin
// python3-certbot-dns-rfc2136 issues a certificate for example.test and
// *.example.test from Pebble, with credentials printed by
// `acmehub tsig create --format certbot` (hmac-md5, certbot's default).
// The plugin finds the zone by signed SOA queries to the gateway and
// writes _acme-challenge.example.test; Pebble validates through the CNAME.
func TestRFC2136Certbot(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: certbot issuance skipped in -short mode")
	}
	certbot := certbotTool(t, "certbot")
	// The Debian package's module, or one certbot's python3 imports.
	if _, err := os.Stat("/usr/lib/python3/dist-packages/certbot_dns_rfc2136"); err != nil &&
		exec.CommandContext(t.Context(), "python3", "-c", "import certbot_dns_rfc2136").Run() != nil {
		if os.Getenv("ACMEHUB_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("internal/acmetest: python3-certbot-dns-rfc2136 is not installed (ACMEHUB_TEST_REQUIRE_ALL=1)")
		}
		t.Skip("internal/acmetest: python3-certbot-dns-rfc2136 is not installed")
	}
	g := startGateway(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "rfc2136.ini")
	g.cli(t, "tsig", "create", "--principal", gatewayPrincipal, "--algorithm", "hmac-md5", "--title", "certbot",
		"--format", "certbot", "--server", "127.0.0.1", "--port", strconv.Itoa(g.port), "--out", creds)
	fi, err := os.Stat(creds)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", fi, err)
	}
	raw, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	ini := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			ini[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	// What certbot-dns-rfc2136 2.1 reads; it looks the algorithm up
	// case-sensitively in upper case, and wants an IP address.
	want := map[string]string{"dns_rfc2136_server": "127.0.0.1", "dns_rfc2136_port": strconv.Itoa(g.port), "dns_rfc2136_algorithm": "HMAC-MD5"}
	for k, v := range want {
		if ini[k] != v {
			t.Errorf("%s = %q, want %q", k, ini[k], v)
		}
	}
	secret := ini["dns_rfc2136_secret"]
	if !strings.HasPrefix(ini["dns_rfc2136_name"], "acmehub-") || len(secret) != 44 {
		t.Fatalf("credentials file lacks the key's name or secret:\n%s", raw)
	}

	cfgDir, logsDir := filepath.Join(dir, "config"), filepath.Join(dir, "logs")
	ctx, cancel := context.WithTimeout(t.Context(), certbotTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, certbot, "certonly",
		"--dns-rfc2136", "--dns-rfc2136-credentials", creds, "--dns-rfc2136-propagation-seconds", "1",
		"--server", g.pebble.DirectoryURL(),
		"--config-dir", cfgDir, "--work-dir", filepath.Join(dir, "work"), "--logs-dir", logsDir,
		"--agree-tos", "--register-unsafely-without-email", "--non-interactive",
		"--cert-name", "example.test", "-d", "example.test", "-d", "*.example.test")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "REQUESTS_CA_BUNDLE=" + certbotPebbleCA(t, g.pebble, dir)}
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	DieWithParent(cmd)
	start := time.Now()
	runErr := cmd.Run()
	certbotLog, _ := os.ReadFile(filepath.Join(logsDir, "letsencrypt.log"))
	if runErr != nil {
		t.Fatalf("certbot: %v\n%s\n--- letsencrypt.log ---\n%s\n--- hub ---\n%s", runErr, out.String(), certbotLog, g.hub.Logs())
	}
	t.Logf("certbot issued through the gateway in %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(string(certbotLog), "Received authoritative SOA response for _acme-challenge.example.test\n") {
		t.Errorf("certbot's log does not show the gateway's zone-discovery answer")
	}
	chain, err := os.ReadFile(filepath.Join(cfgDir, "live", "example.test", "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	checkCert(t, g.pebble, chain, "example.test", "*.example.test")
	// certbot deletes each value it added (delete one RR).
	if got := txtAt(t, g.hub.DNSAddr, g.target); len(got) != 0 {
		t.Errorf("values left at %s after certbot's clean-up: %q", g.target, got)
	}
	g.noSecretInLogs(t, secret)
}

// TestRFC2136Nsupdate: nsupdate (bind9-dnsutils) with the key file
// `acmehub tsig create --format bind` printed adds a TXT value at
// _acme-challenge.example.test through the gateway (zone found by its SOA
// query, over UDP), which the public DNS then serves at the delegation;
// deletes the RRset (zone given, a prerequisite, over TCP); and an update
// for a name outside the key's scope fails with REFUSED.
func TestRFC2136Nsupdate(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: nsupdate test skipped in -short mode")
	}
	nsupdate := certbotTool(t, "nsupdate")
	g := startGateway(t)
	out := g.cli(t, "tsig", "create", "--principal", gatewayPrincipal, "--name", "nsupdate.example.test",
		"--algorithm", "hmac-sha512", "--format", "bind")
	if !strings.HasPrefix(out, `key "nsupdate.example.test." {`) || !strings.Contains(out, "algorithm hmac-sha512;") {
		t.Fatalf("bind form:\n%s", out)
	}
	_, rest, _ := strings.Cut(out, `secret "`)
	secret, _, _ := strings.Cut(rest, `"`)
	if len(secret) != 44 {
		t.Fatalf("bind form has no secret:\n%s", out)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "acmehub.key")
	if err := os.WriteFile(keyFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, script string, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, nsupdate, append([]string{"-k", keyFile}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		cmd.Stdin = strings.NewReader("server 127.0.0.1 " + strconv.Itoa(g.port) + "\n" + script + "send\n")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	const value = "nsupdate-value_0123456789"
	const challenge = "_acme-challenge.example.test."

	if o, err := run(t, "update add "+challenge+" 60 TXT \""+value+"\"\n"); err != nil {
		t.Fatalf("nsupdate add: %v\n%s\n--- hub ---\n%s", err, o, g.hub.Logs())
	}
	if got := txtAt(t, g.hub.DNSAddr, g.target); !slices.Equal(got, []string{value}) {
		t.Fatalf("TXT at %s after nsupdate's add = %q, want %q", g.target, got, value)
	}
	if got := txtAt(t, g.res.Addr(), challenge); !slices.Equal(got, []string{value}) {
		t.Fatalf("TXT at %s through the CNAME = %q", challenge, got)
	}
	// A prerequisite that does not hold: NXRRSET, nothing deleted.
	o, err := run(t, "zone "+challenge+"\nprereq nxrrset "+challenge+" TXT\nupdate delete "+challenge+" TXT\n", "-v")
	if err == nil || !strings.Contains(o, "YXRRSET") {
		t.Fatalf("nsupdate with a failing prerequisite: %v\n%s", err, o)
	}
	if got := txtAt(t, g.hub.DNSAddr, g.target); len(got) != 1 {
		t.Fatalf("a failed prerequisite changed %s: %q", g.target, got)
	}
	if o, err := run(t, "zone "+challenge+"\nprereq yxrrset "+challenge+" TXT\nupdate delete "+challenge+" TXT\n", "-v"); err != nil {
		t.Fatalf("nsupdate delete: %v\n%s", err, o)
	}
	if got := txtAt(t, g.hub.DNSAddr, g.target); len(got) != 0 {
		t.Fatalf("TXT at %s after nsupdate's delete = %q", g.target, got)
	}

	g.hub.Consumer(t, "netonly", "*.example.net")
	o, err = run(t, "zone example.net.\nupdate add _acme-challenge.example.net. 60 TXT \"x\"\n")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(o, "REFUSED") {
		t.Fatalf("nsupdate outside the key's scope: %v, want a failure with REFUSED:\n%s", err, o)
	}
	g.noSecretInLogs(t, secret)
}
