package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token is an API token row. Only a hash of the secret is stored.
type Token struct {
	ClientID   string
	SecretHash []byte // from internal/secret; never the secret itself
	Name       string
	Role       string
	CreatedAt  time.Time // set by CreateToken
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: not revoked
	LastUsedAt time.Time // zero: never used; updated lazily by TouchToken
}

// MetaKeyCheck is the meta key holding the credential key's check value;
// its presence means the database has been set up (see IsEmpty).
const MetaKeyCheck = "key_check"

// CreateToken stores a new token and bumps the "tokens" generation. A
// client id in use fails with ErrConflict.
func (db *DB) CreateToken(ctx context.Context, t Token) error {
	var errs []error
	if t.ClientID == "" || len(t.ClientID) > 128 {
		errs = append(errs, fmt.Errorf("client id: want 1 to 128 bytes, got %d", len(t.ClientID)))
	}
	if len(t.SecretHash) == 0 {
		errs = append(errs, errors.New("secret hash is required"))
	}
	if t.Role == "" {
		errs = append(errs, errors.New("role is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: create token %q: %w: %w", t.ClientID, ErrInvalid, err)
	}
	_, err := db.write(ctx, "create token", func(w *wtx) error {
		res, err := w.exec(`INSERT INTO api_tokens (client_id, secret_hash, name, role, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING`,
			t.ClientID, t.SecretHash, t.Name, t.Role, w.now.UnixMilli(), nullMilli(t.ExpiresAt))
		if err != nil {
			return fmt.Errorf("store: create token %q: %w", t.ClientID, err)
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

// TokenByClientID returns the token with that client id, or ErrNotFound.
// Revoked and expired tokens are returned too; the caller decides.
func (db *DB) TokenByClientID(ctx context.Context, clientID string) (Token, error) {
	var t Token
	var created int64
	var expires, revoked, used sql.NullInt64
	err := db.r.QueryRowContext(ctx, `SELECT client_id, secret_hash, name, role, created_at, expires_at, revoked_at, last_used_at
		FROM api_tokens WHERE client_id = ?`, clientID).
		Scan(&t.ClientID, &t.SecretHash, &t.Name, &t.Role, &created, &expires, &revoked, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("store: token %q: %w", clientID, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("store: token %q: %w", clientID, err)
	}
	t.CreatedAt = fromMilli(created)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromNullMilli(expires), fromNullMilli(revoked), fromNullMilli(used)
	return t, nil
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
	db.touchMu.Lock()
	if prev, ok := db.touches[clientID]; !ok || at.After(prev) {
		db.touches[clientID] = at
	}
	queue := !db.touchPending
	db.touchPending = true
	db.touchMu.Unlock()
	if !queue {
		return nil
	}
	// Queued without waiting for the result; failures are logged.
	r := &writeReq{ctx: context.WithoutCancel(ctx), op: "touch tokens", fn: db.flushTouches, done: make(chan writeRes, 1)}
	if err := db.enqueue(ctx, r); err != nil {
		db.touchMu.Lock()
		db.touchPending = false
		db.touchMu.Unlock()
		return fmt.Errorf("store: touch token %q: %w", clientID, err)
	}
	go func() {
		if res := <-r.done; res.err != nil {
			db.cfg.Logger.Warn("store: touch tokens", "err", res.err)
		}
	}()
	return nil
}

// flushTouches writes the pending touches; it runs on the writer.
func (db *DB) flushTouches(w *wtx) error {
	db.touchMu.Lock()
	touches := db.touches
	db.touches = make(map[string]time.Time)
	db.touchPending = false
	db.touchMu.Unlock()
	for id, at := range touches {
		// max() keeps a later touch written by another process.
		if _, err := w.exec(`UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE client_id = ?`,
			at.UnixMilli(), id); err != nil {
			return fmt.Errorf("store: touch token %q: %w", id, err)
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
// zone content and no MetaKeyCheck. The server bootstraps an admin token
// only then.
func (db *DB) IsEmpty(ctx context.Context) (bool, error) {
	var used bool
	err := db.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_tokens)
		OR EXISTS (SELECT 1 FROM txt_values)
		OR EXISTS (SELECT 1 FROM zone_names)
		OR EXISTS (SELECT 1 FROM meta WHERE key = ?)`, MetaKeyCheck).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("store: check empty: %w", err)
	}
	return !used, nil
}
