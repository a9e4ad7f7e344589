package api

import (
	"context"

	"github.com/acmehub/acmehub/internal/hub"
)

func (acceptAll) CreateCredential(context.Context, hub.Grant, hub.CredentialRequest) (hub.Credential, error) {
	return hub.Credential{}, nil
}

func (acceptAll) ReplaceCredentialFields(context.Context, hub.Grant, int64, map[string]string) (hub.Credential, error) {
	return hub.Credential{}, nil
}

func (acceptAll) DeleteCredential(context.Context, hub.Grant, int64) error { return nil }

func (acceptAll) ListCredentials(context.Context, hub.Grant) ([]hub.Credential, error) {
	return nil, nil
}

func (acceptAll) GetCredential(context.Context, hub.Grant, int64) (hub.Credential, error) {
	return hub.Credential{}, nil
}
