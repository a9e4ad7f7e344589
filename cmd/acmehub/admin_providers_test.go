package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/api"
)

// runNoDB runs acmehub in-process with no data directory and an empty
// environment: the providers commands must not need a database.
func runNoDB(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, func(string) string { return "" }, &out, &errOut)
	return cliResult{out.String(), errOut.String(), err}
}

func TestProvidersList(t *testing.T) {
	r := runNoDB(t, "providers", "list")
	if r.err != nil {
		t.Fatalf("providers list: %v\n%s", r.err, r.stderr)
	}
	var cf string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "cloudflare ") {
			cf = line
		}
	}
	if !strings.Contains(cf, "Cloudflare") || !strings.Contains(cf, "CLOUDFLARE_DNS_API_TOKEN") {
		t.Fatalf("cloudflare line %q in\n%s", cf, r.stdout)
	}

	r = runNoDB(t, "providers", "list", "--json")
	var out struct{ Providers []api.ProviderSummaryJSON }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.err != nil {
		t.Fatalf("providers list --json: %v %v\n%s", r.err, err, r.stdout)
	}
	if len(out.Providers) < 150 {
		t.Fatalf("only %d providers", len(out.Providers))
	}
	for _, p := range out.Providers {
		if p.Code == "rfc2136" && (len(p.Credentials) != 1 || p.Credentials[0] != "DNSUPDATE_NAMESERVER") {
			t.Fatalf("rfc2136 in the list: %+v", p)
		}
	}
}

func TestProvidersShow(t *testing.T) {
	// Flags before or after the code; the code in any case.
	for _, args := range [][]string{{"show", "RFC2136", "--json"}, {"show", "--json", "rfc2136"}} {
		r := runNoDB(t, append([]string{"providers"}, args...)...)
		var p api.ProviderJSON
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.err != nil {
			t.Fatalf("providers %v: %v %v\n%s", args, r.err, err, r.stdout)
		}
		var tsig string
		for _, f := range p.Optional {
			if f.Name == "DNSUPDATE_TSIG_KEY" {
				tsig = f.Description
			}
		}
		if p.Code != "rfc2136" || tsig == "" {
			t.Fatalf("providers %v: %+v", args, p)
		}
	}

	r := runNoDB(t, "providers", "show", "cloudflare")
	for _, want := range []string{"Cloudflare (cloudflare)", "CLOUDFLARE_DNS_API_TOKEN\n      Alias to CF_DNS_API_TOKEN", "Optional:", "CLOUDFLARE_TTL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("providers show cloudflare lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runNoDB(t, "providers", "show", "no-such-dns")
	if r.err == nil || !strings.Contains(r.err.Error(), `no provider "no-such-dns"`) || r.stdout != "" {
		t.Fatalf("unknown provider: %v %q", r.err, r.stdout)
	}
	for _, args := range [][]string{{"providers"}, {"providers", "show"}, {"providers", "show", "a", "b"}, {"providers", "list", "x"}, {"providers", "frob"}, {"providers", "list", "--data-dir", "/x"}} {
		if r := runNoDB(t, args...); !errors.Is(r.err, errUsage) || r.stderr == "" {
			t.Errorf("%v: got %v, stderr %q; want a usage error", args, r.err, r.stderr)
		}
	}
	if r := runNoDB(t, "providers", "--help"); r.err != nil || !strings.Contains(r.stdout, "show CODE") {
		t.Errorf("providers --help: %v %q", r.err, r.stdout)
	}
}
