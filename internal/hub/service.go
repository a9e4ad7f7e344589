package hub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// Config holds the service's settings.
type Config struct {
	Zone             string        // the hub zone, lower-case fqdn
	DefaultTTL       time.Duration // TXT TTL when a request names none
	DefaultLifetime  time.Duration // value lifetime when a request names none
	MaxValueLifetime time.Duration // longest lifetime a request may ask for
}

// Store is what the service needs of the store; *store.DB implements it.
type Store interface {
	AddValue(ctx context.Context, req store.AddRequest) (int64, error)
	RemoveValue(ctx context.Context, name, value string) (serial int64, removed bool, err error)
	RemoveAllValues(ctx context.Context, name string) (serial int64, removed int, err error)
	ListValues(ctx context.Context, name string) ([]store.Record, error)
	ListAll(ctx context.Context, afterName string, limit int) ([]store.Record, error)
	TokenByClientID(ctx context.Context, clientID string) (store.Token, error)
	TouchToken(ctx context.Context, clientID string, at time.Time) error
	Serial(ctx context.Context) (int64, error)
}

var _ Store = (*store.DB)(nil)

// Service is the hub's one entry point for every protocol adapter.
type Service struct {
	db  Store
	kr  *secret.Keyring
	cfg Config
	now func() time.Time
}

// New returns a service over db, verifying tokens with kr.
func New(db Store, kr *secret.Keyring, cfg Config) *Service {
	return &Service{db: db, kr: kr, cfg: cfg, now: time.Now}
}

// Authenticate checks client credentials. Unknown client ids are verified
// against a dummy hash so that they cost the same as wrong secrets, and every
// failure is the same ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, cred secret.Token) (Principal, error) {
	tok, err := s.db.TokenByClientID(ctx, cred.ClientID)
	var hash []byte
	switch {
	case err == nil:
		hash = tok.SecretHash
	case errors.Is(err, store.ErrNotFound):
	default:
		return Principal{}, fmt.Errorf("look up token: %w", err)
	}
	ok := s.kr.VerifySecret(cred.Secret, hash)
	now := s.now()
	switch {
	case !ok || hash == nil:
		return Principal{}, ErrUnauthenticated
	case !tok.RevokedAt.IsZero():
		return Principal{}, ErrUnauthenticated
	case !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt):
		return Principal{}, ErrUnauthenticated
	}
	_ = s.db.TouchToken(ctx, tok.ClientID, now) // best effort: last-used is informational
	return Principal{TokenID: tok.ClientID, Name: tok.Name, Role: tok.Role}, nil
}

// SetValue publishes a value (or refreshes an existing one) and returns it
// once it is durable and served by this process's DNS view.
func (s *Service) SetValue(ctx context.Context, req SetRequest) (Record, error) {
	name, err := s.name(req.Name)
	if err != nil {
		return Record{}, err
	}
	if err := zone.ValidateValue(req.Value); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ttl, lifetime := req.TTL, req.Lifetime
	if ttl == 0 {
		ttl = s.cfg.DefaultTTL
	}
	if lifetime == 0 {
		lifetime = s.cfg.DefaultLifetime
	}
	ttlSeconds := int64(ttl / time.Second)
	if ttl%time.Second != 0 || ttlSeconds < 0 || ttlSeconds > math.MaxInt32 {
		return Record{}, fmt.Errorf("%w: ttl must be whole seconds up to 2^31-1", ErrInvalid)
	}
	if lifetime > s.cfg.MaxValueLifetime {
		return Record{}, fmt.Errorf("%w: lifetime %s is longer than the maximum %s", ErrInvalid, lifetime, s.cfg.MaxValueLifetime)
	}
	now := s.now()
	rec := Record{
		Name: name, Value: req.Value, TTL: uint32(ttlSeconds),
		CreatedAt: now, ExpiresAt: now.Add(lifetime), CreatedBy: req.By.TokenID,
	}
	_, err = s.db.AddValue(ctx, store.AddRequest{
		Name: rec.Name, Value: rec.Value, TTL: rec.TTL, ExpiresAt: rec.ExpiresAt, CreatedBy: rec.CreatedBy,
	})
	if err != nil {
		return Record{}, storeError("add value", err)
	}
	return rec, nil
}

// RemoveValue removes one value at a name; absent values are no error.
func (s *Service) RemoveValue(ctx context.Context, name, value string, _ Principal) (int, error) {
	n, err := s.name(name)
	if err != nil {
		return 0, err
	}
	_, removed, err := s.db.RemoveValue(ctx, n, value)
	if err != nil {
		return 0, storeError("remove value", err)
	}
	if removed {
		return 1, nil
	}
	return 0, nil
}

// RemoveName removes every value at a name.
func (s *Service) RemoveName(ctx context.Context, name string, _ Principal) (int, error) {
	n, err := s.name(name)
	if err != nil {
		return 0, err
	}
	_, removed, err := s.db.RemoveAllValues(ctx, n)
	if err != nil {
		return 0, storeError("remove values", err)
	}
	return removed, nil
}

// Values lists the live values at a name.
func (s *Service) Values(ctx context.Context, name string) ([]Record, error) {
	n, err := s.name(name)
	if err != nil {
		return nil, err
	}
	recs, err := s.db.ListValues(ctx, n)
	if err != nil {
		return nil, storeError("list values", err)
	}
	return records(recs), nil
}

// AllValues pages through every live value.
func (s *Service) AllValues(ctx context.Context, afterName string, limit int) ([]Record, error) {
	if afterName != "" {
		n, err := s.name(afterName)
		if err != nil {
			return nil, err
		}
		afterName = n
	}
	recs, err := s.db.ListAll(ctx, afterName, limit)
	if err != nil {
		return nil, storeError("list values", err)
	}
	return records(recs), nil
}

// Ready reports whether the database answers.
func (s *Service) Ready(ctx context.Context) error {
	_, err := s.db.Serial(ctx)
	return err
}

func (s *Service) name(n string) (string, error) {
	name, err := zone.InZoneName(s.cfg.Zone, n)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return name, nil
}

// storeError maps store sentinels onto the service's error kinds.
func storeError(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrTooManyValues):
		return fmt.Errorf("%w: %w", ErrLimit, err)
	case errors.Is(err, store.ErrInvalid), errors.Is(err, zone.ErrBadValue), errors.Is(err, zone.ErrBadName):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func records(in []store.Record) []Record {
	out := make([]Record, len(in))
	for i, r := range in {
		out[i] = Record(r)
	}
	return out
}
