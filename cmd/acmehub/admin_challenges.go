package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// Managed challenge configs, delegations and the audit log.

func managedGroup() adminGroup {
	return adminGroup{name: "managed-challenge", summary: "manage managed challenge configs: which domains the hub serves, and how", verbs: []adminVerb{
		{"create", "create a managed challenge config", managedCreate},
		{"list", "list managed challenge configs", managedList},
		{"show", "show one managed challenge config", managedShow},
		{"update", "change a managed challenge config", managedUpdate},
		{"delete", "delete a managed challenge config (its delegations stay, unbound)", managedDelete},
	}}
}

// managedFlags are the fields create and update share.
type managedFlags struct {
	rule, ttl, lifetime, provider, credential, engine *string
}

func addManagedFlags(c *adminCmd, ruleUsage string) managedFlags {
	return managedFlags{
		rule: c.stringFlag("rule", "RULE", "", ruleUsage),
		ttl:  c.stringFlag("ttl", "DURATION", "", "TTL of the TXT records, whole seconds, e.g. 60s (default: the server's --txt-ttl)"),
		lifetime: c.stringFlag("lifetime", "DURATION", "",
			"how long a value lives before the sweep removes it, e.g. 1h (default: the server's --value-lifetime)"),
		provider: c.stringFlag("provider", "PROVIDER", "",
			"how values are published: delegated (default: served by the hub through a CNAME), or an upstream provider's code "+
				"(`acmehub providers list`) writing into the domain's own DNS"),
		credential: c.stringFlag("credential", "NAME", "", "upstream: the stored credential to write with (`acmehub credential create`)"),
		engine: c.stringFlag("engine", "ENGINE", "",
			"upstream: value (the hub's own driver: rfc2136, cloudflare, route53; any client) or lego (lego's provider "+
				"in a worker process; clients must send the key authorization); default: value where the provider has it"),
	}
}

const ruleHelp = "domain match rule: ';'- or ','-separated patterns; \"example.org\" matches that name, " +
	"\"*.example.org\" it and one label below, \"*\" every domain"

// seconds reads a duration flag: a Go duration ("60s", "1h") or whole
// seconds ("60"); "" is 0, the server's default.
func seconds(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d%time.Second != 0 {
		return 0, fmt.Errorf("--%s %q: want whole seconds as a duration such as 60s or 1h", name, v)
	}
	return d, nil
}

func managedCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "managed-challenge create", "--name NAME --rule RULE [flags]",
		"Creates a managed challenge config. Challenges for a base name go to the config whose pattern ranks\n"+
			"best: the name itself, then *.<name>, then *.<parent>, then *. A rule that would tie with another\n"+
			"config's for some name is refused.")
	name := c.stringFlag("name", "NAME", "", "the config's name (required), unique")
	f := addManagedFlags(c, ruleHelp+" (required)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if err := c.require("name", "rule"); err != nil {
		return err
	}
	ttl, err := seconds("ttl", *f.ttl)
	if err != nil {
		return c.usageError("%v", err)
	}
	lifetime, err := seconds("lifetime", *f.lifetime)
	if err != nil {
		return c.usageError("%v", err)
	}
	return c.withSession(ctx, func(s *adminSession) error {
		m, err := s.svc.CreateManagedChallenge(ctx, s.grant, hub.ManagedChallengeRequest{
			Name: *name, Provider: *f.provider, Credential: *f.credential, Engine: *f.engine, Rule: *f.rule,
			TTL: ttl, Lifetime: lifetime,
		})
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToManagedJSON(m))
		}
		fmt.Fprintf(s.stdout, "created managed challenge %q (id %d): %s for %s\n", m.Name, m.ID, providerText(m), m.Rule)
		return nil
	})
}

