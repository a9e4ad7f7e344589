package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/acmehub/acmehub/internal/upstream"
)

// fakeAPI keeps TXT records for one zone, example.org, and checks the
// credential on every call, as the v4 API does.
type fakeAPI struct {
	dnsAuth  func(http.Header) bool
	zoneAuth func(http.Header) bool

	mu      sync.Mutex
	nextID  int
	records map[string]record // id -> record
	zoneQs  []string          // names asked for in GET /zones
	maxPage int               // largest page the list call serves (default 100)
	pages   []string          // page numbers asked for in list calls
}

func newFake(t *testing.T, token string) (*fakeAPI, *httptest.Server) {
	t.Helper()
	bearer := func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+token }
	f := &fakeAPI{dnsAuth: bearer, zoneAuth: bearer, records: map[string]record{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) reply(w http.ResponseWriter, status int, result any, errs ...apiMessage) {
	f.replyInfo(w, status, result, nil, errs...)
}

func (f *fakeAPI) replyInfo(w http.ResponseWriter, status int, result, info any, errs ...apiMessage) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if errs == nil {
		errs = []apiMessage{}
	}
	env := map[string]any{
		"success": status/100 == 2, "errors": errs, "messages": []any{}, "result": result,
	}
	if info != nil {
		env["result_info"] = info
	}
	_ = json.NewEncoder(w).Encode(env)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	denied := apiMessage{Code: 10000, Message: "Authentication error"}
	const zonePath = "/zones/zone-1/dns_records"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/zones":
		if !f.zoneAuth(r.Header) {
			f.reply(w, http.StatusForbidden, nil, denied)
			return
		}
		name := r.URL.Query().Get("name")
		f.zoneQs = append(f.zoneQs, name)
		zones := []map[string]string{}
		if name == "example.org" {
			zones = append(zones, map[string]string{"id": "zone-1", "name": "example.org"})
		}
		f.reply(w, http.StatusOK, zones)
	case !strings.HasPrefix(r.URL.Path, zonePath):
		f.reply(w, http.StatusNotFound, nil, apiMessage{Code: 7003, Message: "Could not route"})
	case !f.dnsAuth(r.Header):
		f.reply(w, http.StatusForbidden, nil, denied)
	case r.Method == http.MethodPost && r.URL.Path == zonePath:
		var rec record
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.Type != "TXT" || rec.TTL < 60 {
			f.reply(w, http.StatusBadRequest, nil, apiMessage{Code: 9000, Message: "bad record"})
			return
		}
		for _, have := range f.records {
			if have.Name == rec.Name && have.Content == rec.Content {
				f.reply(w, http.StatusBadRequest, nil, apiMessage{Code: 81058, Message: "An identical record already exists."})
				return
			}
		}
		f.nextID++
		rec.ID = fmt.Sprintf("rec-%05d", f.nextID)
		f.records[rec.ID] = rec
		f.reply(w, http.StatusOK, rec)
	case r.Method == http.MethodGet && r.URL.Path == zonePath:
		q := r.URL.Query()
		out := []record{}
		for _, rec := range f.records {
			if rec.Type == q.Get("type") && rec.Name == q.Get("name") &&
				(q.Get("content") == "" || q.Get("content") == rec.Content) {
				out = append(out, rec)
			}
		}
		// Paged as the API does: per_page capped, page counted from 1.
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		per, _ := strconv.Atoi(q.Get("per_page"))
		limit := f.maxPage
		if limit == 0 {
			limit = 100
		}
		if per <= 0 || per > limit {
			per = limit
		}
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 1)
		f.pages = append(f.pages, strconv.Itoa(page))
		total := len(out)
		lo, hi := min((page-1)*per, total), min(page*per, total)
		f.replyInfo(w, http.StatusOK, out[lo:hi], map[string]int{
			"page": page, "per_page": per, "count": hi - lo, "total_count": total,
			"total_pages": (total + per - 1) / per,
		})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, zonePath+"/"):
		id := strings.TrimPrefix(r.URL.Path, zonePath+"/")
		if _, ok := f.records[id]; !ok {
			f.reply(w, http.StatusNotFound, nil, apiMessage{Code: 81044, Message: "Record does not exist."})
			return
		}
		delete(f.records, id)
		f.reply(w, http.StatusOK, map[string]string{"id": id})
	default:
		f.reply(w, http.StatusMethodNotAllowed, nil, apiMessage{Code: 10405, Message: "method not allowed"})
	}
}

