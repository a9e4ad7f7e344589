package store

import (
	"testing"
	"time"
)

// TestCountValuesLiveOnly: the live-values gauge leaves out values that
// have expired but are not swept yet, and counts them again never.
func TestCountValuesLiveOnly(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	add(t, db, "a.hub.example.net.", "live")
	for _, v := range []string{"old1", "old2"} {
		if _, err := db.AddValue(t.Context(), AddRequest{
			Name: "a.hub.example.net.", Value: v, TTL: 60, ExpiresAt: time.Now().Add(-time.Minute), CreatedBy: "test",
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Not swept yet: the store still holds all three.
	if recs, err := db.ListValues(t.Context(), "a.hub.example.net."); err != nil || len(recs) != 3 {
		t.Fatalf("stored: %d %v", len(recs), err)
	}
	if n, err := db.CountValues(t.Context()); err != nil || n != 1 {
		t.Fatalf("live values: %d %v, want 1", n, err)
	}
}
