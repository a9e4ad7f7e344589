package hub

import (
	"context"
	"fmt"

	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// The record operations write hub-zone names directly, bypassing
// delegations and rules: they are for administrators (repairs, tests).
// Clients publish through Present, which applies the scope and the rules.

// SetValue publishes a value (or refreshes an existing one) and returns it
// once it is durable and served by this process's DNS view.
func (s *Service) SetValue(ctx context.Context, g Grant, req SetRequest) (Record, error) {
	if !g.Allows(ActionManageChallenges) {
		return Record{}, ErrForbidden
	}
	name, err := s.name(req.Name)
	if err != nil {
		return Record{}, err
	}
	if err := zone.ValidateValue(req.Value); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ttl, expires, err := s.ttlAndExpiry(req.TTL, req.Lifetime)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Name: name, Value: req.Value, TTL: ttl, CreatedAt: s.now(), ExpiresAt: expires, CreatedBy: g.Principal.Name}
	_, err = s.db.AddValue(ctx, store.AddRequest{
		Name: rec.Name, Value: rec.Value, TTL: rec.TTL, ExpiresAt: rec.ExpiresAt, CreatedBy: rec.CreatedBy,
	})
	if err != nil {
		return Record{}, storeError("add value", err)
	}
	return rec, nil
}

// RemoveValue removes one value at a name; absent values are no error.
func (s *Service) RemoveValue(ctx context.Context, g Grant, name, value string) (int, error) {
	if !g.Allows(ActionManageChallenges) {
		return 0, ErrForbidden
	}
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
func (s *Service) RemoveName(ctx context.Context, g Grant, name string) (int, error) {
	if !g.Allows(ActionManageChallenges) {
		return 0, ErrForbidden
	}
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
func (s *Service) Values(ctx context.Context, g Grant, name string) ([]Record, error) {
	if !g.Allows(ActionManageChallenges) {
		return nil, ErrForbidden
	}
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
func (s *Service) AllValues(ctx context.Context, g Grant, afterName string, limit int) ([]Record, error) {
	if !g.Allows(ActionManageChallenges) {
		return nil, ErrForbidden
	}
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

func (s *Service) name(n string) (string, error) {
	name, err := zone.InZoneName(s.cfg.Zone, n)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return name, nil
}

func records(in []store.Record) []Record {
	out := make([]Record, len(in))
	for i, r := range in {
		out[i] = Record(r)
	}
	return out
}