// values lists the contents stored at name, sorted.
func (f *fakeAPI) values(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.records {
		if r.Name == name {
			out = append(out, r.Content)
		}
	}
	sort.Strings(out)
	return out
}

func TestAddRemoveKeepsOtherValue(t *testing.T) {
	const token = "good-token-123"
	fake, srv := newFake(t, token)
	d, err := newDriver(map[string]string{"CLOUDFLARE_DNS_API_TOKEN": token}, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const fqdn = "_acme-challenge.www.Example.org."
	const name = "_acme-challenge.www.example.org"
	for _, v := range []string{"value-one", "value-two", "value-one"} { // the repeat must succeed
		if err := d.Add(ctx, fqdn, v, 30); err != nil {
			t.Fatalf("add %s: %v", v, err)
		}
	}
	if got := fake.values(name); strings.Join(got, ",") != "value-one,value-two" {
		t.Fatalf("after adds: %v", got)
	}
	if err := d.Remove(ctx, fqdn, "value-one"); err != nil {
		t.Fatal(err)
	}
	if got := fake.values(name); strings.Join(got, ",") != "value-two" {
		t.Fatalf("after remove: %v, want only value-two", got)
	}
	if err := d.Remove(ctx, fqdn, "value-one"); err != nil {
		t.Fatalf("removing an absent value: %v", err)
	}
	if err := d.Remove(ctx, fqdn, "value-two"); err != nil {
		t.Fatal(err)
	}
	if got := fake.values(name); len(got) != 0 {
		t.Fatalf("after removing all: %v", got)
	}
	// The zone was found by walking up from the record name, then cached.
	fake.mu.Lock()
	qs := strings.Join(fake.zoneQs, ",")
	fake.mu.Unlock()
	if qs != "_acme-challenge.www.example.org,www.example.org,example.org" {
		t.Fatalf("zone look-ups: %s", qs)
	}
}

func TestSplitZoneToken(t *testing.T) {
	fake, srv := newFake(t, "dns-tok")
	fake.zoneAuth = func(h http.Header) bool { return h.Get("Authorization") == "Bearer zone-tok" }
	d, err := newDriver(map[string]string{"CF_DNS_API_TOKEN": "dns-tok", "CF_ZONE_API_TOKEN": "zone-tok"}, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(context.Background(), "_acme-challenge.example.org.", "v", 120); err != nil {
		t.Fatal(err)
	}
	if got := fake.values("_acme-challenge.example.org"); len(got) != 1 {
		t.Fatalf("records: %v", got)
	}
}

func TestGlobalKey(t *testing.T) {
	fake, srv := newFake(t, "unused")
	keyAuth := func(h http.Header) bool {
		return h.Get("X-Auth-Email") == "admin@example.org" && h.Get("X-Auth-Key") == "global-key" && h.Get("Authorization") == ""
	}
	fake.dnsAuth, fake.zoneAuth = keyAuth, keyAuth
	d, err := newDriver(map[string]string{"CLOUDFLARE_EMAIL": "admin@example.org", "CF_API_KEY": "global-key"}, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Add(ctx, "_acme-challenge.example.org.", "v", 120); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "_acme-challenge.example.org.", "v"); err != nil {
		t.Fatal(err)
	}
	if got := fake.values("_acme-challenge.example.org"); len(got) != 0 {
		t.Fatalf("records: %v", got)
	}
}

func TestWrongTokenIsClearAndSecretFree(t *testing.T) {
	fake, srv := newFake(t, "good-token")
	const bad = "wrong-secret-token-xyz"
	d, err := newDriver(map[string]string{"CF_DNS_API_TOKEN": bad}, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { return d.Add(context.Background(), "_acme-challenge.example.org.", "v", 120) },
		func() error { return d.Remove(context.Background(), "_acme-challenge.example.org.", "v") },
	} {
		err := call()
		if err == nil {
			t.Fatal("wrong token accepted")
		}
		msg := err.Error()
		if strings.Contains(msg, bad) || !strings.Contains(msg, "403") || !strings.Contains(msg, "Authentication error") {
			t.Fatalf("error %q: want status and API message, without the token", msg)
		}
	}
	// Zone found, but the DNS token is refused.
	fake.zoneAuth = func(http.Header) bool { return true }
	err = d.Add(context.Background(), "_acme-challenge.example.org.", "v", 120)
	if err == nil || strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "add TXT") {
		t.Fatalf("add with refused dns token: %v", err)
	}
}

func TestUnknownZone(t *testing.T) {
	_, srv := newFake(t, "tok")
	d, err := newDriver(map[string]string{"CF_DNS_API_TOKEN": "tok"}, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Add(context.Background(), "_acme-challenge.example.net.", "v", 120)
	if err == nil || !strings.Contains(err.Error(), "no zone found for _acme-challenge.example.net") {
		t.Fatalf("got %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{}, "CF_DNS_API_TOKEN"},
		{map[string]string{"CF_ZONE_API_TOKEN": "z"}, "CF_DNS_API_TOKEN"},
		{map[string]string{"CF_API_EMAIL": "a@example.org"}, "CF_API_KEY"},
		{map[string]string{"CLOUDFLARE_API_KEY": "k"}, "CF_API_EMAIL"},
		{map[string]string{"CF_DNS_API_TOKEN": "bad\nsecret"}, "CF_DNS_API_TOKEN"},
	} {
		_, err := New(tc.fields, upstream.Options{})
		if !errors.Is(err, upstream.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want ErrConfig naming %s", tc.fields, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a value: %v", err)
		}
	}
}

// A listing spread over several pages: Remove must find and delete the
// value on every page, and keep the others.
func TestRemovePagesThroughAllRecords(t *testing.T) {
	const token = "tok"
	fake, srv := newFake(t, token)
	fake.maxPage = 3 // the server serves fewer than the 100 asked for
	d, err := newDriver(map[string]string{"CF_DNS_API_TOKEN": token}, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	const name = "_acme-challenge.example.org"
	fake.mu.Lock()
	for i := range 10 {
		v := fmt.Sprintf("other-%d", i)
		if i%4 == 3 { // ids 4 and 8: on pages 2 and 3 of 4
			v = "target"
		}
		fake.nextID++
		id := fmt.Sprintf("rec-%05d", fake.nextID)
		fake.records[id] = record{ID: id, Type: "TXT", Name: name, Content: v, TTL: 120}
	}
	fake.mu.Unlock()
	if err := d.Remove(context.Background(), name+".", "target"); err != nil {
		t.Fatal(err)
	}
	got := fake.values(name)
	if len(got) != 8 || strings.Contains(strings.Join(got, ","), "target") {
		t.Fatalf("after remove: %v, want the 8 others only", got)
	}
	fake.mu.Lock()
	pages := strings.Join(fake.pages, ",")
	fake.mu.Unlock()
	if pages != "1,2,3,4" {
		t.Fatalf("pages asked for: %s, want 1,2,3,4", pages)
	}
}

// A redirect is refused, so the credential never reaches another host.
func TestRedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"success":true,"errors":[],"result":[{"id":"z","name":"example.org"}]}`))
	}))
	t.Cleanup(other.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(api.Close)
	const secret = "redirect-secret-token"
	d, err := newDriver(map[string]string{"CF_DNS_API_TOKEN": secret}, upstream.Options{}, api.URL)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Add(context.Background(), "_acme-challenge.example.org.", "v", 120)
	if err == nil || !strings.Contains(err.Error(), "302") || strings.Contains(err.Error(), secret) {
		t.Fatalf("add through a redirect: %v, want an http 302 error without the token", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) != 0 {
		t.Fatalf("redirect followed: the other host got %d requests", len(leaked))
	}
}
