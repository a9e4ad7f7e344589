package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/store"
)

// Stored upstream credentials: write-only, so no command prints a value.

func credentialGroup() adminGroup {
	return adminGroup{name: "credential", summary: "manage stored upstream DNS provider credentials (sealed, write-only)", verbs: []adminVerb{
		{"create", "store a credential set for an upstream provider", credentialCreate},
		{"list", "list credential sets (names, provider, field names; never values)", credentialList},
		{"show", "show one credential set (never its values)", credentialShow},
		{"replace", "replace every field of a credential set", credentialReplace},
		{"delete", "delete a credential set no managed challenge uses", credentialDelete},
		{"rotate-key", "add a new current key to the key file and reseal every sealed value under it", credentialRotateKey},
	}}
}

const fieldsHelp = "Values given with --field end up in the shell history; prefer --field-file K=PATH\n" +
	"(the file's contents, one trailing newline dropped) or --field-file K=- (standard input)."

func addFieldFlags(c *adminCmd) (fields, files *[]string) {
	fields = c.repeatFlag("field", "K=V", "a field and its value")
	files = c.repeatFlag("field-file", "K=PATH", "a field whose value is read from PATH, or standard input if PATH is -")
	return fields, files
}

// repeatFlag is a repeatable flag that keeps each value whole (values may
// hold commas).
func (c *adminCmd) repeatFlag(name, arg, usage string) *[]string {
	c.docs = append(c.docs, flagDoc{name, arg, usage + " (repeatable)"})
	var out []string
	c.fs.Func(name, usage, func(v string) error {
		out = append(out, v)
		return nil
	})
	return &out
}

// readFields builds the field map. Errors name fields and files, never a
// value.
func readFields(fields, files []string, stdin io.Reader) (map[string]string, error) {
	out := make(map[string]string, len(fields)+len(files))
	add := func(k, v string) error {
		if k == "" {
			return fmt.Errorf("a field needs a name before '='")
		}
		if _, dup := out[k]; dup {
			return fmt.Errorf("field %q given twice", k)
		}
		out[k] = v
		return nil
	}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--field %q: want NAME=VALUE", k)
		}
		if err := add(k, v); err != nil {
			return nil, err
		}
	}
	usedStdin := false
	for _, f := range files {
		k, path, ok := strings.Cut(f, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("--field-file %q: want NAME=PATH", f)
		}
		var data []byte
		var err error
		if path == "-" {
			if usedStdin {
				return nil, fmt.Errorf("--field-file %s=-: standard input can hold only one value", k)
			}
			usedStdin = true
			data, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			data, err = os.ReadFile(filepath.Clean(path))
		}
		if err != nil {
			return nil, fmt.Errorf("--field-file %s: %w", k, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		clear(data)
		if err := add(k, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func credentialCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "credential create", "--name NAME --provider CODE (--field K=V | --field-file K=PATH)... [flags]",
		"Stores a credential set for an upstream DNS provider, sealed with the key file's current key.\n"+
			"Field names are the provider's variables (see `acmehub providers show CODE`).\n"+fieldsHelp)
	name := c.stringFlag("name", "NAME", "", "the credential set's name (required), unique")
	provider := c.stringFlag("provider", "CODE", "", "the provider code (required)")
	fields, files := addFieldFlags(c)
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("name", "provider"); err != nil {
		return err
	}
	vals, err := readFields(*fields, *files, os.Stdin)
	if err != nil {
		return c.usageError("%v", err)
	}
	defer clear(vals)
	return c.withSession(ctx, func(s *adminSession) error {
		cr, err := s.svc.CreateCredential(ctx, s.grant, hub.CredentialRequest{Name: *name, Provider: *provider, Fields: vals})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToCredentialJSON(cr))
		}
		fmt.Fprintf(s.stdout, "created credential %q (id %d) for %s with fields %s\n", cr.Name, cr.ID, cr.Provider, strings.Join(cr.Fields, ", "))
		return nil
	})
}

func credentialList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "credential list", "[flags]", "Lists every credential set, by creation. Values are never shown.")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		cs, err := s.svc.ListCredentials(ctx, s.grant)
		if err != nil {
			return err
		}
		if s.json {
			out := make([]api.CredentialJSON, 0, len(cs))
			for _, cr := range cs {
				out = append(out, api.ToCredentialJSON(cr))
			}
			return s.printJSON(out)
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPROVIDER\tGEN\tFINGERPRINT\tFIELDS")
		for _, cr := range cs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", cr.ID, cr.Name, cr.Provider, cr.Generation, cr.Fingerprint, strings.Join(cr.Fields, ","))
		}
		return tw.Flush()
	})
}

func credentialShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "credential show", "NAME [flags]", "Shows one credential set: field names and a fingerprint, never values.")
	rest, err := c.parse(args, 1, "the credential set's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		cr, err := s.svc.CredentialByName(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		return s.printCredential(cr)
	})
}

