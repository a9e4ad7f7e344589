package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/rules"
	"github.com/acmehub/acmehub/store"
)

// ErrUpstream means the upstream provider call failed; the message names
// the provider and its error (drivers keep secrets out of their errors).
var ErrUpstream = errors.New("upstream provider failed")

// Upstreams makes the drivers of stored credentials
// (internal/upstream/registry in production, fakes in tests).
type Upstreams interface {
	// ValueDriver returns provider's value-level driver over fields, or
	// an error wrapping upstream.ErrNoDriver or upstream.ErrConfig.
	ValueDriver(provider string, fields map[string]string) (upstream.Driver, error)
	// KeyAuthDriver returns lego's provider for one credential version
	// (key), or an error wrapping upstream.ErrNoDriver.
	KeyAuthDriver(key, provider string, fields map[string]string) (upstream.KeyAuthDriver, error)
	HasValueDriver(provider string) bool
	HasKeyAuthDriver(provider string) bool
	// ValueProviders are the providers with a value-level driver, sorted
	// (named in errors).
	ValueProviders() []string
	// ReplacesSet reports whether lego's provider replaces the whole TXT
	// set at a name on Present (so two values cannot coexist through it).
	ReplacesSet(provider string) bool
}

// UpstreamStore is what upstream records add to the store.
type UpstreamStore interface {
	BeginUpstreamRecord(ctx context.Context, r store.UpstreamRecord, lim store.UpstreamLimits) (store.UpstreamRecord, bool, error)
	SetUpstreamRecordState(ctx context.Context, id int64, from, to string, attempts int, lastError string, next time.Time) error
	ClaimUpstreamRecord(ctx context.Context, rec store.UpstreamRecord, lease time.Time) (store.UpstreamRecord, error)
	AbandonUpstreamAdding(ctx context.Context, rec store.UpstreamRecord, now time.Time) error
	ExpireUpstreamRecord(ctx context.Context, id int64, now time.Time) error
	DeleteUpstreamRecord(ctx context.Context, id int64, from string) error
	UpstreamRecord(ctx context.Context, id int64) (store.UpstreamRecord, error)
	UpstreamRecordsAt(ctx context.Context, fqdn, value string) ([]store.UpstreamRecord, error)
	DueUpstreamRecords(ctx context.Context, now, staleAdding time.Time, limit int) ([]store.UpstreamRecord, error)
	ListUpstreamRecords(ctx context.Context, state string, afterID int64, limit int) ([]store.UpstreamRecord, error)
	CountUpstreamRecords(ctx context.Context) (map[string]int, error)
	HasUpstreamRecords(ctx context.Context) (bool, error)
}

// Bounds of upstream work.
const (
	// defaultUpstreamAttempts is Config.UpstreamMaxAttempts when 0.
	defaultUpstreamAttempts = 12
	// upstreamRetryBase and upstreamRetryMax bound the backoff between
	// removal attempts: base * 2^(attempts-1), at most max.
	upstreamRetryBase = 30 * time.Second
	upstreamRetryMax  = time.Hour
	// defaultCallTimeout is Config.UpstreamCallTimeout when 0.
	defaultCallTimeout = 2 * time.Minute
	// maxPerName caps the values written at one upstream name, as the
	// hub zone caps its names (DESIGN.md).
	maxPerName = 32
	// sweepBatch is how many due records one sweep round takes.
	sweepBatch = 64
	// maxUpstreamError caps a provider's error text kept and shown.
	maxUpstreamError = 300
)

// Upstream engines, as configs and records name them.
const (
	EngineAuto  = ""
	EngineValue = store.EngineValue
	EngineLego  = store.EngineLego
)

// valueDrivers caches value-level drivers per credential version, so a
// driver's connections and caches live across calls.
type valueDrivers struct {
	mu sync.Mutex
	m  map[string]upstream.Driver // "id/generation" -> driver
}

