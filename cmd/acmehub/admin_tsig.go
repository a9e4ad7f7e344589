package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
)

// `acmehub tsig ...`: TSIG keys for the RFC 2136 gateway. A TSIG key is a
// token of kind tsig (see internal/hub/tsig.go): the same owner, narrowing,
// allow-list, expiry and revocation; its secret is stored sealed.

func tsigGroup() adminGroup {
	return adminGroup{name: "tsig", summary: "manage TSIG keys for RFC 2136 clients (certbot, lego, cert-manager, nsupdate)", verbs: []adminVerb{
		{"create", "create a TSIG key for a principal and print it once", tsigCreate},
		{"list", "list TSIG keys (never their secrets)", tsigList},
		{"show", "show one TSIG key", tsigShow},
		{"revoke", "revoke a TSIG key at once", tsigRevoke},
	}}
}

// TSIG key output forms (--format).
const (
	tsigFormatAll         = "all"
	tsigFormatBIND        = "bind"
	tsigFormatCertbot     = "certbot"
	tsigFormatLego        = "lego"
	tsigFormatCertManager = "cert-manager"
)

var tsigFormats = []string{tsigFormatAll, tsigFormatBIND, tsigFormatCertbot, tsigFormatLego, tsigFormatCertManager}

func tsigCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "tsig create", "--principal NAME [flags]",
		"Creates a TSIG key owned by a principal and prints it once, in the forms RFC 2136 clients\n"+
			"take: a BIND key clause (named.conf, nsupdate -k), certbot-dns-rfc2136 credentials, lego's\n"+
			"environment and a cert-manager Secret with its solver. The secret is stored sealed and\n"+
			"cannot be shown again. A TSIG key signs DNS UPDATEs only; it never works on the HTTP API.")
	principal := c.stringFlag("principal", "NAME", "", "the owner (required)")
	name := c.stringFlag("name", "KEYNAME", "", "the key name, a DNS name (default: acmehub-<10 random characters>.)")
	algorithm := c.stringFlag("algorithm", "ALG", "hmac-sha256",
		"hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512 (certbot and cert-manager\n"+
			"      default to hmac-md5 and lego to hmac-sha1; lego v4.35.2 refuses hmac-md5, cert-manager lacks sha224/384)")
	title := c.stringFlag("title", "TEXT", "", "what the key is for, for people")
	roles := c.listFlag("roles", "ROLE[,ROLE]", "narrow the key to some of its owner's roles (default: all of them)")
	cidrs := c.listFlag("allow-cidr", "CIDR", "source prefix signed messages may come from, e.g. 10.0.0.0/8 (default: any)")
	expiresIn := c.stringFlag("expires-in", "DURATION", "", "lifetime, e.g. 720h (default: no expiry)")
	server := c.stringFlag("server", "HOST", "", "the hub's DNS address as clients reach it, for the forms; certbot wants an IP address\n"+
		"      (default: the placeholder "+api.TSIGPlaceholderServer+", to be edited)")
	portFlag := c.stringFlag("port", "PORT", "53", "the hub's DNS port, for the forms")
	format := c.stringFlag("format", "FORM", tsigFormatAll, "all, bind, certbot, lego or cert-manager: the form(s) to print;\n"+
		"      one form alone is printed bare, ready for a file")
	out := c.stringFlag("out", "FILE", "", "write the output to FILE (mode 0600, replaced atomically) instead of stdout")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("principal"); err != nil {
		return err
	}
	if !slices.Contains(tsigFormats, *format) {
		return c.usageError("--format %q: want one of %s", *format, strings.Join(tsigFormats, ", "))
	}
	port, err := strconv.Atoi(*portFlag)
	if err != nil || port < 1 || port > 65535 {
		return c.usageError("--port %q: want a port number from 1 to 65535", *portFlag)
	}
	req := hub.TSIGKeyRequest{Name: *name, Algorithm: *algorithm, Title: *title}
	if *expiresIn != "" {
		d, err := time.ParseDuration(*expiresIn)
		if err != nil || d <= 0 {
			return c.usageError("--expires-in %q: want a positive duration such as 720h", *expiresIn)
		}
		req.ExpiresIn = d
	}
	for _, r := range *roles {
		role, err := hub.ParseRole(r)
		if err != nil {
			return c.usageError("--roles: %v", err)
		}
		req.Roles = append(req.Roles, role)
	}
	for _, s := range *cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c.usageError("--allow-cidr %q: want a prefix such as 192.0.2.0/24 or 2001:db8::/32", s)
		}
		req.AllowCIDRs = append(req.AllowCIDRs, p)
	}
	return c.withSession(ctx, func(s *adminSession) error {
		// By name or id, as every admin command takes principals.
		id, err := s.principalID(ctx, *principal)
		if err != nil {
			return err
		}
		req.PrincipalID = id
		k, err := s.svc.CreateTSIGKey(ctx, s.grant, req)
		if err != nil {
			return err
		}
		issued := api.ToIssuedTSIGKeyJSON(k, *server, port, time.Now())
		var buf bytes.Buffer
		if s.json {
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			if err := enc.Encode(issued); err != nil { //nolint:gosec // G117: the new key's secret is shown once, which is what create is for
				return err
			}
		} else {
			writeTSIGForms(&buf, issued, *format)
		}
		if *out == "" {
			_, err := s.stdout.Write(buf.Bytes())
			return err
		}
		if err := writeFileAtomic(*out, buf.Bytes(), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(s.stdout, "created TSIG key %s (%s) for principal %q; its secret is in %s only\n",
			k.Name, issued.Algorithm, k.Principal, *out)
		return nil
	})
}

