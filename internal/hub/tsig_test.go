package hub

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// adminGrant acts as the admin CLI does.
var adminGrant = Grant{Principal: Principal{Name: "cli:test"}, Assignments: []Assignment{{Role: RoleAdmin}}}

func mustTSIG(t *testing.T, ts *testService, req TSIGKeyRequest) IssuedTSIGKey {
	t.Helper()
	if req.Principal == "" && req.PrincipalID == 0 {
		req.Principal = ts.principal.Name
	}
	k, err := ts.svc.CreateTSIGKey(t.Context(), adminGrant, req)
	if err != nil {
		t.Fatalf("create TSIG key %+v: %v", req, err)
	}
	return k
}

// verifyWith signs an UPDATE with the issued key, as a client would, and
// verifies it with what TSIGKeyFor returned (as a dns.TsigProvider): the
// secret is usable for HMAC, hmac-md5 included.
func verifyWith(t *testing.T, issued IssuedTSIGKey, got TSIGKey) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(issued.Secret)
	if err != nil {
		t.Fatal(err)
	}
	client := TSIGKey{Name: issued.Name, Algorithm: issued.Algorithm, Secret: raw}
	m := new(dns.Msg).SetUpdate("example.org.")
	m.SetTsig(issued.Name, issued.Algorithm, 300, time.Now().Unix())
	wire, _, err := dns.TsigGenerateWithProvider(m, client, "", false)
	if err != nil {
		t.Fatalf("sign with %s: %v", issued.Algorithm, err)
	}
	if err := dns.TsigVerifyWithProvider(bytes.Clone(wire), got, "", false); err != nil {
		t.Fatalf("verify %s with the looked-up key: %v", issued.Algorithm, err)
	}
	if issued.Algorithm != dns.HmacMD5 { // miekg/dns's own HMAC agrees
		if err := dns.TsigVerify(bytes.Clone(wire), got.SecretBase64(), "", false); err != nil {
			t.Fatalf("miekg verifies %s: %v", issued.Algorithm, err)
		}
	}
	wrong := got
	wrong.Secret = make([]byte, tsigSecretBytes)
	if err := dns.TsigVerifyWithProvider(bytes.Clone(wire), wrong, "", false); !errors.Is(err, dns.ErrSig) {
		t.Fatalf("a zero key: %v, want ErrSig", err)
	}
	other := got
	other.Name = "other.example."
	if err := dns.TsigVerifyWithProvider(bytes.Clone(wire), other, "", false); !errors.Is(err, dns.ErrSecret) {
		t.Fatalf("another key's name: %v, want ErrSecret", err)
	}
	other = got
	other.Algorithm = dns.HmacSHA512
	if issued.Algorithm == dns.HmacSHA512 {
		other.Algorithm = dns.HmacSHA1
	}
	if err := dns.TsigVerifyWithProvider(bytes.Clone(wire), other, "", false); !errors.Is(err, dns.ErrKeyAlg) {
		t.Fatalf("another algorithm: %v, want ErrKeyAlg", err)
	}
}

