package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// tsigToken is a valid TSIG key row owned by principalID.
func tsigToken(name string, principalID int64) Token {
	return Token{
		ClientID: name, PrincipalID: principalID, Kind: TokenKindTSIG, TSIGAlgorithm: "hmac-sha256.",
		SealedSecret: []byte("sealed-blob"), Title: "certbot", Roles: []string{RoleChallengeConsumer},
		AllowCIDRs: []string{"192.0.2.0/24"},
	}
}

func TestTSIGKeyRoundTrip(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	p := mustPrincipal(t, db, "alice")
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	in := tsigToken("acmehub-3kq7xw2mfa.", p.ID)
	in.ExpiresAt = exp
	before := gens(t, db)
	if err := db.CreateToken(ctx, in); err != nil {
		t.Fatal(err)
	}
	wantBumped(t, db, before, GenTokens)
	got, err := db.TokenByClientID(ctx, in.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Name, want.CreatedAt, want.ExpiresAt, want.SecretHash = "certbot", got.CreatedAt, exp.UTC(), got.SecretHash
	if len(got.SecretHash) != 0 || got.CreatedAt.IsZero() || !reflect.DeepEqual(got, want) {
		t.Fatalf("tsig key\n%+v\nwant\n%+v", got, want)
	}

	// An API token next to it reads back as written: kind "", no sealed secret.
	if err := db.CreateToken(ctx, Token{ClientID: "ahc_x", PrincipalID: p.ID, SecretHash: []byte{1}, Kind: TokenKindAPI}); err != nil {
		t.Fatal(err)
	}
	api, err := db.TokenByClientID(ctx, "ahc_x")
	if err != nil || api.Kind != "" || api.SealedSecret != nil || api.TSIGAlgorithm != "" {
		t.Fatalf("api token %+v %v", api, err)
	}

	// Listing never reads sealed secrets, but says which kind each is.
	list, err := db.ListTokens(ctx, p.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
	for _, tk := range list {
		if tk.SealedSecret != nil || tk.SecretHash != nil {
			t.Errorf("listing carries secret material: %+v", tk)
		}
	}
	if list[0].Kind != TokenKindTSIG || list[0].TSIGAlgorithm != "hmac-sha256." || list[1].Kind != "" {
		t.Fatalf("kinds in list: %+v", list)
	}

	// Revocation and last use work as for tokens.
	if err := db.RevokeToken(ctx, in.ClientID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.TokenByClientID(ctx, in.ClientID); err != nil || got.RevokedAt.IsZero() {
		t.Fatalf("revoked %+v %v", got, err)
	}
	// Deleting the principal deletes its keys.
	if err := db.DeletePrincipal(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenByClientID(ctx, in.ClientID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key of a deleted principal: %v", err)
	}
}

func TestTSIGKeyInvalid(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	p := mustPrincipal(t, db, "alice")
	long := strings.Repeat(strings.Repeat("a", 62)+".", 4) // 252 bytes
	for _, tc := range []struct {
		name string
		edit func(*Token)
	}{
		{"no final dot", func(k *Token) { k.ClientID = "key" }},
		{"upper case", func(k *Token) { k.ClientID = "Key." }},
		{"too long", func(k *Token) { k.ClientID = "abc" + long }},
		{"unknown algorithm", func(k *Token) { k.TSIGAlgorithm = "hmac-sha3." }},
		{"algorithm without the dot", func(k *Token) { k.TSIGAlgorithm = "hmac-sha256" }},
		{"no sealed secret", func(k *Token) { k.SealedSecret = nil }},
		{"a hash too", func(k *Token) { k.SecretHash = []byte{1} }},
		{"no principal", func(k *Token) { k.PrincipalID = 0; k.Role = RoleAdmin }},
		{"unknown kind", func(k *Token) { k.Kind = "ssh" }},
		{"api token with a sealed secret", func(k *Token) { k.Kind, k.SecretHash = "", []byte{1} }},
		{"api token id too long", func(k *Token) {
			k.Kind, k.SecretHash, k.SealedSecret, k.TSIGAlgorithm = "", []byte{1}, nil, ""
			k.ClientID = strings.Repeat("a", 129)
		}},
	} {
		k := tsigToken("k1.", p.ID)
		tc.edit(&k)
		if err := db.CreateToken(ctx, k); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	// The longest name fits: 253 bytes and the dot.
	if err := db.CreateToken(ctx, tsigToken("a"+long, p.ID)); err != nil {
		t.Fatalf("254-byte name: %v", err)
	}
	if err := db.CreateToken(ctx, tsigToken("a"+long, p.ID)); !errors.Is(err, ErrConflict) {
		t.Fatalf("same name twice: %v", err)
	}
}

// TestTSIGKeySchemaChecks: the table refuses what the Go checks refuse,
// for writers that bypass them.
func TestTSIGKeySchemaChecks(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	p := mustPrincipal(t, db, "alice")
	ins := func(clientID, hash, kind, alg, sealed string) error {
		_, err := db.w.Exec(fmt.Sprintf(`INSERT INTO api_tokens (client_id, principal_id, secret_hash, created_at, kind,
			tsig_algorithm, sealed_secret) VALUES (?, ?, %s, 1, ?, ?, %s)`, hash, sealed), clientID, p.ID, kind, alg)
		return err
	}
	for _, tc := range []struct {
		name                        string
		id, hash, kind, alg, sealed string
	}{
		{"tsig with a hash", "k.", "X'01'", "tsig", "hmac-sha256.", "X'02'"},
		{"tsig without a sealed secret", "k.", "X''", "tsig", "hmac-sha256.", "NULL"},
		{"tsig empty sealed secret", "k.", "X''", "tsig", "hmac-sha256.", "X''"},
		{"tsig unknown algorithm", "k.", "X''", "tsig", "hmac-sha3.", "X'02'"},
		{"tsig name without dot", "k", "X''", "tsig", "hmac-sha256.", "X'02'"},
		{"tsig upper-case name", "K.", "X''", "tsig", "hmac-sha256.", "X'02'"},
		{"api with a sealed secret", "a", "X'01'", "api", "", "X'02'"},
		{"api with an algorithm", "a", "X'01'", "api", "hmac-sha256.", "NULL"},
		{"api id over 128 bytes", strings.Repeat("a", 129), "X'01'", "api", "", "NULL"},
		{"unknown kind", "a", "X'01'", "ssh", "", "NULL"},
	} {
		if err := ins(tc.id, tc.hash, tc.kind, tc.alg, tc.sealed); err == nil {
			t.Errorf("%s: the schema took it", tc.name)
		}
	}
	if err := ins("k.", "X''", "tsig", "hmac-md5.sig-alg.reg.int.", "X'02'"); err != nil {
		t.Fatalf("valid tsig row: %v", err)
	}
}

// TestMigration0007FromEveryVersion: a database at any earlier version
// keeps its tokens (as API tokens, secret hashes and all) and takes TSIG
// keys afterwards.
func TestMigration0007FromEveryVersion(t *testing.T) {
	t.Parallel()
	for from := 0; from < 7; from++ {
		t.Run(fmt.Sprintf("from_%04d", from), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "old.db")
			old := buildAt(t, path, from)
			var wantTokens int
			if from >= 1 {
				if err := old.QueryRow(`SELECT count(*) FROM api_tokens`).Scan(&wantTokens); err != nil {
					t.Fatal(err)
				}
			}
			db := openMigrated(t, old, path)
			ctx := t.Context()
			toks, err := db.ListTokens(ctx, 0)
			if err != nil || len(toks) != wantTokens {
				t.Fatalf("tokens %+v %v, want %d", toks, err, wantTokens)
			}
			for _, tk := range toks {
				got, err := db.TokenByClientID(ctx, tk.ClientID)
				if err != nil || got.Kind != "" || got.SealedSecret != nil || len(got.SecretHash) == 0 {
					t.Errorf("migrated token %+v %v", got, err)
				}
			}
			if from >= 2 { // testdata/seed/0002.sql
				seed, err := db.TokenByClientID(ctx, "seedapp")
				if err != nil || !bytes.Equal(seed.SecretHash, []byte{0x44, 0x55, 0x66, 0x77}) ||
					!reflect.DeepEqual(seed.AllowCIDRs, []string{"192.0.2.0/24", "2001:db8::/32"}) {
					t.Fatalf("seed token %+v %v", seed, err)
				}
			}
			p := mustPrincipal(t, db, "tsig-owner")
			if err := db.CreateToken(ctx, tsigToken("k."+strings.Repeat("b", 150)+".", p.ID)); err != nil {
				t.Fatal(err)
			}
			mustIntegrity(t, db)
		})
	}
}
