package acmetest

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// setupTimeout bounds the database work of one Consumer call.
const setupTimeout = 30 * time.Second

// Consumer sets up an API client of the running hub and returns its token
// (tok.String() is the bearer): an enabled app principal called name
// holding the managed_challenge_consumer role restricted to rule, a
// delegated managed challenge config whose rule is rule (called
// "cfg-<name>"; not created when a config with that rule exists), and a
// token for the principal with no narrowing, allow-list or expiry. rule is
// a domain match rule ("*.example.org", "a.example.org;b.example.org");
// name must be a new principal name of at most 60 bytes.
//
// For now it writes the hub's database (h.DataDir/acmehub.db) directly from
// the test process, with the hub's key file (h.DataDir/acmehub.key) for
// the token hash: the store supports a second process, and the running
// hub reads tokens and role assignments per request and reloads configs
// when their generation counter moves, so the token works at once. It will
// switch to the admin CLI or API once they exist; callers should rely only
// on what it returns. Hubs started with a --db or --key-file elsewhere are
// not supported.
func (h *Hub) Consumer(t *testing.T, name, rule string) secret.Token {
	t.Helper()
	kr, err := secret.LoadKeyFile(filepath.Join(h.DataDir, "acmehub.key"))
	if err != nil {
		t.Fatalf("acmetest: consumer %q: %v", name, err)
	}
	var tok secret.Token
	h.withStore(t, func(ctx context.Context, db *store.DB) error {
		if err := ensureConfig(ctx, db, "cfg-"+name, rule); err != nil {
			return err
		}
		p, err := db.CreatePrincipal(ctx, store.Principal{Kind: store.PrincipalApp, Name: name, Enabled: true})
		if err != nil {
			return err
		}
		if _, err := db.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: p.ID, Role: store.RoleChallengeConsumer, Domains: rule}); err != nil {
			return err
		}
		if tok, err = secret.NewToken(); err != nil {
			return err
		}
		return db.CreateToken(ctx, store.Token{ClientID: tok.ClientID, PrincipalID: p.ID, SecretHash: kr.HashSecret(tok.Secret), Title: "acmetest " + name})
	})
	return tok
}

// ensureConfig creates a delegated config called name for rule unless a
// config with the same rule (in canonical form) exists.
func ensureConfig(ctx context.Context, db *store.DB, name, rule string) error {
	r, err := rules.Parse(rule)
	if err != nil {
		return err
	}
	cfgs, err := db.ListConfigs(ctx)
	if err != nil {
		return err
	}
	for _, c := range cfgs {
		if c.Rule == r.String() {
			return nil
		}
	}
	_, err = db.CreateConfig(ctx, store.ChallengeConfig{Name: name, Provider: store.ProviderDelegated, Rule: rule, CreatedBy: "acmetest"})
	return err
}

// withStore opens the hub's database beside the running hub, runs f and
// closes it, failing the test on any error.
func (h *Hub) withStore(t *testing.T, f func(context.Context, *store.DB) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(h.DataDir, "acmehub.db")})
	if err != nil {
		t.Fatalf("acmetest: open the hub's database: %v", err)
	}
	err = f(ctx, db)
	if cerr := db.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		t.Fatalf("acmetest: set up the hub: %v", err)
	}
}

// Kill sends SIGKILL to the hub, as a crash or the OOM killer would, and
// waits up to 15 s for it to exit. Start it again on the same data dir with
// StartHub(t, HubConfig{Zone: h.Zone, DataDir: h.DataDir}).
func (h *Hub) Kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("acmetest: kill acmehub (pid %d): %v", h.PID(), err)
	}
	select {
	case err := <-h.done:
		h.done <- err // for Exited and the cleanup
	case <-time.After(15 * time.Second):
		t.Fatalf("acmetest: acmehub (pid %d) did not exit within 15 s of SIGKILL", h.PID())
	}
}
