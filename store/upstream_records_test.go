package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// upRec is a valid record to begin: credential cred, value v at
// _acme-challenge.example.org.
func upRec(cred int64, v string, expires time.Time) UpstreamRecord {
	return UpstreamRecord{
		ConfigID: 7, CredentialID: cred, Provider: "rfc2136", Engine: EngineLego,
		Domain: "example.org", FQDN: "_acme-challenge.example.org.", Value: v,
		KeyAuth: "tok.thumb-" + v, TTL: 60, ExpiresAt: expires, CreatedBy: "app:ci",
	}
}

func begin(t *testing.T, db *DB, r UpstreamRecord, lim UpstreamLimits) (UpstreamRecord, bool) {
	t.Helper()
	got, existing, err := db.BeginUpstreamRecord(t.Context(), r, lim)
	if err != nil {
		t.Fatalf("begin %s %s: %v", r.FQDN, r.Value, err)
	}
	return got, existing
}

// none is no limit at all.
var none UpstreamLimits

func setState(t *testing.T, db *DB, id int64, from, to string, attempts int, lastErr string, next time.Time) {
	t.Helper()
	if err := db.SetUpstreamRecordState(t.Context(), id, from, to, attempts, lastErr, next); err != nil {
		t.Fatalf("set %d %s -> %s: %v", id, from, to, err)
	}
}

// read returns the stored record id.
func read(t *testing.T, db *DB, id int64) UpstreamRecord {
	t.Helper()
	r, err := db.UpstreamRecord(t.Context(), id)
	if err != nil {
		t.Fatalf("read %d: %v", id, err)
	}
	return r
}

// toState begins nothing: it moves the adding record r to state (cleaning
// through a claim, as the sweeper does) and returns it as stored.
func toState(t *testing.T, db *DB, r UpstreamRecord, state string, next time.Time) UpstreamRecord {
	t.Helper()
	switch state {
	case UpstreamAdding:
	case UpstreamCleaning:
		setState(t, db, r.ID, UpstreamAdding, UpstreamLive, 0, "", time.Time{})
		if _, err := db.ClaimUpstreamRecord(t.Context(), read(t, db, r.ID), next); err != nil {
			t.Fatalf("claim %d: %v", r.ID, err)
		}
	default:
		setState(t, db, r.ID, UpstreamAdding, state, 4, "boom", next)
	}
	return read(t, db, r.ID)
}

func upCount(t *testing.T, db *DB) map[string]int {
	t.Helper()
	c, err := db.CountUpstreamRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(rs []UpstreamRecord) []int64 {
	out := []int64{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// ms is a whole-millisecond time, as the store keeps them.
func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

func TestBeginUpstreamRecordNew(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	before := time.Now().Add(-time.Second)
	in := upRec(3, "v1", ms(2_000_000_000_000))
	got, existing := begin(t, db, in, none)
	if existing || got.ID <= 0 {
		t.Fatalf("new record: existing %v, id %d", existing, got.ID)
	}
	if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now()) {
		t.Fatalf("created at %v", got.CreatedAt)
	}
	want := in
	want.ID, want.State, want.CreatedAt = got.ID, UpstreamAdding, got.CreatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("begin returned\n%+v\nwant\n%+v", got, want)
	}
	read, err := db.UpstreamRecord(t.Context(), got.ID)
	if err != nil || !reflect.DeepEqual(read, want) {
		t.Fatalf("read back\n%+v %v\nwant\n%+v", read, err, want)
	}
	// A value-level record needs no key authorization.
	v := upRec(3, "v2", ms(2_000_000_000_000))
	v.Engine, v.KeyAuth = EngineValue, ""
	if got, _ := begin(t, db, v, none); got.Engine != EngineValue || got.KeyAuth != "" {
		t.Fatalf("value record %+v", got)
	}
}

func TestBeginUpstreamRecordExisting(t *testing.T) {
	t.Parallel()
	const early, late, later = 1_900_000_000_000, 2_000_000_000_000, 2_100_000_000_000
	for _, tc := range []struct {
		name      string
		state     string
		expires   int64 // of the second begin
		wantState string
		wantExp   int64
		rewritten bool // the row becomes the second request's
	}{
		{"live later expiry", UpstreamLive, later, UpstreamLive, later, false},
		{"live earlier expiry kept", UpstreamLive, early, UpstreamLive, late, false},
		{"removing", UpstreamRemoving, later, UpstreamAdding, later, true},
		{"failed", UpstreamFailed, later, UpstreamAdding, later, true},
		{"failed earlier expiry kept", UpstreamFailed, early, UpstreamAdding, late, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, nil)
			first, _ := begin(t, db, upRec(3, "v", ms(late)), none)
			first = toState(t, db, first, tc.state, ms(late))
			// Another config, engine and creator asking for the same value.
			again := upRec(3, "v", ms(tc.expires))
			again.ConfigID, again.Engine, again.KeyAuth, again.TTL, again.CreatedBy = 9, EngineValue, "", 120, "app:other"
			time.Sleep(2 * time.Millisecond) // so that a restarted created_at differs
			got, existing := begin(t, db, again, none)
			if !existing || got.ID != first.ID {
				t.Fatalf("existing %v, id %d, want true, %d", existing, got.ID, first.ID)
			}
			want := first
			want.State, want.ExpiresAt = tc.wantState, ms(tc.wantExp)
			if tc.rewritten {
				if !got.CreatedAt.After(first.CreatedAt) {
					t.Errorf("created at %v not restarted (was %v)", got.CreatedAt, first.CreatedAt)
				}
				want.ConfigID, want.Engine, want.KeyAuth, want.TTL, want.CreatedBy = 9, EngineValue, "", 120, "app:other"
				want.Attempts, want.LastError, want.NextAttemptAt, want.CreatedAt = 0, "", time.Time{}, got.CreatedAt
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, want)
			}
			if read, err := db.UpstreamRecord(t.Context(), got.ID); err != nil || !reflect.DeepEqual(read, got) {
				t.Fatalf("stored\n%+v %v\nreturned\n%+v", read, err, got)
			}
			if c := upCount(t, db); c[tc.wantState] != 1 {
				t.Fatalf("counts %v", c)
			}
		})
	}
}

