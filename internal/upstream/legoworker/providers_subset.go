//go:build !allproviders

package legoworker

import (
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns/httpreq"
	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
)

// builtin is the small provider set every test binary links: the full set
// costs minutes per cold build (make build adds it with -tags allproviders).
var builtin = map[string]func() (challenge.Provider, error){
	"httpreq": func() (challenge.Provider, error) { return httpreq.NewDNSProvider() },
	"rfc2136": func() (challenge.Provider, error) { return rfc2136.NewDNSProvider() },
}

func compiled(code string) bool {
	_, ok := builtin[code]
	return ok
}

func newProvider(code string) (challenge.Provider, error) {
	return builtin[code]()
}