func managedList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "managed-challenge list", "[flags]", "Lists every managed challenge config, by creation.")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		ms, err := s.svc.ListManagedChallenges(ctx, s.grant)
		if err != nil {
			return err
		}
		if s.json {
			out := make([]api.ManagedChallengeJSON, 0, len(ms))
			for _, m := range ms {
				out = append(out, api.ToManagedJSON(m))
			}
			return s.printJSON(out)
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPROVIDER\tTTL\tLIFETIME\tRULE")
		for _, m := range ms {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Name, providerText(m), durText(m.TTL), durText(m.Lifetime), m.Rule)
		}
		return tw.Flush()
	})
}

func managedShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "managed-challenge show", "NAME [flags]", "Shows one managed challenge config.")
	rest, err := c.parse(args, 1, "the config's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.configID(ctx, rest[0])
		if err != nil {
			return err
		}
		m, err := s.svc.GetManagedChallenge(ctx, s.grant, id)
		if err != nil {
			return err
		}
		return s.printManaged(m)
	})
}

func (s *adminSession) printManaged(m hub.ManagedChallenge) error {
	if s.json {
		return s.printJSON(api.ToManagedJSON(m))
	}
	fmt.Fprintf(s.stdout, "name:       %s\nid:         %d\ntype:       %s\nprovider:   %s\nrule:       %s\nttl:        %s\n"+
		"lifetime:   %s\ncreated:    %s by %s\nupdated:    %s\n",
		m.Name, m.ID, m.ChallengeType, providerText(m), m.Rule, durText(m.TTL), durText(m.Lifetime),
		fmtTime(m.CreatedAt), orDash(m.CreatedBy), fmtTime(m.UpdatedAt))
	return nil
}

func managedUpdate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "managed-challenge update", "NAME [--rename NEW] [--rule RULE] [--ttl D] [--lifetime D] [flags]",
		"Changes a managed challenge config; fields not given stay as they are. Challenges choose by the\n"+
			"new rule at once; a rule that would tie with another config's is refused.")
	rename := c.stringFlag("rename", "NEW", "", "a new name")
	f := addManagedFlags(c, ruleHelp)
	rest, err := c.parse(args, 1, "the config's name")
	if err != nil {
		return err
	}
	ttl, err := seconds("ttl", *f.ttl)
	if err != nil {
		return c.usageError("%v", err)
	}
	lifetime, err := seconds("lifetime", *f.lifetime)
	if err != nil {
		return c.usageError("%v", err)
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.configID(ctx, rest[0])
		if err != nil {
			return err
		}
		cur, err := s.svc.GetManagedChallenge(ctx, s.grant, id)
		if err != nil {
			return err
		}
		req := hub.ManagedChallengeRequest{Name: cur.Name, ChallengeType: cur.ChallengeType, Provider: cur.Provider,
			Credential: cur.Credential, Engine: cur.Engine, Rule: cur.Rule, TTL: cur.TTL, Lifetime: cur.Lifetime}
		if c.given("rename") {
			req.Name = *rename
		}
		if c.given("rule") {
			req.Rule = *f.rule
		}
		if c.given("provider") && req.Provider != *f.provider {
			// Another provider: the credential and engine of the old one
			// do not carry over.
			req.Provider, req.Credential, req.Engine = *f.provider, "", ""
		}
		if c.given("credential") {
			req.Credential = *f.credential
		}
		if c.given("engine") {
			req.Engine = *f.engine
		}
		if c.given("ttl") {
			req.TTL = ttl
		}
		if c.given("lifetime") {
			req.Lifetime = lifetime
		}
		m, err := s.svc.UpdateManagedChallenge(ctx, s.grant, id, req)
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToManagedJSON(m))
		}
		fmt.Fprintf(s.stdout, "updated managed challenge %q (id %d): %s for %s\n", m.Name, m.ID, providerText(m), m.Rule)
		return nil
	})
}