// TestBeginUpstreamRecordBusy: the same value while a provider call for it
// is in flight (adding or cleaning) is refused, and the row is untouched.
func TestBeginUpstreamRecordBusy(t *testing.T) {
	t.Parallel()
	for _, state := range []string{UpstreamAdding, UpstreamCleaning} {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, nil)
			first, _ := begin(t, db, upRec(3, "v", ms(2_000_000_000_000)), none)
			first = toState(t, db, first, state, ms(2_000_000_060_000))
			again := upRec(3, "v", ms(2_100_000_000_000))
			again.ConfigID = 9
			got, existing, err := db.BeginUpstreamRecord(t.Context(), again, none)
			if !errors.Is(err, ErrBusy) || existing || got.ID != 0 {
				t.Fatalf("begin on %s: %+v %v %v, want ErrBusy", state, got, existing, err)
			}
			if now := read(t, db, first.ID); !reflect.DeepEqual(now, first) {
				t.Fatalf("a busy begin changed the row\n%+v\nwas\n%+v", now, first)
			}
			// Another credential's row of the same value is its own.
			if _, existing := begin(t, db, upRec(4, "v", ms(2_100_000_000_000)), none); existing {
				t.Fatal("another credential's begin found the busy row")
			}
		})
	}
}

func TestBeginUpstreamRecordExclusive(t *testing.T) {
	t.Parallel()
	exp := ms(2_000_000_000_000)
	excl := UpstreamLimits{Exclusive: true}
	for _, tc := range []struct {
		name     string
		other    UpstreamRecord // begun first (non-exclusive)
		state    string         // then moved to
		conflict bool
	}{
		{"adding", upRec(3, "other", exp), UpstreamAdding, true},
		{"live", upRec(3, "other", exp), UpstreamLive, true},
		{"cleaning", upRec(3, "other", exp), UpstreamCleaning, true},
		{"removing", upRec(3, "other", exp), UpstreamRemoving, false},
		{"failed", upRec(3, "other", exp), UpstreamFailed, false},
		// Two credentials may reach the same zone: any credential counts.
		{"another credential adding", upRec(4, "other", exp), UpstreamAdding, true},
		{"another credential live", upRec(4, "other", exp), UpstreamLive, true},
		{"another credential cleaning", upRec(4, "other", exp), UpstreamCleaning, true},
		{"another credential removing", upRec(4, "other", exp), UpstreamRemoving, false},
		{"another name", func() UpstreamRecord {
			r := upRec(3, "other", exp)
			r.FQDN = "_acme-challenge.example.net."
			return r
		}(), UpstreamLive, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, nil)
			other, _ := begin(t, db, tc.other, none)
			other = toState(t, db, other, tc.state, ms(2_000_000_060_000))
			got, existing, err := db.BeginUpstreamRecord(t.Context(), upRec(3, "mine", exp), excl)
			if !tc.conflict {
				if err != nil || existing || got.ID == other.ID {
					t.Fatalf("begin: %+v %v %v", got, existing, err)
				}
				return
			}
			if !errors.Is(err, ErrConflict) || existing || !reflect.DeepEqual(got, other) {
				t.Fatalf("begin: %+v %v %v, want ErrConflict with\n%+v", got, existing, err, other)
			}
			if rs, err := db.UpstreamRecordsAt(t.Context(), other.FQDN, "mine"); err != nil || len(rs) != 0 {
				t.Fatalf("a conflicting begin stored %+v %v", rs, err)
			}
			if now := read(t, db, other.ID); !reflect.DeepEqual(now, other) {
				t.Fatalf("a conflicting begin changed the other row\n%+v\nwas\n%+v", now, other)
			}
			// Without exclusive the two values coexist.
			if _, existing := begin(t, db, upRec(3, "mine", exp), none); existing {
				t.Fatal("existing after a refused begin")
			}
			// And with one there, the other value is refused too.
			if _, _, err := db.BeginUpstreamRecord(t.Context(), upRec(3, "third", exp), excl); !errors.Is(err, ErrConflict) {
				t.Fatalf("third value: %v", err)
			}
		})
	}
}

// TestBeginUpstreamRecordExclusiveRace: of many concurrent exclusive
// begins of different values at one name, by two credentials, exactly one
// is stored.
func TestBeginUpstreamRecordExclusiveRace(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = db.BeginUpstreamRecord(t.Context(), upRec(int64(3+i%2), fmt.Sprintf("v%d", i), ms(2_000_000_000_000)),
				UpstreamLimits{Exclusive: true})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrConflict):
			t.Errorf("begin %d: %v", i, err)
		}
	}
	rs, err := db.UpstreamRecordsAt(t.Context(), "_acme-challenge.example.org.", "")
	if ok != 1 || err != nil || len(rs) != 1 {
		t.Fatalf("%d begins succeeded, %d records stored (%v), want 1 and 1", ok, len(rs), err)
	}
}

