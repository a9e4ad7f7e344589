package hub

import (
	"context"
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // RFC 8945 hmac-md5: certbot's and cert-manager's default TSIG algorithm
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 8945 hmac-sha1: lego's default TSIG algorithm
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// A TSIG key is an API token of kind "tsig" (store.TokenKindTSIG): it has
// the token machinery (owner, narrowing to some of the owner's roles,
// source allow-list, expiry, immediate revocation, last use, audit, the
// authentication cache) but authenticates DNS messages, never HTTP
// requests. Its client id is the key name, and because the HMAC needs the
// secret itself, the secret is sealed, not hashed.

// tsigSecretBytes is the size of a new key's secret: 256 bits whatever the
// algorithm (HMAC takes any key length; RFC 8945 asks for at least the
// hash's output length, and 32 bytes is as much as SHA-256 gives).
const tsigSecretBytes = 32

// maxTSIGName is the longest key name, without its final dot.
const maxTSIGName = 253

// tsigAlgorithms maps the accepted spellings, lower-cased without the
// final dot and without hyphens (so "HMAC-SHA256", "hmac-sha256." and
// cert-manager's "HMACSHA256" are one), to miekg/dns's names.
var tsigAlgorithms = map[string]string{
	"hmacmd5":                dns.HmacMD5,
	"hmacmd5.sigalg.reg.int": dns.HmacMD5,
	"hmacsha1":               dns.HmacSHA1,
	"hmacsha224":             dns.HmacSHA224,
	"hmacsha256":             dns.HmacSHA256,
	"hmacsha384":             dns.HmacSHA384,
	"hmacsha512":             dns.HmacSHA512,
}

// ParseTSIGAlgorithm returns miekg/dns's name (dns.HmacSHA256, ...) of a
// TSIG algorithm given as hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256,
// hmac-sha384 or hmac-sha512, in any case, with or without the final dot;
// "" means hmac-sha256.
func ParseTSIGAlgorithm(s string) (string, error) {
	if s == "" {
		return dns.HmacSHA256, nil
	}
	key := strings.ReplaceAll(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "."), "-", "")
	if alg, ok := tsigAlgorithms[key]; ok {
		return alg, nil
	}
	return "", fmt.Errorf("%w: TSIG algorithm %q: want hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512", ErrInvalid, s)
}

// TSIGAlgorithmName is BIND's (and the API's) name of an algorithm given
// as miekg/dns names it: hmac-sha256, hmac-md5.
func TSIGAlgorithmName(alg string) string { return tsigShortAlgorithm(alg) }

func tsigShortAlgorithm(alg string) string {
	if alg == dns.HmacMD5 {
		return "hmac-md5"
	}
	return strings.TrimSuffix(alg, ".")
}

// CanonicalTSIGName returns a TSIG key name in its stored form: lower case
// with the final dot. Labels are 1 to 63 letters, digits, '-' or '_', the
// name at most 253 bytes without the dot.
func CanonicalTSIGName(s string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: TSIG key name %q: %s", ErrInvalid, s, why)
	}
	if name == "" || len(name) > maxTSIGName {
		return bad(fmt.Sprintf("want 1 to %d bytes", maxTSIGName))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return bad("each label must have 1 to 63 bytes")
		}
		for _, c := range []byte(label) {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return bad("use letters, digits, '-' and '_' only")
			}
		}
	}
	return name + ".", nil
}

// tsigNameEncoding spells generated key names.
var tsigNameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newTSIGName returns "acmehub-" and 10 random base32 characters (50
// bits) with the final dot: unique enough to be picked without a lookup,
// and a clash is retried.
func newTSIGName() (string, error) {
	var b [7]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new TSIG key name: %w", err)
	}
	return "acmehub-" + tsigNameEncoding.EncodeToString(b[:])[:10] + ".", nil
}

// tsigSealAD binds a sealed TSIG secret to its row: a blob copied to
// another key does not open there.
func tsigSealAD(name string) []byte { return []byte("api_tokens/tsig/" + name) }