func managedDelete(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "managed-challenge delete", "NAME [flags]",
		"Deletes a managed challenge config. Its delegations stay, bound to none; challenges for their\n"+
			"domains go to whichever config matches next, or are refused.")
	rest, err := c.parse(args, 1, "the config's name")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.configID(ctx, rest[0])
		if err != nil {
			return err
		}
		m, err := s.svc.GetManagedChallenge(ctx, s.grant, id)
		if err != nil {
			return err
		}
		if err := s.svc.DeleteManagedChallenge(ctx, s.grant, id); err != nil {
			return err
		}
		if s.json {
			return s.printJSON(api.ToManagedJSON(m))
		}
		fmt.Fprintf(s.stdout, "deleted managed challenge %q\n", m.Name)
		return nil
	})
}

func delegationGroup() adminGroup {
	return adminGroup{name: "delegation", summary: "manage delegations: the CNAMEs from _acme-challenge.<domain> into the hub zone", verbs: []adminVerb{
		{"create", "delegate a domain and print the CNAME record to add", delegationCreate},
		{"list", "list delegations", delegationList},
		{"show", "show a domain's delegation and its CNAME record", delegationShow},
		{"delete", "delete a domain's delegation and its values", delegationDelete},
		{"move", "make another managed challenge serve a delegated domain", delegationMove},
		{"onboard", "delegate domains (or a zone file's names) and print the records to add", delegationOnboard},
		{"check", "check now that a domain's CNAME is in place on its nameservers", delegationCheck},
	}}
}

func delegationCreate(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation create", "DOMAIN [flags]",
		"Delegates a domain's DNS-01 challenges to the hub, as its first challenge would, and prints the\n"+
			"CNAME record its owner adds once. A managed challenge config must match the domain. A domain\n"+
			"delegated already keeps its delegation. Delegation names are made in --zone: give the CLI the\n"+
			"server's settings (--config) when the zone is not the default.")
	rest, err := c.parse(args, 1, "the domain")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		if err := s.checkZone(ctx); err != nil {
			return err
		}
		d, created, err := s.svc.CreateDelegation(ctx, s.grant, rest[0])
		if errors.Is(err, hub.ErrForbidden) {
			return fmt.Errorf("no managed challenge config matches %s: create one first (`acmehub managed-challenge create --rule ...`)", rest[0])
		}
		if err != nil {
			return err
		}
		if s.json {
			out := toDelegationJSON(d)
			out.Created = &created
			return s.printJSON(out)
		}
		state := "delegated"
		if !created {
			state = "already delegated"
		}
		fmt.Fprintf(s.stdout, "%s %s (managed challenge %s); add this record to its DNS once:\n\n    %s\n",
			d.Domain, state, quoteOrDash(d.ConfigName), d.CNAME.ZoneLine())
		return nil
	})
}

// checkZone refuses to create delegation names in a zone other than the
// one the existing delegations live in: the CLI's zone setting then
// differs from the server's.
func (s *adminSession) checkZone(ctx context.Context) error {
	ds, err := s.db.ListDelegations(ctx, store.DelegationFilter{Limit: 1})
	if err != nil {
		return fmt.Errorf("list delegations: %w", err)
	}
	if len(ds) == 1 && !zone.InZone(s.zone, ds[0].Name) {
		return fmt.Errorf("the zone setting is %s, but the delegations in this database are not in it (%s is one): "+
			"give the CLI the server's settings (--config or --zone)", s.zone, ds[0].Name)
	}
	return nil
}

