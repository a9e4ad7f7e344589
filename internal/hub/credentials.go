package hub

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/internal/upstream/catalog"
	"github.com/acmehub/acmehub/store"
)

// CredentialStore is what stored upstream credentials add to Store.
type CredentialStore interface {
	CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error)
	ReplaceCredentialFields(ctx context.Context, id int64, fieldNames []string, sealed, fingerprint []byte) (store.Credential, error)
	DeleteCredential(ctx context.Context, id int64) (store.Credential, error)
	CredentialByID(ctx context.Context, id int64) (store.Credential, error)
	CredentialByName(ctx context.Context, name string) (store.Credential, error)
	ListCredentials(ctx context.Context) ([]store.Credential, error)
}

var _ CredentialStore = (*store.DB)(nil)

// maxFieldValue bounds one credential value: API keys, JSON service
// account files and PEM keys all fit.
const maxFieldValue = 16 << 10

// Credential is what may be shown of a stored credential set: never a
// value.
type Credential struct {
	ID          int64
	Name        string
	Provider    string
	Fields      []string // field names, sorted
	Fingerprint string   // changes when the values change (not on key rotation)
	Generation  int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CreatedBy   string
}

// CredentialRequest creates a credential set.
type CredentialRequest struct {
	Name     string
	Provider string
	Fields   map[string]string
}

// credentialSealAD binds a sealed field set to its row's random uid, so a
// blob moved to another row (or another kind of sealed column) does not
// open.
func credentialSealAD(uid string) []byte { return []byte("upstream_credentials/" + uid) }

// CreateCredential seals and stores a credential set (needs the managed
// challenge admin or admin role). Values are never returned or audited.
func (s *Service) CreateCredential(ctx context.Context, g Grant, req CredentialRequest) (Credential, error) {
	c, err := s.createCredential(ctx, g, req)
	provider := req.Provider
	if c.Provider != "" {
		provider = c.Provider // the catalogue's code, not an alias as typed
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "credential.create", Target: credentialTarget(c.ID, req.Name),
		Detail: credentialDetail(provider, req.Fields)}, err)
	return c, err
}

func (s *Service) createCredential(ctx context.Context, g Grant, req CredentialRequest) (Credential, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) { // credentials reach any domain
		return Credential{}, ErrForbidden
	}
	// Stored as the catalogue's code, not as typed (alias, case): workers
	// and configs compare codes.
	provider, err := validateCredential(req.Provider, req.Fields)
	if err != nil {
		return Credential{}, err
	}
	uid, err := newCredentialUID()
	if err != nil {
		return Credential{}, err
	}
	sealed, fp, err := s.sealFields(uid, req.Fields)
	if err != nil {
		return Credential{}, err
	}
	c, err := s.db.CreateCredential(ctx, store.Credential{UID: uid, Name: req.Name, Provider: provider,
		FieldNames: fieldNames(req.Fields), Sealed: sealed, Fingerprint: fp, CreatedBy: g.Principal.Name})
	if err != nil {
		return Credential{}, credentialStoreError("create credential", fmt.Sprintf("a credential named %q", req.Name), err)
	}
	return credentialOf(c), nil
}

// ReplaceCredentialFields replaces every field of a credential set; its
// name and provider stay.
func (s *Service) ReplaceCredentialFields(ctx context.Context, g Grant, id int64, fields map[string]string) (Credential, error) {
	c, err := s.replaceCredential(ctx, g, id, fields)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "credential.replace", Target: credentialTarget(id, c.Name),
		Detail: credentialDetail(c.Provider, fields)}, err)
	return c, err
}

func (s *Service) replaceCredential(ctx context.Context, g Grant, id int64, fields map[string]string) (Credential, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) { // credentials reach any domain
		return Credential{}, ErrForbidden
	}
	cur, err := s.credential(ctx, id)
	if err != nil {
		return Credential{}, err
	}
	if _, err := validateCredential(cur.Provider, fields); err != nil {
		return Credential{Name: cur.Name, Provider: cur.Provider}, err
	}
	sealed, fp, err := s.sealFields(cur.UID, fields)
	if err != nil {
		return Credential{}, err
	}
	c, err := s.db.ReplaceCredentialFields(ctx, id, fieldNames(fields), sealed, fp)
	if err != nil {
		return Credential{Name: cur.Name, Provider: cur.Provider}, credentialStoreError("replace credential", fmt.Sprintf("credential %d", id), err)
	}
	return credentialOf(c), nil
}

// DeleteCredential deletes a credential set unless a managed challenge
// config refers to it (ErrConflict naming the config).
func (s *Service) DeleteCredential(ctx context.Context, g Grant, id int64) error {
	name, err := s.deleteCredential(ctx, g, id)
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "credential.delete", Target: credentialTarget(id, name)}, err)
	return err
}

