package crm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/crm"
)

// TestNetHuntRetrySkipsAppliedSteps: NetHunt has no idempotency key, so an
// update whose comment failed is retried from the comment: the field update
// is not repeated, and a comment that went through is never posted again;
// a step that cannot be recorded stops the update before the next request.
func TestNetHuntRetrySkipsAppliedSteps(t *testing.T) {
	t.Parallel()
	f := newFakeNetHunt(t, map[string]nhAnswer{"update-record": {200, `{"id":"rec-1"}`}, "create-comment": {503, `busy`}})
	c := f.client(t, defaultFields, nhKey)
	var steps []string
	u := crm.Update{Key: "outbox-1", RecordID: "rec-1", PhoneNumber: phone, Status: "completed", Outcome: "interested",
		Summary: "Передзвонити в понеділок"}
	u.StepDone = func(_ context.Context, step string) error { steps = append(steps, step); return nil }

	if err := c.Apply(t.Context(), u); err == nil {
		t.Fatal("the comment's 503 did not fail the update")
	}
	if !slices.Equal(steps, []string{crm.StepUpdateRecord}) {
		t.Fatalf("steps recorded after the failed comment: %v", steps)
	}
	f.answers["create-comment"] = nhAnswer{200, `{"id":"comment-1"}`}
	u.StepsDone = steps
	if err := c.Apply(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	u.StepsDone = steps // both done: a third attempt sends nothing
	if err := c.Apply(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range f.requests() {
		kinds = append(kinds, r.Path[strings.LastIndex(r.Path[:strings.LastIndex(r.Path, "/")], "/")+1:strings.LastIndex(r.Path, "/")])
	}
	if want := []string{"update-record", "create-comment", "create-comment"}; !slices.Equal(kinds, want) {
		t.Errorf("requests %v, want %v (one field update, the failed comment, its retry)", kinds, want)
	}
	if !slices.Equal(steps, []string{crm.StepUpdateRecord, crm.StepCreateComment}) {
		t.Errorf("steps recorded: %v", steps)
	}

	// A step that cannot be recorded (the lease was lost) stops the update.
	lost := errors.New("outbox lease lost")
	u.StepsDone, steps = nil, nil
	u.StepDone = func(context.Context, string) error { return lost }
	before := len(f.requests())
	if err := c.Apply(t.Context(), u); !errors.Is(err, lost) {
		t.Errorf("Apply = %v, want the step's error", err)
	}
	if n := len(f.requests()) - before; n != 1 {
		t.Errorf("%d requests after an unrecordable step, want 1 (no comment)", n)
	}
}
