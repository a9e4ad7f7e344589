// Package registry makes the upstream drivers of stored credentials: the
// value-level drivers acmehub implements, and lego's providers in worker
// processes for everything else.
package registry

import (
	"fmt"
	"maps"
	"slices"

	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/internal/upstream/cloudflare"
	"github.com/acmehub/acmehub/internal/upstream/legoworker"
	"github.com/acmehub/acmehub/internal/upstream/rfc2136"
	"github.com/acmehub/acmehub/internal/upstream/route53"
)

// valueDrivers are the providers with a value-level driver, by catalogue
// code.
var valueDrivers = map[string]func(map[string]string, upstream.Options) (upstream.Driver, error){
	"rfc2136":    rfc2136.New,
	"cloudflare": cloudflare.New,
	"route53":    route53.New,
}

// replacesSet are lego providers known to replace the whole TXT set at a
// name on Present (rfc2136 sends delete-RRset then insert), so a second
// value at a name through them would silently remove the first.
var replacesSet = map[string]bool{
	"rfc2136": true,
}

// Registry implements hub.Upstreams.
type Registry struct {
	opts upstream.Options
	pool *legoworker.Pool // nil: no lego providers
}

// New returns a registry whose value-level drivers use opts and whose
// lego providers run in pool's workers (nil: value-level drivers only).
func New(opts upstream.Options, pool *legoworker.Pool) *Registry {
	return &Registry{opts: opts, pool: pool}
}

// ValueDriver returns provider's value-level driver over fields.
func (r *Registry) ValueDriver(provider string, fields map[string]string) (upstream.Driver, error) {
	mk, ok := valueDrivers[provider]
	if !ok {
		return nil, fmt.Errorf("%w: %q", upstream.ErrNoDriver, provider)
	}
	return mk(fields, r.opts)
}

// KeyAuthDriver returns lego's provider for one credential version.
func (r *Registry) KeyAuthDriver(key, provider string, fields map[string]string) (upstream.KeyAuthDriver, error) {
	if r.pool == nil {
		return nil, fmt.Errorf("%w: lego providers are off on this hub", upstream.ErrNoDriver)
	}
	return r.pool.Driver(key, provider, fields)
}

// HasValueDriver reports whether provider has a value-level driver.
func (r *Registry) HasValueDriver(provider string) bool {
	_, ok := valueDrivers[provider]
	return ok
}

// ValueProviders are the providers with a value-level driver, sorted.
func (r *Registry) ValueProviders() []string { return slices.Sorted(maps.Keys(valueDrivers)) }

// HasKeyAuthDriver reports whether lego's provider is in this build.
func (r *Registry) HasKeyAuthDriver(provider string) bool {
	return r.pool != nil && legoworker.Supported(provider)
}

// ReplacesSet reports whether lego's provider replaces the TXT set.
func (r *Registry) ReplacesSet(provider string) bool { return replacesSet[provider] }