func (s *Service) deleteCredential(ctx context.Context, g Grant, id int64) (string, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) { // credentials reach any domain
		return "", ErrForbidden
	}
	if err := positiveID("credential", id); err != nil {
		return "", err
	}
	c, err := s.db.DeleteCredential(ctx, id)
	if err != nil {
		return "", credentialStoreError("delete credential", fmt.Sprintf("credential %d", id), err)
	}
	return c.Name, nil
}

// ListCredentials returns every credential set, by creation, without values.
func (s *Service) ListCredentials(ctx context.Context, g Grant) ([]Credential, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) { // credentials reach any domain
		return nil, ErrForbidden
	}
	cs, err := s.db.ListCredentials(ctx)
	if err != nil {
		return nil, storeError("list credentials", err)
	}
	out := make([]Credential, 0, len(cs))
	for _, c := range cs {
		out = append(out, credentialOf(c))
	}
	return out, nil
}

// GetCredential returns one credential set, without values.
func (s *Service) GetCredential(ctx context.Context, g Grant, id int64) (Credential, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) { // credentials reach any domain
		return Credential{}, ErrForbidden
	}
	c, err := s.credential(ctx, id)
	if err != nil {
		return Credential{}, err
	}
	return credentialOf(c), nil
}

// CredentialByName returns one credential set by name, without values.
func (s *Service) CredentialByName(ctx context.Context, g Grant, name string) (Credential, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) { // credentials reach any domain
		return Credential{}, ErrForbidden
	}
	c, err := s.db.CredentialByName(ctx, name)
	if err != nil {
		return Credential{}, adminStoreError("get credential", fmt.Sprintf("credential %q", name), err)
	}
	return credentialOf(c), nil
}

// OpenCredential returns a credential set's provider and values, for the
// hub's own upstream calls only: no protocol adapter may expose it. A
// blob that does not open (tampered, moved from another row, or sealed
// with a key the key file lacks) is an error, never garbage.
func (s *Service) OpenCredential(ctx context.Context, id int64) (provider string, fields map[string]string, err error) {
	c, err := s.credential(ctx, id)
	if err != nil {
		return "", nil, err
	}
	pt, err := s.kr.Open(c.Sealed, credentialSealAD(c.UID))
	if err != nil {
		// The key id is not secret; which one failed helps the operator.
		kid, _ := secret.SealedKeyID(c.Sealed)
		return "", nil, fmt.Errorf("credential %d (%s): sealed with key %q: %w", id, c.Name, kid, err)
	}
	defer clear(pt)
	if err := json.Unmarshal(pt, &fields); err != nil || !slices.Equal(fieldNames(fields), c.FieldNames) {
		return "", nil, fmt.Errorf("credential %d (%s): %w: opened fields do not match the stored names", id, c.Name, secret.ErrSealBroken)
	}
	return c.Provider, fields, nil
}

func (s *Service) credential(ctx context.Context, id int64) (store.Credential, error) {
	if err := positiveID("credential", id); err != nil {
		return store.Credential{}, err
	}
	c, err := s.db.CredentialByID(ctx, id)
	if err != nil {
		return store.Credential{}, adminStoreError("get credential", fmt.Sprintf("credential %d", id), err)
	}
	return c, nil
}

// sealFields seals the fields as JSON (sorted keys) bound to uid, and
// returns the fingerprint: an HMAC of uid||0||plaintext under a key of its
// own (a PRF of a fixed label under the current hash key), so equal values
// in two rows do not show equal fingerprints, and the token-hash key never
// sees the plaintext. Resealing keeps the stored fingerprint.
func (s *Service) sealFields(uid string, fields map[string]string) (sealed, fp []byte, err error) {
	pt, err := json.Marshal(fields)
	if err != nil {
		return nil, nil, fmt.Errorf("seal credential: %w", err)
	}
	defer clear(pt)
	if sealed, err = s.kr.Seal(pt, credentialSealAD(uid)); err != nil {
		return nil, nil, fmt.Errorf("seal credential: %w", err)
	}
	m := hmac.New(sha256.New, s.kr.HashSecret(fingerprintKeyLabel))
	m.Write([]byte(uid))
	m.Write([]byte{0})
	m.Write(pt)
	return sealed, m.Sum(nil), nil
}

// fingerprintKeyLabel names the credential fingerprint's key.
const fingerprintKeyLabel = "acmehub/v1/credential-fingerprint-key"

