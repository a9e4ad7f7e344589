package rules

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeIdentifier(t *testing.T) {
	t.Parallel()
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name     string
		in       string
		base     string
		wildcard bool
		err      string // substring of the error; "" for success
	}{
		{name: "plain", in: "example.org", base: "example.org"},
		{name: "wildcard", in: "*.example.org", base: "example.org", wildcard: true},
		{name: "wildcard base one level down", in: "*.www.example.org", base: "www.example.org", wildcard: true},
		{name: "case", in: "WWW.Example.ORG", base: "www.example.org"},
		{name: "trailing dot", in: "example.org.", base: "example.org"},
		{name: "wildcard trailing dot", in: "*.example.org.", base: "example.org", wildcard: true},
		{name: "ideographic trailing dot", in: "example.org\u3002", base: "example.org"},
		{name: "unicode", in: "bücher.example", base: "xn--bcher-kva.example"},
		{name: "unicode upper", in: "BÜCHER.example", base: "xn--bcher-kva.example"},
		{name: "punycode", in: "xn--bcher-kva.example", base: "xn--bcher-kva.example"},
		{name: "punycode upper", in: "XN--BCHER-KVA.example", base: "xn--bcher-kva.example"},
		{name: "unicode wildcard", in: "*.bücher.example", base: "xn--bcher-kva.example", wildcard: true},
		{name: "non-transitional sharp s", in: "straße.example", base: "xn--strae-oqa.example"},
		{name: "full-width", in: "ｅｘａｍｐｌｅ.org", base: "example.org"},
		{name: "digits in labels", in: "1-2.3com.example.org", base: "1-2.3com.example.org"},
		{name: "single label", in: "localhost", base: "localhost"},
		{name: "63-byte label", in: long63 + ".example.org", base: long63 + ".example.org"},

		{name: "empty", in: "", err: "empty name"},
		{name: "only dot", in: ".", err: "empty name"},
		{name: "two trailing dots", in: "example.org..", err: "empty label"},
		{name: "leading dot", in: ".example.org", err: "empty label"},
		{name: "inner empty label", in: "a..example.org", err: "empty label"},
		{name: "catch-all", in: "*", err: `"*"`},
		{name: "bare wildcard", in: "*.", err: "empty name"},
		{name: "double wildcard", in: "*.*.example.org", err: `"*"`},
		{name: "inner wildcard", in: "a.*.example.org", err: `"*"`},
		{name: "partial wildcard", in: "*example.org", err: `"*"`},
		{name: "underscore", in: "a_b.example.org", err: "underscore"},
		{name: "challenge name", in: "_acme-challenge.example.org", err: "underscore"},
		{name: "space", in: "exa mple.org", err: "invalid character"},
		{name: "surrounding space", in: " example.org", err: "invalid character"},
		{name: "ipv4", in: "192.0.2.1", err: "IP address"},
		{name: "ipv6", in: "2001:db8::1", err: "IP address"},
		{name: "bracketed ipv6", in: "[2001:db8::1]", err: "IP address"},
		{name: "numeric last label", in: "192.0.2", err: "all digits"},
		{name: "hex-ish ipv4", in: "0x7f.1", err: "all digits"},
		{name: "label too long", in: long63 + "a.example.org", err: "the limit is 63"},
		{name: "leading hyphen", in: "-a.example.org", err: "hyphen"},
		{name: "trailing hyphen", in: "a-.example.org", err: "hyphen"},
		{name: "invalid punycode", in: "xn--zz.example", err: "internationalised"},
		{name: "punycode of ascii", in: "xn--abc-.example", err: "hyphen"},
		{name: "punycode not nfc", in: "xn--a-ccb.example", err: "internationalised"},
		{name: "reserved hyphens", in: "ab--cd.example.org", err: "reserved for xn--"},
		{name: "unicode not nfc", in: "a\u0308.example", base: "xn--4ca.example"},
		{name: "soft hyphen ignored", in: "exa\u00admple.org", base: "example.org"},
		{name: "huge", in: strings.Repeat("ü", 1000), err: "the limit is 253"},
		{name: "invalid utf-8", in: "0\xa7.example", err: "UTF-8"},
		{name: "disallowed rune", in: "a\u2028b.example", err: "internationalised"},
		{name: "bidi violation", in: "\u05d0a.example", err: "internationalised"},
		{name: "base too long for challenge name", in: strings.Repeat(long63+".", 3) + strings.Repeat("a", 49), err: "room for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, wc, err := NormalizeIdentifier(tt.in)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("NormalizeIdentifier(%q) = %q, %v; want error containing %q", tt.in, base, wc, tt.err)
				}
				if !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("NormalizeIdentifier(%q) error = %v; want one containing %q and matching ErrInvalid", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || base != tt.base || wc != tt.wildcard {
				t.Fatalf("NormalizeIdentifier(%q) = %q, %v, %v; want %q, %v", tt.in, base, wc, err, tt.base, tt.wildcard)
			}
			// Normalising a base again is a no-op.
			if b2, wc2, err := NormalizeIdentifier(base); err != nil || b2 != base || wc2 {
				t.Fatalf("NormalizeIdentifier(%q) = %q, %v, %v; want it unchanged", base, b2, wc2, err)
			}
		})
	}
}

