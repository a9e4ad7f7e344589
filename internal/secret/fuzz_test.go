package secret

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
)

func FuzzParseToken(f *testing.F) {
	tok, err := NewToken()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok.String(), "", ".", "a.b", tok.ClientID + ".", tok.String() + "\n", tok.ClientID + ":" + tok.Secret} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseToken(s)
		if err != nil {
			return
		}
		if !got.Valid() || got.String() != s {
			t.Fatalf("ParseToken(%q) accepted %q, which does not round-trip", s, got)
		}
	})
}

func FuzzCredentials(f *testing.F) {
	tok, err := NewToken()
	if err != nil {
		f.Fatal(err)
	}
	up := []byte(tok.ClientID + ":" + tok.Secret)
	f.Add("", "", "Bearer "+tok.String())
	f.Add(tok.ClientID, tok.Secret, "")
	f.Add("", "", "Basic "+base64.RawURLEncoding.EncodeToString(up))
	f.Add("", "", "Basic "+base64.StdEncoding.EncodeToString(up))
	f.Add("", "", "basic ===")
	f.Fuzz(func(t *testing.T, id, sec, auth string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if id != "" {
			r.Header.Set(HeaderClientID, id)
		}
		if sec != "" {
			r.Header.Set(HeaderClientSecret, sec)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		got, err := ExtractCredentials(r)
		if err == nil && !got.Valid() {
			t.Fatalf("accepted malformed token %#v", got)
		}
		_, _, _ = BasicAuth(r)
		_, _, _ = ParseBasicAuth(auth)
	})
}

func FuzzOpen(f *testing.F) {
	kr := newTestKeyring(f, "k1")
	blob, err := kr.Seal([]byte("pt"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob, []byte("ad"))
	f.Add([]byte{1, 2, 'k', '1'}, []byte("ad"))
	f.Fuzz(func(t *testing.T, b, ad []byte) {
		pt, err := kr.Open(b, ad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		// Only the genuine blob opens.
		if !bytes.Equal(b, blob) || string(ad) != "ad" || string(pt) != "pt" {
			t.Fatalf("forged blob opened: %x", b)
		}
	})
}
