package rfc2136

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
)

func newDriver(t *testing.T, fields map[string]string) upstream.Driver {
	t.Helper()
	d, err := New(fields, upstream.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func wantValues(t *testing.T, k *knot, name string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := k.txtValues(t, name); !slices.Equal(got, want) {
		t.Fatalf("Knot answers %s TXT %q, want %q", name, got, want)
	}
}

// TestKnot runs the driver against a real Knot DNS with a TSIG key.
func TestKnot(t *testing.T) {
	k := startKnot(t)
	ctx := t.Context()
	const name = "_acme-challenge.upstream.test."
	a, b := strings.Repeat("a", 43), strings.Repeat("b", 43)

	// The zone found by SOA queries (no DNSUPDATE_ZONES).
	d := newDriver(t, k.fields())

	t.Run("add two values, both answered", func(t *testing.T) {
		for _, v := range []string{a, b} {
			if err := d.Add(ctx, name, v, 60); err != nil {
				t.Fatal(err)
			}
		}
		wantValues(t, k, name, a, b)
		// Adding a value that is there succeeds and changes nothing.
		if err := d.Add(ctx, name, a, 60); err != nil {
			t.Fatal(err)
		}
		wantValues(t, k, name, a, b)
	})

	t.Run("wrong secret: clear error, nothing changes", func(t *testing.T) {
		wrong := randomSecret(t)
		bad := newDriver(t, k.fields("DNSUPDATE_TSIG_SECRET", wrong))
		err := bad.Add(ctx, name, "c", 60)
		if err == nil || !strings.Contains(err.Error(), "the TSIG key or secret is wrong") {
			t.Fatalf("Add with a wrong secret: %v, want the TSIG key or secret is wrong", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), k.secret) {
			t.Fatalf("error shows a secret: %v", err)
		}
		if err := bad.Remove(ctx, name, a); err == nil || !strings.Contains(err.Error(), "the TSIG key or secret is wrong") {
			t.Fatalf("Remove with a wrong secret: %v", err)
		}
		wantValues(t, k, name, a, b)
		t.Logf("error: %v", err)
	})

	t.Run("unknown key name: clear error", func(t *testing.T) {
		bad := newDriver(t, k.fields("DNSUPDATE_TSIG_KEY", "other-key"))
		if err := bad.Add(ctx, name, "c", 60); err == nil || !strings.Contains(err.Error(), "the TSIG key or secret is wrong") {
			t.Fatalf("Add with an unknown key: %v", err)
		}
		wantValues(t, k, name, a, b)
	})

	t.Run("unsigned update is refused clearly", func(t *testing.T) {
		bad := newDriver(t, map[string]string{"DNSUPDATE_NAMESERVER": k.addr})
		err := bad.Add(ctx, name, "c", 60)
		if err == nil || !strings.Contains(err.Error(), "NOTAUTH") && !strings.Contains(err.Error(), "REFUSED") {
			t.Fatalf("unsigned Add: %v, want NOTAUTH or REFUSED", err)
		}
		t.Logf("error: %v", err)
		wantValues(t, k, name, a, b)
	})

	t.Run("remove one, the other stays", func(t *testing.T) {
		if err := d.Remove(ctx, name, a); err != nil {
			t.Fatal(err)
		}
		wantValues(t, k, name, b)
	})

	t.Run("remove an absent value", func(t *testing.T) {
		if err := d.Remove(ctx, name, a); err != nil {
			t.Fatalf("Remove of an absent value: %v", err)
		}
		if err := d.Remove(ctx, "_acme-challenge.nothing.upstream.test.", a); err != nil {
			t.Fatalf("Remove at an empty name: %v", err)
		}
		wantValues(t, k, name, b)
	})

	t.Run("concurrent adds all land", func(t *testing.T) {
		const many = "_acme-challenge.many.upstream.test."
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("value-%02d-%s", i, strings.Repeat("x", 30)))
		}
		errs := make(chan error, len(want))
		var wg sync.WaitGroup
		for _, v := range want {
			wg.Go(func() { errs <- d.Add(ctx, many, v, 60) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		wantValues(t, k, many, want...)
	})

	t.Run("zone from DNSUPDATE_ZONES", func(t *testing.T) {
		// The longest containing entry wins; entries not containing the
		// name are ignored.
		z := newDriver(t, k.fields("DNSUPDATE_ZONES", "test, upstream.test ,example.org"))
		const n = "_acme-challenge.zones.upstream.test."
		if err := z.Add(ctx, n, a, 60); err != nil {
			t.Fatal(err)
		}
		wantValues(t, k, n, a)
		if err := z.Remove(ctx, n, a); err != nil {
			t.Fatal(err)
		}
		wantValues(t, k, n)
		// A wrong zone reaches Knot, which does not serve it.
		w := newDriver(t, k.fields("DNSUPDATE_ZONES", "test"))
		err := w.Add(ctx, n, a, 60)
		if err == nil || !strings.Contains(err.Error(), "not authoritative for the zone") {
			t.Fatalf("Add with DNSUPDATE_ZONES=test: %v, want not authoritative", err)
		}
		t.Logf("error: %v", err)
		wantValues(t, k, n)
	})

	t.Run("name outside every zone", func(t *testing.T) {
		err := d.Add(ctx, "_acme-challenge.example.org.", a, 60)
		if err == nil || !strings.Contains(err.Error(), "serves no zone containing") {
			t.Fatalf("Add outside the zone: %v", err)
		}
	})

	t.Run("long and odd values round-trip", func(t *testing.T) {
		const n = "_acme-challenge.long.upstream.test."
		long := strings.Repeat("0123456789", 40) // 400 bytes: two strings
		if err := d.Add(ctx, n, long, 60); err != nil {
			t.Fatal(err)
		}
		wantValues(t, k, n, long)
		if err := d.Remove(ctx, n, long); err != nil {
			t.Fatal(err)
		}
		wantValues(t, k, n)
	})
}

// TestNew checks field validation: each bad credential names its field
// and never its value.
func TestNew(t *testing.T) {
	const secret = "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA=" // "secret-value-1234567890"
	ok := func(extra ...string) map[string]string {
		f := map[string]string{
			"DNSUPDATE_NAMESERVER":  "ns.example.org",
			"DNSUPDATE_TSIG_KEY":    "acme-key",
			"DNSUPDATE_TSIG_SECRET": secret,
		}
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == "-" {
				delete(f, extra[i])
			} else {
				f[extra[i]] = extra[i+1]
			}
		}
		return f
	}
	tests := []struct {
		name   string
		fields map[string]string
		field  string // "" means valid
		server string // the resolved nameserver, when valid
		alg    string
	}{
		{"defaults", ok(), "", "ns.example.org:53", "hmac-sha256."},
		{"host:port", ok("DNSUPDATE_NAMESERVER", "192.0.2.1:5353"), "", "192.0.2.1:5353", "hmac-sha256."},
		{"bare IPv6", ok("DNSUPDATE_NAMESERVER", "2001:db8::1"), "", "[2001:db8::1]:53", "hmac-sha256."},
		{"bracketed IPv6 with port", ok("DNSUPDATE_NAMESERVER", "[2001:db8::1]:5300"), "", "[2001:db8::1]:5300", "hmac-sha256."},
		{"no TSIG", map[string]string{"DNSUPDATE_NAMESERVER": "ns.example.org"}, "", "ns.example.org:53", "hmac-sha256."},
		{"md5 with dot", ok("DNSUPDATE_TSIG_ALGORITHM", "hmac-md5."), "", "ns.example.org:53", "hmac-md5.sig-alg.reg.int."},
		{"sha1", ok("DNSUPDATE_TSIG_ALGORITHM", "hmac-sha1"), "", "ns.example.org:53", "hmac-sha1."},
		{"sha224", ok("DNSUPDATE_TSIG_ALGORITHM", "HMAC-SHA224."), "", "ns.example.org:53", "hmac-sha224."},
		{"sha384", ok("DNSUPDATE_TSIG_ALGORITHM", "hmac-sha384"), "", "ns.example.org:53", "hmac-sha384."},
		{"sha512", ok("DNSUPDATE_TSIG_ALGORITHM", "hmac-sha512."), "", "ns.example.org:53", "hmac-sha512."},
		{"zones", ok("DNSUPDATE_ZONES", "example.org, example.net."), "", "ns.example.org:53", "hmac-sha256."},
		{"nameserver missing", ok("DNSUPDATE_NAMESERVER", "-"), "DNSUPDATE_NAMESERVER", "", ""},
		{"nameserver bad port", ok("DNSUPDATE_NAMESERVER", "ns.example.org:99999"), "DNSUPDATE_NAMESERVER", "", ""},
		{"nameserver port not a number", ok("DNSUPDATE_NAMESERVER", "ns.example.org:dns"), "DNSUPDATE_NAMESERVER", "", ""},
		{"nameserver URL", ok("DNSUPDATE_NAMESERVER", "https://ns.example.org/"), "DNSUPDATE_NAMESERVER", "", ""},
		{"key without secret", ok("DNSUPDATE_TSIG_SECRET", "-"), "DNSUPDATE_TSIG_SECRET", "", ""},
		{"secret without key", ok("DNSUPDATE_TSIG_KEY", "-"), "DNSUPDATE_TSIG_KEY", "", ""},
		{"secret not base64", ok("DNSUPDATE_TSIG_SECRET", "not base64 secret-value!"), "DNSUPDATE_TSIG_SECRET", "", ""},
		{"bad key name", ok("DNSUPDATE_TSIG_KEY", "a..b"), "DNSUPDATE_TSIG_KEY", "", ""},
		{"unknown algorithm", ok("DNSUPDATE_TSIG_ALGORITHM", "gss-tsig."), "DNSUPDATE_TSIG_ALGORITHM", "", ""},
		{"bad zone", ok("DNSUPDATE_ZONES", "example.org,a..b"), "DNSUPDATE_ZONES", "", ""},
		{"key file", ok("DNSUPDATE_TSIG_FILE", "/etc/key.conf"), "DNSUPDATE_TSIG_FILE", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.fields, upstream.Options{})
			if tt.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				dd := d.(*Driver)
				if dd.server != tt.server || dd.algorithm != tt.alg || dd.timeout != 30*time.Second {
					t.Fatalf("server %q alg %q timeout %v, want %q %q 30s", dd.server, dd.algorithm, dd.timeout, tt.server, tt.alg)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if !errors.Is(err, upstream.ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q: want ErrConfig naming %s", err, tt.field)
			}
			for _, v := range tt.fields {
				if len(v) > 8 && strings.Contains(err.Error(), v) {
					t.Fatalf("error %q shows the value %q", err, v)
				}
			}
		})
	}
}

func TestTXTStrings(t *testing.T) {
	got := txtStrings(strings.Repeat("x", 300) + `\`)
	if len(got) != 2 || len(got[0]) != 255 || got[1] != strings.Repeat("x", 45)+`\\` {
		t.Fatalf("txtStrings: %q", got)
	}
}
