package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/api"
)

func TestAdminCLIACMEDNS(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	setupConsumer(t, dir) // principal shop, config example-org for *.example.org
	server := "https://hub.example.net/acme-dns"

	// create: printed once, owned by shop, on a new label.
	var acct api.ACMEDNSAccountJSON
	cliJSON(t, dir, &acct, "acme-dns", "create", "--domain", "*.www.example.org", "--owner", "shop",
		"--allow-from", "10.0.0.0/8", "--server-url", server)
	if acct.Domain != "www.example.org" || len(acct.Password) != 40 || acct.Owner != "shop" || acct.ServerURL != server ||
		!slices.Equal(acct.AllowFrom, []string{"10.0.0.0/8"}) || !strings.HasSuffix(acct.FullDomain, ".acme.test") {
		t.Fatalf("created %+v", acct)
	}
	text := mustCLI(t, dir, "acme-dns", "create", "--domain", "www.example.org")
	if !strings.Contains(text, "password:") || !strings.Contains(text, "CNAME "+acct.FullDomain+".") {
		t.Fatalf("text create (same label expected):\n%s", text)
	}
	mustCLI(t, dir, "acme-dns", "create", "--domain", "shop.example.org", "--owner", "shop")
	if r := runCLI(t, dir, "acme-dns", "create", "--domain", "example.net"); r.err == nil {
		t.Fatal("create for a domain no config matches succeeded")
	}
	if r := runCLI(t, dir, "acme-dns", "create"); r.err == nil || !strings.Contains(r.stderr, "--domain is required") {
		t.Fatalf("create without --domain: %v %s", r.err, r.stderr)
	}

	// list: never a password.
	var list []api.ACMEDNSAccountJSON
	cliJSON(t, dir, &list, "acme-dns", "list", "--owner", "shop")
	if len(list) != 2 {
		t.Fatalf("list --owner shop: %+v", list)
	}
	for _, a := range list {
		if a.Password != "" {
			t.Fatal("list shows a password")
		}
	}
	cliJSON(t, dir, &list, "acme-dns", "list", "--domain", "www.example.org")
	if len(list) != 2 {
		t.Fatalf("list --domain: %+v", list)
	}
	if out := mustCLI(t, dir, "acme-dns", "list"); strings.Contains(out, acct.Password) || !strings.Contains(out, acct.Username) {
		t.Fatalf("text list:\n%s", out)
	}

	// show --reveal shows the password again.
	if out := mustCLI(t, dir, "acme-dns", "show", acct.Username, "--reveal"); !strings.Contains(out, acct.Password) {
		t.Fatalf("show --reveal:\n%s", out)
	}
	if out := mustCLI(t, dir, "acme-dns", "show", acct.Username); strings.Contains(out, acct.Password) {
		t.Fatalf("show without --reveal shows the password:\n%s", out)
	}

	// export goacmedns: the golden shape, one entry per domain (the newest
	// account of www.example.org), to a file of mode 0600.
	out := filepath.Join(t.TempDir(), "acmedns.json")
	mustCLI(t, dir, "acme-dns", "export", "--format", "goacmedns", "--owner", "shop", "--domain", "www.example.org",
		"--out", out, "--server-url", server)
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file %v %v", st, err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var goacme map[string]map[string]string
	if err := json.Unmarshal(raw, &goacme); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"www.example.org": {
		"fulldomain": acct.FullDomain, "subdomain": acct.Subdomain, "username": acct.Username, "password": acct.Password, "server_url": server,
	}}
	if !reflect.DeepEqual(goacme, want) {
		t.Fatalf("goacmedns export:\n%s\nwant %v", raw, want)
	}

	// export cert-manager: every domain, also under its wildcard.
	var cm map[string]map[string]string
	if err := json.Unmarshal([]byte(mustCLI(t, dir, "acme-dns", "export", "--format", "cert-manager", "--server-url", server)), &cm); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(cm))
	for k, v := range cm {
		keys = append(keys, k)
		if len(v) != 5 || v["password"] == "" || v["server_url"] != server {
			t.Fatalf("cert-manager entry %s: %v", k, v)
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"*.shop.example.org", "*.www.example.org", "shop.example.org", "www.example.org"}) {
		t.Fatalf("cert-manager keys %v", keys)
	}
	if r := runCLI(t, dir, "acme-dns", "export", "--format", "yaml"); r.err == nil {
		t.Fatal("unknown format accepted")
	}

	// delete.
	mustCLI(t, dir, "acme-dns", "delete", acct.Username)
	if r := runCLI(t, dir, "acme-dns", "show", acct.Username); r.err == nil {
		t.Fatal("deleted account still shown")
	}
	// The audit log names the reveals, never a password.
	var events []auditEventJSON
	cliJSON(t, dir, &events, "audit", "list", "--limit", "100")
	actions := map[string]int{}
	for _, ev := range events {
		actions[ev.Action+"/"+ev.Result]++
		if strings.Contains(ev.Detail+ev.Target, acct.Password) {
			t.Fatalf("audit event holds a password: %+v", ev)
		}
	}
	if actions["acme_dns.register/ok"] != 3 || actions["acme_dns.register/denied"] != 1 || actions["acme_dns.reveal/ok"] < 3 ||
		actions["acme_dns.delete/ok"] != 1 {
		t.Fatalf("audit actions %v", actions)
	}
}
