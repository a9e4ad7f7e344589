package api

import (
	"context"
	"net/netip"

	"github.com/acmehub/acmehub/internal/hub"
)

// The acme-dns half of acceptAll: accounts are refused as unknown and
// registrations and updates succeed, so decoding and routing are what a
// test exercises.

func (acceptAll) RegisterACMEDNS(context.Context, hub.Grant, hub.ACMEDNSRegistration) (hub.ACMEDNSAccount, error) {
	return hub.ACMEDNSAccount{}, nil
}

func (acceptAll) RegisterACMEDNSOpen(context.Context, []netip.Prefix, netip.Addr) (hub.ACMEDNSAccount, error) {
	return hub.ACMEDNSAccount{}, nil
}

func (acceptAll) UpdateACMEDNS(_ context.Context, u hub.ACMEDNSUpdate) (string, error) {
	return u.TXT, nil
}

func (acceptAll) ACMEDNSAccountForDomain(context.Context, hub.Grant, string) (hub.ACMEDNSAccount, error) {
	return hub.ACMEDNSAccount{}, hub.ErrNotFound
}

func (acceptAll) BindACMEDNS(context.Context, hub.Grant, string, string, string) (hub.ACMEDNSAccount, error) {
	return hub.ACMEDNSAccount{}, hub.ErrNotFound
}

func (acceptAll) ACMEDNSAccountsByDomain(context.Context, hub.Grant) (map[string]hub.ACMEDNSAccount, error) {
	return nil, nil
}

func (acceptAll) ListACMEDNS(context.Context, hub.Grant, hub.ACMEDNSFilter) ([]hub.ACMEDNSAccount, string, error) {
	return nil, "", nil
}

func (acceptAll) GetACMEDNS(context.Context, hub.Grant, string, bool) (hub.ACMEDNSAccount, error) {
	return hub.ACMEDNSAccount{}, hub.ErrNotFound
}

func (acceptAll) DeleteACMEDNS(context.Context, hub.Grant, string) error { return hub.ErrNotFound }
