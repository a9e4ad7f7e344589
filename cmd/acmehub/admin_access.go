package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
)

// Principals, role assignments and API tokens.

func principalGroup() adminGroup {
	return adminGroup{name: "principal", summary: "manage principals: the users and apps that own tokens and hold roles", verbs: []adminVerb{
		{"create", "create a principal (no roles yet)", principalCreate},
		{"list", "list principals with their roles", principalList},
		{"show", "show one principal with its roles and tokens", principalShow},
		{"update", "change a principal's description", principalUpdate},
		{"disable", "disable a principal: all its tokens are refused at once", func(ctx context.Context, args []string, e env) error {
			return principalSetEnabled(ctx, args, e, false)
		}},
		{"enable", "enable a disabled principal", func(ctx context.Context, args []string, e env) error {
			return principalSetEnabled(ctx, args, e, true)
		}},
		{"delete", "delete a principal with its role assignments and tokens", principalDelete},
	}}
}

func principalCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "principal create", "--name NAME --kind user|app [flags]",
		"Creates a principal. It holds no roles until `acmehub role add` gives it some.")
	name := c.stringFlag("name", "NAME", "", "the principal's name (required): 1-128 ASCII letters, digits, '.', '_', '@', '-'; unique regardless of case")
	kind := c.stringFlag("kind", "user|app", "", "user (a person) or app (a service principal) (required)")
	desc := c.stringFlag("description", "TEXT", "", "free text for people")
	disabled := c.boolFlag("disabled", "create it disabled")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("name", "kind"); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		p, err := s.svc.CreatePrincipal(ctx, s.grant, hub.NewPrincipal{Kind: *kind, Name: *name, Description: *desc, Disabled: *disabled})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToPrincipalJSON(p))
		}
		fmt.Fprintf(s.stdout, "created principal %q (id %d, %s, %s)\n", p.Name, p.ID, p.Kind, enabledWord(p.Enabled))
		return nil
	})
}

func principalList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "principal list", "[flags]", "Lists every principal with its roles, by name.")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		ps, err := s.svc.ListPrincipals(ctx, s.grant)
		if err != nil {
			return err
		}
		if s.json {
			out := make([]api.PrincipalJSON, 0, len(ps))
			for _, p := range ps {
				out = append(out, api.ToPrincipalJSON(p))
			}
			return s.printJSON(out)
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tSTATE\tROLES\tDESCRIPTION")
		for _, p := range ps {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Kind, enabledWord(p.Enabled), orDash(rolesText(p.Roles)), orDash(p.Description))
		}
		return tw.Flush()
	})
}

func principalShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "principal show", "NAME [flags]", "Shows one principal with its role assignments (with the ids `role remove` takes) and its tokens.")
	rest, err := c.parse(args, 1, "the principal's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, rest[0])
		if err != nil {
			return err
		}
		p, err := s.svc.GetPrincipal(ctx, s.grant, id)
		if err != nil {
			return err
		}
		toks, err := s.svc.ListTokens(ctx, s.grant, id)
		if err != nil {
			return err
		}
		now := time.Now()
		if s.json {
			out := struct {
				api.PrincipalJSON
				Tokens []tokenJSON `json:"tokens"`
			}{PrincipalJSON: api.ToPrincipalJSON(p), Tokens: make([]tokenJSON, 0, len(toks))}
			for _, t := range toks {
				out.Tokens = append(out.Tokens, toTokenJSON(t, p.Name, now))
			}
			return s.printJSON(out)
		}
		w := s.stdout
		fmt.Fprintf(w, "name:        %s\nid:          %d\nkind:        %s\nstate:       %s\ndescription: %s\ncreated:     %s\nupdated:     %s\n",
			p.Name, p.ID, p.Kind, enabledWord(p.Enabled), orDash(p.Description), fmtTime(p.CreatedAt), fmtTime(p.UpdatedAt))
		fmt.Fprintf(w, "\nroles:\n")
		writeRoles(w, p.Roles)
		fmt.Fprintf(w, "\ntokens:\n")
		writeTokens(w, "  ", toks, nil, now)
		return nil
	})
}

