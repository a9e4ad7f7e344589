package registry

import (
	"errors"
	"slices"
	"testing"

	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/internal/upstream/legoworker"
)

func TestRegistry(t *testing.T) {
	r := New(upstream.Options{}, nil)
	if got := r.ValueProviders(); !slices.Equal(got, []string{"cloudflare", "rfc2136", "route53"}) {
		t.Fatalf("value providers %v", got)
	}
	for _, p := range r.ValueProviders() {
		if !r.HasValueDriver(p) {
			t.Errorf("%s: no value driver", p)
		}
	}
	if _, err := r.ValueDriver("ovh", nil); !errors.Is(err, upstream.ErrNoDriver) {
		t.Errorf("ovh value driver: %v", err)
	}
	if _, err := r.ValueDriver("cloudflare", map[string]string{}); !errors.Is(err, upstream.ErrConfig) {
		t.Errorf("cloudflare without fields: %v", err)
	}
	// Without a pool, lego's providers are off.
	if r.HasKeyAuthDriver("rfc2136") {
		t.Error("lego provider available without workers")
	}
	if _, err := r.KeyAuthDriver("1/1", "rfc2136", nil); !errors.Is(err, upstream.ErrNoDriver) {
		t.Errorf("lego without workers: %v", err)
	}
	pool := legoworker.NewPool(legoworker.PoolConfig{})
	t.Cleanup(func() { _ = pool.Close(t.Context()) })
	withPool := New(upstream.Options{}, pool)
	if !withPool.HasKeyAuthDriver("rfc2136") || withPool.HasKeyAuthDriver("no-such-provider") {
		t.Error("HasKeyAuthDriver does not follow the build's providers")
	}
	if !r.ReplacesSet("rfc2136") || r.ReplacesSet("cloudflare") {
		t.Error("ReplacesSet")
	}
}
