package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalid is matched (with errors.Is) by every error this package returns
// for malformed input, so callers can map all of them to one client error.
var ErrInvalid = errors.New("invalid domain name or rule")

// inputError names the input and the operation; Unwrap gives the reason,
// which may wrap an idna error.
type inputError struct {
	op    string
	input string
	err   error
}

func (e *inputError) Error() string        { return fmt.Sprintf("%s %q: %v", e.op, shorten(e.input), e.err) }
func (e *inputError) Unwrap() error        { return e.err }
func (e *inputError) Is(target error) bool { return target == ErrInvalid }

// shorten cuts long input for error messages, which quote it.
func shorten(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

const (
	// maxInput bounds the bytes given to idna: no valid name comes near
	// it, as every label is at most 63 bytes once encoded.
	maxInput = 1024
	maxName  = 253 // bytes in a name without its trailing dot (RFC 1035 limit of 255 on the wire)
	maxLabel = 63

	challengePrefix = "_acme-challenge."
	// maxBase keeps _acme-challenge.<base> itself a valid name: a longer
	// base could never hold a DNS-01 record.
	maxBase = maxName - len(challengePrefix)
)

// profile is idna.Lookup spelt out, so a change of its defaults upstream
// cannot change our names: UTS #46 lookup mapping (case folding, width,
// NFC, ignorable code points dropped), non-transitional, with full label
// validation: STD3 ASCII rules (letters, digits and hyphen only), hyphen
// and joiner checks, and the Bidi rule, which MapForLookup alone does not
// add. An xn-- label is decoded, validated and re-encoded, so a Unicode
// name and its punycode spelling normalise to the same string and invalid
// punycode (xn--zz) fails. Lengths are checked by checkASCII afterwards,
// for clearer messages.
var profile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
)

// ChallengeName returns the name of the TXT record that validates base and
// *.base: _acme-challenge.<base>, without a trailing dot. base must be the
// result of NormalizeIdentifier or BaseFromChallengeName.
func ChallengeName(base string) string {
	return challengePrefix + base
}

// NormalizeIdentifier normalises a DNS identifier as an ACME client sends it,
// example.org or *.example.org, and returns its base name (example.org) and
// whether it was a wildcard. The base is lower-case A-labels without a
// trailing dot. Rules are matched on the base: one TXT record at
// ChallengeName(base) validates both base and *.base.
//
// IP addresses, the catch-all "*" and names with underscores (such as
// _acme-challenge.example.org; see BaseFromChallengeName) are refused, as is
// a base too long for its challenge name to fit in 253 bytes.
func NormalizeIdentifier(s string) (base string, wildcard bool, err error) {
	name := s
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		name, wildcard = rest, true
	}
	base, err = normalizeBase(name)
	if err != nil {
		return "", false, &inputError{op: "normalize identifier", input: s, err: err}
	}
	return base, wildcard, nil
}