// TSIGKeyRequest asks for a new TSIG key.
type TSIGKeyRequest struct {
	// Principal names the owner; "" (and PrincipalID 0) means the caller.
	// Keys for another principal need the admin role.
	Principal string
	// PrincipalID is the owner by id, instead of Principal.
	PrincipalID int64
	// Name is the key name (a DNS name; stored lower-case with the final
	// dot); "" generates acmehub-<10 random characters>.
	Name string
	// Algorithm is hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256,
	// hmac-sha384 or hmac-sha512 (any case, final dot optional); ""
	// means hmac-sha256.
	Algorithm string
	Title     string
	// Roles narrows the key to some of its owner's roles, as for tokens.
	Roles []Role
	// AllowCIDRs restricts the sources of signed messages; empty: any.
	AllowCIDRs []netip.Prefix
	// ExpiresIn is the key's lifetime; 0 means no expiry.
	ExpiresIn time.Duration
}

// IssuedTSIGKey is a TSIG key just created, with its secret: shown this
// once (it is stored sealed and never shown again). Its methods render the
// forms clients take.
type IssuedTSIGKey struct {
	Name        string // lower-case with the final dot
	Algorithm   string // miekg/dns's name, e.g. "hmac-sha256."
	Secret      string // standard base64 of the HMAC key
	Principal   string // the owner's name
	PrincipalID int64
	Title       string
	Roles       []Role // narrowing; empty: all of the owner's roles
	AllowCIDRs  []netip.Prefix
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
}

// String keeps the secret out of %v and %+v output.
func (k IssuedTSIGKey) String() string {
	return fmt.Sprintf("{Name:%s Algorithm:%s Secret:REDACTED Principal:%s}", k.Name, k.Algorithm, k.Principal)
}

// GoString keeps the secret out of %#v output.
func (k IssuedTSIGKey) GoString() string {
	return fmt.Sprintf("hub.IssuedTSIGKey{Name:%q, Algorithm:%q, Secret:REDACTED, Principal:%q}", k.Name, k.Algorithm, k.Principal)
}

// LogValue keeps the secret out of slog output.
func (k IssuedTSIGKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", k.Name), slog.String("algorithm", k.Algorithm), slog.String("secret", "REDACTED"))
}

// BINDKey is the key clause of named.conf, which nsupdate -k reads too.
func (k IssuedTSIGKey) BINDKey() string {
	return fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", k.Name, tsigShortAlgorithm(k.Algorithm), k.Secret)
}

// CertbotINI is the credentials file of certbot-dns-rfc2136
// (--dns-rfc2136-credentials, mode 0600). certbot wants the server as an
// IP address and the algorithm upper-case (HMAC-SHA256).
func (k IssuedTSIGKey) CertbotINI(server string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# certbot-dns-rfc2136 credentials for the acmehub TSIG key %s (keep it mode 0600)\n", k.Name)
	fmt.Fprintf(&b, "dns_rfc2136_server = %s\n", server)
	fmt.Fprintf(&b, "dns_rfc2136_port = %d\n", tsigPort(port))
	fmt.Fprintf(&b, "dns_rfc2136_name = %s\n", k.Name)
	fmt.Fprintf(&b, "dns_rfc2136_secret = %s\n", k.Secret)
	fmt.Fprintf(&b, "dns_rfc2136_algorithm = %s\n", strings.ToUpper(tsigShortAlgorithm(k.Algorithm)))
	return b.String()
}

// LegoEnv is the environment of lego's rfc2136 provider (--dns rfc2136)
// as lego v4.35.2 reads it: DNSUPDATE_*. nameserver is host:port.
func (k IssuedTSIGKey) LegoEnv(nameserver string) string {
	var b strings.Builder
	b.WriteString("# lego rfc2136 provider (lego v4.35.2: DNSUPDATE_*; older releases read RFC2136_NAMESERVER,\n" +
		"# RFC2136_TSIG_KEY, RFC2136_TSIG_ALGORITHM and RFC2136_TSIG_SECRET, which v4.35.2 still accepts)\n")
	if k.Algorithm == dns.HmacMD5 {
		b.WriteString("# lego v4.35.2 refuses hmac-md5: create a key with another algorithm for lego\n")
	}
	fmt.Fprintf(&b, "DNSUPDATE_NAMESERVER=%s\n", nameserver)
	fmt.Fprintf(&b, "DNSUPDATE_TSIG_KEY=%s\n", k.Name)
	fmt.Fprintf(&b, "DNSUPDATE_TSIG_ALGORITHM=%s\n", k.Algorithm)
	fmt.Fprintf(&b, "DNSUPDATE_TSIG_SECRET=%s\n", k.Secret)
	return b.String()
}