func (v *valueDrivers) get(key string, open func() (upstream.Driver, error)) (upstream.Driver, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d, ok := v.m[key]; ok {
		return d, nil
	}
	d, err := open()
	if err != nil {
		return nil, err
	}
	if v.m == nil || len(v.m) >= 1024 {
		v.m = make(map[string]upstream.Driver) // old versions go with the rest
	}
	v.m[key] = d
	return d, nil
}

// chooseEngine resolves a config's engine for a request: hasKeyAuth says
// whether the client sent the key authorization (lego's providers need it).
func (s *Service) chooseEngine(cfg store.ChallengeConfig, hasKeyAuth bool) (string, error) {
	ups := s.cfg.Upstreams
	if ups == nil {
		return "", fmt.Errorf("%w: config %q uses provider %q but this hub runs without upstream drivers", ErrUnsupported, cfg.Name, cfg.Provider)
	}
	engine := cfg.Engine
	if engine == EngineAuto {
		engine = EngineLego
		if ups.HasValueDriver(cfg.Provider) {
			engine = EngineValue
		}
	}
	if engine == EngineLego && !hasKeyAuth {
		return "", fmt.Errorf("%w: config %q writes through lego's %q provider, which needs the key authorization, "+
			"and this client sent only the TXT value; either delegate the domain to the hub (CNAME), "+
			"or use a provider with a value-level driver (%s), "+
			"or send the key authorization (lego httpreq RAW mode, or \"key_authorization\" in the native API)",
			ErrUnsupported, cfg.Name, cfg.Provider, strings.Join(ups.ValueProviders(), ", "))
	}
	return engine, nil
}

// presentUpstream writes value into the domain's own DNS through cfg's
// provider. The record is persisted before the call, so a crash or a
// failure leaves a removal to retry, never a forgotten value.
func (s *Service) presentUpstream(ctx context.Context, g Grant, req PresentRequest, base, value string, cfg store.ChallengeConfig) (Challenge, error) {
	ch := s.upstreamChallenge(base, value, cfg)
	engine, err := s.chooseEngine(cfg, req.KeyAuthorization != "")
	if err != nil {
		return ch, err
	}
	ttl, expires, err := s.ttlAndExpiry(cfg.TTL, cfg.Lifetime)
	if err != nil {
		return ch, err
	}
	rec := store.UpstreamRecord{
		ConfigID: cfg.ID, CredentialID: cfg.CredentialID, Provider: cfg.Provider, Engine: engine,
		Domain: base, FQDN: ch.RecordName, Value: value, TTL: ttl, State: store.UpstreamAdding,
		CreatedBy: g.Principal.Name, CreatedAt: s.now(), ExpiresAt: expires,
	}
	if engine == EngineLego {
		rec.KeyAuth = req.KeyAuthorization
	}
	lim := store.UpstreamLimits{
		Exclusive: engine == EngineLego && s.cfg.Upstreams.ReplacesSet(cfg.Provider),
		PerName:   maxPerName, PerCreator: s.cfg.MaxValuesPerPrincipal,
	}
	got, existing, err := s.db.BeginUpstreamRecord(ctx, rec, lim)
	switch {
	case errors.Is(err, store.ErrConflict):
		return ch, fmt.Errorf("%w: lego's %q provider replaces every TXT value at %s, and another value is published there "+
			"(since %s); it would be overwritten, so this one is refused: wait for its clean-up, or use engine %q (the "+
			"value-level driver keeps several values)",
			ErrConflict, cfg.Provider, rec.FQDN, got.CreatedAt.UTC().Format(time.RFC3339), EngineValue)
	case errors.Is(err, store.ErrBusy):
		return ch, fmt.Errorf("%w: this value is being written or removed at %s right now; try again in a moment", ErrConflict, rec.FQDN)
	case err != nil:
		return ch, storeError("record upstream value", err)
	}
	ch.TTL, ch.ExpiresAt, ch.CreatedAt, ch.Principal = ttl, got.ExpiresAt, got.CreatedAt, g.Principal.ID
	if existing && got.State == store.UpstreamLive {
		ch.Live = true // published already; its expiry moved
		return ch, nil
	}
	if err := s.upstreamCall(ctx, g, got, "present"); err != nil {
		// Whether the provider wrote anything is unknown: remove it soon.
		s.afterFailure(ctx, got, store.UpstreamAdding, err)
		return ch, err
	}
	if err := s.db.SetUpstreamRecordState(ctx, got.ID, store.UpstreamAdding, store.UpstreamLive, 0, "", time.Time{}); err != nil {
		// Only the sweep takes an adding row, and only long after any
		// call's timeout: this call outlived it.
		return ch, fmt.Errorf("%w: the write to %s took longer than the hub allows and is being undone; try again", ErrUpstream, rec.FQDN)
	}
	ch.Live = true
	return ch, nil
}

