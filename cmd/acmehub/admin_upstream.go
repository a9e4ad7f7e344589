package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
)

// Values the hub wrote into domains' own DNS through upstream providers.

func upstreamRecordGroup() adminGroup {
	return adminGroup{name: "upstream-record", summary: "values written into domains' own DNS through upstream providers, and failed removals", verbs: []adminVerb{
		{"list", "list upstream records (--state live|removing|failed|adding|cleaning)", upstreamRecordList},
		{"retry", "remove an upstream record's value now (forgotten on success)", upstreamRecordRetry},
		{"forget", "forget an upstream record without touching the upstream DNS", upstreamRecordForget},
	}}
}

func upstreamRecordList(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "upstream-record list", "[--state STATE] [flags]",
		"Lists the values the hub wrote into domains' own DNS, by id. State removing: a removal failed and\n"+
			"is retried with backoff; failed: the hub gave up (see --upstream-max-attempts): remove the value by\n"+
			"hand and forget the record, or retry it.")
	state := c.stringFlag("state", "STATE", "", "only records in this state: adding, live, removing, cleaning or failed")
	if _, err := c.parse(args, 0, ""); err != nil {
		return err
	}
	return c.withSession(ctx, func(s *adminSession) error {
		var all []hub.UpstreamRecord
		var after int64
		for {
			recs, err := s.svc.ListUpstreamRecords(ctx, s.grant, *state, after, 1000)
			if err != nil {
				return err
			}
			all = append(all, recs...)
			if len(recs) < 1000 {
				break
			}
			after = recs[len(recs)-1].ID
		}
		if s.json {
			out := make([]api.UpstreamRecordJSON, 0, len(all))
			for _, r := range all {
				out = append(out, api.ToUpstreamRecordJSON(r))
			}
			return s.printJSON(out)
		}
		tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tPROVIDER\tFQDN\tEXPIRES\tATTEMPTS\tLAST ERROR")
		for _, r := range all {
			fmt.Fprintf(tw, "%d\t%s\t%s (%s)\t%s\t%s\t%d\t%s\n", r.ID, r.State, r.Provider, r.Engine, r.FQDN,
				fmtTime(r.ExpiresAt), r.Attempts, orDash(r.LastError))
		}
		return tw.Flush()
	})
}

func upstreamRecordRetry(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "upstream-record retry", "ID [flags]", "Removes an upstream record's value now, with the credential that wrote it.")
	return upstreamRecordByID(ctx, c, args, func(s *adminSession, id int64) error {
		if err := s.svc.RetryUpstreamRecord(ctx, s.grant, id); err != nil {
			return err
		}
		fmt.Fprintf(s.stdout, "removed upstream record %d\n", id)
		return nil
	})
}

func upstreamRecordForget(ctx context.Context, args []string, e env) error {
	c := newAdminCmd(e, "upstream-record forget", "ID [flags]",
		"Forgets an upstream record without touching the upstream DNS: for a value removed by hand, or a zone that is gone.")
	return upstreamRecordByID(ctx, c, args, func(s *adminSession, id int64) error {
		if err := s.svc.ForgetUpstreamRecord(ctx, s.grant, id); err != nil {
			return err
		}
		fmt.Fprintf(s.stdout, "forgot upstream record %d\n", id)
		return nil
	})
}

func upstreamRecordByID(ctx context.Context, c *adminCmd, args []string, f func(s *adminSession, id int64) error) error {
	rest, err := c.parse(args, 1, "the record's id")
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || id <= 0 {
		return c.usageError("ID %q: want a positive whole number (see `acmehub upstream-record list`)", rest[0])
	}
	return c.withSession(ctx, func(s *adminSession) error { return f(s, id) })
}