// certManagerAlgorithms are the algorithms cert-manager's rfc2136 solver
// knows, by its names.
var certManagerAlgorithms = map[string]string{
	dns.HmacMD5: "HMACMD5", dns.HmacSHA1: "HMACSHA1", dns.HmacSHA256: "HMACSHA256", dns.HmacSHA512: "HMACSHA512",
}

// CertManager is a Kubernetes Secret holding the key (its value is the
// base64 secret, base64-encoded again as Secret data is) and, commented so
// that the file can be applied as it is, the rfc2136 solver to add to an
// Issuer. nameserver is host:port.
func (k IssuedTSIGKey) CertManager(nameserver string) string {
	secretName := k8sName("acmehub-tsig-" + strings.TrimSuffix(k.Name, "."))
	var b strings.Builder
	fmt.Fprintf(&b, "# The acmehub TSIG key %s for cert-manager's rfc2136 solver. Apply it in the\n"+
		"# Issuer's namespace (for a ClusterIssuer: cert-manager's own namespace).\n", k.Name)
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ntype: Opaque\ndata:\n  tsig-secret-key: %s\n",
		secretName, base64.StdEncoding.EncodeToString([]byte(k.Secret)))
	alg, ok := certManagerAlgorithms[k.Algorithm]
	if !ok {
		fmt.Fprintf(&b, "# cert-manager knows only HMACMD5, HMACSHA1, HMACSHA256 and HMACSHA512, not %s:\n"+
			"# create a key with one of those for cert-manager.\n", tsigShortAlgorithm(k.Algorithm))
		alg = strings.ToUpper(strings.ReplaceAll(tsigShortAlgorithm(k.Algorithm), "-", ""))
	}
	b.WriteString("# The Issuer's solver (under spec.acme.solvers):\n")
	fmt.Fprintf(&b, "#   - dns01:\n#       rfc2136:\n#         nameserver: %q\n#         tsigKeyName: %q\n", nameserver, k.Name)
	fmt.Fprintf(&b, "#         tsigAlgorithm: %s\n#         tsigSecretSecretRef:\n#           name: %s\n#           key: tsig-secret-key\n",
		alg, secretName)
	return b.String()
}

// k8sName makes s a valid Kubernetes object name: lower-case
// alphanumerics and '-', at most 253 bytes, alphanumeric at both ends.
func k8sName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-.")
	if len(out) > 253 {
		out = strings.TrimRight(out[:253], "-.")
	}
	return out
}

// CreateTSIGKey creates a TSIG key and returns it with its secret, shown
// this once. Who may create a key for whom, and how it may be narrowed,
// are as for CreateToken: a caller without the admin role creates keys
// for itself only, never wider or longer-lived than the calling token.
func (s *Service) CreateTSIGKey(ctx context.Context, g Grant, req TSIGKeyRequest) (IssuedTSIGKey, error) {
	k, err := s.createTSIGKey(ctx, g, req)
	target := "tsig"
	if k.Name != "" {
		target += ":" + k.Name
	} else if req.Name != "" {
		target += ":" + req.Name
	}
	detail := "algorithm " + tsigShortAlgorithm(k.Algorithm)
	if err == nil {
		detail += "; " + tokenDetail(TokenInfo{PrincipalID: k.PrincipalID, Roles: k.Roles,
			AllowCIDRs: prefixStrings(k.AllowCIDRs), ExpiresAt: k.ExpiresAt}, TokenRequest{})
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "tsig.create", Target: target, Detail: detail}, err)
	return k, err
}

