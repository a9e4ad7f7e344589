// Package hub is the service every protocol adapter calls: it authenticates
// tokens into grants, applies the scope (roles and their domain
// restrictions) before choosing the managed challenge config with package
// rules, and publishes challenge values through delegations in the store.
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
	// ErrUnsupported: the request is valid but needs something this hub
	// does not do yet (an upstream provider).
	ErrUnsupported = errors.New("not supported")
)

// Principal is who a request acts for.
type Principal struct {
	ID      int64
	Name    string
	TokenID string // the token's client id; never the secret
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
}
