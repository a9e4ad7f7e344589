package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Token is an API token: a client id and the hash of its secret, owned by
// a principal, optionally narrowed to some of the principal's roles and to
// source prefixes. Only a hash of the secret is stored.
//
// A TSIG key (Kind TokenKindTSIG) is a token too: its client id is the key
// name, a lower-case DNS name with the final dot, and since the HMAC needs
// the secret itself, the secret is stored sealed (SealedSecret), not
// hashed: SecretHash is empty.
//
// Authoritative for authorisation are PrincipalID's role assignments,
// narrowed by Roles. Name and Role are the version-1 fields, kept so that
// code written before principals keeps working.
type Token struct {
	ClientID string // 1 to 128 bytes; unique

	// PrincipalID owns the token; deleting the principal deletes it. It is
	// 0 only for a legacy token, created with Role and no principal.
	PrincipalID int64

	// SecretHash comes from internal/secret; never the secret itself.
	// TokenByClientID returns it; ListTokens leaves it nil.
	SecretHash []byte

	Title       string // for people: at most 256 bytes of text (no control characters)
	Description string // at most 1024 bytes of text

	// Roles narrows the token to these of its principal's roles; empty
	// means not narrowed (all of them). Stored canonical: sorted, each
	// once; unknown roles are refused (ErrInvalid).
	Roles []string

	// AllowCIDRs lists the source prefixes the token may be used from;
	// empty means any source. Stored canonical: netip.Prefix strings,
	// sorted, each once. A prefix with host bits set (10.0.0.1/8) or a
	// bare address is refused (ErrInvalid).
	AllowCIDRs []string

	CreatedAt  time.Time // set by CreateToken
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: not revoked; set by RevokeToken
	LastUsedAt time.Time // zero: never used; updated lazily by TouchToken

	// Name is Title under its version-1 name: reads set both, and
	// CreateToken stores Name when Title is empty.
	Name string

	// Role is the version-1 single role, stored as given and returned as
	// stored. It is not authoritative: the service authorises with
	// PrincipalID's role assignments narrowed by Roles. A token needs a
	// PrincipalID or (legacy) a Role.
	Role string

	// Kind is TokenKindTSIG for a TSIG key and "" for an API token
	// (TokenKindAPI is accepted on create; reads return "", so a token
	// reads back as it was written).
	Kind string
	// TSIGAlgorithm is a TSIG key's HMAC, as miekg/dns names it (one of
	// TSIGAlgorithms); "" for an API token.
	TSIGAlgorithm string
	// SealedSecret is a TSIG key's raw HMAC key, sealed by the service
	// with associated data binding it to the key name; nil for an API
	// token. TokenByClientID returns it; ListTokens leaves it nil.
	SealedSecret []byte
}

// Token kinds.
const (
	TokenKindAPI  = "api"  // an HTTP API credential: client id + hashed secret
	TokenKindTSIG = "tsig" // a TSIG key: key name + sealed HMAC key
)

// TSIGAlgorithms are the HMAC algorithms a TSIG key may have, as miekg/dns
// names them (dns.HmacMD5 ... dns.HmacSHA512).
var TSIGAlgorithms = []string{"hmac-md5.sig-alg.reg.int.", "hmac-sha1.", "hmac-sha224.", "hmac-sha256.", "hmac-sha384.", "hmac-sha512."}

// SealedTSIGSecret is the ResealAll kind of a TSIG key's sealed secret
// (key: the key name).
const SealedTSIGSecret = "tsig"

// MetaKeyCheck is the meta key holding the credential key's check value;
// its presence means the database has been set up (see IsEmpty).
const MetaKeyCheck = "key_check"

// Length limits of token fields.
const (
	maxClientID   = 128
	maxTSIGName   = 254 // 253 bytes of name and the final dot
	maxTokenTitle = 256
	maxLegacyRole = 64
	maxCIDRs      = 64
)

