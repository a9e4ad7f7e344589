package api_test

import (
	"net/http"
	"testing"
)

func TestProviderCatalogue(t *testing.T) {
	f := newFixture(t)
	// Any authenticated token reads it, not only admins.
	_, consumer := f.newPrincipal(t, "shop", "managed_challenge_consumer", "*.example.org")
	asConsumer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+consumer.String()) }

	ps := list(t, f.must(t, http.StatusOK, "GET", "/api/v1/providers", "", asConsumer), "providers")
	if len(ps) < 150 {
		t.Fatalf("only %d providers", len(ps))
	}
	var cf map[string]any
	for _, p := range ps {
		if p["code"] == "cloudflare" {
			cf = p
		}
		if _, ok := p["description"]; ok {
			t.Fatalf("the list carries descriptions: %v", p)
		}
	}
	if cf == nil || cf["name"] != "Cloudflare" || !containsString(cf["credentials"], "CLOUDFLARE_DNS_API_TOKEN") {
		t.Fatalf("cloudflare in the list: %v", cf)
	}

	// One provider, case-insensitive, with every field described.
	r := f.must(t, http.StatusOK, "GET", "/api/v1/providers/RFC2136", "", f.bearer)
	if r.body["code"] != "rfc2136" || r.body["url"] == "" {
		t.Fatalf("rfc2136: %s", r.raw)
	}
	opt := list(t, r, "optional")
	found := false
	for _, o := range opt {
		if o["name"] == "DNSUPDATE_TSIG_KEY" && o["description"] != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("rfc2136 optional fields lack a described DNSUPDATE_TSIG_KEY: %s", r.raw)
	}
	if creds := list(t, r, "credentials"); len(creds) == 0 || creds[0]["name"] != "DNSUPDATE_NAMESERVER" {
		t.Fatalf("rfc2136 credentials: %s", r.raw)
	}
	// An alias answers with the canonical provider.
	if r := f.must(t, http.StatusOK, "GET", "/api/v1/providers/dnsupdate", "", asConsumer); r.body["code"] != "rfc2136" {
		t.Fatalf("alias dnsupdate: %s", r.raw)
	}
	// A provider without credential fields still has a list, not null.
	if r := f.must(t, http.StatusOK, "GET", "/api/v1/providers/manual", "", f.bearer); r.body["credentials"] == nil {
		t.Fatalf("manual: %s", r.raw)
	}

	f.problem(t, http.StatusNotFound, "not_found", "GET", "/api/v1/providers/no-such-dns", "", asConsumer, "no such provider")
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/providers", "", nil)
	f.problem(t, http.StatusUnauthorized, "unauthenticated", "GET", "/api/v1/providers/cloudflare", "", nil)
}

func containsString(v any, s string) bool {
	xs, _ := v.([]any)
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