func TestBeginUpstreamRecordInvalid(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	exp := ms(2_000_000_000_000)
	for _, tc := range []struct {
		name string
		edit func(*UpstreamRecord)
	}{
		{"id given", func(r *UpstreamRecord) { r.ID = 5 }},
		{"no config", func(r *UpstreamRecord) { r.ConfigID = 0 }},
		{"no credential", func(r *UpstreamRecord) { r.CredentialID = 0 }},
		{"negative credential", func(r *UpstreamRecord) { r.CredentialID = -1 }},
		{"no provider", func(r *UpstreamRecord) { r.Provider = "" }},
		{"bad provider", func(r *UpstreamRecord) { r.Provider = "Route53" }},
		{"no engine", func(r *UpstreamRecord) { r.Engine = "" }},
		{"bad engine", func(r *UpstreamRecord) { r.Engine = "libdns" }},
		{"no domain", func(r *UpstreamRecord) { r.Domain = "" }},
		{"domain with dot", func(r *UpstreamRecord) { r.Domain = "example.org." }},
		{"wildcard domain", func(r *UpstreamRecord) { r.Domain = "*.example.org" }},
		{"upper-case domain", func(r *UpstreamRecord) { r.Domain = "Example.org" }},
		{"fqdn without dot", func(r *UpstreamRecord) { r.FQDN = "_acme-challenge.example.org" }},
		{"fqdn too long", func(r *UpstreamRecord) { r.FQDN = strings.Repeat("a.", 128) }},
		{"no value", func(r *UpstreamRecord) { r.Value = "" }},
		{"value too long", func(r *UpstreamRecord) { r.Value = strings.Repeat("v", 4096) }},
		{"value with newline", func(r *UpstreamRecord) { r.Value = "a\nb" }},
		{"lego without key auth", func(r *UpstreamRecord) { r.KeyAuth = "" }},
		{"key auth too long", func(r *UpstreamRecord) { r.KeyAuth = strings.Repeat("k", 1025) }},
		{"key auth with space", func(r *UpstreamRecord) { r.KeyAuth = "tok. thumb" }},
		{"ttl too large", func(r *UpstreamRecord) { r.TTL = 1 << 31 }},
		{"no expiry", func(r *UpstreamRecord) { r.ExpiresAt = time.Time{} }},
		{"creator too long", func(r *UpstreamRecord) { r.CreatedBy = strings.Repeat("c", 257) }},
	} {
		r := upRec(3, "v", exp)
		tc.edit(&r)
		if _, _, err := db.BeginUpstreamRecord(t.Context(), r, none); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	// The limits themselves are fine.
	r := upRec(3, "v", exp)
	r.KeyAuth, r.TTL, r.FQDN = strings.Repeat("k", 1024), 1<<31-1, strings.Repeat("abc.", 63)+"o."
	if len(r.FQDN) != 254 {
		t.Fatalf("fqdn of %d bytes", len(r.FQDN))
	}
	begin(t, db, r, none)
	if c := upCount(t, db); c[UpstreamAdding] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestSetUpstreamRecordState(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	r, _ := begin(t, db, upRec(3, "v", ms(2_000_000_000_000)), none)

	setState(t, db, r.ID, UpstreamAdding, UpstreamLive, 0, "", time.Time{})
	got, err := db.UpstreamRecord(ctx, r.ID)
	if err != nil || got.State != UpstreamLive || !got.NextAttemptAt.IsZero() {
		t.Fatalf("live: %+v %v", got, err)
	}
	setState(t, db, r.ID, UpstreamLive, UpstreamRemoving, 2, "provider said no", ms(2_000_000_060_000))
	got = read(t, db, r.ID)
	want := r
	want.State, want.Attempts, want.LastError, want.NextAttemptAt = UpstreamRemoving, 2, "provider said no", ms(2_000_000_060_000)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("removing\n%+v\nwant\n%+v", got, want)
	}

	// A change from a state the row is no longer in is refused whole:
	// another writer acted on it.
	for _, from := range []string{UpstreamAdding, UpstreamLive, UpstreamCleaning, UpstreamFailed} {
		if err := db.SetUpstreamRecordState(ctx, r.ID, from, UpstreamFailed, 7, "late", ms(1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("from %s while removing: %v, want ErrNotFound", from, err)
		}
	}
	if got = read(t, db, r.ID); !reflect.DeepEqual(got, want) {
		t.Fatalf("a refused change changed the row\n%+v\nwant\n%+v", got, want)
	}

	// A long error is cut to 512 bytes at a character boundary.
	long := strings.Repeat("é", 300) // 600 bytes
	setState(t, db, r.ID, UpstreamRemoving, UpstreamFailed, 9, long, time.Time{})
	got = read(t, db, r.ID)
	if got.State != UpstreamFailed || len(got.LastError) != 512 || !utf8.ValidString(got.LastError) ||
		!strings.HasPrefix(long, got.LastError) {
		t.Fatalf("failed: state %s, %d bytes of error", got.State, len(got.LastError))
	}
	odd := "x" + strings.Repeat("é", 300) // the cut falls inside a character
	setState(t, db, r.ID, UpstreamFailed, UpstreamFailed, 9, odd, time.Time{})
	if got = read(t, db, r.ID); len(got.LastError) != 511 || !utf8.ValidString(got.LastError) {
		t.Fatalf("odd cut: %d bytes, valid %v", len(got.LastError), utf8.ValidString(got.LastError))
	}
	exact := strings.Repeat("e", 512)
	setState(t, db, r.ID, UpstreamFailed, UpstreamFailed, 9, exact, time.Time{})
	if got = read(t, db, r.ID); got.LastError != exact {
		t.Fatalf("512 bytes not kept whole: %d", len(got.LastError))
	}

	for _, tc := range []struct {
		name     string
		id       int64
		from, to string
		attempts int
		want     error
	}{
		{"unknown state", r.ID, UpstreamFailed, "gone", 0, ErrInvalid},
		{"empty state", r.ID, UpstreamFailed, "", 0, ErrInvalid},
		{"unknown from", r.ID, "gone", UpstreamLive, 0, ErrInvalid},
		{"empty from", r.ID, "", UpstreamLive, 0, ErrInvalid},
		{"negative attempts", r.ID, UpstreamFailed, UpstreamLive, -1, ErrInvalid},
		{"unknown id", r.ID + 100, UpstreamFailed, UpstreamLive, 0, ErrNotFound},
	} {
		if err := db.SetUpstreamRecordState(ctx, tc.id, tc.from, tc.to, tc.attempts, "", time.Time{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got = read(t, db, r.ID); got.State != UpstreamFailed {
		t.Fatalf("refused changes changed the state to %s", got.State)
	}
	// An admin retry: failed back to removing.
	setState(t, db, r.ID, UpstreamFailed, UpstreamRemoving, 0, "", ms(5))
	if got = read(t, db, r.ID); got.State != UpstreamRemoving || got.Attempts != 0 || got.LastError != "" || !got.NextAttemptAt.Equal(ms(5)) {
		t.Fatalf("retried: %+v", got)
	}
}

// TestSetUpstreamRecordStateRace: of concurrent changes from the same
// state, exactly one applies.
func TestSetUpstreamRecordStateRace(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	r, _ := begin(t, db, upRec(3, "v", ms(2_000_000_000_000)), none)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.SetUpstreamRecordState(t.Context(), r.ID, UpstreamAdding, UpstreamRemoving, i, fmt.Sprintf("w%d", i), ms(1))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("changes %d and %d both applied", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrNotFound):
			t.Errorf("change %d: %v", i, err)
		}
	}
	if got := read(t, db, r.ID); winner < 0 || got.Attempts != winner || got.LastError != fmt.Sprintf("w%d", winner) {
		t.Fatalf("winner %d, stored %+v", winner, got)
	}
}

func TestDeleteUpstreamRecord(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	a, _ := begin(t, db, upRec(3, "a", ms(2_000_000_000_000)), none)
	b, _ := begin(t, db, upRec(3, "b", ms(2_000_000_000_000)), none)
	c, _ := begin(t, db, upRec(3, "c", ms(2_000_000_000_000)), none)
	c = toState(t, db, c, UpstreamCleaning, ms(2_000_000_060_000))

	// From a state the row is not in: refused, the row kept.
	for _, from := range []string{UpstreamLive, UpstreamRemoving, UpstreamCleaning, UpstreamFailed, "gone"} {
		if err := db.DeleteUpstreamRecord(ctx, a.ID, from); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete adding from %q: %v, want ErrNotFound", from, err)
		}
	}
	if got := read(t, db, a.ID); !reflect.DeepEqual(got, a) {
		t.Fatalf("refused deletes changed it: %+v", got)
	}
	if err := db.DeleteUpstreamRecord(ctx, a.ID, UpstreamAdding); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpstreamRecord(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
	if err := db.DeleteUpstreamRecord(ctx, a.ID, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// The claimant deletes what it removed.
	if err := db.DeleteUpstreamRecord(ctx, c.ID, UpstreamLive); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete cleaning from live: %v", err)
	}
	if err := db.DeleteUpstreamRecord(ctx, c.ID, UpstreamCleaning); err != nil {
		t.Fatal(err)
	}
	if got, err := db.UpstreamRecord(ctx, b.ID); err != nil || got.Value != "b" {
		t.Fatalf("the other record: %+v %v", got, err)
	}
	// "" is any state (an admin forgets it).
	setState(t, db, b.ID, UpstreamAdding, UpstreamFailed, 5, "x", time.Time{})
	if err := db.DeleteUpstreamRecord(ctx, b.ID, ""); err != nil {
		t.Fatal(err)
	}
	if c := upCount(t, db); c[UpstreamAdding]+c[UpstreamLive]+c[UpstreamRemoving]+c[UpstreamCleaning]+c[UpstreamFailed] != 0 {
		t.Fatalf("counts after deleting all %v", c)
	}
	// The value can be begun afresh, with a new id.
	if again, existing := begin(t, db, upRec(3, "a", ms(2_000_000_000_000)), none); existing || again.ID <= c.ID {
		t.Fatalf("begun again: %+v existing %v", again, existing)
	}
}

func TestClaimUpstreamRecord(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const lease = 2_000_000_060_000
	claim := func(r UpstreamRecord, lease int64) (UpstreamRecord, error) {
		return db.ClaimUpstreamRecord(ctx, r, ms(lease))
	}
	live, _ := begin(t, db, upRec(3, "live", ms(2_000_000_000_000)), none)
	live = toState(t, db, live, UpstreamLive, time.Time{})

	got, err := claim(live, lease)
	want := live
	want.State, want.NextAttemptAt = UpstreamCleaning, ms(lease)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("claim live: %v\n%+v\nwant\n%+v", err, got, want)
	}
	if stored := read(t, db, live.ID); !reflect.DeepEqual(stored, want) {
		t.Fatalf("stored\n%+v\nwant\n%+v", stored, want)
	}
	// Another claimant holding the same read loses.
	if _, err := claim(live, lease+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second claim of one read: %v, want ErrNotFound", err)
	}
	// A lapsed claim is taken over from the cleaning row as read, once.
	again, err := claim(got, lease+10)
	if err != nil || again.State != UpstreamCleaning || !again.NextAttemptAt.Equal(ms(lease+10)) {
		t.Fatalf("claim a lapsed claim: %+v %v", again, err)
	}
	if _, err := claim(got, lease+20); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim a claim taken over: %v", err)
	}

	// A re-present that extended a live value's expiry wins over a claim
	// made from the read before it.
	rp, _ := begin(t, db, upRec(3, "represent", ms(2_000_000_000_000)), none)
	rp = toState(t, db, rp, UpstreamLive, time.Time{})
	if _, existing := begin(t, db, upRec(3, "represent", ms(2_100_000_000_000)), none); !existing {
		t.Fatal("re-present not existing")
	}
	if _, err := claim(rp, lease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim after a re-present: %v, want ErrNotFound", err)
	}
	if now := read(t, db, rp.ID); now.State != UpstreamLive || !now.ExpiresAt.Equal(ms(2_100_000_000_000)) {
		t.Fatalf("re-presented row after a lost claim: %+v", now)
	}
	// So does an expiry brought forward (a clean-up during the write).
	ex, _ := begin(t, db, upRec(3, "expired", ms(2_000_000_000_000)), none)
	ex = toState(t, db, ex, UpstreamLive, time.Time{})
	if err := db.ExpireUpstreamRecord(ctx, ex.ID, ms(1_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := claim(ex, lease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim after an expiry moved: %v", err)
	}

	// A row that changed state alone (given up, same times) loses too.
	gu, _ := begin(t, db, upRec(3, "givenup", ms(2_000_000_000_000)), none)
	gu = toState(t, db, gu, UpstreamLive, time.Time{})
	setState(t, db, gu.ID, UpstreamLive, UpstreamFailed, 0, "", time.Time{})
	if _, err := claim(gu, lease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim of a live read now failed: %v, want ErrNotFound", err)
	}

	// Adding rows are never claimed, even as read.
	add, _ := begin(t, db, upRec(3, "adding", ms(1)), none)
	if _, err := claim(add, lease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim adding: %v, want ErrNotFound", err)
	}
	if now := read(t, db, add.ID); !reflect.DeepEqual(now, add) {
		t.Fatalf("a refused claim changed the row: %+v", now)
	}

	// A removing row is claimed as read; a new backoff time loses.
	rm, _ := begin(t, db, upRec(3, "removing", ms(2_000_000_000_000)), none)
	rm = toState(t, db, rm, UpstreamRemoving, ms(5_000))
	setState(t, db, rm.ID, UpstreamRemoving, UpstreamRemoving, 4, "boom", ms(6_000))
	if _, err := claim(rm, lease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim after the next attempt moved: %v", err)
	}
	rm = read(t, db, rm.ID)
	if got, err := claim(rm, lease); err != nil || got.State != UpstreamCleaning || got.Attempts != 4 || got.LastError != "boom" {
		t.Fatalf("claim removing: %+v %v", got, err)
	}

	// A row re-begun and brought back to the very state, expiry and next
	// attempt it was read with differs in its creation: the claim loses.
	rb, _ := begin(t, db, upRec(3, "rebegun", ms(2_000_000_000_000)), none)
	rb = toState(t, db, rb, UpstreamRemoving, ms(5_000))
	time.Sleep(2 * time.Millisecond)
	if _, existing := begin(t, db, upRec(3, "rebegun", ms(2_000_000_000_000)), none); !existing {
		t.Fatal("re-begin not existing")
	}
	setState(t, db, rb.ID, UpstreamAdding, UpstreamRemoving, 4, "boom", ms(5_000))
	if now := read(t, db, rb.ID); now.CreatedAt.Equal(rb.CreatedAt) || !now.ExpiresAt.Equal(rb.ExpiresAt) || !now.NextAttemptAt.Equal(rb.NextAttemptAt) {
		t.Fatalf("setup: %+v\nwas %+v", now, rb)
	}
	if _, err := claim(rb, lease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim of a re-begun row: %v, want ErrNotFound", err)
	}

	// A row gone is not found.
	if err := db.DeleteUpstreamRecord(ctx, live.ID, UpstreamCleaning); err != nil {
		t.Fatal(err)
	}
	if _, err := claim(again, lease+30); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim deleted: %v", err)
	}
}

// TestClaimUpstreamRecordRace: of concurrent claims of one row as read,
// exactly one wins, and the row holds the winner's lease.
func TestClaimUpstreamRecordRace(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	r, _ := begin(t, db, upRec(3, "v", ms(1_000)), none)
	r = toState(t, db, r, UpstreamLive, time.Time{})
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = db.ClaimUpstreamRecord(t.Context(), r, ms(2_000_000_000_000+int64(i)))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("claims %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrNotFound):
			t.Errorf("claim %d: %v", i, err)
		}
	}
	got := read(t, db, r.ID)
	if winner < 0 || got.State != UpstreamCleaning || !got.NextAttemptAt.Equal(ms(2_000_000_000_000+int64(winner))) {
		t.Fatalf("winner %d, stored %+v", winner, got)
	}
}

func TestAbandonUpstreamAdding(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	r, _ := begin(t, db, upRec(3, "v", ms(2_000_000_000_000)), none)
	if err := db.AbandonUpstreamAdding(ctx, r, ms(7_000)); err != nil {
		t.Fatal(err)
	}
	want := r
	want.State, want.NextAttemptAt = UpstreamRemoving, ms(7_000)
	if got := read(t, db, r.ID); !reflect.DeepEqual(got, want) {
		t.Fatalf("abandoned\n%+v\nwant\n%+v", got, want)
	}
	// Due at once for removal.
	if rs, err := db.DueUpstreamRecords(ctx, ms(7_000), ms(0), 10); err != nil || !reflect.DeepEqual(ids(rs), []int64{r.ID}) {
		t.Fatalf("due after abandon: %v %v", ids(rs), err)
	}
	// Twice, or from another state: refused.
	if err := db.AbandonUpstreamAdding(ctx, r, ms(8_000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandon twice: %v", err)
	}
	live, _ := begin(t, db, upRec(3, "live", ms(2_000_000_000_000)), none)
	setState(t, db, live.ID, UpstreamAdding, UpstreamLive, 0, "", time.Time{})
	if err := db.AbandonUpstreamAdding(ctx, live, ms(8_000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandon live: %v", err)
	}
	if got := read(t, db, live.ID); got.State != UpstreamLive {
		t.Fatalf("abandon changed a live row: %+v", got)
	}
	// A stale read of a row since begun again (a new call in flight) loses;
	// the fresh read wins.
	time.Sleep(2 * time.Millisecond)
	fresh, existing := begin(t, db, upRec(3, "v", ms(2_000_000_000_000)), none)
	if !existing || fresh.ID != r.ID || fresh.State != UpstreamAdding || fresh.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("re-begin: %+v %v", fresh, existing)
	}
	if err := db.AbandonUpstreamAdding(ctx, r, ms(8_000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandon of a stale read: %v, want ErrNotFound", err)
	}
	if got := read(t, db, r.ID); got.State != UpstreamAdding {
		t.Fatalf("a stale abandon changed the row: %+v", got)
	}
	if err := db.AbandonUpstreamAdding(ctx, fresh, ms(8_000)); err != nil {
		t.Fatal(err)
	}
	if err := db.AbandonUpstreamAdding(ctx, UpstreamRecord{ID: r.ID + 100}, ms(8_000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandon unknown: %v", err)
	}
}

func TestExpireUpstreamRecord(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const exp = 2_000_000_000_000
	for _, state := range []string{UpstreamAdding, UpstreamLive} {
		r, _ := begin(t, db, upRec(3, state, ms(exp)), none)
		r = toState(t, db, r, state, time.Time{})
		if err := db.ExpireUpstreamRecord(ctx, r.ID, ms(exp-1_000)); err != nil {
			t.Fatalf("expire %s: %v", state, err)
		}
		want := r
		want.ExpiresAt = ms(exp - 1_000)
		if got := read(t, db, r.ID); !reflect.DeepEqual(got, want) {
			t.Fatalf("expired %s\n%+v\nwant\n%+v", state, got, want)
		}
		// Never later than it was.
		if err := db.ExpireUpstreamRecord(ctx, r.ID, ms(exp+1_000)); err != nil {
			t.Fatal(err)
		}
		if got := read(t, db, r.ID); !got.ExpiresAt.Equal(ms(exp - 1_000)) {
			t.Fatalf("expire later moved %s to %v", state, got.ExpiresAt)
		}
	}
	// The live one is due at its new expiry.
	if rs, err := db.DueUpstreamRecords(ctx, ms(exp-1_000), ms(0), 10); err != nil || len(rs) != 1 || rs[0].Value != UpstreamLive {
		t.Fatalf("due after expire: %+v %v", rs, err)
	}
	for _, state := range []string{UpstreamRemoving, UpstreamCleaning, UpstreamFailed} {
		r, _ := begin(t, db, upRec(3, state, ms(exp)), none)
		r = toState(t, db, r, state, ms(exp+5_000))
		if err := db.ExpireUpstreamRecord(ctx, r.ID, ms(1_000)); !errors.Is(err, ErrNotFound) {
			t.Errorf("expire %s: %v, want ErrNotFound", state, err)
		}
		if got := read(t, db, r.ID); !reflect.DeepEqual(got, r) {
			t.Errorf("a refused expire changed a %s row: %+v", state, got)
		}
	}
	if err := db.ExpireUpstreamRecord(ctx, 1_000, ms(1_000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expire unknown: %v", err)
	}
}

func TestBeginUpstreamRecordLimits(t *testing.T) {
	t.Parallel()
	exp := ms(2_000_000_000_000)
	at := func(cred int64, v, fqdn, by string) UpstreamRecord {
		r := upRec(cred, v, exp)
		r.FQDN, r.Domain, r.CreatedBy = "_acme-challenge."+fqdn+".", fqdn, by
		return r
	}
	tooMany := func(t *testing.T, db *DB, r UpstreamRecord, lim UpstreamLimits) {
		t.Helper()
		got, existing, err := db.BeginUpstreamRecord(t.Context(), r, lim)
		if !errors.Is(err, ErrTooManyValues) || existing || got.ID != 0 {
			t.Fatalf("begin %s %s by %s: %+v %v %v, want ErrTooManyValues", r.FQDN, r.Value, r.CreatedBy, got, existing, err)
		}
		if rs, err := db.UpstreamRecordsAt(t.Context(), r.FQDN, r.Value); err != nil || len(rs) != 0 {
			t.Fatalf("a refused begin stored %v %v", ids(rs), err)
		}
	}

	t.Run("per name", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, nil)
		lim := UpstreamLimits{PerName: 2}
		a, _ := begin(t, db, at(3, "a", "example.org", "app:a"), lim)
		b, _ := begin(t, db, at(4, "b", "example.org", "app:b"), lim) // any credential, any creator
		toState(t, db, b, UpstreamRemoving, ms(1))                    // removing still counts
		tooMany(t, db, at(5, "c", "example.org", "app:c"), lim)
		// Another name has its own cap; no cap, no refusal.
		begin(t, db, at(3, "c", "example.net", "app:a"), lim)
		begin(t, db, at(5, "c", "example.org", "app:c"), none)
		tooMany(t, db, at(5, "d", "example.org", "app:c"), lim)
		// What is there already is no new value: a re-present is served.
		toState(t, db, a, UpstreamLive, time.Time{})
		if _, existing := begin(t, db, at(3, "a", "example.org", "app:a"), lim); !existing {
			t.Fatal("re-present at the cap not existing")
		}
		// Failed records do not count.
		db2 := openTest(t, nil)
		lim = UpstreamLimits{PerName: 1}
		f, _ := begin(t, db2, at(3, "f", "example.org", "app:a"), lim)
		toState(t, db2, f, UpstreamFailed, time.Time{})
		begin(t, db2, at(3, "g", "example.org", "app:a"), lim)
		tooMany(t, db2, at(3, "h", "example.org", "app:a"), lim)
	})

	t.Run("per creator", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, nil)
		lim := UpstreamLimits{PerCreator: 2}
		begin(t, db, at(3, "a", "a.example.org", "app:ci"), lim)
		b, _ := begin(t, db, at(4, "b", "b.example.org", "app:ci"), lim) // any name, any credential
		tooMany(t, db, at(3, "c", "c.example.org", "app:ci"), lim)
		begin(t, db, at(5, "c", "c.example.org", "app:other"), lim) // another creator
		// A failed record frees its place.
		toState(t, db, b, UpstreamFailed, time.Time{})
		begin(t, db, at(3, "c", "c.example.org", "app:ci"), lim)
		tooMany(t, db, at(3, "d", "d.example.org", "app:ci"), lim)
	})

	// Reviving a failed record (begun again) makes it count again: it must
	// not take a name past its cap.
	t.Run("failed revived", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, nil)
		lim := UpstreamLimits{PerName: 1}
		f, _ := begin(t, db, at(3, "f", "example.org", "app:a"), lim)
		toState(t, db, f, UpstreamFailed, time.Time{})
		begin(t, db, at(3, "g", "example.org", "app:a"), lim)
		got, existing, err := db.BeginUpstreamRecord(t.Context(), at(3, "f", "example.org", "app:a"), lim)
		if !errors.Is(err, ErrTooManyValues) || existing || got.ID != 0 {
			t.Fatalf("reviving f: %+v %v %v, want ErrTooManyValues", got, existing, err)
		}
		if rs, err := db.UpstreamRecordsAt(t.Context(), f.FQDN, "f"); err != nil || len(rs) != 1 || rs[0].State != UpstreamFailed {
			t.Fatalf("after the refused revival: %+v %v, want f still failed", rs, err)
		}
	})

	// Of concurrent begins of different values at one name, exactly the
	// cap is stored.
	t.Run("race", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, nil)
		const n, limit = 24, 3
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, _, errs[i] = db.BeginUpstreamRecord(t.Context(), at(int64(3+i%2), fmt.Sprintf("v%d", i), "example.org", "app:ci"),
					UpstreamLimits{PerName: limit})
			})
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrTooManyValues):
				t.Errorf("begin %d: %v", i, err)
			}
		}
		if rs, err := db.UpstreamRecordsAt(t.Context(), "_acme-challenge.example.org.", ""); ok != limit || err != nil || len(rs) != limit {
			t.Fatalf("%d begins succeeded, %d stored (%v), want %d", ok, len(rs), err, limit)
		}
	})
}

