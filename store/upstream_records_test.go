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

func begin(t *testing.T, db *DB, r UpstreamRecord, exclusive bool) (UpstreamRecord, bool) {
	t.Helper()
	got, existing, err := db.BeginUpstreamRecord(t.Context(), r, exclusive)
	if err != nil {
		t.Fatalf("begin %s %s: %v", r.FQDN, r.Value, err)
	}
	return got, existing
}

func setState(t *testing.T, db *DB, id int64, state string, attempts int, lastErr string, next time.Time) {
	t.Helper()
	if err := db.SetUpstreamRecordState(t.Context(), id, state, attempts, lastErr, next); err != nil {
		t.Fatalf("set %d %s: %v", id, state, err)
	}
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
	got, existing := begin(t, db, in, false)
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
	if got, _ := begin(t, db, v, false); got.Engine != EngineValue || got.KeyAuth != "" {
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
		{"adding later expiry", UpstreamAdding, later, UpstreamAdding, later, false},
		{"live later expiry", UpstreamLive, later, UpstreamLive, later, false},
		{"live earlier expiry kept", UpstreamLive, early, UpstreamLive, late, false},
		{"removing", UpstreamRemoving, later, UpstreamAdding, later, true},
		{"failed", UpstreamFailed, later, UpstreamAdding, later, true},
		{"failed earlier expiry kept", UpstreamFailed, early, UpstreamAdding, late, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, nil)
			first, _ := begin(t, db, upRec(3, "v", ms(late)), false)
			if tc.state != UpstreamAdding {
				setState(t, db, first.ID, tc.state, 4, "boom", ms(late))
			}
			// Another config, engine and creator asking for the same value.
			again := upRec(3, "v", ms(tc.expires))
			again.ConfigID, again.Engine, again.KeyAuth, again.TTL, again.CreatedBy = 9, EngineValue, "", 120, "app:other"
			time.Sleep(2 * time.Millisecond) // so that a restarted created_at differs
			got, existing := begin(t, db, again, false)
			if !existing || got.ID != first.ID {
				t.Fatalf("existing %v, id %d, want true, %d", existing, got.ID, first.ID)
			}
			want := first
			want.State, want.ExpiresAt = tc.wantState, ms(tc.wantExp)
			if tc.state != UpstreamAdding {
				want.Attempts, want.LastError, want.NextAttemptAt = 4, "boom", ms(late)
			}
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

func TestBeginUpstreamRecordExclusive(t *testing.T) {
	t.Parallel()
	exp := ms(2_000_000_000_000)
	for _, tc := range []struct {
		name     string
		other    UpstreamRecord // begun first (non-exclusive)
		state    string         // then moved to
		conflict bool
	}{
		{"adding", upRec(3, "other", exp), UpstreamAdding, true},
		{"live", upRec(3, "other", exp), UpstreamLive, true},
		{"removing", upRec(3, "other", exp), UpstreamRemoving, false},
		{"failed", upRec(3, "other", exp), UpstreamFailed, false},
		{"another credential", upRec(4, "other", exp), UpstreamLive, false},
		{"another name", func() UpstreamRecord {
			r := upRec(3, "other", exp)
			r.FQDN = "_acme-challenge.example.net."
			return r
		}(), UpstreamLive, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, nil)
			other, _ := begin(t, db, tc.other, false)
			if tc.state != UpstreamAdding {
				setState(t, db, other.ID, tc.state, 0, "", time.Time{})
				other, _ = db.UpstreamRecord(t.Context(), other.ID)
			}
			got, existing, err := db.BeginUpstreamRecord(t.Context(), upRec(3, "mine", exp), true)
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
			// Without exclusive the two values coexist.
			if _, existing := begin(t, db, upRec(3, "mine", exp), false); existing {
				t.Fatal("existing after a refused begin")
			}
			// And with one there, the other value is refused too.
			if _, _, err := db.BeginUpstreamRecord(t.Context(), upRec(3, "third", exp), true); !errors.Is(err, ErrConflict) {
				t.Fatalf("third value: %v", err)
			}
		})
	}
}

