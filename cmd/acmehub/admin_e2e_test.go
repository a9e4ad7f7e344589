package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/acmetest"
)

// TestAdminCLIEndToEnd: the built binary administers the database of a
// running hub; the token it prints works against that hub at once, within
// the scope the CLI gave it, and its revocation takes effect without a
// restart.
func TestAdminCLIEndToEnd(t *testing.T) {
	dir := t.TempDir()
	h := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: dir})
	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, acmetest.Binary(t), append(args, "--data-dir", dir)...)
		cmd.Env = []string{}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("acmehub %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	cli("principal", "create", "--name", "web-shop", "--kind", "app")
	cli("role", "add", "--principal", "web-shop", "--role", "managed_challenge_consumer", "--domains", "*.example.org")
	cli("managed-challenge", "create", "--name", "example-org", "--rule", "*.example.org")
	var tok issuedTokenJSON
	out := cli("token", "create", "--principal", "web-shop", "--title", "e2e", "--json")
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token create --json: %v\n%s", err, out)
	}

	code, body := request(t, h, tok.Token, "POST", "/api/v1/challenges", map[string]any{"identifier": "www.example.org", "value": "from-cli-token"})
	if code != http.StatusCreated {
		t.Fatalf("present with the CLI's token: %d %s", code, body)
	}
	var ch struct {
		CNAMETarget string `json:"cname_target"`
		Config      string `json:"managed_challenge"`
	}
	if err := json.Unmarshal(body, &ch); err != nil || ch.CNAMETarget == "" || ch.Config != "example-org" {
		t.Fatalf("present answer: %v %s", err, body)
	}
	if got := txtValues(t, h.DNSAddr, ch.CNAMETarget); !slices.Equal(got, []string{"from-cli-token"}) {
		t.Fatalf("DNS at %s: %q", ch.CNAMETarget, got)
	}
	if code, body := request(t, h, tok.Token, "POST", "/api/v1/challenges", map[string]any{"identifier": "example.net", "value": "x"}); code != http.StatusForbidden {
		t.Fatalf("present outside the role's domains: %d %s", code, body)
	}

	// The delegation the hub made is visible to the CLI, and the CLI's
	// changes are in the audit log with source "local".
	var ds []delegationJSON
	if err := json.Unmarshal([]byte(cli("delegation", "list", "--json")), &ds); err != nil || len(ds) != 1 ||
		ds[0].Domain != "www.example.org" || ds[0].Target != ch.CNAMETarget {
		t.Fatalf("delegation list: %v %+v", err, ds)
	}
	var evs []auditEventJSON
	if err := json.Unmarshal([]byte(cli("audit", "list", "--action", "token.create", "--json")), &evs); err != nil ||
		len(evs) != 1 || evs[0].Source != "local" || !strings.HasPrefix(evs[0].TokenID, "cli:") {
		t.Fatalf("audit of the CLI's token: %v %+v", err, evs)
	}

	// Revoked by the CLI: refused by the running hub.
	cli("token", "revoke", tok.ClientID)
	if code, body := request(t, h, tok.Token, "POST", "/api/v1/challenges", map[string]any{"identifier": "www.example.org", "value": "again"}); code != http.StatusUnauthorized {
		t.Fatalf("present with a revoked token: %d %s", code, body)
	}
	h.Stop(t)
}