func (s *Service) createTSIGKey(ctx context.Context, g Grant, req TSIGKeyRequest) (IssuedTSIGKey, error) {
	alg, err := ParseTSIGAlgorithm(req.Algorithm)
	if err != nil {
		return IssuedTSIGKey{}, err
	}
	name := req.Name
	if name != "" {
		if name, err = CanonicalTSIGName(name); err != nil {
			return IssuedTSIGKey{}, err
		}
	}
	owner := req.PrincipalID
	if req.Principal != "" {
		if owner, err = s.principalIDByName(ctx, req.Principal); err != nil {
			return IssuedTSIGKey{}, err
		}
	}
	if req.ExpiresIn < 0 {
		return IssuedTSIGKey{}, fmt.Errorf("%w: expires_in %s is negative", ErrInvalid, req.ExpiresIn)
	}
	var expires time.Time
	if req.ExpiresIn > 0 {
		expires = s.now().Add(req.ExpiresIn)
	}
	lim, err := s.newTokenLimits(ctx, g, TokenRequest{
		PrincipalID: owner, Roles: roleStrings(req.Roles), AllowCIDRs: prefixStrings(req.AllowCIDRs), ExpiresAt: expires,
	})
	if err != nil {
		return IssuedTSIGKey{}, err
	}
	raw := make([]byte, tsigSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return IssuedTSIGKey{}, fmt.Errorf("new TSIG secret: %w", err)
	}
	// A generated name that clashes is picked again; a chosen one is a
	// conflict for the caller to resolve.
	for attempt := 0; ; attempt++ {
		n := name
		if n == "" {
			if n, err = newTSIGName(); err != nil {
				return IssuedTSIGKey{}, err
			}
		}
		sealed, err := s.kr.Seal(raw, tsigSealAD(n))
		if err != nil {
			return IssuedTSIGKey{}, fmt.Errorf("seal TSIG secret: %w", err)
		}
		err = s.db.CreateToken(ctx, store.Token{
			ClientID: n, PrincipalID: lim.owner.ID, Kind: store.TokenKindTSIG, TSIGAlgorithm: alg, SealedSecret: sealed,
			Title: req.Title, Roles: roleStrings(lim.roles), AllowCIDRs: prefixStrings(lim.cidrs), ExpiresAt: lim.expires,
		})
		if errors.Is(err, store.ErrConflict) && name == "" && attempt < 3 {
			continue
		}
		if err != nil {
			return IssuedTSIGKey{}, adminStoreError("create TSIG key", fmt.Sprintf("a token or TSIG key named %q", n), err)
		}
		got, err := s.db.TokenByClientID(ctx, n)
		if err != nil {
			return IssuedTSIGKey{}, storeError("read the new TSIG key", err)
		}
		info := tokenInfo(got)
		return IssuedTSIGKey{
			Name: n, Algorithm: alg, Secret: base64.StdEncoding.EncodeToString(raw),
			Principal: lim.owner.Name, PrincipalID: lim.owner.ID, Title: info.Title, Roles: info.Roles, AllowCIDRs: lim.cidrs,
			CreatedAt: info.CreatedAt, ExpiresAt: info.ExpiresAt,
		}, nil
	}
}

// principalIDByName finds a principal by name (ASCII case ignored, as the
// store's uniqueness does); admin operations only, so a listing is fine.
func (s *Service) principalIDByName(ctx context.Context, name string) (int64, error) {
	ps, err := s.db.ListPrincipals(ctx)
	if err != nil {
		return 0, storeError("list principals", err)
	}
	for _, p := range ps {
		if strings.EqualFold(p.Name, name) {
			return p.ID, nil
		}
	}
	return 0, fmt.Errorf("%w: principal %q", ErrNotFound, name)
}

