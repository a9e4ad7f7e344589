// Package upstream writes challenge values into a domain's own DNS, for
// domains that are not delegated to the hub. A value-level driver adds and
// removes single TXT values, so it serves every client, including those
// that send only the value (not the key authorization lego's providers
// need).
package upstream

import (
	"context"
	"errors"
	"time"
)

// Driver writes single TXT values at a name in the domain's own DNS.
// Implementations are safe for concurrent use.
type Driver interface {
	// Add publishes value at fqdn (a TXT record, ttl in seconds) beside
	// any values already there; adding a value that is there succeeds.
	Add(ctx context.Context, fqdn, value string, ttl uint32) error
	// Remove deletes exactly that value and no other; a value that is not
	// there succeeds.
	Remove(ctx context.Context, fqdn, value string) error
}

// KeyAuthDriver is a lego provider behind a worker process: it needs the
// key authorization (it computes the TXT value itself) and writes
// _acme-challenge.<domain>. Implementations are safe for concurrent use.
type KeyAuthDriver interface {
	// Present publishes base64url(SHA-256(keyAuth)) at
	// _acme-challenge.<domain>; domain has no "*." and no final dot.
	Present(ctx context.Context, domain, keyAuth string) error
	// CleanUp removes what Present published.
	CleanUp(ctx context.Context, domain, keyAuth string) error
}

// Options are the hub's settings a driver uses.
type Options struct {
	// Timeout bounds one call to the provider; 0 means 30 s.
	Timeout time.Duration
}

// ErrNoDriver means the provider has no value-level driver (yet).
var ErrNoDriver = errors.New("upstream: no value-level driver for this provider")

// ErrConfig means the credential's fields do not make a working driver;
// the message names the field, never a value.
var ErrConfig = errors.New("upstream: bad credential fields")