func TestCreateTSIGKeyPerAlgorithm(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	generated := regexp.MustCompile(`^acmehub-[a-z2-7]{10}\.$`)
	for _, tc := range []struct{ in, want string }{
		{"", dns.HmacSHA256},
		{"hmac-md5", dns.HmacMD5},
		{"HMAC-MD5.SIG-ALG.REG.INT.", dns.HmacMD5},
		{"hmac-sha1.", dns.HmacSHA1},
		{"HMAC-SHA224", dns.HmacSHA224},
		{"hmac-sha256", dns.HmacSHA256},
		{"hmacsha384", dns.HmacSHA384},
		{"Hmac-Sha512.", dns.HmacSHA512},
	} {
		k := mustTSIG(t, ts, TSIGKeyRequest{Algorithm: tc.in, Title: "certbot"})
		raw, err := base64.StdEncoding.DecodeString(k.Secret)
		if k.Algorithm != tc.want || !generated.MatchString(k.Name) || err != nil || len(raw) != tsigSecretBytes ||
			k.Principal != "consumer" || k.PrincipalID != ts.principal.ID || k.CreatedAt.IsZero() {
			t.Fatalf("%q: %#v (secret %d bytes, %v)", tc.in, k, len(raw), err)
		}
		got, err := ts.svc.TSIGKeyFor(ctx, strings.ToUpper(k.Name), testSource)
		if err != nil {
			t.Fatalf("%q: look up: %v", tc.in, err)
		}
		if got.Name != k.Name || got.Algorithm != tc.want || !bytes.Equal(got.Secret, raw) {
			t.Fatalf("%q: looked up %#v", tc.in, got)
		}
		verifyWith(t, k, got)
	}
	// A chosen name, any case, with or without the dot.
	k := mustTSIG(t, ts, TSIGKeyRequest{Name: "Certbot.Example.ORG"})
	if k.Name != "certbot.example.org." {
		t.Fatalf("chosen name stored as %q", k.Name)
	}
	if _, err := ts.svc.TSIGKeyFor(ctx, "certbot.example.org", testSource); err != nil {
		t.Fatalf("without the dot: %v", err)
	}
	for _, req := range []TSIGKeyRequest{
		{Name: "certbot.example.org."},
	} {
		req.Principal = "consumer"
		if _, err := ts.svc.CreateTSIGKey(ctx, adminGrant, req); !errors.Is(err, ErrConflict) {
			t.Fatalf("same name again: %v", err)
		}
	}
	for _, req := range []TSIGKeyRequest{
		{Algorithm: "hmac-sha3"},
		{Algorithm: "gss-tsig"},
		{Name: "bad name."},
		{Name: "a..b"},
		{Name: strings.Repeat("a", 64) + ".example."},
		{Name: strings.Repeat(strings.Repeat("a", 63)+".", 4)},
		{Name: "ключ.example."},
		{ExpiresIn: -time.Hour},
		{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")}},
		{Roles: []Role{RoleAdmin}}, // not held by the consumer
	} {
		req.Principal = "consumer"
		if _, err := ts.svc.CreateTSIGKey(ctx, adminGrant, req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", req, err)
		}
	}
	if _, err := ts.svc.CreateTSIGKey(ctx, adminGrant, TSIGKeyRequest{Principal: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown principal: %v", err)
	}
}

// TestCreateTSIGKeyNarrowing: a caller without the admin role gets keys
// for itself only, never wider or longer-lived than its own token.
func TestCreateTSIGKeyNarrowing(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	tok, err := secret.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := ts.db.CreateToken(ctx, store.Token{ClientID: tok.ClientID, PrincipalID: ts.principal.ID,
		SecretHash: ts.kr.HashSecret(tok.Secret), AllowCIDRs: []string{"192.0.2.0/24"}, ExpiresAt: expires,
		Roles: []string{store.RoleChallengeConsumer}}); err != nil {
		t.Fatal(err)
	}
	other, err := ts.db.CreatePrincipal(ctx, store.Principal{Kind: store.PrincipalApp, Name: "other", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ts.svc.Authenticate(ctx, tok, testSource)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  TSIGKeyRequest
		want error
	}{
		{"another principal by name", TSIGKeyRequest{Principal: "other"}, ErrForbidden},
		{"another principal by id", TSIGKeyRequest{PrincipalID: other.ID}, ErrForbidden},
		{"wider sources", TSIGKeyRequest{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.0.0/16")}}, ErrInvalid},
		{"outlives the token", TSIGKeyRequest{ExpiresIn: 2 * time.Hour}, ErrInvalid},
		{"a role not held", TSIGKeyRequest{Roles: []Role{RoleChallengeAdmin}}, ErrInvalid},
	} {
		if _, err := ts.svc.CreateTSIGKey(ctx, g, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// By default the key inherits the calling token's limits.
	k, err := ts.svc.CreateTSIGKey(ctx, g, TSIGKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.AllowCIDRs) != 1 || k.AllowCIDRs[0].String() != "192.0.2.0/24" || !k.ExpiresAt.Equal(expires) ||
		len(k.Roles) != 1 || k.Roles[0] != RoleChallengeConsumer || k.PrincipalID != ts.principal.ID {
		t.Fatalf("inherited limits: %#v %v %v %v", k, k.AllowCIDRs, k.ExpiresAt, k.Roles)
	}
	if _, err := ts.svc.TSIGKeyFor(ctx, k.Name, netip.MustParseAddr("198.51.100.1")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("inherited allow-list not applied: %v", err)
	}
	// Narrower is fine.
	if _, err := ts.svc.CreateTSIGKey(ctx, g, TSIGKeyRequest{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")},
		ExpiresIn: 30 * time.Minute}); err != nil {
		t.Fatalf("narrower key: %v", err)
	}
	// A caller lists its own keys, not others'.
	if keys, err := ts.svc.ListTSIGKeys(ctx, g, ts.principal.ID); err != nil || len(keys) != 2 {
		t.Fatalf("own keys: %v %v", keys, err)
	}
	if _, err := ts.svc.ListTSIGKeys(ctx, g, 0); !errors.Is(err, ErrForbidden) {
		t.Fatalf("every key without admin: %v", err)
	}
}

// TestTSIGKeyFor: every refusal is the same ErrUnauthenticated, and each
// change is seen by the very next call, also when another process makes it.
func TestTSIGKeyFor(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	other := ts.other(t)
	// The consumer also holds the admin role; the key is narrowed to consumer.
	if _, err := ts.db.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: ts.principal.ID, Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	k := mustTSIG(t, ts, TSIGKeyRequest{Roles: []Role{RoleChallengeConsumer},
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}})
	lookup := func(step, name string, src netip.Addr, want error) TSIGKey {
		t.Helper()
		got, err := ts.svc.TSIGKeyFor(ctx, name, src)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", step, err, want)
		}
		if err != nil && err.Error() != ErrUnauthenticated.Error() {
			t.Fatalf("%s: the error says why: %q", step, err)
		}
		return got
	}
	got := lookup("ok", k.Name, testSource, nil)
	if got.Grant.Principal.ID != ts.principal.ID || got.Grant.Principal.TokenID != k.Name ||
		got.Grant.Allows(ActionManageAccess) || !got.Grant.Allows(ActionChallenge) {
		t.Fatalf("grant %+v", got.Grant)
	}
	// The grant is what a present by that key is authorised with.
	if _, err := ts.svc.Present(ctx, got.Grant, PresentRequest{Identifier: "www.example.org", Value: "v", Source: testSource}); err != nil {
		t.Fatalf("present with the key's grant: %v", err)
	}
	if _, err := ts.svc.Present(ctx, got.Grant, PresentRequest{Identifier: "www.example.net", Value: "v", Source: testSource}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("present outside the rules: %v", err)
	}
	lookup("v4-mapped source", k.Name, netip.MustParseAddr("::ffff:192.0.2.9"), nil)
	lookup("v6 source", k.Name, netip.MustParseAddr("2001:db8::5"), nil)
	lookup("wrong source", k.Name, netip.MustParseAddr("198.51.100.1"), ErrUnauthenticated)
	lookup("unknown", "nope.example.", testSource, ErrUnauthenticated)
	lookup("malformed", "a..b", testSource, ErrUnauthenticated)
	lookup("an API token's client id", ts.tok.ClientID, testSource, ErrUnauthenticated)

	p := ts.principal
	p.Enabled = false
	if _, err := other.UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	lookup("disabled principal", k.Name, testSource, ErrUnauthenticated)
	p.Enabled = true
	if _, err := other.UpdatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	lookup("enabled again", k.Name, testSource, nil)

	// Revoked through the token operation, in another process: at once.
	if err := other.RevokeToken(ctx, k.Name, time.Time{}); err != nil {
		t.Fatal(err)
	}
	lookup("revoked", k.Name, testSource, ErrUnauthenticated)

	// Expiry: the service's clock moves past it.
	exp := mustTSIG(t, ts, TSIGKeyRequest{ExpiresIn: time.Hour})
	lookup("before expiry", exp.Name, testSource, nil)
	ts.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	lookup("expired", exp.Name, testSource, ErrUnauthenticated)
	ts.svc.now = time.Now

	// A deleted principal takes its keys with it.
	k2 := mustTSIG(t, ts, TSIGKeyRequest{})
	lookup("before deletion", k2.Name, testSource, nil)
	if err := other.DeletePrincipal(ctx, ts.principal.ID); err != nil {
		t.Fatal(err)
	}
	lookup("principal deleted", k2.Name, testSource, ErrUnauthenticated)

	// No refusal left an auth row: the DNS handler audits its failures
	// (one dns.update row each, see TestUpdateBackendOneRowPerFailure).
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "auth"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if strings.HasPrefix(ev.Detail, "tsig: ") || strings.Contains(ev.Detail+ev.TokenID, k.Secret) {
			t.Fatalf("TSIG lookup audited: %+v", ev)
		}
	}
}

// TestAuthenticateRefusesTSIGKey: a TSIG key never authenticates on the
// HTTP API, whatever it is offered as the secret.
func TestAuthenticateRefusesTSIGKey(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	k := mustTSIG(t, ts, TSIGKeyRequest{})
	for _, sec := range []string{k.Secret, "", secret.SecretPrefix + strings.TrimRight(base64.RawURLEncoding.EncodeToString([]byte(k.Secret)), "=")} {
		if _, err := ts.svc.Authenticate(ctx, secret.Token{ClientID: k.Name, Secret: sec}, testSource); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("authenticate as a TSIG key: %v", err)
		}
	}
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "auth"})
	if err != nil || len(evs) != 3 || evs[0].Detail != "a TSIG key cannot authenticate on the HTTP API" {
		t.Fatalf("audit %+v %v", evs, err)
	}
	// The API token still works: only the kind was refused.
	if _, err := ts.svc.Authenticate(ctx, ts.tok, testSource); err != nil {
		t.Fatal(err)
	}
}

// TestTSIGSecretSealed: the database holds neither the secret nor its
// base64, and a tampered or moved blob is refused.
func TestTSIGSecretSealed(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	a := mustTSIG(t, ts, TSIGKeyRequest{Name: "a.example."})
	b := mustTSIG(t, ts, TSIGKeyRequest{Name: "b.example."})
	rawA, _ := base64.StdEncoding.DecodeString(a.Secret)
	files, _ := filepath.Glob(ts.path + "*") // the WAL too
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, rawA) || bytes.Contains(data, []byte(a.Secret)) {
			t.Fatalf("%s holds the secret", f)
		}
	}
	raw, err := sql.Open("sqlite", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	var blobA, blobB []byte
	if err := raw.QueryRow(`SELECT sealed_secret FROM api_tokens WHERE client_id = 'a.example.'`).Scan(&blobA); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow(`SELECT sealed_secret FROM api_tokens WHERE client_id = 'b.example.'`).Scan(&blobB); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(blobA)
	tampered[len(tampered)-1] ^= 1
	// Raw writes bypass the generation counters: bump them by revoking a
	// throwaway key, so the service reads the rows again.
	bump := func() {
		t.Helper()
		k := mustTSIG(t, ts, TSIGKeyRequest{})
		if _, err := ts.svc.RevokeTSIGKey(ctx, adminGrant, k.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`UPDATE api_tokens SET sealed_secret = ? WHERE client_id = 'a.example.'`, tampered); err != nil {
		t.Fatal(err)
	}
	bump()
	if _, err := ts.svc.TSIGKeyFor(ctx, a.Name, testSource); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("tampered blob: %v", err)
	}
	// b's intact blob under a's name does not open either (associated data).
	if _, err := raw.Exec(`UPDATE api_tokens SET sealed_secret = ? WHERE client_id = 'a.example.'`, blobB); err != nil {
		t.Fatal(err)
	}
	bump()
	if _, err := ts.svc.TSIGKeyFor(ctx, a.Name, testSource); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("blob of another key: %v", err)
	}
	if got, err := ts.svc.TSIGKeyFor(ctx, b.Name, testSource); err != nil || got.SecretBase64() != b.Secret {
		t.Fatalf("intact key: %v", err)
	}
}