func principalUpdate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "principal update", "NAME --description TEXT [flags]", "Changes a principal's description. Names cannot change.")
	desc := c.stringFlag("description", "TEXT", "", "the new description (\"\" clears it)")
	rest, err := c.parse(args, 1, "the principal's name")
	if err != nil {
		return err
	}
	if !c.given("description") {
		return c.usageError("--description is required")
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, rest[0])
		if err != nil {
			return err
		}
		p, err := s.svc.UpdatePrincipal(ctx, s.grant, id, hub.PrincipalUpdate{Description: desc})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToPrincipalJSON(p))
		}
		fmt.Fprintf(s.stdout, "updated principal %q\n", p.Name)
		return nil
	})
}

func principalSetEnabled(ctx context.Context, args []string, e env, enabled bool) error {
	verb, about := "disable", "Disables a principal: every one of its tokens is refused from the next request on. "+
		"Disabling the last enabled admin is refused."
	if enabled {
		verb, about = "enable", "Enables a disabled principal: its tokens that are neither revoked nor expired work again."
	}
	c := newAdminCmd(e, "principal "+verb, "NAME [flags]", about)
	rest, err := c.parse(args, 1, "the principal's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, rest[0])
		if err != nil {
			return err
		}
		p, err := s.svc.UpdatePrincipal(ctx, s.grant, id, hub.PrincipalUpdate{Enabled: &enabled})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToPrincipalJSON(p))
		}
		fmt.Fprintf(s.stdout, "principal %q is %s\n", p.Name, enabledWord(p.Enabled))
		return nil
	})
}

func principalDelete(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "principal delete", "NAME [flags]",
		"Deletes a principal together with its role assignments and tokens. Deleting the last enabled admin is refused.")
	rest, err := c.parse(args, 1, "the principal's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, rest[0])
		if err != nil {
			return err
		}
		p, err := s.svc.GetPrincipal(ctx, s.grant, id)
		if err != nil {
			return err
		}
		if err := s.svc.DeletePrincipal(ctx, s.grant, id); err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToPrincipalJSON(p))
		}
		fmt.Fprintf(s.stdout, "deleted principal %q with its role assignments and tokens\n", p.Name)
		return nil
	})
}

func roleGroup() adminGroup {
	roles := make([]string, len(hub.Roles))
	for i, r := range hub.Roles {
		roles[i] = string(r)
	}
	return adminGroup{name: "role", summary: "manage role assignments (" + strings.Join(roles, ", ") + ")", verbs: []adminVerb{
		{"add", "give a principal a role, optionally restricted to domains", roleAdd},
		{"list", "list a principal's role assignments", roleList},
		{"remove", "remove a role assignment", roleRemove},
	}}
}

func roleAdd(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "role add", "--principal NAME --role ROLE [--domains RULE] [flags]",
		"Gives a principal a role. With --domains the role reaches only the domains the rule matches\n"+
			"(\"*.example.org\" matches example.org and one label below it); without it, every domain.\n"+
			"Rules apply to base names: a grant for www.example.org also lets *.www.example.org validate.")
	principal := c.stringFlag("principal", "NAME", "", "the principal (required)")
	role := c.stringFlag("role", "ROLE", "", "admin, managed_challenge_admin or managed_challenge_consumer (required)")
	domains := c.stringFlag("domains", "RULE", "", "domain match rule restricting the role, e.g. \"*.example.org; example.net\" (default: every domain)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("principal", "role"); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, *principal)
		if err != nil {
			return err
		}
		a, err := s.svc.AddRole(ctx, s.grant, id, *role, *domains)
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToRoleJSON(a))
		}
		fmt.Fprintf(s.stdout, "principal %q now holds %s (assignment id %d)\n", *principal, roleText(a), a.ID)
		return nil
	})
}

func roleList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "role list", "--principal NAME [flags]", "Lists a principal's role assignments.")
	principal := c.stringFlag("principal", "NAME", "", "the principal (required)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("principal"); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, *principal)
		if err != nil {
			return err
		}
		as, err := s.svc.ListRoles(ctx, s.grant, id)
		if err != nil {
			return err
		}
		if s.json {
			out := make([]api.RoleJSON, 0, len(as))
			for _, a := range as {
				out = append(out, api.ToRoleJSON(a))
			}
			return s.printJSON(out)
		}
		writeRoles(s.stdout, as)
		return nil
	})
}