// BaseFromChallengeName returns the base name of a challenge record name,
// _acme-challenge.<base> (any case, optional trailing dot), as some client
// protocols (RFC 2136, httpreq) give the record name rather than the
// identifier.
func BaseFromChallengeName(name string) (string, error) {
	rest, ok := cutPrefixFold(name, challengePrefix)
	if !ok {
		return "", &inputError{op: "parse challenge name", input: name,
			err: fmt.Errorf("does not start with %q", challengePrefix)}
	}
	base, err := normalizeBase(rest)
	if err != nil {
		return "", &inputError{op: "parse challenge name", input: name, err: err}
	}
	return base, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// normalizeBase normalises a base name: a name without wildcard whose
// challenge name fits.
func normalizeBase(s string) (string, error) {
	if strings.Contains(s, "*") {
		return "", errors.New(`"*" is allowed only as a whole leftmost label, as in "*.example.org"`)
	}
	n, err := normalizeName(s)
	if err != nil {
		return "", err
	}
	if len(n) > maxBase {
		return "", fmt.Errorf("name is %d bytes; at most %d leave room for %q", len(n), maxBase, challengePrefix)
	}
	return n, nil
}

// canonical returns the normalised form of a base name for matching, and
// false if it is not a valid name. Most names reaching Match and Choose are
// already canonical, so the idna pass is skipped for them.
func canonical(s string) (string, bool) {
	if isCanonical(s) {
		return s, true
	}
	n, err := normalizeName(s)
	return n, err == nil
}

// isCanonical reports whether s is already normalised and needs no idna
// pass: lower-case LDH labels of valid length, no hyphen at either end,
// last label not all digits, and no "--" in positions 3-4 (xn-- labels go
// through idna for validation). It may say false for a normalised name,
// never true for one that normalizeName would change or refuse.
func isCanonical(s string) bool {
	if len(s) == 0 || len(s) > maxName {
		return false
	}
	start, digits := 0, true
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			l := s[start:i]
			if len(l) == 0 || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' ||
				(len(l) >= 4 && l[2] == '-' && l[3] == '-') {
				return false
			}
			if i == len(s) && digits {
				return false
			}
			start, digits = i+1, true
			continue
		}
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', c == '-':
			digits = false
		case '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}

// unicodeDots are the label separators UTS #46 maps to '.', so a trailing
// one is ignored like a trailing '.'.
var unicodeDots = []string{".", "\u3002", "\uff0e", "\uff61"}

// normalizeName normalises a domain name (no wildcard) to lower-case
// A-labels without a trailing dot. Underscores are refused: every name
// here is a domain a certificate can be issued for, never a record name
// like _acme-challenge.
func normalizeName(s string) (string, error) {
	for _, d := range unicodeDots {
		if rest, ok := strings.CutSuffix(s, d); ok {
			s = rest
			break
		}
	}
	if s == "" {
		return "", errors.New("empty name")
	}
	if len(s) > maxInput {
		return "", fmt.Errorf("name is %d bytes; the limit is %d", len(s), maxName)
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return "", fmt.Errorf("%s is an IP address; DNS-01 cannot validate IP identifiers", a)
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			ascii = false
		case c == '_':
			return "", errors.New("invalid character '_': underscores are not allowed in domain names")
		case !isLDH(c) && c != '.':
			return "", fmt.Errorf("invalid character %q", c)
		}
	}
	if ascii {
		s = strings.ToLower(s)
		if err := checkASCII(s); err != nil {
			return "", err
		}
		if isCanonical(s) {
			return s, nil
		}
		// Left: xn-- labels, which only idna can validate.
	}
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8")
	}
	a, err := profile.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("not a valid internationalised domain name: %w", err)
	}
	if err := checkASCII(a); err != nil {
		return "", err
	}
	// The result must be its own normal form, or matching it later
	// would not be stable; refuse the rare input where idna is not.
	if again, err := profile.ToASCII(a); err != nil || again != a {
		return "", fmt.Errorf("normalises to %q, which is not a valid name", a)
	}
	return a, nil
}

func isLDH(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// checkASCII checks the shape of a lower-case ASCII name: lengths, LDH
// characters, hyphens (no "--" in positions 3-4 but in xn--, as Let's
// Encrypt requires), and a last label that is not all digits (no
// top-level domain is, and it keeps forms like 1.2.3 or 0x7f.1 that some
// resolvers read as IPv4 addresses out).
func checkASCII(s string) error {
	if len(s) > maxName {
		return fmt.Errorf("name is %d bytes; the limit is %d", len(s), maxName)
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return errors.New("empty label")
		case len(l) > maxLabel:
			return fmt.Errorf("label %q is %d bytes; the limit is %d", l, len(l), maxLabel)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("label %q begins or ends with a hyphen", l)
		case len(l) >= 4 && l[2:4] == "--" && !strings.HasPrefix(l, "xn--"):
			return fmt.Errorf(`label %q has "--" in positions 3-4, which is reserved for xn-- labels`, l)
		}
		for i := 0; i < len(l); i++ {
			if !isLDH(l[i]) || 'A' <= l[i] && l[i] <= 'Z' {
				return fmt.Errorf("invalid character %q in label %q", l[i], l)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("last label %q is all digits; IP addresses cannot be validated with DNS-01", last)
	}
	return nil
}