// cleanupUpstream removes value at base's challenge name from the
// domain's own DNS, with the credential that wrote it. A failed removal
// stays due and is retried in the background.
func (s *Service) cleanupUpstream(ctx context.Context, g Grant, base, value string, cfg store.ChallengeConfig) (int, Challenge, error) {
	ch := s.upstreamChallenge(base, value, cfg)
	n, err := s.cleanupUpstreamAt(ctx, g, ch.RecordName, value)
	return n, ch, err
}

// cleanupUpstreamAt removes every record of value at fqdn, whichever
// config or credential wrote it (the domain's config may have changed
// since). A record whose write is in flight is made due at once: the sweep
// removes it right after the write; one being removed counts as removed.
func (s *Service) cleanupUpstreamAt(ctx context.Context, g Grant, fqdn, value string) (int, error) {
	recs, err := s.db.UpstreamRecordsAt(ctx, fqdn, value)
	if err != nil {
		return 0, storeError("find upstream values", err)
	}
	n := 0
	var errs []error
	for _, rec := range recs {
		switch rec.State {
		case store.UpstreamAdding:
			if err := s.db.ExpireUpstreamRecord(ctx, rec.ID, s.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, storeError("expire upstream value", err))
				continue
			}
			n++
		case store.UpstreamCleaning:
			n++
		default:
			removed, err := s.removeUpstream(ctx, g, rec)
			if err != nil {
				errs = append(errs, err)
			}
			if removed || err != nil {
				n++ // removed, or its removal is now the hub's to retry
			}
		}
	}
	return n, errors.Join(errs...)
}

// removeUpstream claims rec (as read), removes its value upstream and
// forgets it, or leaves it due for another attempt. removed is false when
// another writer changed the row first (it is theirs now).
func (s *Service) removeUpstream(ctx context.Context, g Grant, rec store.UpstreamRecord) (removed bool, err error) {
	claimed, err := s.db.ClaimUpstreamRecord(ctx, rec, s.now().Add(s.claimLease()))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storeError("claim upstream value", err)
	}
	if err := s.upstreamCall(ctx, g, claimed, "cleanup"); err != nil {
		s.afterFailure(ctx, claimed, store.UpstreamCleaning, err)
		return false, err
	}
	if err := s.db.DeleteUpstreamRecord(ctx, claimed.ID, store.UpstreamCleaning); err != nil && !errors.Is(err, store.ErrNotFound) {
		return true, storeError("forget upstream value", err)
	}
	return true, nil
}

// afterFailure schedules the removal of rec after a failed call made in
// state from (adding: a present, which counts no removal attempt;
// cleaning: a removal): the next attempt backs off, and after the last one
// the record is reported as failed (API, metric) instead of being
// forgotten.
func (s *Service) afterFailure(ctx context.Context, rec store.UpstreamRecord, from string, callErr error) {
	attempts := rec.Attempts
	if from == store.UpstreamCleaning {
		attempts++
	}
	state, next := store.UpstreamRemoving, s.now().Add(retryDelay(attempts))
	if attempts >= s.maxUpstreamAttempts() {
		state, next = store.UpstreamFailed, time.Time{}
	}
	// A fresh context: the caller's may be the one that just timed out.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.db.SetUpstreamRecordState(wctx, rec.ID, from, state, attempts, errorText(callErr), next); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.ErrorContext(ctx, "upstream record: cannot schedule its removal", "id", rec.ID, "err", err)
	}
}