func delegationList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation list", "[flags]", "Lists delegations, by creation.")
	config := c.stringFlag("managed-challenge", "NAME", "", "only those bound to this managed challenge config")
	unbound := c.boolFlag("unbound", "only those bound to no config (their config was deleted)")
	under := c.stringFlag("under", "DOMAIN", "", "only this domain and the domains below it")
	state := c.stringFlag("state", "STATE", "", "only those whose last check found STATE: "+strings.Join(hub.CheckStates, ", "))
	unused := c.boolFlag("unused", "only those without a challenge for delegation-unused-after")
	limit := c.stringFlag("limit", "N", "", "at most this many (default: all)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	if *unbound && *config != "" {
		return c.usageError("--unbound and --managed-challenge exclude each other")
	}
	most := 0
	if *limit != "" {
		n, err := strconv.Atoi(*limit)
		if err != nil || n < 1 {
			return c.usageError("--limit %q: want a positive whole number", *limit)
		}
		most = n
	}
	return c.withSession(ctx, func(s *adminSession) error {
		f := hub.DelegationFilter{Unbound: *unbound, Under: *under, Limit: hub.MaxDelegationLimit, CheckState: *state, Unused: *unused}
		if *config != "" {
			id, err := s.configID(ctx, *config)
			if err != nil {
				return err
			}
			f.ConfigID = id
		}
		var all []hub.Delegation
		for {
			if most > 0 {
				f.Limit = min(hub.MaxDelegationLimit, most-len(all))
			}
			ds, next, err := s.svc.ListDelegations(ctx, s.grant, f)
			if err != nil {
				return err
			}
			all = append(all, ds...)
			if next == 0 || (most > 0 && len(all) >= most) {
				break
			}
			f.AfterID = next
		}
		if s.json {
			out := make([]delegationJSON, 0, len(all))
			for _, d := range all {
				out = append(out, toDelegationJSON(d))
			}
			return s.printJSON(out)
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tCNAME_TARGET\tMANAGED_CHALLENGE\tCREATED\tLAST_USED\tCHECK")
		for _, d := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(d.Domain), d.Target, orDash(d.ConfigName), fmtTime(d.CreatedAt), fmtTime(d.LastUsedAt),
				orDash(d.Check.State))
		}
		return tw.Flush()
	})
}

func delegationShow(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation show", "DOMAIN [flags]",
		"Shows a domain's delegation and the CNAME record to add. DOMAIN may also be a wildcard,\n"+
			"_acme-challenge.<domain>, or the delegation's name in the hub zone.")
	rest, err := c.parse(args, 1, "the domain")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		d, err := s.getDelegation(ctx, rest[0])
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(toDelegationJSON(d))
		}
		fmt.Fprintf(s.stdout, "domain:            %s\nid:                %d\ncname target:      %s\nmanaged challenge: %s\n"+
			"created:           %s by %s\nlast used:         %s\n\nrecord to add:\n\n    %s\n",
			d.Domain, d.ID, d.Target, quoteOrDash(d.ConfigName), fmtTime(d.CreatedAt), orDash(d.CreatedBy), fmtTime(d.LastUsedAt),
			d.CNAME.ZoneLine())
		printCheck(s.stdout, d.Check)
		return nil
	})
}

// getDelegation is GetDelegation with a clear message for a domain that
// is not delegated.
func (s *adminSession) getDelegation(ctx context.Context, domain string) (hub.Delegation, error) {
	d, err := s.svc.GetDelegation(ctx, s.grant, domain)
	if errors.Is(err, hub.ErrNotFound) || errors.Is(err, hub.ErrForbidden) {
		return d, fmt.Errorf("%s is not delegated (see `acmehub delegation list`)", domain)
	}
	return d, err
}

func delegationDelete(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation delete", "DOMAIN [flags]",
		"Deletes a domain's delegation with the values published at its name, which stops resolving at\n"+
			"once. A later challenge for the domain gets a new name, so its owner must change the CNAME.")
	rest, err := c.parse(args, 1, "the domain")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		d, err := s.getDelegation(ctx, rest[0])
		if err != nil {
			return err
		}
		if err := s.svc.DeleteDelegation(ctx, s.grant, d.Domain); err != nil {
			return err
		}
		if s.json {
			return s.printJSON(toDelegationJSON(d))
		}
		fmt.Fprintf(s.stdout, "deleted the delegation of %s (%s); its owner can remove the CNAME\n", d.Domain, d.Target)
		return nil
	})
}

