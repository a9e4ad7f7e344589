package hub

import (
	"errors"
	"strings"
	"testing"
)

// The provider is stored under the catalogue's code, whatever case or
// alias the request used.
func TestCredentialCanonicalProvider(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	for _, tc := range []struct{ name, asked, want, field string }{
		{"cf", "Cloudflare", "cloudflare", "CF_DNS_API_TOKEN"},
		{"lin", "LinodeV4", "linode", "LINODE_TOKEN"},
	} {
		c, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: tc.name, Provider: tc.asked,
			Fields: map[string]string{tc.field: credValue}})
		if err != nil || c.Provider != tc.want {
			t.Fatalf("%s: provider %q, %v; want %q", tc.asked, c.Provider, err, tc.want)
		}
		stored, err := ts.db.CredentialByID(t.Context(), c.ID)
		if err != nil || stored.Provider != tc.want {
			t.Fatalf("%s: stored %q, %v", tc.asked, stored.Provider, err)
		}
		if prov, _, err := ts.svc.OpenCredential(t.Context(), c.ID); err != nil || prov != tc.want {
			t.Fatalf("%s: opened as %q, %v", tc.asked, prov, err)
		}
	}
}

// Fields that make lego read or write a file, or pick up an identity of
// the hub host, are refused by name; the value never shows.
func TestCredentialRefusesHostReferences(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	for _, tc := range []struct{ provider, field string }{
		{"cloudflare", "CF_DNS_API_TOKEN_FILE"},
		{"cloudflare", "cf_zone_api_token_file"},
		{"route53", "AWS_PROFILE"},
		{"route53", "AWS_SDK_LOAD_CONFIG"},
		{"route53", "AWS_SHARED_CREDENTIALS_FILE"},
		{"route53", "AWS_CONFIG_FILE"},
		{"gcloud", "GCE_SERVICE_ACCOUNT_FILE"},
		{"exec", "EXEC_PATH"},
	} {
		fields := map[string]string{tc.field: "/etc/" + credValue}
		_, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: "x", Provider: tc.provider, Fields: fields})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("%s %s: %v", tc.provider, tc.field, err)
		}
	}
	// Replace is checked too.
	c := createCred(t, ts, g, "cf")
	_, err := ts.svc.ReplaceCredentialFields(t.Context(), g, c.ID, map[string]string{"CF_DNS_API_TOKEN": "v", "CF_DNS_API_TOKEN_FILE": "/etc/shadow"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "CF_DNS_API_TOKEN_FILE") {
		t.Fatalf("replace with a _FILE field: %v", err)
	}
	if cs, err := ts.svc.ListCredentials(t.Context(), g); err != nil || len(cs) != 1 {
		t.Fatalf("refused credentials were stored: %d, %v", len(cs), err)
	}
}

// Equal values in two rows have different fingerprints (the row's uid is
// hashed in); new values change it. (Resealing keeps it: see
// TestCredentialRotateReseal.)
func TestCredentialFingerprintPerRow(t *testing.T) {
	ts := newTestService(t, "*", nil, nil)
	g := ts.adminGrant(t, "alice", "*")
	fields := map[string]string{"CF_DNS_API_TOKEN": credValue}
	a, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: "a", Provider: "cloudflare", Fields: fields})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ts.svc.CreateCredential(t.Context(), g, CredentialRequest{Name: "b", Provider: "cloudflare", Fields: fields})
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint == "" || a.Fingerprint == b.Fingerprint {
		t.Fatalf("equal values, fingerprints %q and %q", a.Fingerprint, b.Fingerprint)
	}
	same, err := ts.svc.ReplaceCredentialFields(t.Context(), g, a.ID, fields)
	if err != nil || same.Fingerprint != a.Fingerprint {
		t.Fatalf("same values replaced: %q -> %q, %v", a.Fingerprint, same.Fingerprint, err)
	}
	changed, err := ts.svc.ReplaceCredentialFields(t.Context(), g, a.ID, map[string]string{"CF_DNS_API_TOKEN": credValue + "2"})
	if err != nil || changed.Fingerprint == a.Fingerprint {
		t.Fatalf("new values kept fingerprint %q, %v", changed.Fingerprint, err)
	}
}
