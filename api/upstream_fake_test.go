package api

import (
	"context"

	"github.com/acmehub/acmehub/internal/hub"
)

func (acceptAll) ListUpstreamRecords(context.Context, hub.Grant, string, int64, int) ([]hub.UpstreamRecord, error) {
	return nil, nil
}
func (acceptAll) RetryUpstreamRecord(context.Context, hub.Grant, int64) error  { return nil }
func (acceptAll) ForgetUpstreamRecord(context.Context, hub.Grant, int64) error { return nil }