func delegationMove(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation move", "DOMAIN --to NAME [flags]",
		"Makes a managed challenge config serve a delegated domain. Configs are chosen by their rules, so\n"+
			"the domain's exact pattern moves from the config that has it (if any) to the target config.\n"+
			"The CNAME stays as it is.")
	to := c.stringFlag("to", "NAME", "", "the managed challenge config to serve the domain (required)")
	rest, err := c.parse(args, 1, "the domain")
	if err != nil {
		return err
	}
	if err := c.require("to"); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		id, err := s.configID(ctx, *to)
		if err != nil {
			return err
		}
		if _, err := s.getDelegation(ctx, rest[0]); err != nil {
			return err
		}
		d, err := s.svc.MoveDelegation(ctx, s.grant, rest[0], id)
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(toDelegationJSON(d))
		}
		fmt.Fprintf(s.stdout, "%s is now served by managed challenge %s\n", d.Domain, quoteOrDash(d.ConfigName))
		return nil
	})
}

func auditGroup() adminGroup {
	return adminGroup{name: "audit", summary: "read the audit log", verbs: []adminVerb{
		{"list", "list audit events, newest first", auditList},
	}}
}

func auditList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "audit list", "[flags]",
		"Lists audit events, newest first. Changes made with these commands show the actor\n"+
			"cli:<os user> (as token_id) and the source \"local\".")
	since := c.stringFlag("since", "DURATION|TIME", "", "only events from this long ago (e.g. 24h) or this RFC 3339 time on")
	until := c.stringFlag("until", "DURATION|TIME", "", "only events before this long ago or this RFC 3339 time")
	principal := c.stringFlag("principal", "NAME", "", "only events of this principal")
	domain := c.stringFlag("domain", "DOMAIN", "", "only events about this domain (its base name)")
	action := c.stringFlag("action", "ACTION", "", "only this action, e.g. challenge.present, token.create, principal.update")
	result := c.stringFlag("result", "RESULT", "", "only this result: ok, denied, refused, error, failed_auth, rate_limited")
	config := c.stringFlag("managed-challenge", "NAME", "", "only events about this managed challenge config")
	limit := c.stringFlag("limit", "N", strconv.Itoa(hub.DefaultAuditLimit), fmt.Sprintf("at most this many events, 1 to %d", hub.MaxAuditLimit))
	before := c.stringFlag("before", "ID", "", "only events older than this event id (to page on)")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	now := time.Now()
	q := hub.AuditQuery{Domain: *domain, Action: *action, Result: *result}
	var err error
	if q.Since, err = sinceTime("since", *since, now); err != nil {
		return c.usageError("%v", err)
	}
	if q.Until, err = sinceTime("until", *until, now); err != nil {
		return c.usageError("%v", err)
	}
	if q.Limit, err = strconv.Atoi(*limit); err != nil || q.Limit < 1 || q.Limit > hub.MaxAuditLimit {
		return c.usageError("--limit %q: want a whole number from 1 to %d", *limit, hub.MaxAuditLimit)
	}
	if *before != "" {
		if q.BeforeID, err = strconv.ParseInt(*before, 10, 64); err != nil || q.BeforeID < 1 {
			return c.usageError("--before %q: want an event id", *before)
		}
	}
	return c.withSession(ctx, func(s *adminSession) error {
		if *principal != "" {
			if q.PrincipalID, err = s.principalID(ctx, *principal); err != nil {
				return err
			}
		}
		if *config != "" {
			if q.ConfigID, err = s.configID(ctx, *config); err != nil {
				return err
			}
		}
		evs, err := s.svc.ListAudit(ctx, s.grant, q)
		if err != nil {
			return err
		}
		names, err := s.principalNames(ctx)
		if err != nil {
			return err
		}
		if s.json {
			out := make([]auditEventJSON, 0, len(evs))
			for _, ev := range evs {
				out = append(out, toAuditJSON(ev, names[ev.PrincipalID]))
			}
			return s.printJSON(out)
		}
		writeAudit(s.stdout, evs, names)
		return nil
	})
}

