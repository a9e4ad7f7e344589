package api

import (
	"context"

	"github.com/acmehub/acmehub/internal/hub"
)

// The TSIG half of acceptAll: no keys; creating one is refused.

func (acceptAll) CreateTSIGKey(context.Context, hub.Grant, hub.TSIGKeyRequest) (hub.IssuedTSIGKey, error) {
	return hub.IssuedTSIGKey{}, hub.ErrForbidden
}

func (acceptAll) ListTSIGKeys(context.Context, hub.Grant, int64) ([]hub.TokenInfo, error) {
	return nil, nil
}

func (acceptAll) GetTSIGKey(context.Context, hub.Grant, string) (hub.TokenInfo, error) {
	return hub.TokenInfo{}, hub.ErrNotFound
}

func (acceptAll) RevokeTSIGKey(context.Context, hub.Grant, string) (hub.TokenInfo, error) {
	return hub.TokenInfo{}, hub.ErrNotFound
}