// writeTSIGForms prints one form bare, or every form under a heading.
func writeTSIGForms(w io.Writer, k api.IssuedTSIGKeyJSON, format string) {
	forms := []struct{ format, heading, body string }{
		{tsigFormatBIND, "BIND key clause (named.conf; nsupdate -k FILE)", k.Forms.BIND},
		{tsigFormatCertbot, "certbot-dns-rfc2136 credentials (--dns-rfc2136-credentials FILE, mode 0600)", k.Forms.Certbot},
		{tsigFormatLego, "lego rfc2136 environment (lego --dns rfc2136)", k.Forms.Lego},
		{tsigFormatCertManager, "cert-manager Secret and rfc2136 solver", k.Forms.CertManager},
	}
	if format != tsigFormatAll {
		for _, f := range forms {
			if f.format == format {
				_, _ = io.WriteString(w, f.body) // a bytes.Buffer: no error
			}
		}
		return
	}
	fmt.Fprintf(w, "TSIG key %s (%s) for principal %q, shown once; keep it safe.\n\nsecret: %s\n",
		k.Name, k.Algorithm, k.Principal, k.Secret)
	for _, f := range forms {
		fmt.Fprintf(w, "\n## %s\n\n%s", f.heading, f.body)
	}
}

func tsigList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "tsig list", "[--principal NAME] [flags]", "Lists TSIG keys, revoked and expired ones included; never their secrets.")
	principal := c.stringFlag("principal", "NAME", "", "only this principal's keys (default: every key)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		var id int64
		if *principal != "" {
			var err error
			if id, err = s.principalID(ctx, *principal); err != nil {
				return err
			}
		}
		keys, err := s.svc.ListTSIGKeys(ctx, s.grant, id)
		if err != nil {
			return err
		}
		names, err := s.principalNames(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		if s.json {
			out := make([]tsigKeyJSON, 0, len(keys))
			for _, k := range keys {
				out = append(out, tsigKeyJSON{api.ToTSIGKeyJSON(k, now), names[k.PrincipalID]})
			}
			return s.printJSON(out)
		}
		if len(keys) == 0 {
			fmt.Fprintln(s.stdout, "(none)")
			return nil
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tALGORITHM\tPRINCIPAL\tSTATUS\tEXPIRES\tLAST USED\tTITLE")
		for _, k := range keys {
			j := api.ToTSIGKeyJSON(k, now)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Algorithm, ownerName(names, k.PrincipalID), j.Status,
				fmtTime(k.ExpiresAt), fmtTime(k.LastUsedAt), orDash(k.Title))
		}
		return tw.Flush()
	})
}

// tsigKeyJSON is the API's key plus its owner's name.
type tsigKeyJSON struct {
	api.TSIGKeyJSON
	Principal string `json:"principal,omitempty"`
}

func tsigShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "tsig show", "NAME [flags]", "Shows one TSIG key; never its secret.")
	rest, err := c.parse(args, 1, "the key name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		k, err := s.svc.GetTSIGKey(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		return s.printTSIGKey(ctx, k)
	})
}

func tsigRevoke(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "tsig revoke", "NAME [flags]",
		"Revokes a TSIG key: the next message signed with it is refused. Revoking a revoked key changes nothing.")
	rest, err := c.parse(args, 1, "the key name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		k, err := s.svc.RevokeTSIGKey(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		if s.json {
			return s.printTSIGKey(ctx, k)
		}
		fmt.Fprintf(s.stdout, "revoked TSIG key %s\n", k.ClientID)
		return nil
	})
}

func (s *adminSession) printTSIGKey(ctx context.Context, k hub.TokenInfo) error {
	names, err := s.principalNames(ctx)
	if err != nil {
		return err
	}
	j := api.ToTSIGKeyJSON(k, time.Now())
	if s.json {
		return s.printJSON(tsigKeyJSON{j, names[k.PrincipalID]})
	}
	roles := "all of the owner's"
	if len(k.Roles) > 0 {
		roles = joinRoles(k.Roles)
	}
	sources := "any"
	if len(k.AllowCIDRs) > 0 {
		sources = strings.Join(k.AllowCIDRs, ", ")
	}
	fmt.Fprintf(s.stdout, "name:       %s\nalgorithm:  %s\nprincipal:  %s\nstatus:     %s\ntitle:      %s\nroles:      %s\n"+
		"sources:    %s\ncreated:    %s\nexpires:    %s\nrevoked:    %s\nlast used:  %s\n",
		j.Name, j.Algorithm, ownerName(names, k.PrincipalID), j.Status, orDash(k.Title), roles,
		sources, fmtTime(k.CreatedAt), fmtTime(k.ExpiresAt), fmtTime(k.RevokedAt), fmtTime(k.LastUsedAt))
	return nil
}