// sinceTime reads a time flag: a duration back from now, or RFC 3339.
func sinceTime(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want a duration such as 24h or a time such as 2026-01-02T15:04:05Z", name, v)
	}
	return t, nil
}

func writeAudit(w io.Writer, evs []hub.AuditEvent, names map[int64]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tACTOR\tSOURCE\tACTION\tRESULT\tTARGET\tDOMAIN\tDETAIL")
	for _, ev := range evs {
		actor := ev.TokenID
		if ev.PrincipalID != 0 {
			actor = ownerName(names, ev.PrincipalID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, fmtTime(ev.At), orDash(actor), orDash(ev.Source), ev.Action,
			ev.Result, orDash(ev.Target), orDash(ev.Domain), orDash(strings.ReplaceAll(ev.Detail, "\t", " ")))
	}
	_ = tw.Flush() // the writer's errors are the caller's stdout
}

func durText(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

func quoteOrDash(s string) string {
	if s == "" {
		return "(none)"
	}
	return strconv.Quote(s)
}

// Delegation checks and onboarding.

// checkSettingNames are the serve settings the delegation commands read.
var checkSettingNames = []string{"check-resolver", "check-nameserver-addr", "check-private-addresses", "check-timeout",
	"delegation-unused-after"}

// addCheckSettings adds the check settings to an admin command, as serve
// documents them.
func addCheckSettings(ss *settingSet) {
	serve := serveSettings()
	for _, n := range checkSettingNames {
		s := serve.byName[n]
		if s.list {
			ss.addList(n, s.def, s.usage+", as the server has it")
		} else {
			ss.add(n, s.def, s.usage+", as the server has it")
		}
	}
}

// checkSettings are the admin commands' view of the check settings.
type checkSettings struct {
	cfg         dnscheck.Config
	unusedAfter time.Duration
}

// readCheckSettings reads the check settings like buildServeConfig does.
func readCheckSettings(p *problems, ss *settingSet) *checkSettings {
	c := &checkSettings{}
	c.cfg.Timeout, c.unusedAfter = checkDurations(p, ss)
	c.cfg.AllowPrivate = boolSetting(p, ss, "check-private-addresses")
	c.cfg.Recursive, c.cfg.Addrs = checkServers(p, ss)
	return c
}

// client is the DNS check client, or nil (checks off).
func (c *checkSettings) client() *dnscheck.Client {
	cl, err := dnscheck.New(c.cfg)
	if err != nil {
		return nil // checks off: the check command says so
	}
	return cl
}

// printCheck prints a delegation's last check for people.
func printCheck(w io.Writer, c hub.DelegationCheck) {
	if c.State == "" {
		fmt.Fprintf(w, "\ncheck:             never (`acmehub delegation check DOMAIN`)\n")
		return
	}
	fmt.Fprintf(w, "\ncheck:             %s since %s (checked %s)\n%s\n", c.State, fmtTime(c.Since), fmtTime(c.CheckedAt), c.Detail)
	if c.Evidence == nil {
		return
	}
	line := func(e hub.ServerEvidence) {
		says := "no CNAME"
		if e.CNAME != "" {
			says = "CNAME " + e.CNAME
		}
		if len(e.Other) > 0 {
			says += "; " + strings.Join(e.Other, "; ")
		}
		if e.Error != "" {
			says = "error: " + e.Error
		} else if e.Rcode != "" {
			says = e.Rcode + ", " + says
		}
		fmt.Fprintf(w, "    %s %s: %s\n", e.Server, orDash(e.Addr), says)
	}
	fmt.Fprintln(w, "evidence:")
	line(c.Evidence.Recursive)
	for _, e := range c.Evidence.Nameservers {
		line(e)
	}
}

func delegationCheck(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation check", "DOMAIN [flags]",
		"Checks now, through the recursive resolver and each nameserver of the domain, that\n"+
			"_acme-challenge.<domain> is a CNAME to the delegation's name, stores the result on the\n"+
			"delegation (a change of state is audited) and prints it with the evidence. States: ok,\n"+
			"missing, wrong_target, conflict, inconsistent, unreachable, invalid (see README, Domain owners).\n"+
			"Give the CLI the server's check settings (--config).")
	rest, err := c.parse(args, 1, "the domain")
	if err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		if _, err := s.getDelegation(ctx, rest[0]); err != nil {
			return err
		}
		d, err := s.svc.CheckDelegation(ctx, s.grant, rest[0])
		if errors.Is(err, hub.ErrChecksOff) {
			return errors.New("delegation checks are off: no recursive resolver was found; set check-resolver (or give the server's settings with --config)")
		}
		if err != nil {
			return err
		}
		if s.json {
			return s.printJSON(toDelegationJSON(d))
		}
		fmt.Fprintf(s.stdout, "%s: %s\n", d.Domain, d.Check.State)
		printCheck(s.stdout, d.Check)
		return nil
	})
}

