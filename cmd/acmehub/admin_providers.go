package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/upstream/catalog"
)

// `acmehub providers list|show` print the upstream provider catalogue
// (lego's DNS providers and the fields each needs). The catalogue is
// compiled in, so these need no database and no --data-dir. Their --json
// output is the API's (GET /api/v1/providers[/{code}]).

func providersCommand() command {
	return command{"providers", "list lego's DNS providers and the credential fields each needs", providersDispatch}
}

func providersUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: acmehub providers <command> [--json]\n\n"+
		"The upstream DNS provider catalogue, generated from lego's provider metadata.\n\n"+
		"Commands:\n"+
		"  list       every provider: code, name and credential field names\n"+
		"  show CODE  one provider (code or alias, any case) with every field described\n\n"+
		"Flags:\n  --json\n      print JSON instead of text (the API's form)\n")
}

func providersDispatch(_ context.Context, args []string, e env) error {
	if len(args) == 0 {
		providersUsage(e.stderr)
		return errUsage
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "-h", "-help", "--help", "help":
		providersUsage(e.stdout)
		return nil
	case "list", "show":
	default:
		fmt.Fprintf(e.stderr, "acmehub providers: unknown command %q\n\n", verb)
		providersUsage(e.stderr)
		return errUsage
	}
	fs := flag.NewFlagSet("acmehub providers "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	// Flags may come before or after the code.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				providersUsage(e.stdout)
				return nil
			}
			return providersUsageError(e, verb, err.Error())
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if verb == "list" {
		if len(pos) != 0 {
			return providersUsageError(e, verb, "list takes no arguments")
		}
		return providersList(e.stdout, *asJSON)
	}
	if len(pos) != 1 {
		return providersUsageError(e, verb, "show takes one provider code")
	}
	p, ok := catalog.Lookup(pos[0])
	if !ok {
		return fmt.Errorf("no provider %q (acmehub providers list shows them all)", pos[0])
	}
	return providerShow(e.stdout, p, *asJSON)
}

func providersUsageError(e env, verb, msg string) error {
	fmt.Fprintf(e.stderr, "acmehub providers %s: %s\nUsage: acmehub providers list [--json] | show CODE [--json]\n", verb, msg)
	return errUsage
}

func printIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func providersList(w io.Writer, asJSON bool) error {
	all := catalog.All()
	if asJSON {
		out := make([]api.ProviderSummaryJSON, 0, len(all))
		for _, p := range all {
			out = append(out, api.ToProviderSummaryJSON(p))
		}
		return printIndentedJSON(w, map[string]any{"providers": out})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tNAME\tCREDENTIALS")
	for _, p := range all {
		names := make([]string, 0, len(p.Credentials))
		for _, f := range p.Credentials {
			names = append(names, f.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Code, p.Name, strings.Join(names, ","))
	}
	return tw.Flush()
}

func providerShow(w io.Writer, p catalog.Provider, asJSON bool) error {
	if asJSON {
		return printIndentedJSON(w, api.ToProviderJSON(p))
	}
	fmt.Fprintf(w, "%s (%s)\n", p.Name, p.Code)
	if len(p.Aliases) > 0 {
		fmt.Fprintf(w, "Aliases: %s\n", strings.Join(p.Aliases, ", "))
	}
	if p.URL != "" {
		fmt.Fprintf(w, "URL: %s\n", p.URL)
	}
	if p.Description != "" {
		fmt.Fprintf(w, "\n%s\n", p.Description)
	}
	printFields := func(title string, fs []catalog.Field) {
		fmt.Fprintf(w, "\n%s:\n", title)
		if len(fs) == 0 {
			fmt.Fprintln(w, "  (none)")
		}
		for _, f := range fs {
			fmt.Fprintf(w, "  %s\n      %s\n", f.Name, f.Description)
		}
	}
	// lego's metadata lists alternatives (and aliases) together: one
	// working set of them is needed, not all.
	printFields("Credentials (one working set of them is needed)", p.Credentials)
	printFields("Optional", p.Optional)
	return nil
}
