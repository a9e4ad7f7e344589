package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// TestACMEDNSRegisterWithinTokenNetworks: through a token limited to some
// networks, an account's allow-from list stays within them; the account
// ends with its owner's role, not with the token.
func TestACMEDNSRegisterWithinTokenNetworks(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{})
	tok := f.consumer(t, "lan", store.RoleChallengeConsumer, "*.example.org", store.Token{AllowCIDRs: []string{"127.0.0.0/8"}})

	a := f.register(t, "", `{}`, basic(tok))
	if !slices.Equal(a.AllowFrom, []string{"127.0.0.0/8"}) {
		t.Fatalf("default allow-from %v, want the token's", a.AllowFrom)
	}
	if b := f.register(t, "", `{"allowfrom":["127.0.0.1/32"]}`, basic(tok)); !slices.Equal(b.AllowFrom, []string{"127.0.0.1/32"}) {
		t.Fatalf("narrower allow-from %v", b.AllowFrom)
	}
	r := f.must(t, http.StatusBadRequest, "POST", "/register", `{"allowfrom":["10.0.0.0/8"]}`, basic(tok))
	if r.body["error"] != "invalid_allowfrom_cidr" || !strings.Contains(fmt.Sprint(r.body["detail"]), "10.0.0.0/8 is outside the token's allow-list (127.0.0.0/8)") {
		t.Fatalf("allow-from outside the token's: %s", r.raw)
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/acme-dns/accounts", `{"allowfrom":["0.0.0.0/0"]}`,
		header("Authorization", "Bearer "+tok.String()), "0.0.0.0/0", "allow-list")

	update := func() response {
		return f.do(t, "POST", "/update", `{"subdomain":"`+a.Subdomain+`","txt":"`+acmeValue(1)+`"}`, apiKey(a.Username, a.Password))
	}
	// Revoking the token does not end the account.
	f.must(t, http.StatusOK, "DELETE", "/api/v1/tokens/"+tok.ClientID, "", f.bearer)
	if r := update(); r.status != http.StatusOK {
		t.Fatalf("update after the token's revocation: %d %s", r.status, r.raw)
	}
	// Its owner losing the role does.
	p, err := f.db.PrincipalByName(t.Context(), "lan")
	if err != nil {
		t.Fatal(err)
	}
	roles, err := f.db.RoleAssignments(t.Context(), p.ID)
	if err != nil || len(roles) != 1 {
		t.Fatalf("roles %v %v", roles, err)
	}
	if err := f.db.RemoveRoleAssignment(t.Context(), roles[0].ID); err != nil {
		t.Fatal(err)
	}
	if r := update(); r.status != http.StatusUnauthorized || r.raw != adnsError("forbidden") {
		t.Fatalf("update after the owner lost its role: %d %s", r.status, r.raw)
	}
	f.checkNoPasswordLogged(t, a.Password)
}

// TestACMEDNSListPages: following next_after yields every account the
// caller may see, whoever the caller is.
func TestACMEDNSListPages(t *testing.T) {
	t.Parallel()
	f := newACMEDNSFixture(t, adnsOptions{})
	caTok := f.consumer(t, "ca", store.RoleChallengeAdmin, "www.example.org", store.Token{})
	cTok := f.consumer(t, "shop", store.RoleChallengeConsumer, "*.example.org", store.Token{})
	var all, caSees, shopSees []string
	for range 17 {
		all = append(all, f.register(t, "", `{}`, basic(f.token)).Username)
	}
	r := f.must(t, http.StatusCreated, "POST", "/api/v1/acme-dns/accounts", `{"domain":"www.example.org"}`, f.bearer)
	u, _ := r.body["username"].(string)
	all, caSees = append(all, u), append(caSees, u)
	u = f.register(t, "", `{}`, basic(caTok)).Username
	all, caSees = append(all, u), append(caSees, u)
	u = f.register(t, "", `{}`, basic(cTok)).Username
	all, shopSees = append(all, u), append(shopSees, u)

	pages := func(auth func(*http.Request), query string) (got []string, sizes []int) {
		t.Helper()
		after := ""
		for range 100 {
			r := f.must(t, http.StatusOK, "GET", "/api/v1/acme-dns/accounts?limit=5"+query+"&after="+url.QueryEscape(after), "", auth)
			page := list(t, r, "accounts")
			sizes = append(sizes, len(page))
			for _, a := range page {
				got = append(got, a["username"].(string))
			}
			next, ok := r.body["next_after"].(string)
			if !ok {
				return got, sizes
			}
			after = next
		}
		t.Fatal("paging does not end")
		return nil, nil
	}
	bearer := func(tok secret.Token) func(*http.Request) { return header("Authorization", "Bearer "+tok.String()) }
	for _, tc := range []struct {
		name  string
		auth  func(*http.Request)
		want  []string
		pages int
	}{
		{"admin", f.bearer, all, 5},                   // 20 accounts: four full pages, then an empty one
		{"challenge admin", bearer(caTok), caSees, 5}, // the store's pages, thinned: some short or empty
		{"consumer", bearer(cTok), shopSees, 1},       // its own, on one page
	} {
		slices.Sort(tc.want)
		got, sizes := pages(tc.auth, "")
		if !slices.Equal(got, tc.want) || len(sizes) != tc.pages {
			t.Errorf("%s: %v in pages of %v, want %v in %d pages", tc.name, got, sizes, tc.want, tc.pages)
		}
	}
	// A consumer's owner filter says nothing about other principals.
	for _, owner := range []string{"admin", "nobody"} {
		if got, _ := pages(bearer(cTok), "&owner="+owner); len(got) != 0 {
			t.Errorf("consumer, owner %s: %v", owner, got)
		}
	}
	if got, _ := pages(bearer(cTok), "&owner=shop"); !slices.Equal(got, shopSees) {
		t.Errorf("consumer, owner shop: %v", got)
	}
}