func TestUpstreamRecordsAt(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	exp := ms(2_000_000_000_000)
	a, _ := begin(t, db, upRec(3, "a", exp), none)
	b, _ := begin(t, db, upRec(3, "b", exp), none)
	c, _ := begin(t, db, upRec(4, "a", exp), none) // another credential, same value
	net := upRec(3, "a", exp)
	net.Domain, net.FQDN = "example.net", "_acme-challenge.example.net."
	begin(t, db, net, none)
	setState(t, db, b.ID, UpstreamAdding, UpstreamFailed, 1, "x", time.Time{})

	for _, tc := range []struct {
		fqdn, value string
		want        []int64
	}{
		{"_acme-challenge.example.org.", "a", []int64{a.ID, c.ID}},
		{"_acme-challenge.example.org.", "b", []int64{b.ID}},
		{"_acme-challenge.example.org.", "", []int64{a.ID, b.ID, c.ID}},
		{"_acme-challenge.example.org.", "zzz", []int64{}},
		{"_acme-challenge.example.com.", "", []int64{}},
	} {
		rs, err := db.UpstreamRecordsAt(ctx, tc.fqdn, tc.value)
		if err != nil || !reflect.DeepEqual(ids(rs), tc.want) {
			t.Errorf("at %s %q: %v %v, want %v", tc.fqdn, tc.value, ids(rs), err, tc.want)
		}
	}
}

