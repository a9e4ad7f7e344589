package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// errUsage means the command line was wrong and usage was already printed.
var errUsage = errors.New("usage")

// command is one `acmehub <name>` subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env env) error
}

// env is what a command may touch of the outside world.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func commands() []command {
	cs := []command{
		{"serve", "run the hub: authoritative DNS for the hub zone and the HTTP API", serveCommand},
		{"backup", "write an online, consistent copy of the database to a new file", backupCommand},
		{"restore", "replace the database with a backup (hub stopped); moves the serial forward", restoreCommand},
		acmeDNSGroup().command(),
		credentialGroup().command(),
		providersCommand(),
	}
	// The admin commands work on the local database (admin.go).
	for _, g := range adminGroups() {
		cs = append(cs, g.command())
	}
	return append(cs, command{"version", "print the version", func(_ context.Context, _ []string, e env) error {
		fmt.Fprintln(e.stdout, "acmehub", version)
		return nil
	}})
}

// run dispatches to a subcommand. It never exits the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		topUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		topUsage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], e)
		}
	}
	fmt.Fprintf(stderr, "acmehub: unknown command %q\n\n", args[0])
	topUsage(stderr)
	return errUsage
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "acmehub %s: a self-hosted ACME DNS-01 challenge hub.\n\nUsage: acmehub <command> [settings]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nSettings of `acmehub serve` (flags win over ACMEHUB_* environment variables,\n"+
		"which win over the config file, which wins over defaults; any setting may\n"+
		"also be read from the file named by ACMEHUB_<NAME>_FILE):\n")
	serveSettings().usage(w)
	fmt.Fprintf(w, "\nRun `acmehub <command> --help` for a command's own settings.\n")
}

// newFlagSet makes a flag set whose --help prints a header and the settings.
func newFlagSet(name, header string, ss *settingSet, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "%s\n\nSettings:\n", header)
		ss.usage(out)
	}
	return fs
}