// normalize validates t and puts Title, Roles and AllowCIDRs in canonical
// form.
func (t *Token) normalize() error {
	var errs []error
	if t.Kind == "" {
		t.Kind = TokenKindAPI
	}
	switch t.Kind {
	case TokenKindAPI:
		if t.ClientID == "" || len(t.ClientID) > maxClientID {
			errs = append(errs, fmt.Errorf("client id: want 1 to %d bytes, got %d", maxClientID, len(t.ClientID)))
		}
		if len(t.SecretHash) == 0 {
			errs = append(errs, errors.New("secret hash is required"))
		}
		if t.TSIGAlgorithm != "" || len(t.SealedSecret) != 0 {
			errs = append(errs, errors.New("an API token has no TSIG algorithm and no sealed secret"))
		}
	case TokenKindTSIG:
		errs = append(errs, t.checkTSIG())
	default:
		errs = append(errs, fmt.Errorf("kind %q: want %s or %s", t.Kind, TokenKindAPI, TokenKindTSIG))
	}
	if t.PrincipalID < 0 {
		errs = append(errs, fmt.Errorf("principal id %d is negative", t.PrincipalID))
	}
	if t.PrincipalID == 0 && t.Role == "" {
		errs = append(errs, errors.New("an owning principal is required"))
	}
	if t.Title == "" {
		t.Title = t.Name
	}
	t.Name = t.Title
	errs = append(errs,
		validateText("title", t.Title, maxTokenTitle),
		validateText("description", t.Description, maxDescription),
		validateText("role", t.Role, maxLegacyRole))
	roles, err := canonicalRoles(t.Roles)
	if err != nil {
		errs = append(errs, fmt.Errorf("roles: %w", err))
	}
	t.Roles = roles
	cidrs, err := canonicalCIDRs(t.AllowCIDRs)
	if err != nil {
		errs = append(errs, fmt.Errorf("allowed source prefixes: %w", err))
	}
	t.AllowCIDRs = cidrs
	return errors.Join(errs...)
}

// checkTSIG checks the fields a TSIG key must have. The service validates
// the key name as a DNS name; the store checks its shape.
func (t *Token) checkTSIG() error {
	var errs []error
	if len(t.ClientID) < 2 || len(t.ClientID) > maxTSIGName || !strings.HasSuffix(t.ClientID, ".") ||
		t.ClientID != strings.ToLower(t.ClientID) {
		errs = append(errs, fmt.Errorf("key name %q: want a lower-case DNS name with the final dot, at most %d bytes", t.ClientID, maxTSIGName))
	}
	if !slices.Contains(TSIGAlgorithms, t.TSIGAlgorithm) {
		errs = append(errs, fmt.Errorf("tsig algorithm %q: want one of %v", t.TSIGAlgorithm, TSIGAlgorithms))
	}
	if len(t.SealedSecret) == 0 {
		errs = append(errs, errors.New("a TSIG key needs its sealed secret"))
	}
	if len(t.SecretHash) != 0 {
		errs = append(errs, errors.New("a TSIG key has no secret hash"))
	}
	if t.PrincipalID <= 0 || t.Role != "" {
		errs = append(errs, errors.New("a TSIG key needs an owning principal and no legacy role"))
	}
	return errors.Join(errs...)
}

// canonicalCIDRs parses, checks, sorts and de-duplicates prefixes.
func canonicalCIDRs(in []string) ([]string, error) {
	if len(in) > maxCIDRs {
		return nil, fmt.Errorf("%d prefixes, at most %d", len(in), maxCIDRs)
	}
	ps := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("prefix %s has host bits set (did you mean %s?)", s, p.Masked())
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	ps = slices.Compact(ps)
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out, nil
}

