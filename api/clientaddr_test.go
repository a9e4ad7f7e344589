package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies := ProxyTrust{Header: "X-Forwarded-For", Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		name   string
		trust  ProxyTrust
		remote string
		xff    []string
		want   string
	}{
		{"no trust: header ignored", ProxyTrust{}, "192.0.2.1:1234", []string{"198.51.100.7"}, "192.0.2.1"},
		{"untrusted peer: header ignored", proxies, "192.0.2.1:1234", []string{"198.51.100.7"}, "192.0.2.1"},
		{"trusted proxy", proxies, "10.1.1.1:1234", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-forged left part ignored", proxies, "10.1.1.1:1234", []string{"203.0.113.9, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", proxies, "10.1.1.1:1234", []string{"198.51.100.7, 10.2.2.2", "10.3.3.3"}, "198.51.100.7"},
		{"all hops trusted", proxies, "10.1.1.1:1234", []string{"10.2.2.2"}, "10.1.1.1"},
		{"malformed hop", proxies, "10.1.1.1:1234", []string{"198.51.100.7, garbage"}, "10.1.1.1"},
		{"no header", proxies, "10.1.1.1:1234", nil, "10.1.1.1"},
		{"ipv6 peer", ProxyTrust{}, "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"mapped ipv4 peer", ProxyTrust{}, "[::ffff:192.0.2.1]:443", nil, "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := tc.trust.clientAddr(r); got.String() != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
