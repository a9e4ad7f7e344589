package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// apiCredValue is distinctive: found anywhere but in the request, it leaked.
const apiCredValue = "api-SECRET-7d1c0b2e-must-not-echo"

func TestCredentialsAPIWriteOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := `{"name":"cf","provider":"cloudflare","fields":{"CF_DNS_API_TOKEN":"` + apiCredValue + `"}}`
	c := f.must(t, http.StatusCreated, "POST", "/api/v1/credentials", body, f.bearer)
	id := idOf(t, c)
	path := fmt.Sprintf("/api/v1/credentials/%d", id)
	fp, _ := c.body["fingerprint"].(string)
	if fp == "" || c.body["provider"] != "cloudflare" || fmt.Sprint(c.body["fields"]) != "[CF_DNS_API_TOKEN]" {
		t.Fatalf("create answered %s", c.raw)
	}
	got := f.must(t, http.StatusOK, "GET", path, "", f.bearer)
	all := f.must(t, http.StatusOK, "GET", "/api/v1/credentials", "", f.bearer)
	if len(list(t, all, "credentials")) != 1 {
		t.Fatalf("list: %s", all.raw)
	}
	rep := f.must(t, http.StatusOK, "PUT", path, `{"fields":{"CF_DNS_API_TOKEN":"`+apiCredValue+`-2"}}`, f.bearer)
	if rep.body["fingerprint"] == fp || rep.body["generation"] != float64(2) {
		t.Fatalf("replace answered %s", rep.raw)
	}
	f.problem(t, http.StatusBadRequest, "bad_request", "POST", "/api/v1/credentials",
		`{"name":"x","provider":"cloudflare","fields":{"NOT_A_FIELD":"`+apiCredValue+`"}}`, f.bearer, "NOT_A_FIELD")
	f.problem(t, http.StatusConflict, "conflict", "POST", "/api/v1/credentials", body, f.bearer, "cf")

	// A consumer may do none of it.
	_, tok := f.newPrincipal(t, "app", "managed_challenge_consumer", "*")
	consumer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.String()) }
	f.problem(t, http.StatusForbidden, "forbidden", "GET", "/api/v1/credentials", "", consumer)
	f.problem(t, http.StatusForbidden, "forbidden", "GET", path, "", consumer)
	f.problem(t, http.StatusForbidden, "forbidden", "POST", "/api/v1/credentials", strings.Replace(body, `"cf"`, `"cf2"`, 1), consumer)
	f.problem(t, http.StatusForbidden, "forbidden", "DELETE", path, "", consumer)

	audit := f.must(t, http.StatusOK, "GET", "/api/v1/audit?action=credential.create", "", f.bearer)
	for _, r := range []response{c, got, all, rep, audit} {
		if strings.Contains(r.raw, "SECRET") {
			t.Fatalf("a value came back: %s", r.raw)
		}
	}
	if strings.Contains(f.logs.String(), "SECRET") {
		t.Fatal("a value reached the log")
	}
	f.must(t, http.StatusNoContent, "DELETE", path, "", f.bearer)
	f.problem(t, http.StatusNotFound, "not_found", "GET", path, "", f.bearer)
	var db []byte
	for _, s := range []string{"", "-wal"} {
		b, _ := os.ReadFile(f.dbPath + s)
		db = append(db, b...)
	}
	if bytes.Contains(db, []byte("SECRET")) {
		t.Fatal("a value is in the database file in clear")
	}
}