// CreateToken stores a new token and bumps the "tokens" generation. A
// client id in use fails with ErrConflict, an unknown PrincipalID with
// ErrNotFound, invalid fields with ErrInvalid. Whether the principal may
// hold the token (enabled, Roles among its roles) is the caller's check.
func (db *DB) CreateToken(ctx context.Context, t Token) error {
	if err := t.normalize(); err != nil {
		return fmt.Errorf("store: create token %q: %w: %w", t.ClientID, ErrInvalid, err)
	}
	_, err := db.write(ctx, "create token", func(w *wtx) error {
		hash := t.SecretHash
		if hash == nil {
			hash = []byte{} // NOT NULL; a TSIG key has none
		}
		var sealed any // NULL for an API token
		if t.Kind == TokenKindTSIG {
			sealed = t.SealedSecret
		}
		res, err := w.exec(`INSERT INTO api_tokens (client_id, principal_id, secret_hash, title, description,
				roles, allow_cidrs, role, created_at, expires_at, kind, tsig_algorithm, sealed_secret)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING`,
			t.ClientID, nullID(t.PrincipalID), hash, t.Title, t.Description,
			strings.Join(t.Roles, ","), strings.Join(t.AllowCIDRs, ","), t.Role, w.now.UnixMilli(), nullMilli(t.ExpiresAt),
			t.Kind, t.TSIGAlgorithm, sealed)
		if err != nil {
			return fmt.Errorf("store: create token %q: %w", t.ClientID, sqlErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: create token %q: %w", t.ClientID, err)
		} else if n == 0 {
			return fmt.Errorf("store: create token %q: %w", t.ClientID, ErrConflict)
		}
		_, err = w.bumpGeneration(GenTokens)
		return err
	})
	return err
}

// tokenCols lists the columns scanToken reads (secret_hash is not among
// them); the last, sealed_secret, is NULL in listings (tokenListCols).
//
//nolint:gosec // a column list, not a credential
const (
	tokenInfoCols = `client_id, principal_id, title, description, roles, allow_cidrs, role,
	created_at, expires_at, revoked_at, last_used_at, kind, tsig_algorithm`
	tokenCols     = tokenInfoCols + `, sealed_secret`
	tokenListCols = tokenInfoCols + `, NULL`
)

// scanToken scans tokenCols, followed by extra destinations.
func scanToken(s scanner, extra ...any) (Token, error) {
	var t Token
	var principal, expires, revoked, used sql.NullInt64
	var roles, cidrs string
	var created int64
	dest := append([]any{&t.ClientID, &principal, &t.Title, &t.Description, &roles, &cidrs, &t.Role,
		&created, &expires, &revoked, &used, &t.Kind, &t.TSIGAlgorithm, &t.SealedSecret}, extra...)
	if err := s.Scan(dest...); err != nil {
		return Token{}, err
	}
	t.PrincipalID = principal.Int64
	if t.Kind == TokenKindAPI {
		t.Kind = ""
	}
	t.Name = t.Title
	t.Roles, t.AllowCIDRs = splitList(roles), splitList(cidrs)
	t.CreatedAt = fromMilli(created)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromNullMilli(expires), fromNullMilli(revoked), fromNullMilli(used)
	return t, nil
}

// TokenByClientID returns the token with that client id, secret hash (or
// a TSIG key's sealed secret) included, or ErrNotFound. Revoked and expired tokens are returned too;
// the caller decides.
func (db *DB) TokenByClientID(ctx context.Context, clientID string) (Token, error) {
	var hash []byte
	t, err := scanToken(db.queryRow(ctx, qTokenByClientID, clientID), &hash)
	if err != nil {
		return Token{}, fmt.Errorf("store: token %q: %w", clientID, notFound(err))
	}
	t.SecretHash = hash
	return t, nil
}

// ListTokens returns the tokens of a principal (0: every token, legacy
// ones included), revoked and expired ones too, ordered by creation. The
// secret hashes and sealed secrets are not read: SecretHash and
// SealedSecret are nil.
func (db *DB) ListTokens(ctx context.Context, principalID int64) ([]Token, error) {
	q, args := `SELECT `+tokenListCols+` FROM api_tokens ORDER BY created_at, client_id`, []any(nil)
	if principalID != 0 {
		q, args = `SELECT `+tokenListCols+` FROM api_tokens WHERE principal_id = ? ORDER BY created_at, client_id`, []any{principalID}
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens of %d: %w", principalID, err)
	}
	out, err := collect(rows, func(s scanner) (Token, error) { return scanToken(s) })
	if err != nil {
		return nil, fmt.Errorf("store: list tokens of %d: %w", principalID, err)
	}
	return out, nil
}

// RevokeToken marks a token revoked at at (zero: now), or fails with
// ErrNotFound. Revoking a revoked token keeps its first revocation time
// and is no error. It bumps the "tokens" generation.
func (db *DB) RevokeToken(ctx context.Context, clientID string, at time.Time) error {
	_, err := db.write(ctx, "revoke token", func(w *wtx) error {
		when := at
		if when.IsZero() {
			when = w.now
		}
		res, err := w.exec(`UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE client_id = ?`,
			when.UnixMilli(), clientID)
		if err != nil {
			return fmt.Errorf("store: revoke token %q: %w", clientID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: revoke token %q: %w", clientID, err)
		} else if n == 0 {
			return fmt.Errorf("store: revoke token %q: %w", clientID, ErrNotFound)
		}
		_, err = w.bumpGeneration(GenTokens)
		return err
	})
	return err
}

// CountTokens returns the number of tokens, revoked ones included.
func (db *DB) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM api_tokens`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count tokens: %w", err)
	}
	return n, nil
}

// TouchToken records that the token was used at at. It is best effort and
// does not wait for the disk: touches are coalesced in memory and written
// by the next batch of the writer (and on Close); a crash may lose the
// latest ones. It does not bump the "tokens" generation, so authenticating
// never invalidates the token caches.
func (db *DB) TouchToken(ctx context.Context, clientID string, at time.Time) error {
	if err := db.touch(ctx, func() {
		if prev, ok := db.touches[clientID]; !ok || at.After(prev) {
			db.touches[clientID] = at
		}
	}); err != nil {
		return fmt.Errorf("store: touch token %q: %w", clientID, err)
	}
	return nil
}

// touch runs record (which adds to a pending touch map) under touchMu and
// queues one flush for everything pending, unless one is queued already.
func (db *DB) touch(ctx context.Context, record func()) error {
	db.touchMu.Lock()
	record()
	queue := !db.touchPending
	db.touchPending = true
	db.touchMu.Unlock()
	if !queue {
		return nil
	}
	// Queued without waiting for the result; failures are logged.
	r := &writeReq{ctx: context.WithoutCancel(ctx), op: "flush touches", fn: db.flushTouches, done: make(chan writeRes, 1)}
	if err := db.enqueue(ctx, r); err != nil {
		db.touchMu.Lock()
		db.touchPending = false
		db.touchMu.Unlock()
		return err
	}
	go func() {
		if res := <-r.done; res.err != nil {
			db.cfg.Logger.Warn("store: flush touches", "err", res.err)
		}
	}()
	return nil
}

// pendingTouches reports how many touches wait for a flush.
func (db *DB) pendingTouches() int {
	db.touchMu.Lock()
	defer db.touchMu.Unlock()
	return len(db.touches) + len(db.delegationTouches) + len(db.acmeDNSTouches)
}

// flushTouches writes the pending touches; it runs on the writer.
func (db *DB) flushTouches(w *wtx) error {
	db.touchMu.Lock()
	touches, delegations, accounts := db.touches, db.delegationTouches, db.acmeDNSTouches
	db.touches, db.delegationTouches = make(map[string]time.Time), make(map[int64]time.Time)
	db.acmeDNSTouches = make(map[string]time.Time)
	db.touchPending = false
	db.touchMu.Unlock()
	for id, at := range touches {
		if _, err := w.exec(qTouchToken, at.UnixMilli(), id); err != nil {
			return fmt.Errorf("store: touch token %q: %w", id, err)
		}
	}
	for id, at := range delegations {
		if _, err := w.exec(qTouchDelegation, at.UnixMilli(), id); err != nil {
			return fmt.Errorf("store: touch delegation %d: %w", id, err)
		}
	}
	for username, at := range accounts {
		if _, err := w.exec(qTouchACMEDNS, at.UnixMilli(), username); err != nil {
			return fmt.Errorf("store: touch acme-dns account: %w", err)
		}
	}
	return nil
}

// Meta returns the value of a meta key, or ErrNotFound.
func (db *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: meta %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: meta %q: %w", key, err)
	}
	return v, nil
}

// SetMeta sets a meta key.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	if key == "" {
		return fmt.Errorf("store: set meta: %w: empty key", ErrInvalid)
	}
	_, err := db.write(ctx, "set meta", func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			key, value); err != nil {
			return fmt.Errorf("store: set meta %q: %w", key, err)
		}
		return nil
	})
	return err
}

// IsEmpty reports whether the database was never set up: no tokens, no
// principals, no zone content and no MetaKeyCheck. The server bootstraps
// an admin token only then.
func (db *DB) IsEmpty(ctx context.Context) (bool, error) {
	var used bool
	err := db.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_tokens)
		OR EXISTS (SELECT 1 FROM txt_values)
		OR EXISTS (SELECT 1 FROM zone_names)
		OR EXISTS (SELECT 1 FROM principals)
		OR EXISTS (SELECT 1 FROM meta WHERE key = ?)`, MetaKeyCheck).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("store: check empty: %w", err)
	}
	return !used, nil
}
