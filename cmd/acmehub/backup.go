package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/acmehub/acmehub/store"
)

// dbSettings are the settings that locate the database, shared by the
// commands that work on it directly.
func dbSettings() *settingSet {
	ss := newSettingSet()
	ss.add("config", "", "config file of `name = value` lines (the serve config works)")
	ss.add("data-dir", defaultDataDir, "data directory of the hub")
	ss.add("db", "", "SQLite database file (default <data-dir>/acmehub.db)")
	return ss
}

func dbPath(ss *settingSet) string {
	if p := ss.get("db"); p != "" {
		return p
	}
	return filepath.Join(ss.get("data-dir"), "acmehub.db")
}

// loadDBSettings parses a database command's flags; the serve config file
// may hold settings these commands do not use, so unknown names there are
// ignored by reading it with the serve table.
func loadDBSettings(name, header string, ss *settingSet, args []string, e env) ([]string, error) {
	for _, s := range serveSettings().order {
		if ss.byName[s.name] == nil {
			ss.add(s.name, s.def, s.usage).hidden = true
			if s.list {
				ss.byName[s.name].list = true
			}
		}
	}
	fs := newFlagSet(name, header, ss, e.stderr)
	rest, err := ss.load(fs, args, e.getenv, "config")
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("invalid settings:\n  - %w", err)
	}
	return rest, err
}

func backupCommand(ctx context.Context, args []string, e env) error {
	ss := dbSettings()
	rest, err := loadDBSettings("backup", "Usage: acmehub backup [settings] <new-file>\n\n"+
		"Writes a consistent copy of the database while the hub keeps running (SQLite VACUUM INTO).\n"+
		"Keep the key file too: a backup without its key cannot verify tokens or open sealed values.", ss, args, e)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("backup takes one argument, the new backup file")
	}
	db, err := store.Open(ctx, store.Config{Path: dbPath(ss)})
	if err != nil {
		return fmt.Errorf("open database %s: %w", dbPath(ss), err)
	}
	defer func() { _ = db.Close() }() // closed below; this is for early returns
	if err := db.Backup(ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup written to %s\n", rest[0])
	return db.Close()
}

func restoreCommand(ctx context.Context, args []string, e env) error {
	ss := dbSettings()
	ss.add("from", "", "the backup file to restore (required)")
	ss.add("min-serial", "0", "a zone serial counter known to be published (e.g. a secondary's SOA serial); the restored serial ends above it")
	ss.add("keep-replaced", "true", "keep the replaced database as <db>.replaced-<time>")
	rest, err := loadDBSettings("restore", "Usage: acmehub restore --from <backup> [settings]\n\n"+
		"Replaces the database with a backup. Stop the hub first. The zone serial is moved past\n"+
		"anything that may have been published since the backup, and every follower reloads.", ss, args, e)
	if err != nil {
		return err
	}
	var p problems
	if len(rest) > 0 {
		p.addf("restore takes no arguments, got %q", rest)
	}
	if ss.get("from") == "" {
		p.addf("from: the backup file is required")
	}
	minSerial, err := strconv.ParseInt(ss.get("min-serial"), 10, 64)
	if err != nil || minSerial < 0 {
		p.addf("min-serial: %q is not a whole number >= 0", ss.get("min-serial"))
	}
	keep, err := strconv.ParseBool(ss.get("keep-replaced"))
	if err != nil {
		p.addf("keep-replaced: %q is not true or false", ss.get("keep-replaced"))
	}
	if err := p.err(); err != nil {
		return err
	}
	if err := store.Restore(ctx, ss.get("from"), dbPath(ss), store.RestoreOptions{MinSerial: minSerial, KeepReplaced: keep}); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db, err := store.Open(ctx, store.Config{Path: dbPath(ss)})
	if err != nil {
		return fmt.Errorf("open restored database: %w", err)
	}
	defer func() { _ = db.Close() }() // closed below; this is for early returns
	serial, err := db.Serial(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored %s from %s; zone serial is now %d (published as %d)\n",
		dbPath(ss), ss.get("from"), serial, store.SerialPublished(serial))
	return db.Close()
}
