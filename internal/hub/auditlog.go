package hub

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	ID          int64
	At          time.Time
	PrincipalID int64  // the acting principal; 0: none (failed authentication)
	TokenID     string // the token's client id, never its secret
	Source      string // the remote address
	Action      string // e.g. "challenge.present", "config.update"
	Target      string
	Domain      string
	ConfigID    int64
	Result      string // "ok", "denied", "refused", "error", "failed_auth", "rate_limited"
	Detail      string
}

// AuditQuery selects audit events; zero fields select everything the
// caller may read.
type AuditQuery struct {
	Since, Until time.Time // At >= Since, At < Until when not zero
	PrincipalID  int64
	Domain       string // base domain (an identifier is normalised to it)
	Action       string
	Result       string
	ConfigID     int64
	// Limit is the page size: 0 means store.DefaultAuditLimit, at most
	// store.MaxAuditLimit. BeforeID pages: pass the last ID seen.
	Limit    int
	BeforeID int64
}

// Page sizes of ListAudit.
const (
	DefaultAuditLimit = store.DefaultAuditLimit
	MaxAuditLimit     = store.MaxAuditLimit
)

// ListAudit returns audit events, newest first, within what the caller's
// roles may read: an admin reads everything; a managed challenge admin the
// events about managed challenge configs (for now every existing config);
// a managed challenge consumer only its own principal's events. The
// widest role the grant holds decides.
func (s *Service) ListAudit(ctx context.Context, g Grant, q AuditQuery) ([]AuditEvent, error) {
	scope := AuditNone
	for _, a := range g.Assignments {
		if a.Role.Allows(ActionReadAudit) {
			scope = max(scope, a.Role.AuditScope())
		}
	}
	if scope == AuditNone {
		return nil, ErrForbidden
	}
	switch {
	case q.Limit < 0 || q.Limit > MaxAuditLimit:
		return nil, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalid, q.Limit, MaxAuditLimit)
	case q.PrincipalID < 0 || q.ConfigID < 0 || q.BeforeID < 0:
		return nil, fmt.Errorf("%w: negative id", ErrInvalid)
	}
	f := store.AuditFilter{
		Since: q.Since, Until: q.Until, PrincipalID: q.PrincipalID, Action: q.Action, Result: q.Result,
		Limit: q.Limit, BeforeID: q.BeforeID,
	}
	if q.Domain != "" {
		base, _, err := rules.NormalizeIdentifier(q.Domain)
		if err != nil {
			return nil, fmt.Errorf("%w: domain: %w", ErrInvalid, err)
		}
		f.Domain = base
	}
	if q.ConfigID > 0 {
		f.ConfigIDs = []int64{q.ConfigID}
	}
	switch scope {
	case AuditAll:
	case AuditOwnConfigs:
		cfgs, err := s.currentConfigs(ctx)
		if err != nil {
			return nil, err
		}
		visible := make([]int64, 0, len(cfgs.byID))
		for id := range cfgs.byID {
			n, err := strconv.ParseInt(id, 10, 64)
			if err == nil {
				visible = append(visible, n)
			}
		}
		slices.Sort(visible)
		if q.ConfigID > 0 {
			visible = slices.DeleteFunc(visible, func(id int64) bool { return id != q.ConfigID })
		}
		f.ConfigIDs, f.RestrictConfigs = visible, true
	case AuditOwnRequests:
		if g.Principal.ID <= 0 || q.PrincipalID != 0 && q.PrincipalID != g.Principal.ID {
			return nil, ErrForbidden
		}
		f.PrincipalID = g.Principal.ID
	}
	evs, err := s.db.ListAudit(ctx, f)
	if err != nil {
		return nil, storeError("list audit", err)
	}
	out := make([]AuditEvent, len(evs))
	for i, e := range evs {
		out[i] = AuditEvent(e)
	}
	return out, nil
}