// callTimeout bounds one provider call (the drivers and the lego workers
// get the same setting).
func (s *Service) callTimeout() time.Duration {
	if s.cfg.UpstreamCallTimeout > 0 {
		return s.cfg.UpstreamCallTimeout
	}
	return defaultCallTimeout
}

// claimLease is how long a removal holds its record, and staleAdding how
// long an adding record may stay so: both well past any call's timeout
// (and a wait for the worker's queue), so only a claimant or writer that
// died is overtaken.
func (s *Service) claimLease() time.Duration { return max(10*time.Minute, 3*s.callTimeout()) }

func (s *Service) maxUpstreamAttempts() int {
	if s.cfg.UpstreamMaxAttempts > 0 {
		return s.cfg.UpstreamMaxAttempts
	}
	return defaultUpstreamAttempts
}

// retryDelay is the backoff before removal attempt n+1.
func retryDelay(attempts int) time.Duration {
	d := upstreamRetryBase
	for i := 1; i < attempts && d < upstreamRetryMax; i++ {
		d *= 2
	}
	return min(d, upstreamRetryMax)
}

// upstreamCall runs one provider call for rec (op "present" or
// "cleanup"), audits it (provider, domain, result, duration) and reports
// it to the metrics. g is who asked; the zero Grant is the hub itself (the
// background sweep).
func (s *Service) upstreamCall(ctx context.Context, g Grant, rec store.UpstreamRecord, op string) error {
	start := time.Now()
	err := s.callProvider(ctx, rec, op)
	elapsed := time.Since(start)
	result := "ok"
	if err != nil {
		result = "error"
		err = fmt.Errorf("%w: %s (%s) %s of %s: %s", ErrUpstream, rec.Provider, rec.Engine, op, rec.FQDN, errorText(err))
	}
	if s.cfg.UpstreamObserve != nil {
		s.cfg.UpstreamObserve(rec.Provider, rec.Engine, op, result, elapsed)
	}
	detail := fmt.Sprintf("provider %s (%s); %s; %dms", rec.Provider, rec.Engine, rec.FQDN, elapsed.Milliseconds())
	if err != nil {
		detail += "; " + errorText(err)
	}
	s.audit(ctx, store.AuditEvent{
		At: s.now(), PrincipalID: g.Principal.ID, TokenID: g.Principal.TokenID, Action: "upstream." + op,
		Domain: rec.Domain, ConfigID: rec.ConfigID, Result: result, Detail: detail,
	})
	return err
}

// cleanupStrayUpstream removes upstream records of value at base's
// challenge name when the domain's config is delegated now: written
// before the config changed, they would otherwise stay until expiry (and
// a TXT there blocks the owner's CNAME). gen is the upstream records
// generation (challengeGens): while no record exists the look-up, which
// would cost every delegated clean-up a query, is skipped.
func (s *Service) cleanupStrayUpstream(ctx context.Context, g Grant, base, value string, gen int64) (int, error) {
	if h := s.upstreamHint.Load(); h == nil || h.gen != gen {
		exist, err := s.db.HasUpstreamRecords(ctx)
		if err != nil {
			return 0, storeError("any upstream values", err)
		}
		h = &upstreamHint{gen: gen, any: exist}
		s.upstreamHint.Store(h)
		if !exist {
			return 0, nil
		}
	} else if !h.any {
		return 0, nil
	}
	return s.cleanupUpstreamAt(ctx, g, s.upstreamChallenge(base, value, store.ChallengeConfig{}).RecordName, value)
}

