package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
)

// acme-dns accounts: credentials on a delegation label for clients that
// speak the acme-dns API (cert-manager and Caddy never register: an admin
// creates their accounts here and exports them).

func acmeDNSGroup() adminGroup {
	return adminGroup{name: "acme-dns", summary: "manage acme-dns accounts: credentials for clients of the acme-dns API", verbs: []adminVerb{
		{"create", "create an account for a domain and print it once", acmeDNSCreate},
		{"list", "list accounts (never their passwords)", acmeDNSList},
		{"show", "show one account; --reveal adds its password", acmeDNSShow},
		{"delete", "delete an account", acmeDNSDelete},
		{"export", "write accounts as cert-manager's secret or goacmedns's storage file", acmeDNSExport},
	}}
}

// defaultACMEDNSOwner owns the accounts the CLI creates without --owner.
const defaultACMEDNSOwner = "admin"

// acmeDNSServerURL is the acme-dns API's base URL as clients reach it:
// --server-url, else the public-url and acme-dns-path settings.
func (c *adminCmd) acmeDNSServerURL(flag string) (string, error) {
	if flag != "" {
		return strings.TrimSuffix(flag, "/"), nil
	}
	var p problems
	base := publicURL(&p, c.ss.get("public-url"), c.ss.get("api-listen"), c.ss.get("api-tls-cert") != "")
	path := pathPrefix(&p, "acme-dns-path", c.ss.get("acme-dns-path"))
	if err := p.err(); err != nil {
		return "", err
	}
	return base + path, nil
}

func acmeDNSCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "acme-dns create", "--domain DOMAIN [--owner PRINCIPAL] [--allow-from CIDR,...] [flags]",
		"Creates an acme-dns account for a domain and prints it, with its password, this once. A managed\n"+
			"challenge config must match the domain. A domain delegated already keeps its label: the new\n"+
			"account writes there, so the CNAME in place keeps working. The account belongs to --owner\n"+
			"(default "+defaultACMEDNSOwner+"); disabling or deleting that principal stops it.")
	domain := c.stringFlag("domain", "DOMAIN", "", "the domain the account serves (required); a wildcard means its base")
	owner := c.stringFlag("owner", "PRINCIPAL", defaultACMEDNSOwner, "the principal that owns the account")
	allow := c.listFlag("allow-from", "CIDR", "accept /update only from these source prefixes (default: any)")
	serverURL := c.stringFlag("server-url", "URL", "", "the acme-dns API's URL as clients reach it (default: public-url + acme-dns-path)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("domain"); err != nil {
		return err
	}
	prefixes := make([]netip.Prefix, 0, len(*allow))
	for _, s := range *allow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c.usageError("--allow-from %q: want a prefix such as 192.0.2.0/24", s)
		}
		prefixes = append(prefixes, p)
	}
	server, err := c.acmeDNSServerURL(*serverURL)
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		if err := s.checkZone(ctx); err != nil {
			return err
		}
		a, err := s.svc.RegisterACMEDNS(ctx, s.grant, hub.ACMEDNSRegistration{Domain: *domain, Owner: *owner, AllowFrom: prefixes})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToACMEDNSAccountJSON(a, server))
		}
		fmt.Fprintf(s.stdout, "created acme-dns account for %s (owner %s, managed challenge %s)\n\n"+
			"username:   %s\npassword:   %s\nfulldomain: %s\nsubdomain:  %s\nallowfrom:  %s\nserver url: %s\n\n"+
			"The password is shown this once (`acmehub acme-dns show %s --reveal` shows it again).\n"+
			"Add this record to the domain's DNS once, if it is not there yet:\n\n    _acme-challenge.%s. CNAME %s.\n",
			a.Domain, a.Owner, quoteOrDash(a.Config), a.Username, a.Password, a.FullDomain, a.Subdomain,
			orDash(prefixText(a.AllowFrom)), server, a.Username, a.Domain, a.FullDomain)
		return nil
	})
}