// TestTSIGAdminAndAudit: listing, showing and revoking never show the
// secret, tokens and keys are listed apart, and the audit log has the
// creations and revocations without secrets.
func TestTSIGAdminAndAudit(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	ctx := t.Context()
	k := mustTSIG(t, ts, TSIGKeyRequest{Algorithm: "hmac-sha512", Title: "lego", ExpiresIn: time.Hour})
	keys, err := ts.svc.ListTSIGKeys(ctx, adminGrant, 0)
	if err != nil || len(keys) != 1 || keys[0].ClientID != k.Name || keys[0].Kind != TokenKindTSIG ||
		keys[0].Algorithm != dns.HmacSHA512 || keys[0].Title != "lego" || keys[0].ExpiresAt.IsZero() {
		t.Fatalf("keys %+v %v", keys, err)
	}
	toks, err := ts.svc.ListTokens(ctx, adminGrant, 0)
	if err != nil || len(toks) != 1 || toks[0].ClientID != ts.tok.ClientID || toks[0].Kind != TokenKindAPI {
		t.Fatalf("tokens %+v %v", toks, err)
	}
	if _, err := ts.svc.GetTSIGKey(ctx, adminGrant, ts.tok.ClientID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an API token as a TSIG key: %v", err)
	}
	if _, err := ts.svc.RevokeTSIGKey(ctx, adminGrant, ts.tok.ClientID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke an API token as a TSIG key: %v", err)
	}
	stranger := Grant{Principal: Principal{ID: 999, Name: "x"}, Assignments: []Assignment{{Role: RoleChallengeConsumer}}}
	if _, err := ts.svc.GetTSIGKey(ctx, stranger, k.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another principal's key: %v", err)
	}
	info, err := ts.svc.GetTSIGKey(ctx, adminGrant, strings.TrimSuffix(k.Name, "."))
	if err != nil || info.ClientID != k.Name {
		t.Fatalf("get %+v %v", info, err)
	}
	info, err = ts.svc.RevokeTSIGKey(ctx, adminGrant, k.Name)
	if err != nil || info.RevokedAt.IsZero() {
		t.Fatalf("revoke %+v %v", info, err)
	}
	if _, err := ts.svc.TSIGKeyFor(ctx, k.Name, testSource); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked key: %v", err)
	}
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, ev := range evs {
		if strings.Contains(ev.Detail+ev.Target+ev.TokenID, k.Secret) {
			t.Fatalf("audit row with the secret: %+v", ev)
		}
		if ev.Result == "ok" {
			seen[ev.Action] = ev.Target + " " + ev.Detail
		}
	}
	if !strings.Contains(seen["tsig.create"], "tsig:"+k.Name+" algorithm hmac-sha512; owner principal") ||
		!strings.HasPrefix(seen["tsig.revoke"], "tsig:"+k.Name) {
		t.Fatalf("audit %v", seen)
	}
}

