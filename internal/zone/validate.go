package zone

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// MaxValueLen is the longest TXT value accepted: one DNS character-string.
const MaxValueLen = 255

// Validation errors; callers match them with errors.Is.
var (
	ErrBadValue   = errors.New("invalid TXT value")
	ErrBadName    = errors.New("invalid name")
	ErrOutsideHub = errors.New("name is outside the hub zone")
)

// ValidateValue checks a TXT value: 1 to 255 bytes of printable ASCII
// (ACME values are base64url; anything else is refused rather than escaped).
func ValidateValue(v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty", ErrBadValue)
	}
	if len(v) > MaxValueLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadValue, len(v), MaxValueLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: byte %d is a control or non-ASCII character", ErrBadValue, i)
		}
	}
	return nil
}

// CanonicalOrigin returns the hub zone as a lower-case fqdn.
func CanonicalOrigin(origin string) (string, error) {
	o := strings.ToLower(dns.Fqdn(strings.TrimSpace(origin)))
	if o == "." {
		return "", fmt.Errorf("%w: the hub zone cannot be the root", ErrBadName)
	}
	if _, ok := dns.IsDomainName(o); !ok {
		return "", fmt.Errorf("%w: %q", ErrBadName, origin)
	}
	return o, nil
}

// InZoneName turns a name given by a user into a lower-case fqdn inside origin
// (a lower-case fqdn). A name without a trailing dot that does not already end
// in the zone is taken as relative to it ("abc" -> "abc.<origin>"); "@" is the
// apex. The apex itself holds no TXT values, so it is refused.
func InZoneName(origin, name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch {
	case n == "" || n == "@":
		return "", fmt.Errorf("%w: the zone apex holds no challenge values", ErrBadName)
	case strings.HasSuffix(n, "."):
	case n+"." == origin || strings.HasSuffix(n+".", "."+origin):
		n += "."
	default:
		n += "." + origin
	}
	if _, ok := dns.IsDomainName(n); !ok || strings.Contains(n, "..") || len(n) > 254 {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, label := range dns.SplitDomainName(n) {
		if len(label) > 63 {
			return "", fmt.Errorf("%w: label longer than 63 bytes in %q", ErrBadName, name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isLDHU(c) {
				return "", fmt.Errorf("%w: %q has a character other than letters, digits, '-' and '_'", ErrBadName, name)
			}
		}
	}
	if n == origin {
		return "", fmt.Errorf("%w: the zone apex holds no challenge values", ErrBadName)
	}
	if !dns.IsSubDomain(origin, n) {
		return "", fmt.Errorf("%w: %q is not below %s", ErrOutsideHub, name, origin)
	}
	return n, nil
}

// isLDHU reports whether c may appear in a hub zone label: a letter, digit,
// '-' or '_' (the underscore for _acme-challenge style names).
func isLDHU(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// Fqdn adds the trailing dot if missing.
func Fqdn(name string) string { return dns.Fqdn(name) }

// InZone reports whether the lower-case fqdn name is origin or below it.
func InZone(origin, name string) bool {
	return name == origin || strings.HasSuffix(name, "."+origin)
}
