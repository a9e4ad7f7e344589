package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// openKeyring loads the server key. A database that has never been tied to a
// key gets a new key file (mode 0600, never overwriting one); a database that
// has been must find its own key, or start-up stops: without it no token can
// be verified and no sealed value opened.
func openKeyring(ctx context.Context, db *store.DB, path, dbPath string) (*secret.Keyring, error) {
	check, err := db.Meta(ctx, store.MetaKeyCheck)
	switch {
	case errors.Is(err, store.ErrNotFound):
		kr, err := secret.LoadKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			kr, err = secret.CreateKeyFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		if err := db.SetMeta(ctx, store.MetaKeyCheck, kr.CheckValue()); err != nil {
			return nil, fmt.Errorf("record key check: %w", err)
		}
		return kr, nil
	case err != nil:
		return nil, fmt.Errorf("read key check: %w", err)
	}
	kr, err := secret.LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the database %s was set up with a key file, but %s does not exist: "+
			"restore that key file or point --key-file at it (a new key cannot verify existing tokens)", dbPath, path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if err := kr.VerifyCheck(check); err != nil {
		return nil, fmt.Errorf("the key file %s does not belong to the database %s: %w", path, dbPath, err)
	}
	return kr, nil
}

// bootstrapAdmin creates the first admin token when the database holds no
// token. The secret is shown once: on the terminal when stdout is one,
// otherwise in tokenFile (mode 0600). It never goes to the logs.
func bootstrapAdmin(ctx context.Context, db *store.DB, kr *secret.Keyring, stdout io.Writer, tokenFile string) (created bool, err error) {
	n, err := db.CountTokens(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	tok, err := secret.NewToken()
	if err != nil {
		return false, err
	}
	toTerminal := isTerminal(stdout)
	var tmp string
	if !toTerminal {
		// Write the file before the token exists, so a failure leaves no
		// admin token that nobody can read.
		if tmp, err = writeSecretFile(tokenFile, tok.String()+"\n"); err != nil {
			return false, fmt.Errorf("bootstrap token file: %w", err)
		}
		defer func() { _ = os.Remove(tmp) }() // no-op after the rename
	}
	owner, err := adminPrincipal(ctx, db)
	if err != nil {
		return false, fmt.Errorf("bootstrap admin principal: %w", err)
	}
	err = db.CreateToken(ctx, store.Token{
		ClientID:    tok.ClientID,
		PrincipalID: owner.ID,
		SecretHash:  kr.HashSecret(tok.Secret),
		Title:       "bootstrap admin",
		Role:        store.RoleAdmin, // legacy field, for code written before principals
		CreatedAt:   time.Now(),
	})
	if err != nil {
		return false, fmt.Errorf("create bootstrap token: %w", err)
	}
	if toTerminal {
		fmt.Fprintf(stdout, "\nBootstrap admin token (shown once; keep it safe):\n\n    %s\n\n"+
			"Use it as: Authorization: Bearer <token>\n\n", tok)
		return true, nil
	}
	if err := os.Rename(tmp, tokenFile); err != nil {
		return false, fmt.Errorf("bootstrap token file: %w", err)
	}
	return true, syncDir(filepath.Dir(tokenFile))
}

// adminPrincipal returns the principal "admin" (the owner the store's
// migration gives version-1 tokens), creating it if needed, and makes sure
// it holds the admin role without domain restriction.
func adminPrincipal(ctx context.Context, db *store.DB) (store.Principal, error) {
	p, err := db.PrincipalByName(ctx, "admin")
	if errors.Is(err, store.ErrNotFound) {
		p, err = db.CreatePrincipal(ctx, store.Principal{Kind: store.PrincipalUser, Name: "admin",
			Description: "bootstrap administrator", Enabled: true})
	}
	if err != nil {
		return store.Principal{}, err
	}
	_, err = db.AddRoleAssignment(ctx, store.RoleAssignment{PrincipalID: p.ID, Role: store.RoleAdmin})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return store.Principal{}, err
	}
	return p, nil
}

// writeSecretFile writes content to a new temporary file (mode 0600) beside
// path and returns its name.
func writeSecretFile(path, content string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // our own data directory
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // read-only handle
	return d.Sync()
}

// isTerminal reports whether w is a terminal (not merely a character
// device: /dev/null is one too, and a token shown there would be lost).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
