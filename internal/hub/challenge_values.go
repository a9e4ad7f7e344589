package hub

import (
	"context"
	"errors"

	"github.com/acmehub/acmehub/store"
)

// ChallengeValues returns the values published for an identifier (any form
// Present accepts), authorised as Present is: the hub-zone values of a
// delegated domain, or the live values the hub wrote upstream. Protocols
// that reason about the whole TXT set (RFC 2136 prerequisites, deleting an
// RRset) read it here.
func (s *Service) ChallengeValues(ctx context.Context, g Grant, identifier string) ([]string, error) {
	base, err := s.baseDomain(ctx, identifier)
	if err != nil {
		return nil, err
	}
	gens, err := s.challengeGens(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := s.authorizeAt(ctx, g, base, gens.configs)
	if err != nil {
		return nil, err
	}
	var values []string
	if cfg.Provider != store.ProviderDelegated {
		ch := s.upstreamChallenge(base, "", cfg)
		recs, err := s.db.UpstreamRecordsAt(ctx, ch.RecordName, "")
		if err != nil {
			return nil, storeError("find upstream values", err)
		}
		for _, r := range recs {
			if r.State == store.UpstreamLive || r.State == store.UpstreamAdding {
				values = append(values, r.Value)
			}
		}
		return values, nil
	}
	d, err := s.delegationAt(ctx, gens.delegations, base)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // never presented
	}
	if err != nil {
		return nil, storeError("find delegation", err)
	}
	recs, err := s.db.ListValues(ctx, d.Name)
	if err != nil {
		return nil, storeError("list values", err)
	}
	for _, r := range recs {
		values = append(values, r.Value)
	}
	return values, nil
}
