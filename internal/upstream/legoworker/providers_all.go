//go:build allproviders

package legoworker

import (
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns"

	"github.com/acmehub/acmehub/internal/upstream/catalog"
)

// With -tags allproviders (make build) every lego provider is linked.
func compiled(code string) bool {
	p, ok := catalog.Lookup(code)
	return ok && p.Code == code
}

func newProvider(code string) (challenge.Provider, error) {
	return dns.NewDNSChallengeProviderByName(code)
}
