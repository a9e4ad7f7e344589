package hub

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/dnscheck"
)

// TestChallengeIDSerial: an id carries the serial of its write when there
// is one; ids without it stay valid, and a mangled serial is refused.
func TestChallengeIDSerial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		serial int64
	}{
		{"with serial", 4294967301}, // past 2^32: the counter, not the SOA serial
		{"without serial", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name, value, serial, err := parseChallengeID(challengeID("abc.acme.test.", "v-1", tc.serial))
			if err != nil || name != "abc.acme.test." || value != "v-1" || serial != tc.serial {
				t.Fatalf("round trip: %q %q %d %v", name, value, serial, err)
			}
		})
	}
	if challengeID("a.acme.test.", "v", 7) == challengeID("a.acme.test.", "v", 0) {
		t.Error("the serial does not change the id")
	}
	for _, bad := range []string{"a.acme.test.\x00v\x00x", "a.acme.test.\x00v\x00-1", "a.acme.test.\x00v\x000", "a.acme.test.\x00v\x001\x002", "a.acme.test."} {
		if _, _, _, err := parseChallengeID(encodeRaw(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// TestLagging names every address that does not serve the value, and why.
func TestLagging(t *testing.T) {
	t.Parallel()
	p := Propagation{PropagationResult: dnscheck.PropagationResult{Servers: []dnscheck.ServerStatus{
		{Server: "ns1.acme.test.", Addr: "192.0.2.1:53", Serial: 9, Current: true, Serves: true},
		{Server: "ns2.acme.test.", Addr: "192.0.2.2:53", Serial: 8},
		{Server: "ns3.acme.test.", Addr: "192.0.2.3:53", Serial: 9, Current: true},
		{Server: "ns4.example.net.", Err: "no address"},
		{Server: "ns1.acme.test.", Addr: "[2001:db8::1]:53", Skipped: "no route"},
	}}}
	var got []string
	for _, l := range Lagging(p) {
		got = append(got, l.String())
	}
	want := []string{
		"ns2.acme.test. (192.0.2.2:53): serial 8, not current yet",
		"ns3.acme.test. (192.0.2.3:53): serial 9, value not answered",
		"ns4.example.net.: no address",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Lagging:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func encodeRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
