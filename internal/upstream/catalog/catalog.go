// Package catalog lists lego's DNS providers and what each needs: the
// credential fields (environment variable names, as lego's own TOML
// metadata names them) and the optional ones. The list is generated from
// lego's metadata (go generate) and committed.
package catalog

import (
	"slices"
	"strings"
)

//go:generate go run ./gen

// Field is one setting of a provider.
type Field struct {
	Name        string // the environment variable lego reads, e.g. CLOUDFLARE_DNS_API_TOKEN
	Description string
}

// Provider is one lego DNS provider.
type Provider struct {
	Code        string // lego's code, e.g. "cloudflare"
	Name        string // human name, e.g. "Cloudflare"
	Description string
	URL         string
	Aliases     []string // other codes lego accepts for it, e.g. "dnsupdate" for rfc2136
	Credentials []Field  // fields lego reads as credentials (at least one set of them is needed)
	Optional    []Field  // optional settings
}

// All returns every provider, ordered by code.
func All() []Provider {
	out := make([]Provider, len(providers))
	for i, p := range providers {
		out[i] = p.clone()
	}
	return out
}

// Lookup returns the provider with this code or alias, ignoring case.
// The returned provider's Code is always the canonical one.
func Lookup(code string) (Provider, bool) {
	for _, p := range providers {
		if strings.EqualFold(p.Code, code) {
			return p.clone(), true
		}
	}
	for _, p := range providers {
		for _, a := range p.Aliases {
			if strings.EqualFold(a, code) {
				return p.clone(), true
			}
		}
	}
	return Provider{}, false
}

// clone keeps callers from changing the shared table through its slices.
func (p Provider) clone() Provider {
	p.Aliases = slices.Clone(p.Aliases)
	p.Credentials = slices.Clone(p.Credentials)
	p.Optional = slices.Clone(p.Optional)
	return p
}