// TestTSIGFailuresApartFromHTTP: TSIG lookup failures neither spend nor
// consult the HTTP API's failure limiter (spoofed DNS packets must not
// lock a network out of the API) and write no audit row of their own.
func TestTSIGFailuresApartFromHTTP(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, func(c *Config) { c.Failures = ratelimit.Config{Burst: 3, Per: time.Hour} })
	ctx := t.Context()
	k := mustTSIG(t, ts, TSIGKeyRequest{})
	for range 10 {
		if _, err := ts.svc.TSIGKeyFor(ctx, "unknown.example.", testSource); err == nil || err.Error() != ErrUnauthenticated.Error() {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if _, err := ts.svc.Authenticate(ctx, ts.tok, testSource); err != nil {
		t.Fatalf("HTTP API after TSIG failures from the same network: %v", err)
	}
	// Nor does a network the API limits lose its TSIG keys.
	for range 3 {
		_, _ = ts.svc.Authenticate(ctx, secret.Token{ClientID: ts.tok.ClientID, Secret: "wrong"}, testSource)
	}
	if _, err := ts.svc.Authenticate(ctx, ts.tok, testSource); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("the API limiter is not spent: %v", err)
	}
	if _, err := ts.svc.TSIGKeyFor(ctx, k.Name, testSource); err != nil {
		t.Fatalf("good key from a network the API limits: %v", err)
	}
	evs, err := ts.db.ListAudit(ctx, store.AuditFilter{Action: "auth"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if strings.HasPrefix(ev.Detail, "tsig: ") {
			t.Fatalf("TSIG lookup audited: %+v", ev)
		}
	}
}

// TestTSIGKeyFormatsHideSecret: %v, %+v, %s and %#v never print a
// secret.
func TestTSIGKeyFormatsHideSecret(t *testing.T) {
	t.Parallel()
	issued := IssuedTSIGKey{Name: "k.example.", Algorithm: "hmac-sha256.", Secret: "VE9QU0VDUkVU", Principal: "p"}
	key := TSIGKey{Name: "k.example.", Algorithm: "hmac-sha256.", Secret: []byte("TOPSECRET")}
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		for _, v := range []any{issued, &issued, key, &key} {
			out := fmt.Sprintf(verb, v)
			for _, sec := range []string{"VE9QU0VDUkVU", "TOPSECRET", "84 79 80"} {
				if strings.Contains(out, sec) {
					t.Fatalf("%s of %T shows the secret: %s", verb, v, out)
				}
			}
			if !strings.Contains(out, "k.example.") {
				t.Fatalf("%s of %T: %s", verb, v, out)
			}
		}
	}
}