func (s *adminSession) printCredential(cr hub.Credential) error {
	if s.json {
		return s.printJSON(api.ToCredentialJSON(cr))
	}
	fmt.Fprintf(s.stdout, "name:        %s\nid:          %d\nprovider:    %s\nfields:      %s\nfingerprint: %s\n"+
		"generation:  %d\ncreated:     %s by %s\nupdated:     %s\n",
		cr.Name, cr.ID, cr.Provider, strings.Join(cr.Fields, ", "), cr.Fingerprint, cr.Generation,
		fmtTime(cr.CreatedAt), orDash(cr.CreatedBy), fmtTime(cr.UpdatedAt))
	return nil
}

func credentialReplace(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "credential replace", "NAME (--field K=V | --field-file K=PATH)... [flags]",
		"Replaces every field of a credential set; fields not given are dropped.\n"+fieldsHelp)
	fields, files := addFieldFlags(c)
	rest, err := c.parse(args, 1, "the credential set's name")
	if err != nil {
		return err
	}
	vals, err := readFields(*fields, *files, os.Stdin)
	if err != nil {
		return c.usageError("%v", err)
	}
	defer clear(vals)
	return c.withSession(ctx, func(s *adminSession) error {
		cur, err := s.svc.CredentialByName(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		cr, err := s.svc.ReplaceCredentialFields(ctx, s.grant, cur.ID, vals)
		if err != nil {
			return err
		}
		return s.printCredential(cr)
	})
}

func credentialDelete(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "credential delete", "NAME [flags]", "Deletes a credential set; refused while a managed challenge uses it.")
	rest, err := c.parse(args, 1, "the credential set's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		cur, err := s.svc.CredentialByName(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		if err := s.svc.DeleteCredential(ctx, s.grant, cur.ID); err != nil {
			return err
		}
		fmt.Fprintf(s.stdout, "deleted credential %q\n", cur.Name)
		return nil
	})
}

// credentialRotateKey rotates the key file. The order keeps every crash
// point working:
//
//  1. the key file is replaced (atomically) by one holding a new current
//     key in front of every old key: old blobs, token hashes and the
//     database's key check still verify with the old keys;
//  2. every sealed value (credentials, acme-dns passwords) is resealed
//     under the new key in one transaction: all or nothing;
//  3. the database's key check is moved to the new key.
//
// It runs alone: it holds the database's exclusive lock from before the
// key file is read until the end, so no running server or other command
// seals a value under a key that is about to stop being current.
//
// A crash after 1 leaves old blobs that the new file still opens; rerun
// the command to finish (it reseals only what is not under the current
// key, and adds another key). Old keys are never dropped: token hashes
// cannot be recomputed without the tokens.
func credentialRotateKey(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "credential rotate-key", "[flags]",
		"Adds a new current key to the key file (old keys stay, to verify tokens and open old values), then\n"+
			"reseals every stored credential and acme-dns password under it in one transaction. Restart\n"+
			"`acmehub serve` afterwards. Run it with `acmehub serve` and every other acmehub command stopped:\n"+
			"it refuses while any of them has the database open.")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	keyFile := c.ss.get("key-file")
	if keyFile == "" {
		keyFile = filepath.Join(c.ss.get("data-dir"), "acmehub.key")
	}
	// Before the key file is read: a server that sealed a value under the
	// old current key after we read it would leave that value behind.
	lock, err := store.LockExclusive(dbPath(c.ss))
	if errors.Is(err, store.ErrLocked) {
		return errors.New("credential rotate-key: the database is in use: stop acmehub serve (and other acmehub commands) first")
	}
	if err != nil {
		return fmt.Errorf("credential rotate-key: %w", err)
	}
	defer func() { _ = lock.Unlock() }()
	return c.withSession(ctx, func(s *adminSession) error {
		// The session verified this key file against the database.
		kr, err := secret.LoadKeyFile(keyFile)
		if err != nil {
			return err
		}
		next, err := kr.Rotate()
		if err != nil {
			return err
		}
		if err := secret.ReplaceKeyFile(keyFile, next); err != nil {
			return err
		}
		n, err := hub.ResealAll(ctx, s.db, next)
		if err != nil {
			return fmt.Errorf("reseal (the key file already holds the new key %s; nothing was resealed; rerun): %w", next.CurrentID(), err)
		}
		if err := s.db.SetMeta(ctx, store.MetaKeyCheck, next.CheckValue()); err != nil {
			return fmt.Errorf("record key check (values are resealed; rerun to finish): %w", err)
		}
		fmt.Fprintf(s.stdout, "key file %s: new current key %s (keys: %s); resealed %d value(s). Restart acmehub serve.\n",
			keyFile, next.CurrentID(), strings.Join(next.IDs(), ", "), n)
		return nil
	})
}