// TestBeginUpstreamRecordExclusiveRace: of many concurrent exclusive
// begins of different values at one name, exactly one is stored.
func TestBeginUpstreamRecordExclusiveRace(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = db.BeginUpstreamRecord(t.Context(), upRec(3, fmt.Sprintf("v%d", i), ms(2_000_000_000_000)), true)
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
		if _, _, err := db.BeginUpstreamRecord(t.Context(), r, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	// The limits themselves are fine.
	r := upRec(3, "v", exp)
	r.KeyAuth, r.TTL, r.FQDN = strings.Repeat("k", 1024), 1<<31-1, strings.Repeat("abc.", 63)+"o."
	if len(r.FQDN) != 254 {
		t.Fatalf("fqdn of %d bytes", len(r.FQDN))
	}
	begin(t, db, r, false)
	if c := upCount(t, db); c[UpstreamAdding] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestSetUpstreamRecordState(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	r, _ := begin(t, db, upRec(3, "v", ms(2_000_000_000_000)), false)

	setState(t, db, r.ID, UpstreamLive, 0, "", time.Time{})
	got, err := db.UpstreamRecord(ctx, r.ID)
	if err != nil || got.State != UpstreamLive || !got.NextAttemptAt.IsZero() {
		t.Fatalf("live: %+v %v", got, err)
	}
	setState(t, db, r.ID, UpstreamRemoving, 2, "provider said no", ms(2_000_000_060_000))
	got, _ = db.UpstreamRecord(ctx, r.ID)
	want := r
	want.State, want.Attempts, want.LastError, want.NextAttemptAt = UpstreamRemoving, 2, "provider said no", ms(2_000_000_060_000)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("removing\n%+v\nwant\n%+v", got, want)
	}

	// A long error is cut to 512 bytes at a character boundary.
	long := strings.Repeat("é", 300) // 600 bytes
	setState(t, db, r.ID, UpstreamFailed, 9, long, time.Time{})
	got, _ = db.UpstreamRecord(ctx, r.ID)
	if got.State != UpstreamFailed || len(got.LastError) != 512 || !utf8.ValidString(got.LastError) ||
		!strings.HasPrefix(long, got.LastError) {
		t.Fatalf("failed: state %s, %d bytes of error", got.State, len(got.LastError))
	}
	odd := "x" + strings.Repeat("é", 300) // the cut falls inside a character
	setState(t, db, r.ID, UpstreamFailed, 9, odd, time.Time{})
	if got, _ = db.UpstreamRecord(ctx, r.ID); len(got.LastError) != 511 || !utf8.ValidString(got.LastError) {
		t.Fatalf("odd cut: %d bytes, valid %v", len(got.LastError), utf8.ValidString(got.LastError))
	}
	exact := strings.Repeat("e", 512)
	setState(t, db, r.ID, UpstreamFailed, 9, exact, time.Time{})
	if got, _ = db.UpstreamRecord(ctx, r.ID); got.LastError != exact {
		t.Fatalf("512 bytes not kept whole: %d", len(got.LastError))
	}

	for _, tc := range []struct {
		name     string
		id       int64
		state    string
		attempts int
		want     error
	}{
		{"unknown state", r.ID, "gone", 0, ErrInvalid},
		{"empty state", r.ID, "", 0, ErrInvalid},
		{"negative attempts", r.ID, UpstreamLive, -1, ErrInvalid},
		{"unknown id", r.ID + 100, UpstreamLive, 0, ErrNotFound},
	} {
		if err := db.SetUpstreamRecordState(ctx, tc.id, tc.state, tc.attempts, "", time.Time{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got, _ = db.UpstreamRecord(ctx, r.ID); got.State != UpstreamFailed {
		t.Fatalf("refused changes changed the state to %s", got.State)
	}
}

func TestDeleteUpstreamRecord(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	a, _ := begin(t, db, upRec(3, "a", ms(2_000_000_000_000)), false)
	b, _ := begin(t, db, upRec(3, "b", ms(2_000_000_000_000)), false)
	if err := db.DeleteUpstreamRecord(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpstreamRecord(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
	if err := db.DeleteUpstreamRecord(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if got, err := db.UpstreamRecord(ctx, b.ID); err != nil || got.Value != "b" {
		t.Fatalf("the other record: %+v %v", got, err)
	}
	// The value can be begun afresh, with a new id.
	if again, existing := begin(t, db, upRec(3, "a", ms(2_000_000_000_000)), false); existing || again.ID <= b.ID {
		t.Fatalf("begun again: %+v existing %v", again, existing)
	}
}

func TestUpstreamRecordsAt(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	exp := ms(2_000_000_000_000)
	a, _ := begin(t, db, upRec(3, "a", exp), false)
	b, _ := begin(t, db, upRec(3, "b", exp), false)
	c, _ := begin(t, db, upRec(4, "a", exp), false) // another credential, same value
	net := upRec(3, "a", exp)
	net.Domain, net.FQDN = "example.net", "_acme-challenge.example.net."
	begin(t, db, net, false)
	setState(t, db, b.ID, UpstreamFailed, 1, "x", time.Time{})

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
	const expLive, nextRemoving = 2_000_000_000_000, 2_000_000_500_000

	live, _ := begin(t, db, upRec(3, "live", ms(expLive)), false)
	setState(t, db, live.ID, UpstreamLive, 0, "", time.Time{})
	removing, _ := begin(t, db, upRec(3, "removing", ms(3_000_000_000_000)), false)
	setState(t, db, removing.ID, UpstreamRemoving, 1, "x", ms(nextRemoving))
	failed, _ := begin(t, db, upRec(3, "failed", ms(1)), false) // long expired, but given up
	setState(t, db, failed.ID, UpstreamFailed, 5, "x", ms(1))
	adding, _ := begin(t, db, upRec(3, "adding", ms(1)), false) // expiry does not make an adding row due
	created := adding.CreatedAt.UnixMilli()

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
		{"removing just before", nextRemoving - 1, created, 10, []int64{live.ID}},
		{"removing at its time", nextRemoving, created, 10, []int64{live.ID, removing.ID}},
		{"adding created at the stale mark is not stale", 1, created, 10, []int64{}},
		{"adding created before the stale mark", 1, created + 1, 10, []int64{adding.ID}},
		{"everything, by id", nextRemoving, created + 1, 10, []int64{live.ID, removing.ID, adding.ID}},
		{"limit", nextRemoving, created + 1, 2, []int64{live.ID, removing.ID}},
	} {
		if got := due(tc.now, tc.stale, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
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
	zero := map[string]int{UpstreamAdding: 0, UpstreamLive: 0, UpstreamRemoving: 0, UpstreamFailed: 0}
	if c := upCount(t, db); !reflect.DeepEqual(c, zero) {
		t.Fatalf("empty counts %v", c)
	}
	if rs, err := db.ListUpstreamRecords(ctx, "", 0, 10); err != nil || len(rs) != 0 {
		t.Fatalf("empty list %v %v", rs, err)
	}
	var all, liveIDs []int64
	for i := range 7 {
		r, _ := begin(t, db, upRec(3, fmt.Sprintf("v%d", i), ms(2_000_000_000_000)), false)
		all = append(all, r.ID)
		if i%2 == 0 {
			setState(t, db, r.ID, UpstreamLive, 0, "", time.Time{})
			liveIDs = append(liveIDs, r.ID)
		}
	}
	setState(t, db, all[1], UpstreamFailed, 3, "x", time.Time{})
	want := map[string]int{UpstreamAdding: 2, UpstreamLive: 4, UpstreamRemoving: 0, UpstreamFailed: 1}
	if c := upCount(t, db); !reflect.DeepEqual(c, want) {
		t.Fatalf("counts %v, want %v", c, want)
	}

	// Page through every state, then through live ones, 3 at a time.
	for _, tc := range []struct {
		state string
		want  []int64
	}{{"", all}, {UpstreamLive, liveIDs}, {UpstreamFailed, all[1:2]}, {UpstreamRemoving, []int64{}}} {
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
	a, _ := begin(t, db, upRec(cred.ID, "a", ms(2_000_000_000_000)), false)
	b, _ := begin(t, db, upRec(cred.ID, "b", ms(2_000_000_000_000)), false)
	begin(t, db, upRec(other.ID, "c", ms(2_000_000_000_000)), false)

	// Any state keeps it, failed records included.
	setState(t, db, a.ID, UpstreamFailed, 5, "x", time.Time{})
	_, err := db.DeleteCredential(ctx, cred.ID)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "2 upstream records") {
		t.Fatalf("delete with 2 records: %v", err)
	}
	if err := db.DeleteUpstreamRecord(ctx, b.ID); err != nil {
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
	if err := db.DeleteUpstreamRecord(ctx, a.ID); err != nil {
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
			if c := upCount(t, db); c[UpstreamAdding]+c[UpstreamLive]+c[UpstreamRemoving]+c[UpstreamFailed] != 0 || len(c) != 4 {
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
			r, _ := begin(t, db, upRec(credID, "v", ms(2_000_000_000_000)), true)
			if _, err := db.DeleteCredential(ctx, credID); !errors.Is(err, ErrInUse) {
				t.Fatalf("delete credential with a record: %v", err)
			}
			if err := db.DeleteUpstreamRecord(ctx, r.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.DeleteCredential(ctx, credID); err != nil {
				t.Fatal(err)
			}
			mustIntegrity(t, db)
		})
	}
}