// ambientFields are variables lego's providers (the AWS SDK) read to find
// files or identities on the host rather than taking a value.
var ambientFields = []string{"AWS_PROFILE", "AWS_SDK_LOAD_CONFIG", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"}

// hostReference reports whether a field names a file or an ambient
// identity on the hub host: lego (and the SDKs under it) would read or
// write that on the worker's behalf, so a credential admin could reach
// the host's files or its other identities.
func hostReference(name string) bool {
	n := strings.ToUpper(name)
	return strings.HasSuffix(n, "_FILE") || strings.HasSuffix(n, "_PATH") || slices.Contains(ambientFields, n)
}

// validateCredential checks the fields against the provider catalogue and
// returns the provider's canonical code. While the generated catalogue is
// empty (catalog.All() returns nothing) the provider and field names are
// only checked for shape, and the code is returned as given.
func validateCredential(provider string, fields map[string]string) (string, error) {
	if len(fields) == 0 {
		return "", fmt.Errorf("%w: at least one field is required", ErrInvalid)
	}
	for _, k := range fieldNames(fields) {
		if hostReference(k) {
			return "", fmt.Errorf("%w: field %q names a file or identity on the hub host; give the value itself", ErrInvalid, k)
		}
	}
	for k, v := range fields {
		if v == "" || len(v) > maxFieldValue || !utf8.ValidString(v) {
			// Never quote the value.
			return "", fmt.Errorf("%w: field %q: want a non-empty UTF-8 value of at most %d bytes", ErrInvalid, k, maxFieldValue)
		}
	}
	if len(catalog.All()) == 0 {
		return provider, nil
	}
	p, ok := catalog.Lookup(provider)
	if !ok {
		return "", fmt.Errorf("%w: provider %q: unknown; see the provider list", ErrInvalid, provider)
	}
	isCred := func(n string) bool {
		return slices.ContainsFunc(p.Credentials, func(f catalog.Field) bool { return f.Name == n })
	}
	isOpt := func(n string) bool {
		return slices.ContainsFunc(p.Optional, func(f catalog.Field) bool { return f.Name == n })
	}
	credGiven := false
	for _, k := range fieldNames(fields) {
		switch {
		case isCred(k):
			credGiven = true
		case !isOpt(k):
			return "", fmt.Errorf("%w: field %q: provider %q has no such field", ErrInvalid, k, p.Code)
		}
	}
	if !credGiven && len(p.Credentials) > 0 {
		names := make([]string, len(p.Credentials))
		for i, f := range p.Credentials {
			names[i] = f.Name
		}
		return "", fmt.Errorf("%w: provider %q needs credential fields among %s", ErrInvalid, p.Code, strings.Join(names, ", "))
	}
	return p.Code, nil
}

func fieldNames(fields map[string]string) []string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func newCredentialUID() (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("credential uid: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

func credentialOf(c store.Credential) Credential {
	// Shown: a short digest of the stored keyed hash, enough to tell
	// "changed" from "unchanged".
	sum := sha256.Sum256(c.Fingerprint)
	return Credential{ID: c.ID, Name: c.Name, Provider: c.Provider, Fields: slices.Clone(c.FieldNames),
		Fingerprint: hex.EncodeToString(sum[:8]), Generation: c.Generation,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, CreatedBy: c.CreatedBy}
}

// credentialStoreError maps store errors; a credential in use is a
// conflict that names the configs.
func credentialStoreError(op, what string, err error) error {
	if errors.Is(err, store.ErrInUse) {
		_, msg, _ := strings.Cut(err.Error(), store.ErrInUse.Error()+": ")
		return fmt.Errorf("%w: %s is in use: %s; point those configs elsewhere first", ErrConflict, what, msg)
	}
	if errors.Is(err, store.ErrInvalid) {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	return adminStoreError(op, what, err)
}

func credentialTarget(id int64, name string) string {
	t := "credential"
	if id > 0 {
		t += ":" + strconv.FormatInt(id, 10)
	}
	if name != "" {
		t += " " + name
	}
	return t
}

// credentialDetail names the provider and field names, never values.
func credentialDetail(provider string, fields map[string]string) string {
	return "provider=" + provider + " fields=" + strings.Join(fieldNames(fields), ",")
}

// ResealAll reseals every sealed value in db (credentials and acme-dns
// passwords) under kr's current key, in one transaction, for rotate-key.
// kr must hold every key the blobs were sealed with. A blob that does not
// open aborts the whole reseal: nothing changes.
func ResealAll(ctx context.Context, db interface {
	ResealAll(ctx context.Context, reseal func(kind, key string, blob []byte) ([]byte, error)) (int, error)
}, kr *secret.Keyring) (int, error) {
	return db.ResealAll(ctx, func(kind, key string, blob []byte) ([]byte, error) {
		switch kind {
		case store.SealedCredential:
			return kr.Reseal(blob, credentialSealAD(key))
		case store.SealedACMEDNSPassword:
			return kr.Reseal(blob, acmeDNSSealAD(key))
		case store.SealedTSIGSecret:
			return kr.Reseal(blob, tsigSealAD(key))
		}
		return nil, fmt.Errorf("unknown sealed kind %q", kind)
	})
}