func TestIdentifierErrorNamesInput(t *testing.T) {
	t.Parallel()
	_, _, err := NormalizeIdentifier("a_b.example.org")
	want := `normalize identifier "a_b.example.org": invalid character '_': underscores are not allowed in domain names`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v; want %s", err, want)
	}
}

func TestLongInputShortenedInError(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.Repeat("ü", 50) + "_")
	want := `parse rule pattern "` + strings.Repeat("ü", 40) + `...": invalid character '_': underscores are not allowed in domain names`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v; want %s", err, want)
	}
}

func TestChallengeName(t *testing.T) {
	t.Parallel()
	// The same TXT name serves example.org and *.example.org.
	for _, id := range []string{"www.example.org", "*.www.example.org"} {
		base, _, err := NormalizeIdentifier(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := ChallengeName(base); got != "_acme-challenge.www.example.org" {
			t.Errorf("ChallengeName(base of %q) = %q", id, got)
		}
	}
}

func TestBaseFromChallengeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		base string
		err  string
	}{
		{name: "plain", in: "_acme-challenge.example.org", base: "example.org"},
		{name: "fqdn upper", in: "_ACME-Challenge.WWW.Example.org.", base: "www.example.org"},
		{name: "unicode", in: "_acme-challenge.bücher.example", base: "xn--bcher-kva.example"},
		{name: "no prefix", in: "example.org", err: "does not start with"},
		{name: "prefix only", in: "_acme-challenge.", err: "empty name"},
		{name: "wildcard", in: "_acme-challenge.*.example.org", err: `"*"`},
		{name: "nested prefix", in: "_acme-challenge._acme-challenge.example.org", err: "underscore"},
		{name: "ip", in: "_acme-challenge.192.0.2.1", err: "IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, err := BaseFromChallengeName(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("BaseFromChallengeName(%q) = %q, %v; want ErrInvalid containing %q", tt.in, base, err, tt.err)
				}
				return
			}
			if err != nil || base != tt.base {
				t.Fatalf("BaseFromChallengeName(%q) = %q, %v; want %q", tt.in, base, err, tt.base)
			}
			if got, err := BaseFromChallengeName(ChallengeName(base)); err != nil || got != base {
				t.Fatalf("round trip of %q = %q, %v", base, got, err)
			}
		})
	}
}

// TestCanonicalFastPath checks that the shortcut taken for names that look
// normalised agrees with the full normalisation.
func TestCanonicalFastPath(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"example.org", "a", "a-b.c", "1.example", "0a", "a.1b", "xn--bcher-kva.example",
		"ab--cd.example", "a.b.c.d.e", strings.Repeat("a", 63) + ".org",
		"Example.org", "-a.org", "1.2", "a..b", "",
	} {
		fast := isCanonical(s)
		n, err := normalizeName(s)
		if fast && (err != nil || n != s) {
			t.Errorf("isCanonical(%q) but normalizeName = %q, %v", s, n, err)
		}
	}
}
