package acmetest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/providers/dns/acmedns"

	"github.com/acmehub/acmehub/store"
)

// acmeDNSConfigName is the hub's --acme-dns-config: the delegated config of
// accounts registered without a domain.
const acmeDNSConfigName = "acme-dns-accounts"

// TestIssueThroughACMEDNS issues certificates from Pebble with lego's own
// acme-dns provider against the hub's acme-dns API, with one hub and one
// Pebble:
//
//   - http storage: lego keeps its accounts in the hub (its HTTP storage,
//     with the hub token in the URLs' userinfo). The first order registers
//     an account, binds it to the domain and stops with lego's
//     ErrCNAMERequired naming the hub's label; once the domain's owner has
//     added that CNAME, the second order gets example.test and
//     *.example.test.
//   - file storage: an admin creates an account for example.net with the
//     CLI and exports it as a goacmedns storage file, which lego reads.
func TestIssueThroughACMEDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: end-to-end issuance skipped in -short mode")
	}
	buildBinaries(t)

	hub := StartHub(t, HubConfig{Zone: "acme.test.", Args: []string{"--acme-dns-config", acmeDNSConfigName}})
	hub.withStore(t, func(ctx context.Context, db *store.DB) error {
		_, err := db.CreateConfig(ctx, store.ChallengeConfig{Name: acmeDNSConfigName, Provider: store.ProviderDelegated,
			Rule: "*.acme-dns-accounts.test", CreatedBy: "acmetest"})
		return err
	})
	res := NewResolver(t)
	res.Forward("acme.test.", hub.DNSAddr)
	static := append(domainZone(t, "example.test", ""), domainZone(t, "example.net", "")...)
	setRecords := func(extra ...string) {
		rrs := slices.Clone(static)
		for _, s := range extra {
			rrs = append(rrs, RR(t, s))
		}
		res.SetRecords(rrs...)
	}
	setRecords()
	pebble := StartPebble(t, res.Addr())
	var cnames []string  // the CNAMEs the domains' owners have added
	var secrets []string // what must never reach the hub's log

	t.Run("http storage", func(t *testing.T) {
		tok := hub.Consumer(t, "shop", "*.example.test")
		withToken, err := url.Parse(hub.APIURL)
		if err != nil {
			t.Fatal(err)
		}
		withToken.User = url.UserPassword(tok.ClientID, tok.Secret)
		legoProvider, err := acmedns.NewDNSProviderConfig(&acmedns.Config{
			APIBase:        withToken.String() + "/",
			StorageBaseURL: withToken.String() + "/api/v1/acme-dns/storage",
		})
		if err != nil {
			t.Fatal(err)
		}
		provider := quickCheck{legoProvider}

		_, err = ObtainCertificate(t, pebble, res.Addr(), provider, "example.test", "*.example.test")
		var need acmedns.ErrCNAMERequired
		if !errors.As(err, &need) {
			t.Fatalf("first order: %v, want lego's ErrCNAMERequired", err)
		}
		if need.Domain != "example.test" || need.FQDN != "_acme-challenge.example.test." || !strings.HasSuffix(need.Target, ".acme.test") {
			t.Fatalf("CNAME required: %+v", need)
		}
		if strings.Contains(err.Error(), tok.Secret) {
			t.Fatal("lego's error shows the token secret")
		}
		t.Logf("first order: %v", err)

		// The hub now stores the account for the domain, for this token.
		stored := storageFetch(t, hub.APIURL+"/api/v1/acme-dns/storage/example.test", tok.ClientID, tok.Secret)
		if stored.FullDomain != need.Target || len(stored.Password) != 40 || stored.ServerURL == "" {
			t.Fatalf("stored account %+v for target %s", stored, need.Target)
		}

		cnames = append(cnames, need.FQDN+" 60 IN CNAME "+need.Target+".")
		setRecords(cnames...)
		cert, err := ObtainCertificate(t, pebble, res.Addr(), provider, "example.test", "*.example.test")
		if err != nil {
			t.Fatalf("second order: %v", err)
		}
		checkCert(t, pebble, cert.Certificate, "example.test", "*.example.test")
		// Every value stays until it expires (acme-dns clients never clean
		// up, and there is no two-value ring): the one the first order's
		// other authorization set, and both of the second order's.
		if got := txtAt(t, hub.DNSAddr, need.Target+"."); len(got) != 3 {
			t.Errorf("values at %s after the orders: %q, want 3", need.Target, got)
		}
		secrets = append(secrets, tok.Secret, stored.Password)
	})

	t.Run("file storage", func(t *testing.T) {
		hub.Consumer(t, "files", "*.example.net")
		cli := func(args ...string) []byte {
			t.Helper()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args = append(args, "--db", filepath.Join(hub.DataDir, "acmehub.db"), "--key-file", filepath.Join(hub.DataDir, "acmehub.key"))
			cmd := exec.CommandContext(ctx, Binary(t), args...)
			cmd.Env = []string{}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("acmehub %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
			}
			return out
		}
		cli("acme-dns", "create", "--domain", "example.net", "--owner", "files")
		file := filepath.Join(t.TempDir(), "acme-dns.json")
		cli("acme-dns", "export", "--format", "goacmedns", "--domain", "example.net", "--server-url", hub.APIURL, "--out", file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var accounts map[string]storedAccount
		if err := json.Unmarshal(raw, &accounts); err != nil {
			t.Fatalf("export is not a goacmedns storage file: %v\n%s", err, raw)
		}
		acct, ok := accounts["example.net"]
		if !ok || len(acct.Password) != 40 || !strings.HasSuffix(acct.FullDomain, ".acme.test") || acct.ServerURL != hub.APIURL {
			t.Fatalf("exported accounts: %s", raw)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("export file mode: %v %v", fi.Mode(), err)
		}

		cnames = append(cnames, "_acme-challenge.example.net. 60 IN CNAME "+acct.FullDomain+".")
		setRecords(cnames...)
		provider, err := acmedns.NewDNSProviderConfig(&acmedns.Config{APIBase: hub.APIURL, StoragePath: file})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ObtainCertificate(t, pebble, res.Addr(), quickCheck{provider}, "example.net", "*.example.net")
		if err != nil {
			t.Fatalf("order with the exported account: %v", err)
		}
		checkCert(t, pebble, cert.Certificate, "example.net", "*.example.net")
		secrets = append(secrets, acct.Password)
	})

	logs := hub.Logs()
	if !strings.Contains(logs, "/update") {
		t.Fatal("no access log line for /update: the log check proves nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the hub's log holds a secret")
		}
	}
}

