package api

import (
	"context"
	"testing"
)

// TestOperationSteps: a second step runs without a worker slot (one
// worker, and a second operation runs while the first one's second step
// blocks); its result is the operation's; a failed first step skips it;
// a panic in it fails the operation.
func TestOperationSteps(t *testing.T) {
	t.Parallel()
	o, _ := newTestOps(t, opStoreConfig{Workers: 1})
	release := make(chan struct{})
	first, err := o.beginSteps(t.Context(), "p1", nil, func(context.Context) (any, bool, opFunc) {
		return "first step", true, func(context.Context) (any, bool) { <-release; return "second step", true }
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, o, first.ID, opRunning)
	other, err := o.begin(t.Context(), "p1", nil, func(context.Context) (any, bool) { return "other", true })
	if err != nil {
		t.Fatal(err)
	}
	if op := waitFor(t, o, other.ID, opSucceeded); op.Result != "other" {
		t.Fatalf("other operation: %+v", op)
	}
	if op, _ := o.get(first.ID); op.Status != opRunning {
		t.Fatalf("first operation during its second step: %+v", op)
	}
	close(release)
	if op := waitFor(t, o, first.ID, opSucceeded); op.Result != "second step" {
		t.Fatalf("first operation: %+v", op)
	}

	ran := false
	failed, err := o.beginSteps(t.Context(), "p1", nil, func(context.Context) (any, bool, opFunc) {
		return "why", false, func(context.Context) (any, bool) { ran = true; return nil, true }
	})
	if err != nil {
		t.Fatal(err)
	}
	if op := waitFor(t, o, failed.ID, opFailed); op.Result != "why" || ran {
		t.Fatalf("failed first step: %+v, second step ran: %v", op, ran)
	}
	panicked, err := o.beginSteps(t.Context(), "p1", nil, func(context.Context) (any, bool, opFunc) {
		return nil, true, func(context.Context) (any, bool) { panic("boom") }
	})
	if err != nil {
		t.Fatal(err)
	}
	if op := waitFor(t, o, panicked.ID, opFailed); op.Result != nil {
		t.Fatalf("panicking second step: %+v", op)
	}
}