// upstreamHint is whether upstream records existed at a generation.
type upstreamHint struct {
	gen int64
	any bool
}

// callProvider opens rec's credential and calls its driver.
func (s *Service) callProvider(ctx context.Context, rec store.UpstreamRecord, op string) error {
	ups := s.cfg.Upstreams
	if ups == nil {
		return errors.New("this hub runs without upstream drivers")
	}
	cred, err := s.credential(ctx, rec.CredentialID)
	if err != nil {
		return fmt.Errorf("credential %d: %w", rec.CredentialID, err)
	}
	provider, fields, err := s.OpenCredential(ctx, rec.CredentialID)
	if err != nil {
		return err
	}
	key := strconv.FormatInt(cred.ID, 10) + "/" + strconv.FormatInt(cred.Generation, 10)
	switch rec.Engine {
	case EngineValue:
		d, err := s.upstreamValue.get(key, func() (upstream.Driver, error) { return ups.ValueDriver(provider, fields) })
		if err != nil {
			return err
		}
		if op == "present" {
			return d.Add(ctx, rec.FQDN, rec.Value, rec.TTL)
		}
		return d.Remove(ctx, rec.FQDN, rec.Value)
	case EngineLego:
		d, err := ups.KeyAuthDriver(key, provider, fields)
		if err != nil {
			return err
		}
		if rec.KeyAuth == "" {
			return errors.New("no key authorization recorded for this value")
		}
		if op == "present" {
			return d.Present(ctx, rec.Domain, rec.KeyAuth)
		}
		return d.CleanUp(ctx, rec.Domain, rec.KeyAuth)
	}
	return fmt.Errorf("unknown engine %q", rec.Engine)
}

// statusUpstream reports whether value is published at base's challenge
// name by the hub.
func (s *Service) statusUpstream(ctx context.Context, g Grant, base, value string, cfg store.ChallengeConfig) (Challenge, error) {
	ch := s.upstreamChallenge(base, value, cfg)
	recs, err := s.db.UpstreamRecordsAt(ctx, ch.RecordName, value)
	if err != nil {
		return ch, storeError("find upstream values", err)
	}
	for _, r := range recs {
		if r.State == store.UpstreamLive {
			ch.Live, ch.TTL, ch.CreatedAt, ch.ExpiresAt, ch.Principal = true, r.TTL, r.CreatedAt, r.ExpiresAt, g.Principal.ID
			ch.Provider = r.Provider
		}
	}
	return ch, nil
}

// upstreamChallenge is a challenge written into the domain's own DNS: no
// hub-zone target; its id names the record itself.
func (s *Service) upstreamChallenge(base, value string, cfg store.ChallengeConfig) Challenge {
	name := rules.ChallengeName(base) + "."
	return Challenge{
		ID: challengeID(name, value, 0), Domain: base, RecordName: name,
		Config: cfg.Name, Provider: cfg.Provider, Value: value,
	}
}

// RunUpstreamSweeper removes upstream values that are due (expired, or a
// failed removal's next attempt) every interval until ctx ends.
func (s *Service) RunUpstreamSweeper(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.SweepUpstream(ctx)
		}
	}
}

// SweepUpstream runs one round of due removals and returns how many it
// tried.
func (s *Service) SweepUpstream(ctx context.Context) int {
	now := s.now()
	due, err := s.db.DueUpstreamRecords(ctx, now, now.Add(-s.claimLease()), sweepBatch)
	if err != nil {
		s.log.ErrorContext(ctx, "upstream sweep", "err", err)
		return 0
	}
	for _, rec := range due {
		if ctx.Err() != nil {
			break
		}
		if rec.State == store.UpstreamAdding {
			// Its writer died: what it wrote is unknown, so remove it.
			if err := s.db.AbandonUpstreamAdding(ctx, rec, now); err != nil {
				continue // changed meanwhile: not stale after all
			}
			if rec, err = s.db.UpstreamRecord(ctx, rec.ID); err != nil {
				continue
			}
		}
		if _, err := s.removeUpstream(ctx, Grant{}, rec); err != nil {
			s.log.WarnContext(ctx, "upstream removal failed; retried later", "id", rec.ID, "provider", rec.Provider,
				"fqdn", rec.FQDN, "attempts", rec.Attempts+1, "err", errorText(err))
		}
	}
	return len(due)
}

