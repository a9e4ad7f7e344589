package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/zone"
)

func TestBackupWhileWritingAndRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "hub.db")
	backupPath := filepath.Join(dir, "backup.db")
	ctx := t.Context()

	db, err := Open(ctx, Config{Path: dbPath, Synchronous: "FULL"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateToken(ctx, Token{ClientID: "admin", SecretHash: []byte{1, 2, 3}, Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		add(t, db, fmt.Sprintf("pre%d.example.org.", i/10), fmt.Sprintf("v%d", i))
	}

	// Writers keep going during the backup.
	stop := make(chan struct{})
	var written atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.AddValue(ctx, AddRequest{Name: fmt.Sprintf("during%d-%d.example.org.", g, i/10), Value: fmt.Sprintf("v%d", i), TTL: 60, ExpiresAt: future}); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := db.Backup(ctx, backupPath); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if written.Load() == 0 {
		t.Fatal("no write happened around the backup")
	}
	if err := db.Backup(ctx, backupPath); !errors.Is(err, os.ErrExist) {
		t.Fatalf("backup over an existing file: %v", err)
	}
	if fi, err := os.Stat(backupPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	// Restore refuses while the database is open.
	if err := Restore(ctx, backupPath, dbPath, RestoreOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore over an open database: %v", err)
	}
	liveSerial := serialOf(t, db)
	liveSnap, _ := db.Snapshot(ctx)
	liveGen, _ := db.Generation(ctx, GenTokens)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The backup is a consistent, self-contained database with its time.
	bk := openRaw(t, backupPath)
	var taken, bserial string
	if err := bk.QueryRow(`SELECT value FROM meta WHERE key = ?`, MetaBackupTakenAt).Scan(&taken); err != nil {
		t.Fatal(err)
	}
	if err := bk.QueryRow(`SELECT value FROM meta WHERE key = ?`, MetaBackupSerial).Scan(&bserial); err != nil {
		t.Fatal(err)
	}
	_ = bk.Close()
	bs, _ := strconv.ParseInt(bserial, 10, 64)
	if bs < 52 || bs > liveSerial {
		t.Fatalf("backup serial %d, live %d", bs, liveSerial)
	}
	if _, err := os.Stat(backupPath + "-wal"); err == nil {
		t.Error("backup left a -wal file")
	}

	now := time.Now()
	if err := Restore(ctx, backupPath, dbPath, RestoreOptions{Now: now, KeepReplaced: true}); err != nil {
		t.Fatal(err)
	}
	if kept, _ := filepath.Glob(dbPath + ".replaced-*"); len(kept) != 1 {
		t.Errorf("kept replaced databases: %v", kept)
	}
	db = openTest2(t, dbPath)
	mustIntegrity(t, db)
	s := serialOf(t, db)
	if s < liveSerial+restoreMinJump {
		t.Fatalf("restored serial %d, want at least %d + %d", s, liveSerial, restoreMinJump)
	}
	if !SerialLess(SerialPublished(liveSerial), SerialPublished(s)) {
		t.Fatal("restored serial not newer in RFC 1982 terms")
	}
	// Followers reload: no journal bridges the restore.
	for _, since := range []int64{bs, liveSerial, s - 1} {
		if _, err := db.ChangesSince(ctx, since, 10); !errors.Is(err, zone.ErrGap) {
			t.Errorf("changes since %d across the restore: %v", since, err)
		}
	}
	if ch, err := db.ChangesSince(ctx, s, 10); err != nil || ch != nil {
		t.Fatalf("changes since the restored serial: %v %v", ch, err)
	}
	// The content is the backup's: everything before it, part of the rest.
	snap, _ := db.Snapshot(ctx)
	if len(snap.Values) < 50 || len(snap.Values) > len(liveSnap.Values) {
		t.Fatalf("restored %d values, live had %d", len(snap.Values), len(liveSnap.Values))
	}
	if _, err := db.TokenByClientID(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if g, _ := db.Generation(ctx, GenTokens); g <= liveGen {
		t.Fatalf("tokens generation %d after restore, was %d", g, liveGen)
	}
	if _, err := db.Meta(ctx, MetaRestoredAt); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Meta(ctx, MetaBackupTakenAt); !errors.Is(err, ErrNotFound) {
		t.Fatalf("backup time kept in the live database: %v", err)
	}
	// Writes go on from the new serial.
	if got := add(t, db, "after.example.org.", "v"); got != s+1 {
		t.Fatalf("first write after restore at serial %d, want %d", got, s+1)
	}
	if ch, err := db.ChangesSince(ctx, s, 10); err != nil || len(ch) != 1 {
		t.Fatalf("changes after restore: %v %v", ch, err)
	}
}

func TestRestoreSerialRule(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, tc := range []struct {
		name      string
		age       time.Duration
		replaced  bool // the replaced database exists (at a higher serial)
		minSerial int64
		want      func(backup, replaced int64) int64
	}{
		{"fresh backup, replaced readable", time.Second, true, 0,
			func(_, r int64) int64 { return r + restoreMinJump }},
		{"old backup, database lost", 2 * time.Hour, false, 0,
			func(b, _ int64) int64 { return b + 7200*restorePerSecond }},
		{"very old backup", 365 * 24 * time.Hour, false, 0,
			func(b, _ int64) int64 { return b + restoreMaxJump }},
		{"min serial wins", time.Second, true, 1 << 40,
			func(_, _ int64) int64 { return 1<<40 + restoreMinJump }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dbPath, backupPath := filepath.Join(dir, "hub.db"), filepath.Join(dir, "b.db")
			db, err := Open(ctx, Config{Path: dbPath})
			if err != nil {
				t.Fatal(err)
			}
			add(t, db, "a.example.org.", "1")
			if err := db.Backup(ctx, backupPath); err != nil {
				t.Fatal(err)
			}
			b := serialOf(t, db)
			for i := range 5 {
				add(t, db, "a.example.org.", fmt.Sprintf("later%d", i))
			}
			r := serialOf(t, db)
			_ = db.Close()
			if !tc.replaced {
				removeDBFiles(dbPath)
			}
			taken := readBackupTime(t, backupPath)
			if err := Restore(ctx, backupPath, dbPath, RestoreOptions{Now: taken.Add(tc.age), MinSerial: tc.minSerial}); err != nil {
				t.Fatal(err)
			}
			db = openTest2(t, dbPath)
			if got, want := serialOf(t, db), tc.want(b, r); got != want {
				t.Fatalf("serial %d, want %d (backup %d, replaced %d)", got, want, b, r)
			}
		})
	}
}

func readBackupTime(t *testing.T, path string) time.Time {
	t.Helper()
	d := openRaw(t, path)
	defer func() { _ = d.Close() }() // only read from
	var v string
	if err := d.QueryRow(`SELECT value FROM meta WHERE key = ?`, MetaBackupTakenAt).Scan(&v); err != nil {
		t.Fatal(err)
	}
	ms, _ := strconv.ParseInt(v, 10, 64)
	return time.UnixMilli(ms)
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "hub.db")
	db, err := Open(ctx, Config{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	add(t, db, "keep.example.org.", "v")
	good := filepath.Join(dir, "good.db")
	if err := db.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	before, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}

	corrupt := filepath.Join(dir, "corrupt.db")
	data, _ := os.ReadFile(good)
	for i := 4096; i < len(data); i += 7 { // keep the header page, damage the rest
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(corrupt, data, 0o600); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(dir, "text.db")
	if err := os.WriteFile(notDB, []byte("hello, this is not a database at all, sorry............................................................................"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	f := openRaw(t, foreign)
	if _, err := f.Exec(`CREATE TABLE x (y INTEGER)`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	newer := filepath.Join(dir, "newer.db")
	n := buildAt(t, newer, LatestSchema())
	if _, err := n.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)`, LatestSchema()+1); err != nil {
		t.Fatal(err)
	}
	_ = n.Close()

	for _, tc := range []struct {
		name, path string
		is         error
	}{
		{"corrupt", corrupt, nil},
		{"not a database", notDB, nil},
		{"foreign database", foreign, ErrInvalid},
		{"newer schema", newer, ErrSchemaTooNew},
		{"missing", filepath.Join(dir, "missing.db"), os.ErrNotExist},
		{"itself", dbPath, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Restore(ctx, tc.path, dbPath, RestoreOptions{})
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("restore from %s: %v", tc.name, err)
			}
			after, _ := os.ReadFile(dbPath)
			if string(after) != string(before) {
				t.Fatal("a refused restore changed the database")
			}
			if _, err := os.Stat(dbPath + ".restore-tmp"); err == nil {
				t.Fatal("staging file left behind")
			}
		})
	}
	if err := Restore(ctx, good, dbPath, RestoreOptions{}); err != nil {
		t.Fatalf("good backup after the refusals: %v", err)
	}
	db = openTest2(t, dbPath)
	if got := values(t, db, "keep.example.org."); len(got) != 1 {
		t.Fatalf("restored values %v", got)
	}
}