// ListTSIGKeys returns the TSIG keys of a principal (0: every key, for
// admins), revoked and expired ones included, never with secrets. A
// principal may list its own.
func (s *Service) ListTSIGKeys(ctx context.Context, g Grant, principalID int64) ([]TokenInfo, error) {
	if principalID < 0 {
		return nil, positiveID("principal", principalID)
	}
	if !g.owns(principalID) && !g.Allows(ActionManageAccess) {
		return nil, ErrForbidden
	}
	ts, err := s.db.ListTokens(ctx, principalID)
	if err != nil {
		return nil, storeError("list TSIG keys", err)
	}
	out := []TokenInfo{}
	for _, t := range ts {
		if t.Kind == store.TokenKindTSIG {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

// GetTSIGKey returns one TSIG key, never its secret: one of the caller's
// own, or any for an admin; anything else is ErrNotFound.
func (s *Service) GetTSIGKey(ctx context.Context, g Grant, name string) (TokenInfo, error) {
	t, err := s.visibleTSIGKey(ctx, g, name)
	if err != nil {
		return TokenInfo{}, err
	}
	return tokenInfo(t), nil
}

func (s *Service) visibleTSIGKey(ctx context.Context, g Grant, name string) (store.Token, error) {
	n, err := CanonicalTSIGName(name)
	if err != nil {
		return store.Token{}, fmt.Errorf("%w: TSIG key %q", ErrNotFound, name)
	}
	t, err := s.visibleToken(ctx, g, n)
	if err != nil {
		return store.Token{}, err
	}
	if t.Kind != store.TokenKindTSIG {
		return store.Token{}, fmt.Errorf("%w: TSIG key %q", ErrNotFound, n)
	}
	t.SealedSecret = nil
	return t, nil
}

// RevokeTSIGKey revokes a TSIG key at once (the next signed message is
// refused): one of the caller's own, or any for an admin. RevokeToken
// does the same given the key name.
func (s *Service) RevokeTSIGKey(ctx context.Context, g Grant, name string) (TokenInfo, error) {
	t, err := s.revokeTSIGKey(ctx, g, name)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "tsig.revoke", Target: "tsig:" + name,
		Detail: fmt.Sprintf("owner principal %d", t.PrincipalID)}, err)
	return t, err
}

func (s *Service) revokeTSIGKey(ctx context.Context, g Grant, name string) (TokenInfo, error) {
	t, err := s.visibleTSIGKey(ctx, g, name)
	if err != nil {
		return TokenInfo{}, err
	}
	return s.revokeToken(ctx, g, t.ClientID)
}

// TSIGKey is what the DNS server needs to verify and answer one signed
// message: the key and the grant a request signed with it is authorised
// with (its owner's roles, narrowed as the key is).
type TSIGKey struct {
	Name      string // lower-case with the final dot
	Algorithm string // miekg/dns's name, e.g. dns.HmacSHA256
	Secret    []byte // the raw HMAC key; never log it
	Grant     Grant
}

// SecretBase64 is Secret as miekg/dns's TsigSecret maps want it.
func (k TSIGKey) SecretBase64() string { return base64.StdEncoding.EncodeToString(k.Secret) }

// String keeps the secret out of %v and %+v output.
func (k TSIGKey) String() string {
	return fmt.Sprintf("{Name:%s Algorithm:%s Secret:REDACTED Principal:%d}", k.Name, k.Algorithm, k.Grant.Principal.ID)
}

// GoString keeps the secret out of %#v output.
func (k TSIGKey) GoString() string {
	return fmt.Sprintf("hub.TSIGKey{Name:%q, Algorithm:%q, Secret:REDACTED}", k.Name, k.Algorithm)
}

// LogValue keeps the secret out of slog output.
func (k TSIGKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", k.Name), slog.String("algorithm", k.Algorithm), slog.String("secret", "REDACTED"))
}

// TSIGKey is a dns.TsigProvider for messages signed with this key alone:
// use it with dns.TsigVerifyWithProvider and dns.TsigGenerateWithProvider
// (or as a dns.Server's TsigProvider). Unlike miekg/dns's own provider,
// which dropped it, it does hmac-md5 too: certbot and cert-manager default
// to it. A message naming another key fails with dns.ErrSecret, one naming
// another algorithm with dns.ErrKeyAlg (BADKEY, RFC 8945 5.2.1).
var _ dns.TsigProvider = TSIGKey{}

// Generate returns the MAC of msg for the TSIG record t.
func (k TSIGKey) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	if dns.CanonicalName(t.Hdr.Name) != k.Name {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		return nil, dns.ErrKeyAlg
	}
	var h hash.Hash
	switch k.Algorithm {
	case dns.HmacMD5:
		h = hmac.New(md5.New, k.Secret)
	case dns.HmacSHA1:
		h = hmac.New(sha1.New, k.Secret)
	case dns.HmacSHA224:
		h = hmac.New(sha256.New224, k.Secret)
	case dns.HmacSHA256:
		h = hmac.New(sha256.New, k.Secret)
	case dns.HmacSHA384:
		h = hmac.New(sha512.New384, k.Secret)
	case dns.HmacSHA512:
		h = hmac.New(sha512.New, k.Secret)
	default:
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify checks the MAC of the TSIG record t over msg, in constant time.
func (k TSIGKey) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.Generate(msg, t)
	if err != nil {
		return err
	}
	mac, err := hex.DecodeString(t.MAC)
	if err != nil {
		return dns.ErrSig
	}
	if !hmac.Equal(want, mac) {
		return dns.ErrSig
	}
	return nil
}

// TSIGKeyFor returns the TSIG key named name (any case, final dot
// optional) for a message that arrived from source, for the DNS server to
// verify that message with. An unknown name, an API token's client id, a
// revoked or expired key, a disabled or deleted owner, a source outside
// the key's allow-list, or a sealed secret that does not open: one error,
// ErrUnauthenticated (answer BADKEY). Other errors are the store's
// (answer SERVFAIL).
//
// Like Authenticate it is cached by the "tokens" and "principals"
// generations, checked on every call (so a revocation holds from the next
// message on; an unknown name is cached too, so looking one up is a
// read). Unlike Authenticate it neither consults nor spends the HTTP API's
// failure limiter (spoofed UDP would lock a network out of the API) and
// writes no audit row: the DNS handler limits and audits its failures,
// one row at most per failure. It writes nothing but the coalesced
// last-used touch. The signature is checked by the caller, after this; it
// is safe to call concurrently.
func (s *Service) TSIGKeyFor(ctx context.Context, name string, source netip.Addr) (TSIGKey, error) {
	k, why, err := s.tsigKeyFor(ctx, name, source)
	if err == nil {
		_ = s.db.TouchToken(ctx, k.Name, s.now()) // best effort: last-used is informational
		return k, nil
	}
	if !errors.Is(err, ErrUnauthenticated) {
		return TSIGKey{}, err
	}
	s.log.DebugContext(ctx, "TSIG key refused", "tsig_key", auditKeyName(name), "reason", why)
	return TSIGKey{}, ErrUnauthenticated
}

// auditKeyName bounds what a stranger's message puts into the audit log.
func auditKeyName(name string) string {
	if len(name) > maxTSIGName+1 {
		return name[:maxTSIGName+1]
	}
	return name
}

func (s *Service) tsigKeyFor(ctx context.Context, name string, source netip.Addr) (TSIGKey, string, error) {
	n, err := CanonicalTSIGName(name)
	if err != nil {
		return TSIGKey{}, "malformed key name", ErrUnauthenticated
	}
	gens, err := s.db.Generations(ctx, store.GenTokens, store.GenPrincipals)
	if err != nil {
		return TSIGKey{}, "", fmt.Errorf("look up TSIG key: %w", err)
	}
	gen := genKey{gens[0], gens[1]}
	e, err := s.tokenEntry(ctx, gen, n)
	if err != nil {
		return TSIGKey{}, "", err
	}
	if !e.found || e.tok.Kind != store.TokenKindTSIG {
		return TSIGKey{}, "unknown key", ErrUnauthenticated
	}
	g, why, err := s.entryGrant(ctx, gen, e, source)
	if err != nil {
		return TSIGKey{}, why, err
	}
	raw, err := s.kr.Open(e.tok.SealedSecret, tsigSealAD(n))
	if err != nil {
		kid, _ := secret.SealedKeyID(e.tok.SealedSecret)
		s.log.ErrorContext(ctx, "TSIG key secret does not open: refused", "tsig_key", n, "key_id", kid, "err", err)
		return TSIGKey{}, "sealed secret does not open", ErrUnauthenticated
	}
	return TSIGKey{Name: n, Algorithm: e.tok.TSIGAlgorithm, Secret: raw, Grant: g}, "", nil
}

// TSIGNameserver joins a server and port as lego and cert-manager want
// the nameserver ("host:port", IPv6 in brackets); port 0 means 53.
func TSIGNameserver(server string, port int) string {
	return net.JoinHostPort(server, strconv.Itoa(tsigPort(port)))
}

// tsigPort is port, or 53 if it is not a port number.
func tsigPort(port int) int {
	if port <= 0 || port > 65535 {
		return 53
	}
	return port
}
