package api

import (
	"time"

	"context"

	"github.com/acmehub/acmehub/internal/hub"
)

// The onboarding and check half of acceptAll: checks are off, onboarding
// refuses every domain.

func (acceptAll) CheckDelegation(context.Context, hub.Grant, string) (hub.Delegation, error) {
	return hub.Delegation{}, hub.ErrChecksOff
}

func (acceptAll) Onboard(_ context.Context, _ hub.Grant, domains []string) ([]hub.OnboardResult, error) {
	out := make([]hub.OnboardResult, len(domains))
	for i, d := range domains {
		out[i] = hub.OnboardResult{Input: d, Outcome: hub.OnboardRefused, Reason: "fake"}
	}
	return out, nil
}

// acceptAll's hub has no nameservers to ask: propagation is off.
func (acceptAll) PropagationEnabled() bool          { return false }
func (acceptAll) PropagationMaxWait() time.Duration { return 0 }
func (acceptAll) WaitPropagation(context.Context, hub.Challenge, time.Duration) (hub.Propagation, error) {
	return hub.Propagation{}, nil
}