func prefixText(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// allACMEDNS pages through every account the filter selects.
func (s *adminSession) allACMEDNS(ctx context.Context, f hub.ACMEDNSFilter) ([]hub.ACMEDNSAccount, error) {
	f.Limit = hub.MaxACMEDNSLimit
	var all []hub.ACMEDNSAccount
	for {
		page, next, err := s.svc.ListACMEDNS(ctx, s.grant, f)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		f.AfterID = next
	}
}

func acmeDNSList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "acme-dns list", "[--owner PRINCIPAL] [--domain DOMAIN] [flags]", "Lists acme-dns accounts, by username; never their passwords.")
	owner := c.stringFlag("owner", "PRINCIPAL", "", "only the accounts of this principal")
	domain := c.stringFlag("domain", "DOMAIN", "", "only the accounts serving this domain")
	serverURL := c.stringFlag("server-url", "URL", "", "the acme-dns API's URL for --json (default: public-url + acme-dns-path)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	server, err := c.acmeDNSServerURL(*serverURL)
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		all, err := s.allACMEDNS(ctx, hub.ACMEDNSFilter{Owner: *owner, Domain: *domain})
		if err != nil {
			return err
		}
		if s.json {
			out := make([]api.ACMEDNSAccountJSON, 0, len(all))
			for _, a := range all {
				out = append(out, api.ToACMEDNSAccountJSON(a, server))
			}
			return s.printJSON(out)
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tDOMAIN\tFULLDOMAIN\tOWNER\tMANAGED_CHALLENGE\tCREATED\tLAST_USED")
		for _, a := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Username, orDash(a.Domain), a.FullDomain, a.Owner, orDash(a.Config),
				fmtTime(a.CreatedAt), fmtTime(a.LastUsedAt))
		}
		return tw.Flush()
	})
}

func acmeDNSShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "acme-dns show", "USERNAME [--reveal] [flags]", "Shows one acme-dns account; --reveal adds its password (audited).")
	reveal := c.boolFlag("reveal", "show the password too")
	serverURL := c.stringFlag("server-url", "URL", "", "the acme-dns API's URL as clients reach it (default: public-url + acme-dns-path)")
	rest, err := c.parse(args, 1, "the username")
	if err != nil {
		return err
	}
	server, err := c.acmeDNSServerURL(*serverURL)
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		a, err := s.svc.GetACMEDNS(ctx, s.grant, rest[0], *reveal)
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToACMEDNSAccountJSON(a, server))
		}
		fmt.Fprintf(s.stdout, "username:          %s\n", a.Username)
		if *reveal {
			fmt.Fprintf(s.stdout, "password:          %s\n", a.Password)
		}
		fmt.Fprintf(s.stdout, "domain:            %s\nfulldomain:        %s\nsubdomain:         %s\nallowfrom:         %s\n"+
			"owner:             %s\nmanaged challenge: %s\nserver url:        %s\ncreated:           %s by %s\nlast used:         %s\n",
			orDash(a.Domain), a.FullDomain, a.Subdomain, orDash(prefixText(a.AllowFrom)), a.Owner, quoteOrDash(a.Config), server,
			fmtTime(a.CreatedAt), orDash(a.CreatedBy), fmtTime(a.LastUsedAt))
		return nil
	})
}

func acmeDNSDelete(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "acme-dns delete", "USERNAME [flags]",
		"Deletes an acme-dns account. A label without a domain goes with its last account; a delegated\n"+
			"domain keeps its delegation (see `acmehub delegation delete`).")
	rest, err := c.parse(args, 1, "the username")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		a, err := s.svc.GetACMEDNS(ctx, s.grant, rest[0], false)
		if err != nil {
			return err
		}
		if err := s.svc.DeleteACMEDNS(ctx, s.grant, a.Username); err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToACMEDNSAccountJSON(a, ""))
		}
		fmt.Fprintf(s.stdout, "deleted acme-dns account %s (%s)\n", a.Username, orDash(a.Domain))
		return nil
	})
}

