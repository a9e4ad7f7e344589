// Package hub is the service every protocol adapter calls: it authenticates
// tokens, validates requests and writes challenge values to the store.
//
// The access model (principals, roles, managed challenge configs) builds on
// this; for now the only principal is the bootstrap admin.
package hub

import (
	"errors"
	"time"
)

// Error kinds; the API maps each to one HTTP status and a stable code.
var (
	ErrInvalid         = errors.New("invalid request")
	ErrNotFound        = errors.New("not found")
	ErrLimit           = errors.New("limit reached")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Principal is who a request acts for.
type Principal struct {
	TokenID string // the token's client id; never the secret
	Name    string
	Role    string
}

// Record is one live challenge value.
type Record struct {
	Name      string // lower-case fqdn inside the hub zone
	Value     string
	TTL       uint32
	CreatedAt time.Time
	ExpiresAt time.Time
	CreatedBy string
}

// SetRequest asks to publish Value at Name. Zero TTL and Lifetime mean the
// configured defaults.
type SetRequest struct {
	Name     string
	Value    string
	TTL      time.Duration
	Lifetime time.Duration
	By       Principal
}