func delegationOnboard(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "delegation onboard", "DOMAIN... [flags]",
		"Delegates each domain (or each name of a zone file) as `delegation create` would, and prints\n"+
			"per domain the record its owner adds: created, existing (delegated already), or refused with\n"+
			"the reason. One refused domain does not stop the others. Zone file names: every owner name,\n"+
			"\"*.x\" as x, names with a label starting with \"_\" skipped.")
	zoneFile := c.stringFlag("zone-file", "FILE", "", "also onboard the names of this zone file")
	origin := c.stringFlag("origin", "DOMAIN", "", "origin of the zone file's relative names when it has no $ORIGIN")
	rest, err := c.parse(args, -1, "")
	if err != nil {
		return err
	}
	domains := rest
	if *zoneFile != "" {
		f, err := os.Open(*zoneFile)
		if err != nil {
			return fmt.Errorf("zone file: %w", err)
		}
		names, err := hub.ZoneFileDomains(ctx, f, *origin)
		_ = f.Close() // read-only
		if err != nil {
			return fmt.Errorf("%s: %w", *zoneFile, err)
		}
		domains = append(domains, names...)
	}
	if len(domains) == 0 {
		return c.usageError("give at least one DOMAIN, or --zone-file with names")
	}
	return c.withSession(ctx, func(s *adminSession) error {
		if err := s.checkZone(ctx); err != nil {
			return err
		}
		res, err := s.svc.Onboard(ctx, s.grant, domains)
		if err != nil {
			return err
		}
		if s.json {
			out := make([]api.OnboardResultJSON, 0, len(res))
			for _, r := range res {
				out = append(out, api.ToOnboardJSON(r))
			}
			return s.printJSON(out)
		}
		refused := 0
		for _, r := range res {
			switch r.Outcome {
			case hub.OnboardRefused:
				refused++
				fmt.Fprintf(s.stdout, "; %s: refused: %s\n", r.Input, r.Reason)
			default:
				fmt.Fprintf(s.stdout, "%s ; %s, %s\n", r.Delegation.CNAME.ZoneLine(), r.Domain, r.Outcome)
			}
		}
		if refused > 0 {
			return fmt.Errorf("%d of %d domains refused", refused, len(res))
		}
		return nil
	})
}

// providerText is a config's provider as the CLI shows it: the credential
// and engine of an upstream one follow it.
func providerText(m hub.ManagedChallenge) string {
	if m.Provider == hub.ProviderDelegated {
		return m.Provider
	}
	t := m.Provider + " (credential " + orDash(m.Credential)
	if m.Engine != "" {
		t += ", engine " + m.Engine
	}
	return t + ")"
}