// Export formats.
const (
	exportCertManager = "cert-manager"
	exportGoACMEDNS   = "goacmedns"
)

func acmeDNSExport(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "acme-dns export", "--format cert-manager|goacmedns [--owner P] [--domain D ...] [--out FILE] [flags]",
		"Writes acme-dns accounts, with their passwords, as a JSON map from domain to\n"+
			"{fulldomain, subdomain, username, password, server_url}: the key cert-manager's acmeDNS solver\n"+
			"reads from its secret (cert-manager: each domain also under *.<domain>), or goacmedns's\n"+
			"storage file (lego, and other goacmedns users). Accounts without a domain cannot be looked up\n"+
			"by a domain and are left out (said on stderr). Of several accounts for one domain the newest\n"+
			"is written. Every password written is audited as revealed.")
	format := c.stringFlag("format", "FORMAT", "", "cert-manager or goacmedns (required)")
	owner := c.stringFlag("owner", "PRINCIPAL", "", "only the accounts of this principal")
	domains := c.listFlag("domain", "DOMAIN", "only the accounts serving these domains")
	out := c.stringFlag("out", "FILE", "", "write to FILE (mode 0600, replaced atomically) instead of stdout")
	serverURL := c.stringFlag("server-url", "URL", "", "the acme-dns API's URL as clients reach it (default: public-url + acme-dns-path)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("format"); err != nil {
		return err
	}
	if *format != exportCertManager && *format != exportGoACMEDNS {
		return c.usageError("--format %q: want %s or %s", *format, exportCertManager, exportGoACMEDNS)
	}
	server, err := c.acmeDNSServerURL(*serverURL)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, d := range *domains {
		want[strings.TrimPrefix(strings.TrimSuffix(strings.ToLower(d), "."), "*.")] = true
	}
	return c.withSession(ctx, func(s *adminSession) error {
		all, err := s.allACMEDNS(ctx, hub.ACMEDNSFilter{Owner: *owner})
		if err != nil {
			return err
		}
		best := map[string]hub.ACMEDNSAccount{}
		skipped := 0
		for _, a := range all {
			switch {
			case a.Domain == "":
				skipped++
			case len(want) > 0 && !want[a.Domain]:
			default:
				if cur, ok := best[a.Domain]; !ok || a.NewerThan(cur) {
					best[a.Domain] = a
				}
			}
		}
		if skipped > 0 {
			fmt.Fprintf(e.stderr, "acmehub acme-dns export: %d account(s) without a domain left out (clients find accounts by domain)\n", skipped)
		}
		for d := range want {
			if _, ok := best[d]; !ok {
				fmt.Fprintf(e.stderr, "acmehub acme-dns export: no account serves %s\n", d)
			}
		}
		m := map[string]api.ACMEDNSCredentialsJSON{}
		keys := make([]string, 0, len(best))
		for d := range best {
			keys = append(keys, d)
		}
		sort.Strings(keys)
		for _, d := range keys {
			a, err := s.svc.GetACMEDNS(ctx, s.grant, best[d].Username, true)
			if err != nil {
				return err
			}
			cred := api.ToACMEDNSCredentialsJSON(a, server)
			m[d] = cred
			if *format == exportCertManager {
				m["*."+d] = cred // cert-manager looks the account up by the challenge's domain
			}
		}
		data, err := json.MarshalIndent(m, "", "  ") //nolint:gosec // G117: writing the passwords is what export is for (to --out with mode 0600, or stdout)
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if *out == "" {
			_, err := s.stdout.Write(data)
			return err
		}
		if err := writeFileAtomic(*out, data, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "acmehub acme-dns export: wrote %d domain(s) to %s\n", len(best), *out)
		return nil
	})
}

// writeFileAtomic writes data to path with mode perm: a temporary file in
// the same directory, synced, then renamed over path, so a reader sees the
// old file or the new one, never a part, and never a wider mode.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
