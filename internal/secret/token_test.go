package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewTokenShape(t *testing.T) {
	t.Parallel()
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.ClientID, ClientIDPrefix) || !strings.HasPrefix(tok.Secret, SecretPrefix) {
		t.Fatalf("missing prefixes: %q", tok.ClientID)
	}
	if !ValidClientID(tok.ClientID) || !ValidSecret(tok.Secret) || !tok.Valid() {
		t.Fatal("NewToken made a token its own validators reject")
	}
	for _, part := range []string{tok.ClientID, tok.Secret} {
		if strings.ContainsAny(part, ".: \t\r\n") {
			t.Fatal("token part contains '.', ':' or whitespace")
		}
	}
	if got := strings.Count(tok.String(), "."); got != 1 {
		t.Fatalf("String has %d dots, want 1", got)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok.Secret, SecretPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)*8 < 256 {
		t.Fatalf("secret has %d bits, want >= 256", len(raw)*8)
	}
	id, err := clientIDEncoding.DecodeString(strings.TrimPrefix(tok.ClientID, ClientIDPrefix))
	if err != nil || len(id) != clientIDBytes {
		t.Fatalf("client id decodes to %d bytes (%v)", len(id), err)
	}
}

// TestNewTokenEntropy checks that tokens are distinct and that every bit
// of the secret and client id is set about half the time: a weak or
// constant source would fail one of these.
func TestNewTokenEntropy(t *testing.T) {
	t.Parallel()
	const n = 2000
	seen := make(map[string]bool, 2*n)
	secOnes := make([]int, secretBytes*8)
	idOnes := make([]int, clientIDBytes*8)
	for range n {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok.ClientID] || seen[tok.Secret] {
			t.Fatal("repeated client id or secret")
		}
		seen[tok.ClientID], seen[tok.Secret] = true, true
		sec, _ := base64.RawURLEncoding.DecodeString(tok.Secret[len(SecretPrefix):])
		id, _ := clientIDEncoding.DecodeString(tok.ClientID[len(ClientIDPrefix):])
		countBits(secOnes, sec)
		countBits(idOnes, id)
	}
	// n/2 ± 8 standard deviations (sqrt(n)/2 ~ 22).
	for name, ones := range map[string][]int{"secret": secOnes, "client id": idOnes} {
		for i, c := range ones {
			if c < n/2-180 || c > n/2+180 {
				t.Errorf("%s bit %d set %d times in %d tokens", name, i, c, n)
			}
		}
	}
}

func countBits(ones []int, b []byte) {
	for i, v := range b {
		for j := range 8 {
			ones[i*8+j] += int(v>>j) & 1
		}
	}
}

func TestParseTokenRoundTrip(t *testing.T) {
	t.Parallel()
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseToken(tok.String())
		if err != nil {
			t.Fatalf("ParseToken(String()): %v", err)
		}
		if got != tok {
			t.Fatal("round trip changed the token")
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	t.Parallel()
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	id, sec := tok.ClientID, tok.Secret
	secBody := sec[len(SecretPrefix):]
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"no dot", id + sec},
		{"only client id", id},
		{"only secret", sec},
		{"empty client id", "." + sec},
		{"empty secret", id + "."},
		{"two dots", id + "." + sec + ".x"},
		{"swapped", sec + "." + id},
		{"colon separator", id + ":" + sec},
		{"upper-case client id", strings.ToUpper(id) + "." + sec},
		{"wrong client id prefix", "xxx_" + id[4:] + "." + sec},
		{"wrong secret prefix", id + ".xxx_" + secBody},
		{"short client id", id[:len(id)-1] + "." + sec},
		{"long client id", id + "a." + sec},
		{"short secret", id + "." + sec[:len(sec)-1]},
		{"long secret", id + "." + sec + "A"},
		{"client id bad char", id[:len(id)-1] + "1." + sec},
		{"secret std alphabet", id + "." + SecretPrefix + strings.Repeat("+", 43)},
		{"secret padded", id + "." + sec[:len(sec)-1] + "="},
		{"secret newline", id + "." + sec[:20] + "\n" + sec[21:]},
		{"secret non-canonical", id + "." + SecretPrefix + strings.Repeat("A", 42) + "B"},
		{"leading space", " " + id + "." + sec},
		{"trailing newline", id + "." + sec + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseToken(tt.in)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("err = %v, want ErrMalformedToken", err)
			}
			if strings.Contains(err.Error(), secBody) {
				t.Fatal("error contains the secret")
			}
		})
	}
}

func TestTokenNotLogged(t *testing.T) {
	t.Parallel()
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", tok)
	if strings.Contains(buf.String(), tok.Secret) {
		t.Fatalf("slog output contains the secret: %s", buf.String())
	}
	if !strings.Contains(buf.String(), tok.ClientID) {
		t.Fatalf("slog output lacks the client id: %s", buf.String())
	}
	if s := fmt.Sprintf("%#v", tok); strings.Contains(s, tok.Secret) {
		t.Fatalf("%%#v contains the secret: %s", s)
	}
}
