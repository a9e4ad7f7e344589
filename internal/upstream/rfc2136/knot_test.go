package rfc2136

import (
	"testing"

	"github.com/acmehub/acmehub/internal/acmetest"
)

// knotZone is the zone Knot serves as the upstream in these tests.
const knotZone = "upstream.test."

// knot is the shared harness's knotd serving knotZone; addr and secret
// repeat its Addr and Secret under the names this package's tests use.
type knot struct {
	*acmetest.Knot
	addr, secret string
}

// startKnot runs knotd for knotZone (see acmetest.StartKnot: it skips
// without Knot, or fails under ACMEHUB_TEST_REQUIRE_ALL=1).
func startKnot(t *testing.T) *knot {
	t.Helper()
	k := acmetest.StartKnot(t, knotZone)
	return &knot{Knot: k, addr: k.Addr, secret: k.Secret}
}

// txtValues asks Knot for the TXT values at name, sorted.
func (k *knot) txtValues(t *testing.T, name string) []string {
	t.Helper()
	return k.TXT(t, name)
}

func randomSecret(t *testing.T) string {
	t.Helper()
	return acmetest.RandomTSIGSecret(t)
}

// fields are the credential fields of a driver for k; extra are more
// name, value pairs (a later one wins).
func (k *knot) fields(extra ...string) map[string]string {
	f := map[string]string{
		"DNSUPDATE_NAMESERVER":     k.Addr,
		"DNSUPDATE_TSIG_KEY":       k.KeyName,
		"DNSUPDATE_TSIG_SECRET":    k.Secret,
		"DNSUPDATE_TSIG_ALGORITHM": k.Algorithm,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	return f
}