// UpstreamRecord is a value the hub wrote into a domain's own DNS, as
// administrators see it.
type UpstreamRecord = store.UpstreamRecord

// ListUpstreamRecords pages through upstream records (state "" for all;
// needs an unrestricted managed challenge admin: records span domains).
func (s *Service) ListUpstreamRecords(ctx context.Context, g Grant, state string, afterID int64, limit int) ([]UpstreamRecord, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) {
		return nil, ErrForbidden
	}
	if state != "" && !slices.Contains(UpstreamStates, state) {
		return nil, fmt.Errorf("%w: state %q: one of %s", ErrInvalid, state, strings.Join(UpstreamStates, ", "))
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	recs, err := s.db.ListUpstreamRecords(ctx, state, afterID, limit)
	if err != nil {
		return nil, storeError("list upstream records", err)
	}
	return recs, nil
}

// RetryUpstreamRecord tries to remove a record now (a failed or removing
// one, or a live one an admin wants gone); it is forgotten on success and
// stays listed with the new error otherwise.
func (s *Service) RetryUpstreamRecord(ctx context.Context, g Grant, id int64) error {
	rec, err := s.adminUpstreamRecord(ctx, g, id)
	if err != nil {
		return err
	}
	switch rec.State {
	case store.UpstreamAdding, store.UpstreamCleaning:
		return fmt.Errorf("%w: upstream record %d is %s: a provider call is in flight", ErrConflict, id, rec.State)
	}
	removed, err := s.removeUpstream(ctx, g, rec)
	if err == nil && !removed {
		err = fmt.Errorf("%w: upstream record %d changed meanwhile; list it again", ErrConflict, id)
	}
	return err
}

// ForgetUpstreamRecord deletes a record without touching the upstream DNS
// (an admin removed the value by hand, or the zone is gone).
func (s *Service) ForgetUpstreamRecord(ctx context.Context, g Grant, id int64) error {
	rec, err := s.adminUpstreamRecord(ctx, g, id)
	if err == nil {
		err = s.db.DeleteUpstreamRecord(ctx, id, "")
		if err != nil {
			err = storeError("forget upstream record", err)
		}
	}
	s.auditAdmin(ctx, g, store.AuditEvent{Action: "upstream.forget", Target: "upstream-record:" + strconv.FormatInt(id, 10),
		Domain: rec.Domain, Detail: rec.FQDN}, err)
	return err
}

func (s *Service) adminUpstreamRecord(ctx context.Context, g Grant, id int64) (store.UpstreamRecord, error) {
	if !g.AllowsEverywhere(ActionManageChallenges) {
		return store.UpstreamRecord{}, ErrForbidden
	}
	if err := positiveID("upstream record", id); err != nil {
		return store.UpstreamRecord{}, err
	}
	rec, err := s.db.UpstreamRecord(ctx, id)
	if err != nil {
		return rec, adminStoreError("get upstream record", fmt.Sprintf("upstream record %d", id), err)
	}
	return rec, nil
}

// errorText is an error's message, capped and on one line.
func errorText(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > maxUpstreamError {
		msg = msg[:maxUpstreamError] + "..."
	}
	return msg
}

// UpstreamStates are the states of upstream records, for the metrics.
var UpstreamStates = []string{store.UpstreamAdding, store.UpstreamLive, store.UpstreamRemoving, store.UpstreamCleaning, store.UpstreamFailed}

// Upstream reports whether the challenge was written into the domain's own
// DNS (not served by the hub's nameservers).
func (c Challenge) Upstream() bool { return c.Target == "" && c.RecordName != "" }