// TestTSIGForms: each form carries the key as its client reads it.
func TestTSIGForms(t *testing.T) {
	t.Parallel()
	k := IssuedTSIGKey{Name: "acmehub-3kq7xw2mfa.", Algorithm: dns.HmacSHA256, Secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="}
	bind := regexp.MustCompile(`^key "([a-z0-9_.-]+\.)" \{\n\talgorithm (hmac-[a-z0-9]+);\n\tsecret "([A-Za-z0-9+/=]+)";\n\};\n$`)
	m := bind.FindStringSubmatch(k.BINDKey())
	if m == nil || m[1] != k.Name || m[2] != "hmac-sha256" || m[3] != k.Secret {
		t.Fatalf("BIND key clause:\n%s", k.BINDKey())
	}
	md5 := k
	md5.Algorithm = dns.HmacMD5
	if m := bind.FindStringSubmatch(md5.BINDKey()); m == nil || m[2] != "hmac-md5" {
		t.Fatalf("BIND md5 clause:\n%s", md5.BINDKey())
	}

	ini := map[string]string{}
	for line := range strings.Lines(k.CertbotINI("192.0.2.53", 5353)) {
		if key, v, ok := strings.Cut(strings.TrimSpace(line), " = "); ok && !strings.HasPrefix(key, "#") {
			ini[key] = v
		}
	}
	if ini["dns_rfc2136_server"] != "192.0.2.53" || ini["dns_rfc2136_port"] != "5353" || ini["dns_rfc2136_name"] != k.Name ||
		ini["dns_rfc2136_secret"] != k.Secret || ini["dns_rfc2136_algorithm"] != "HMAC-SHA256" {
		t.Fatalf("certbot ini %v", ini)
	}

	// lego's own provider takes the environment as printed.
	parseEnv := func(s string) map[string]string {
		env := map[string]string{}
		for line := range strings.Lines(s) {
			if key, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(key, "#") {
				env[key] = v
			}
		}
		return env
	}
	legoConfig := func(env map[string]string) *rfc2136.Config {
		c := rfc2136.NewDefaultConfig()
		c.Nameserver, c.TSIGKey, c.TSIGSecret, c.TSIGAlgorithm = env[rfc2136.EnvNameserver], env[rfc2136.EnvTSIGKey],
			env[rfc2136.EnvTSIGSecret], env[rfc2136.EnvTSIGAlgorithm]
		return c
	}
	env := parseEnv(k.LegoEnv(TSIGNameserver("2001:db8::53", 0)))
	if env["DNSUPDATE_NAMESERVER"] != "[2001:db8::53]:53" || env["DNSUPDATE_TSIG_KEY"] != k.Name || env["DNSUPDATE_TSIG_SECRET"] != k.Secret {
		t.Fatalf("lego env %v", env)
	}
	if _, err := rfc2136.NewDNSProviderConfig(legoConfig(env)); err != nil {
		t.Fatalf("lego refuses its environment: %v", err)
	}
	if !strings.Contains(md5.LegoEnv("h:53"), "refuses hmac-md5") {
		t.Fatal("the lego form does not warn about md5")
	}
	if _, err := rfc2136.NewDNSProviderConfig(legoConfig(parseEnv(md5.LegoEnv("h:53")))); err == nil {
		t.Fatal("lego v4.35.2 took hmac-md5: drop the warning")
	}

	cm := k.CertManager("192.0.2.53:53")
	enc := base64.StdEncoding.EncodeToString([]byte(k.Secret))
	for _, want := range []string{"kind: Secret\n", "  tsig-secret-key: " + enc + "\n", "#         tsigAlgorithm: HMACSHA256\n",
		`#         tsigKeyName: "acmehub-3kq7xw2mfa."`, `#         nameserver: "192.0.2.53:53"`, "name: acmehub-tsig-acmehub-3kq7xw2mfa\n"} {
		if !strings.Contains(cm, want) {
			t.Fatalf("cert-manager form lacks %q:\n%s", want, cm)
		}
	}
	sha384 := k
	sha384.Algorithm = dns.HmacSHA384
	if !strings.Contains(sha384.CertManager("h:53"), "cert-manager knows only") {
		t.Fatal("no warning for an algorithm cert-manager lacks")
	}
	// Printing a key by mistake shows no secret.
	for _, s := range []string{k.GoString(), TSIGKey{Name: "x.", Secret: []byte("rawsecret")}.GoString()} {
		if strings.Contains(s, k.Secret) || strings.Contains(s, "rawsecret") {
			t.Fatalf("secret in %s", s)
		}
	}
}

// TestTSIGSecretResealed: rotate-key reseals TSIG secrets with the
// credentials (under the new current key), and the key still verifies.
func TestTSIGSecretResealed(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "*.example.org", nil, nil)
	k := mustTSIG(t, ts, TSIGKeyRequest{})
	kr2, err := ts.kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ResealAll(t.Context(), ts.db, kr2); err != nil || n != 1 {
		t.Fatalf("reseal: %d, %v", n, err)
	}
	tok, err := ts.db.TokenByClientID(t.Context(), k.Name)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := secret.SealedKeyID(tok.SealedSecret); id != kr2.CurrentID() {
		t.Fatalf("sealed with %q after rotation, want %q", id, kr2.CurrentID())
	}
	ts.svc = New(ts.db, kr2, ts.svc.cfg)
	got, err := ts.svc.TSIGKeyFor(t.Context(), k.Name, testSource)
	if err != nil {
		t.Fatal(err)
	}
	verifyWith(t, k, got)
}