func TestDueUpstreamRecords(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	const expLive, leaseCleaning, nextRemoving = 2_000_000_000_000, 2_000_000_300_000, 2_000_000_500_000

	live, _ := begin(t, db, upRec(3, "live", ms(expLive)), none)
	setState(t, db, live.ID, UpstreamAdding, UpstreamLive, 0, "", time.Time{})
	removing, _ := begin(t, db, upRec(3, "removing", ms(3_000_000_000_000)), none)
	setState(t, db, removing.ID, UpstreamAdding, UpstreamRemoving, 1, "x", ms(nextRemoving))
	failed, _ := begin(t, db, upRec(3, "failed", ms(1)), none) // long expired, but given up
	setState(t, db, failed.ID, UpstreamAdding, UpstreamFailed, 5, "x", ms(1))
	adding, _ := begin(t, db, upRec(3, "adding", ms(1)), none) // expiry does not make an adding row due
	created := adding.CreatedAt.UnixMilli()
	// Long expired, but claimed: due only once its claim lapses.
	cleaning, _ := begin(t, db, upRec(3, "cleaning", ms(1)), none)
	toState(t, db, cleaning, UpstreamCleaning, ms(leaseCleaning))

	due := func(now, stale int64, limit int) []int64 {
		t.Helper()
		rs, err := db.DueUpstreamRecords(ctx, ms(now), ms(stale), limit)
		if err != nil {
			t.Fatal(err)
		}
		return ids(rs)
	}
	for _, tc := range []struct {
		name       string
		now, stale int64
		limit      int
		want       []int64
	}{
		{"nothing yet", expLive - 1, created, 10, []int64{}},
		{"live at its expiry", expLive, created, 10, []int64{live.ID}},
		{"cleaning claim just before it lapses", leaseCleaning - 1, created, 10, []int64{live.ID}},
		{"cleaning claim lapsed", leaseCleaning, created, 10, []int64{live.ID, cleaning.ID}},
		{"removing just before", nextRemoving - 1, created, 10, []int64{live.ID, cleaning.ID}},
		{"removing at its time", nextRemoving, created, 10, []int64{live.ID, removing.ID, cleaning.ID}},
		{"adding created at the stale mark is not stale", 1, created, 10, []int64{}},
		{"adding created before the stale mark", 1, created + 1, 10, []int64{adding.ID}},
		{"everything, by id", nextRemoving, created + 1, 10, []int64{live.ID, removing.ID, adding.ID, cleaning.ID}},
		{"limit", nextRemoving, created + 1, 2, []int64{live.ID, removing.ID}},
	} {
		if got := due(tc.now, tc.stale, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// A lapsed claim, as Due returns it, can be taken over.
	rs, err := db.DueUpstreamRecords(ctx, ms(leaseCleaning), ms(created), 10)
	if err != nil || len(rs) != 2 || rs[1].ID != cleaning.ID {
		t.Fatalf("due: %v %v", ids(rs), err)
	}
	if _, err := db.ClaimUpstreamRecord(ctx, rs[1], ms(leaseCleaning+60_000)); err != nil {
		t.Fatalf("take over a lapsed claim: %v", err)
	}
	if got := due(leaseCleaning, created, 10); !reflect.DeepEqual(got, []int64{live.ID}) {
		t.Fatalf("due after the take-over: %v", got)
	}
	for _, limit := range []int{0, -1, 10_001} {
		if _, err := db.DueUpstreamRecords(ctx, time.Now(), time.Now(), limit); !errors.Is(err, ErrInvalid) {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
}

func TestListAndCountUpstreamRecords(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	zero := map[string]int{UpstreamAdding: 0, UpstreamLive: 0, UpstreamRemoving: 0, UpstreamCleaning: 0, UpstreamFailed: 0}
	if c := upCount(t, db); !reflect.DeepEqual(c, zero) {
		t.Fatalf("empty counts %v", c)
	}
	if rs, err := db.ListUpstreamRecords(ctx, "", 0, 10); err != nil || len(rs) != 0 {
		t.Fatalf("empty list %v %v", rs, err)
	}
	var all, liveIDs []int64
	for i := range 7 {
		r, _ := begin(t, db, upRec(3, fmt.Sprintf("v%d", i), ms(2_000_000_000_000)), none)
		all = append(all, r.ID)
		if i%2 == 0 {
			setState(t, db, r.ID, UpstreamAdding, UpstreamLive, 0, "", time.Time{})
			liveIDs = append(liveIDs, r.ID)
		}
	}
	setState(t, db, all[1], UpstreamAdding, UpstreamFailed, 3, "x", time.Time{})
	if _, err := db.ClaimUpstreamRecord(ctx, read(t, db, liveIDs[3]), ms(1)); err != nil {
		t.Fatal(err)
	}
	cleaningIDs := liveIDs[3:]
	liveIDs = liveIDs[:3]
	want := map[string]int{UpstreamAdding: 2, UpstreamLive: 3, UpstreamRemoving: 0, UpstreamCleaning: 1, UpstreamFailed: 1}
	if c := upCount(t, db); !reflect.DeepEqual(c, want) {
		t.Fatalf("counts %v, want %v", c, want)
	}

	// Page through every state, then through live ones, 3 at a time.
	for _, tc := range []struct {
		state string
		want  []int64
	}{{"", all}, {UpstreamLive, liveIDs}, {UpstreamCleaning, cleaningIDs}, {UpstreamFailed, all[1:2]}, {UpstreamRemoving, []int64{}}} {
		got, after := []int64{}, int64(0)
		for pages := 0; ; pages++ {
			rs, err := db.ListUpstreamRecords(ctx, tc.state, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) > 3 || pages > 10 {
				t.Fatalf("state %q: page of %d after %d pages", tc.state, len(rs), pages)
			}
			if len(rs) == 0 {
				break
			}
			for _, r := range rs {
				if tc.state != "" && r.State != tc.state {
					t.Fatalf("state %q: listed %+v", tc.state, r)
				}
			}
			got = append(got, ids(rs)...)
			after = rs[len(rs)-1].ID
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("state %q: %v, want %v", tc.state, got, tc.want)
		}
	}
	for _, tc := range []struct {
		state string
		limit int
	}{{"gone", 10}, {"", 0}, {"", 10_001}} {
		if _, err := db.ListUpstreamRecords(ctx, tc.state, 0, tc.limit); !errors.Is(err, ErrInvalid) {
			t.Errorf("list %q limit %d: %v", tc.state, tc.limit, err)
		}
	}
}

func newCredential(t *testing.T, db *DB, name string) Credential {
	t.Helper()
	c, err := db.CreateCredential(t.Context(), Credential{
		UID: "uid-" + name + "-0123456789", Name: name, Provider: "rfc2136",
		FieldNames: []string{"RFC2136_TSIG_SECRET"}, Sealed: []byte{1}, Fingerprint: []byte{2},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDeleteCredentialRefusedWhileRecordsReferToIt(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	cred := newCredential(t, db, "knot")
	other := newCredential(t, db, "other")
	a, _ := begin(t, db, upRec(cred.ID, "a", ms(2_000_000_000_000)), none)
	b, _ := begin(t, db, upRec(cred.ID, "b", ms(2_000_000_000_000)), none)
	begin(t, db, upRec(other.ID, "c", ms(2_000_000_000_000)), none)

	// Any state keeps it, failed records included.
	setState(t, db, a.ID, UpstreamAdding, UpstreamFailed, 5, "x", time.Time{})
	_, err := db.DeleteCredential(ctx, cred.ID)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "2 upstream records") {
		t.Fatalf("delete with 2 records: %v", err)
	}
	if err := db.DeleteUpstreamRecord(ctx, b.ID, UpstreamAdding); err != nil {
		t.Fatal(err)
	}
	_, err = db.DeleteCredential(ctx, cred.ID)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "1 upstream record was") {
		t.Fatalf("delete with 1 record: %v", err)
	}
	// A config and a record: both named.
	if _, err := db.CreateConfig(ctx, ChallengeConfig{Name: "up", Provider: "rfc2136", CredentialID: cred.ID, Rule: "*.example.org"}); err != nil {
		t.Fatal(err)
	}
	_, err = db.DeleteCredential(ctx, cred.ID)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "managed challenge up") || !strings.Contains(err.Error(), "1 upstream record") {
		t.Fatalf("delete with a config and a record: %v", err)
	}
	if err := db.DeleteConfig(ctx, mustConfigByName(t, db, "up").ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUpstreamRecord(ctx, a.ID, UpstreamFailed); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteCredential(ctx, cred.ID); err != nil {
		t.Fatalf("delete once its records are gone: %v", err)
	}
	// The other credential's record is untouched and still keeps it.
	if _, err := db.DeleteCredential(ctx, other.ID); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete other: %v", err)
	}
}

func mustConfigByName(t *testing.T, db *DB, name string) ChallengeConfig {
	t.Helper()
	c, err := db.ConfigByName(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigEngine(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	for i, engine := range []string{"", EngineValue, EngineLego} {
		c, err := db.CreateConfig(ctx, ChallengeConfig{Name: fmt.Sprintf("c%d", i), Provider: "rfc2136", Engine: engine,
			Rule: fmt.Sprintf("*.e%d.example.org", i)})
		if err != nil || c.Engine != engine {
			t.Fatalf("create engine %q: %+v %v", engine, c, err)
		}
		if read, err := db.Config(ctx, c.ID); err != nil || read.Engine != engine {
			t.Fatalf("read engine %q: %+v %v", engine, read, err)
		}
	}
	c := mustConfigByName(t, db, "c0")
	c.Engine = EngineLego
	if got, err := db.UpdateConfig(ctx, c); err != nil || got.Engine != EngineLego {
		t.Fatalf("update to lego: %+v %v", got, err)
	}
	c.Engine = ""
	if got, err := db.UpdateConfig(ctx, c); err != nil || got.Engine != "" {
		t.Fatalf("update to none: %+v %v", got, err)
	}
	if list, err := db.ListConfigs(ctx); err != nil || len(list) != 3 || list[1].Engine != EngineValue || list[2].Engine != EngineLego {
		t.Fatalf("list %+v %v", list, err)
	}
	for _, tc := range []struct{ provider, engine string }{
		{"rfc2136", "Lego"},
		{"rfc2136", "libdns"},
		{ProviderDelegated, EngineLego},
		{ProviderDelegated, EngineValue},
	} {
		if _, err := db.CreateConfig(ctx, ChallengeConfig{Name: "bad", Provider: tc.provider, Engine: tc.engine, Rule: "*"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s with engine %q: %v, want ErrInvalid", tc.provider, tc.engine, err)
		}
		c.Provider, c.Engine = tc.provider, tc.engine
		if _, err := db.UpdateConfig(ctx, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("update to %s with engine %q: %v, want ErrInvalid", tc.provider, tc.engine, err)
		}
	}
	// The schema refuses what the store would, for other writers.
	if _, err := db.r.Exec(`UPDATE managed_challenges SET upstream_engine = 'bogus'`); err == nil {
		t.Fatal("schema took engine 'bogus'")
	}
	if _, err := db.r.Exec(`INSERT INTO upstream_records (config_id, credential_id, provider, engine, domain, fqdn,
		value, state, created_at, expires_at) VALUES (1, 1, 'x', 'lego', 'example.org', 'x.example.org.', 'v', 'live', 1, 1)`); err == nil {
		t.Fatal("schema took a lego record without a key authorization")
	}
}

// TestMigration0006FromEveryVersion: a database at any earlier version
// keeps its configs (engine "") and credentials, and gets working upstream
// records that hold a credential.
func TestMigration0006FromEveryVersion(t *testing.T) {
	t.Parallel()
	for from := 0; from < 6; from++ {
		t.Run(fmt.Sprintf("from_%04d", from), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "old.db")
			old := buildAt(t, path, from)
			wantConfigs := 0
			if from >= 2 {
				wantConfigs = 2 // testdata/seed/0002.sql
			}
			if from >= 5 {
				if _, err := old.Exec(`INSERT INTO upstream_credentials (uid, name, provider, field_names, sealed,
						fingerprint, created_at, updated_at) VALUES ('uid-0123456789abcdef', 'knot', 'rfc2136',
						'RFC2136_TSIG_SECRET', X'01', X'02', 1700000000000, 1700000000000);
					INSERT INTO managed_challenges (name, challenge_type, provider, credential_id, rule, created_at,
						updated_at) VALUES ('upstream', 'dns-01', 'rfc2136', 1, '*.example.com', 1700000000000, 1700000000000)`); err != nil {
					t.Fatal(err)
				}
				wantConfigs++
			}
			db := openMigrated(t, old, path)
			ctx := t.Context()
			cfgs, err := db.ListConfigs(ctx)
			if err != nil || len(cfgs) != wantConfigs {
				t.Fatalf("configs %+v %v, want %d", cfgs, err, wantConfigs)
			}
			for _, c := range cfgs {
				if c.Engine != "" {
					t.Errorf("config %s: engine %q after migration", c.Name, c.Engine)
				}
			}
			if c := upCount(t, db); c[UpstreamAdding]+c[UpstreamLive]+c[UpstreamRemoving]+c[UpstreamCleaning]+c[UpstreamFailed] != 0 || len(c) != 5 {
				t.Fatalf("counts %v", c)
			}
			var credID int64
			if from >= 5 {
				cred, err := db.CredentialByName(ctx, "knot")
				if err != nil {
					t.Fatal(err)
				}
				credID = cred.ID
				up := mustConfigByName(t, db, "upstream")
				up.Engine = EngineValue
				if got, err := db.UpdateConfig(ctx, up); err != nil || got.Engine != EngineValue || got.CredentialID != credID {
					t.Fatalf("set engine: %+v %v", got, err)
				}
				if err := db.DeleteConfig(ctx, up.ID); err != nil {
					t.Fatal(err)
				}
			} else {
				credID = newCredential(t, db, "knot").ID
			}
			r, _ := begin(t, db, upRec(credID, "v", ms(2_000_000_000_000)), UpstreamLimits{Exclusive: true, PerName: 1, PerCreator: 1})
			if _, err := db.DeleteCredential(ctx, credID); !errors.Is(err, ErrInUse) {
				t.Fatalf("delete credential with a record: %v", err)
			}
			if err := db.DeleteUpstreamRecord(ctx, r.ID, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := db.DeleteCredential(ctx, credID); err != nil {
				t.Fatal(err)
			}
			mustIntegrity(t, db)
		})
	}
}

// TestUpstreamRecordsGeneration: inserting and deleting records moves the
// generation, so the service's "any upstream records" hint follows.
func TestUpstreamRecordsGeneration(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	gen := func() int64 {
		g, err := db.Generation(ctx, GenUpstreamRecords)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	exist := func() bool {
		a, err := db.HasUpstreamRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	g0 := gen()
	if exist() {
		t.Fatal("records in a new database")
	}
	r, _ := begin(t, db, upRec(3, "a", time.Now().Add(time.Hour)), none)
	g1 := gen()
	if g1 == g0 || !exist() {
		t.Fatalf("after an insert: generation %d -> %d, any %v", g0, g1, exist())
	}
	if err := db.DeleteUpstreamRecord(ctx, r.ID, ""); err != nil {
		t.Fatal(err)
	}
	if g2 := gen(); g2 == g1 || exist() {
		t.Fatalf("after the delete: generation %d -> %d, any %v", g1, g2, exist())
	}
}