func roleRemove(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "role remove", "--principal NAME --id ID [flags]",
		"Removes one role assignment (ids from `role list`); the principal's tokens lose it at once.\n"+
			"Removing the last enabled admin's admin role is refused.")
	principal := c.stringFlag("principal", "NAME", "", "the principal (required)")
	idFlag := c.stringFlag("id", "ID", "", "the role assignment's id (required)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("principal", "id"); err != nil {
		return err
	}
	aid, err := strconv.ParseInt(*idFlag, 10, 64)
	if err != nil || aid <= 0 {
		return c.usageError("--id %q: want the positive number `role list` shows", *idFlag)
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, *principal)
		if err != nil {
			return err
		}
		as, err := s.svc.ListRoles(ctx, s.grant, id)
		if err != nil {
			return err
		}
		var removed hub.RoleAssignment
		for _, a := range as {
			if a.ID == aid {
				removed = a
			}
		}
		if err := s.svc.RemoveRole(ctx, s.grant, id, aid); err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToRoleJSON(removed))
		}
		fmt.Fprintf(s.stdout, "removed %s from principal %q\n", roleText(removed), *principal)
		return nil
	})
}

func tokenGroup() adminGroup {
	return adminGroup{name: "token", summary: "manage API tokens", verbs: []adminVerb{
		{"create", "create a token for a principal and print it once", tokenCreate},
		{"list", "list tokens (never their secrets)", tokenList},
		{"show", "show one token", tokenShow},
		{"revoke", "revoke a token at once", tokenRevoke},
	}}
}

func tokenCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "token create", "--principal NAME [flags]",
		"Creates an API token owned by a principal and prints it once, as <client_id>.<secret> (for\n"+
			"Authorization: Bearer) and as client id and secret. Only a hash of the secret is stored.")
	principal := c.stringFlag("principal", "NAME", "", "the owner (required)")
	title := c.stringFlag("title", "TEXT", "", "what the token is for, for people")
	desc := c.stringFlag("description", "TEXT", "", "more free text")
	roles := c.listFlag("roles", "ROLE[,ROLE]", "narrow the token to some of its owner's roles (default: all of them)")
	cidrs := c.listFlag("allow-cidr", "CIDR", "source prefix the token may be used from, e.g. 10.0.0.0/8 (default: any)")
	expiresIn := c.stringFlag("expires-in", "DURATION", "", "lifetime, e.g. 720h (default: no expiry)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("principal"); err != nil {
		return err
	}
	var expires time.Time
	if *expiresIn != "" {
		d, err := time.ParseDuration(*expiresIn)
		if err != nil || d <= 0 {
			return c.usageError("--expires-in %q: want a positive duration such as 720h", *expiresIn)
		}
		expires = time.Now().Add(d)
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.principalID(ctx, *principal)
		if err != nil {
			return err
		}
		t, err := s.svc.CreateToken(ctx, s.grant, hub.TokenRequest{
			PrincipalID: id, Title: *title, Description: *desc, Roles: *roles, AllowCIDRs: *cidrs, ExpiresAt: expires,
		})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(issuedTokenJSON{
				tokenJSON: toTokenJSON(t.TokenInfo, *principal, time.Now()),
				Token:     t.Credential.String(), ClientSecret: t.Credential.Secret,
			})
		}
		w := s.stdout
		fmt.Fprintf(w, "Token for principal %q (shown once; keep it safe):\n\n    %s\n\n", *principal, t.Credential.String())
		fmt.Fprintf(w, "client id:     %s\nclient secret: %s\n", t.Credential.ClientID, t.Credential.Secret)
		if len(t.Roles) > 0 {
			fmt.Fprintf(w, "roles:         %s\n", joinRoles(t.Roles))
		}
		if len(t.AllowCIDRs) > 0 {
			fmt.Fprintf(w, "sources:       %s\n", strings.Join(t.AllowCIDRs, ", "))
		}
		if !t.ExpiresAt.IsZero() {
			fmt.Fprintf(w, "expires:       %s\n", fmtTime(t.ExpiresAt))
		}
		fmt.Fprintf(w, "\nUse it as: Authorization: Bearer <token>\n")
		return nil
	})
}

func tokenList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "token list", "[--principal NAME] [flags]", "Lists tokens, revoked and expired ones included; never their secrets.")
	principal := c.stringFlag("principal", "NAME", "", "only this principal's tokens (default: every token)")
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
		toks, err := s.svc.ListTokens(ctx, s.grant, id)
		if err != nil {
			return err
		}
		names, err := s.principalNames(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		if s.json {
			out := make([]tokenJSON, 0, len(toks))
			for _, t := range toks {
				out = append(out, toTokenJSON(t, names[t.PrincipalID], now))
			}
			return s.printJSON(out)
		}
		writeTokens(s.stdout, "", toks, names, now)
		return nil
	})
}

func tokenShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "token show", "CLIENT_ID [flags]", "Shows one token; never its secret.")
	rest, err := c.parse(args, 1, "the token's client id")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		t, err := s.svc.GetToken(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		return s.printToken(ctx, t)
	})
}

func tokenRevoke(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "token revoke", "CLIENT_ID [flags]",
		"Revokes a token: it is refused from the next request on. Revoking a revoked token changes nothing.")
	rest, err := c.parse(args, 1, "the token's client id")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		t, err := s.svc.RevokeToken(ctx, s.grant, rest[0])
		if err != nil {
			return err
		}
		if s.json {
			return s.printToken(ctx, t)
		}
		fmt.Fprintf(s.stdout, "revoked token %s\n", t.ClientID)
		return nil
	})
}

func (s *adminSession) printToken(ctx context.Context, t hub.TokenInfo) error {
	names, err := s.principalNames(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if s.json {
		return s.printJSON(toTokenJSON(t, names[t.PrincipalID], now))
	}
	roles := "all of the owner's"
	if len(t.Roles) > 0 {
		roles = joinRoles(t.Roles)
	}
	sources := "any"
	if len(t.AllowCIDRs) > 0 {
		sources = strings.Join(t.AllowCIDRs, ", ")
	}
	fmt.Fprintf(s.stdout, "client id:   %s\nprincipal:   %s\nstatus:      %s\ntitle:       %s\ndescription: %s\nroles:       %s\n"+
		"sources:     %s\ncreated:     %s\nexpires:     %s\nrevoked:     %s\nlast used:   %s\n",
		t.ClientID, ownerName(names, t.PrincipalID), api.TokenStatus(t, now), orDash(t.Title), orDash(t.Description), roles,
		sources, fmtTime(t.CreatedAt), fmtTime(t.ExpiresAt), fmtTime(t.RevokedAt), fmtTime(t.LastUsedAt))
	return nil
}

func writeRoles(w io.Writer, as []hub.RoleAssignment) {
	if len(as) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tROLE\tDOMAINS\tCREATED")
	for _, a := range as {
		domains := a.Domains
		if domains == "" {
			domains = "(every domain)"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", a.ID, a.Role, domains, fmtTime(a.CreatedAt))
	}
	_ = tw.Flush() // the writer's errors are the caller's stdout
}

// writeTokens lists tokens, each line after indent; names maps owners'
// ids to names (nil: leave the owner out).
func writeTokens(w io.Writer, indent string, toks []hub.TokenInfo, names map[int64]string, now time.Time) {
	if len(toks) == 0 {
		fmt.Fprintln(w, indent+"(none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	owner := func(id int64) string {
		if names == nil {
			return ""
		}
		return ownerName(names, id) + "\t"
	}
	head := indent + "CLIENT_ID\t"
	if names != nil {
		head += "PRINCIPAL\t"
	}
	fmt.Fprintln(tw, head+"STATUS\tTITLE\tROLES\tSOURCES\tEXPIRES\tLAST_USED")
	for _, t := range toks {
		roles := "(all)"
		if len(t.Roles) > 0 {
			roles = joinRoles(t.Roles)
		}
		sources := "(any)"
		if len(t.AllowCIDRs) > 0 {
			sources = strings.Join(t.AllowCIDRs, ",")
		}
		fmt.Fprintf(tw, "%s%s\t%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, t.ClientID, owner(t.PrincipalID), api.TokenStatus(t, now), orDash(t.Title),
			roles, sources, fmtTime(t.ExpiresAt), fmtTime(t.LastUsedAt))
	}
	_ = tw.Flush() // the writer's errors are the caller's stdout
}

func ownerName(names map[int64]string, id int64) string {
	if n, ok := names[id]; ok {
		return n
	}
	if id == 0 {
		return "-"
	}
	return fmt.Sprintf("principal:%d", id)
}

func enabledWord(enabled bool) string {
	if enabled {
		return "enabled"
	}
	return "disabled"
}

func roleText(a hub.RoleAssignment) string {
	if a.Domains == "" {
		return string(a.Role) + " for every domain"
	}
	return string(a.Role) + " for " + a.Domains
}

func rolesText(as []hub.RoleAssignment) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = string(a.Role)
		if a.Domains != "" {
			parts[i] += "(" + a.Domains + ")"
		}
	}
	return strings.Join(parts, " ")
}

func joinRoles(rs []hub.Role) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r)
	}
	return strings.Join(parts, ",")
}
