package catalog

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// legoDir finds the lego module directory the generator reads, or skips.
func legoDir(t *testing.T) string {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("ACMEHUB_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("internal/upstream/catalog: %s (ACMEHUB_TEST_REQUIRE_ALL=1)", why)
		}
		t.Skipf("internal/upstream/catalog: %s", why)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		skip("the go tool is not installed")
	}
	out, err := exec.Command(goTool, "list", "-m", "-f", "{{.Dir}}", "github.com/go-acme/lego/v4").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		skip("the lego module directory is not available")
	}
	if _, err := os.Stat(filepath.Join(dir, "providers", "dns")); err != nil {
		skip("the lego module directory has no providers/dns")
	}
	return dir
}

func TestGeneratedFileIsUpToDate(t *testing.T) {
	dir := legoDir(t)
	out := filepath.Join(t.TempDir(), "catalog_gen.go")
	cmd := exec.Command("go", "run", "./gen", "-o", out, "-lego", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("catalog_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("catalog_gen.go is stale: run go generate ./internal/upstream/catalog")
	}
	// Every provider lego ships is in the table.
	tomls, _ := filepath.Glob(filepath.Join(dir, "providers", "dns", "*", "*.toml"))
	if len(tomls) != len(All()) {
		t.Fatalf("lego has %d provider files, the catalogue %d providers", len(tomls), len(All()))
	}
}

func TestAllSortedAndComplete(t *testing.T) {
	all := All()
	if len(all) < 150 {
		t.Fatalf("only %d providers", len(all))
	}
	for i, p := range all {
		if p.Code == "" || p.Name == "" {
			t.Errorf("provider %d has no code or name: %+v", i, p)
		}
		if i > 0 && all[i-1].Code >= p.Code {
			t.Errorf("not sorted by code: %q then %q", all[i-1].Code, p.Code)
		}
		for _, f := range append(p.Credentials, p.Optional...) {
			if f.Name == "" || f.Name != strings.TrimSpace(f.Name) {
				t.Errorf("%s: bad field name %q", p.Code, f.Name)
			}
		}
	}
}

func names(fs []Field) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		m[f.Name] = f.Description
	}
	return m
}

func TestKnownProviders(t *testing.T) {
	cf, ok := Lookup("Cloudflare") // case-insensitive
	if !ok || cf.Code != "cloudflare" || cf.Name != "Cloudflare" {
		t.Fatalf("Lookup(Cloudflare) = %+v, %v", cf, ok)
	}
	creds := names(cf.Credentials)
	for _, n := range []string{"CLOUDFLARE_DNS_API_TOKEN", "CF_DNS_API_TOKEN", "CF_API_KEY"} {
		if _, ok := creds[n]; !ok {
			t.Errorf("cloudflare credentials lack %s: %v", n, creds)
		}
	}
	// TOML order is kept, not map order.
	if cf.Credentials[0].Name != "CF_API_EMAIL" {
		t.Errorf("cloudflare's first credential is %s, want CF_API_EMAIL", cf.Credentials[0].Name)
	}
	if _, ok := names(cf.Optional)["CLOUDFLARE_TTL"]; !ok {
		t.Errorf("cloudflare optional fields lack CLOUDFLARE_TTL: %v", cf.Optional)
	}
	if !strings.Contains(cf.Description, "CF_API_EMAIL") || strings.Contains(cf.Description, "\n") {
		t.Errorf("cloudflare description: %q", cf.Description)
	}

	// lego v4.35.2's rfc2136 reads DNSUPDATE_* variables; the TSIG ones are optional.
	r, ok := Lookup("rfc2136")
	if !ok {
		t.Fatal("no rfc2136")
	}
	if _, ok := names(r.Credentials)["DNSUPDATE_NAMESERVER"]; !ok {
		t.Errorf("rfc2136 credentials: %v", r.Credentials)
	}
	opt := names(r.Optional)
	for _, n := range []string{"DNSUPDATE_TSIG_KEY", "DNSUPDATE_TSIG_SECRET", "DNSUPDATE_TSIG_ALGORITHM"} {
		if _, ok := opt[n]; !ok {
			t.Errorf("rfc2136 optional fields lack %s", n)
		}
	}
	// An alias finds the canonical provider.
	if a, ok := Lookup("DNSUPDATE"); !ok || a.Code != "rfc2136" {
		t.Errorf("Lookup(DNSUPDATE) = %q, %v", a.Code, ok)
	}
	if _, ok := Lookup("route53"); !ok {
		t.Error("no route53")
	}
	for _, bad := range []string{"", "nope", "cloudflare "} {
		if p, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) = %q", bad, p.Code)
		}
	}
}

func TestCallersCannotChangeTheTable(t *testing.T) {
	p, _ := Lookup("cloudflare")
	p.Credentials[0].Name = "CHANGED"
	all := All()
	all[0].Name = "CHANGED"
	if q, _ := Lookup("cloudflare"); q.Credentials[0].Name == "CHANGED" {
		t.Error("Lookup shares the credential slice")
	}
	if All()[0].Name == "CHANGED" {
		t.Error("All shares the table")
	}
}