// quickCheck is lego's acmedns provider with a shorter propagation wait:
// it sets none, and lego's default of 60 s is what the first order, which
// stops at the missing CNAME, would otherwise spend waiting for the other
// authorization's value.
type quickCheck struct{ *acmedns.DNSProvider }

func (quickCheck) Timeout() (timeout, interval time.Duration) {
	return 5 * time.Second, 250 * time.Millisecond
}

// storedAccount is goacmedns's Account (lego's storage and storage file).
type storedAccount struct {
	FullDomain string `json:"fulldomain"`
	SubDomain  string `json:"subdomain"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	ServerURL  string `json:"server_url"`
}

// storageFetch GETs one account from the hub's lego storage.
func storageFetch(t *testing.T, u, user, pass string) storedAccount {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var a storedAccount
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return a
}

// checkCert checks the leaf's names and its chain to Pebble's root.
func checkCert(t *testing.T, p *Pebble, bundle []byte, names ...string) {
	t.Helper()
	leaf, intermediates := parseChain(t, bundle)
	if got, want := slices.Sorted(slices.Values(leaf.DNSNames)), slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Errorf("SANs %q, want %q", got, want)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName: strings.TrimPrefix(names[0], "*."), Roots: p.Roots(t), Intermediates: intermediates,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Errorf("verify the chain against Pebble's root: %v", err)
	}
}
