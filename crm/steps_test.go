package crm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/crm/nethunttest"
)

// TestNetHuntRetrySkipsAppliedSteps: NetHunt has no idempotency key, so an
// update whose comment failed is retried from the comment: the field update
// is not repeated, and a comment that went through is never posted again;
// a step that cannot be recorded stops the update before the next request.
func TestNetHuntRetrySkipsAppliedSteps(t *testing.T) {
	t.Parallel()
	nh := nethunttest.New(t)
	id := nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": phone})
	nh.Fail("actions/create-comment", 503, 1)
	c := nhClient(t, nh, config.CRM{StatusValues: map[string]string{"completed": "Called"}}, defaultFields, nethunttest.APIKey)
	var steps []string
	u := crm.Update{Key: "outbox-1", RecordID: id, PhoneNumber: phone, Status: "completed", Outcome: "completed",
		Summary: "Передзвонити в понеділок"}
	u.StepDone = func(_ context.Context, step string) error { steps = append(steps, step); return nil }

	if err := c.Apply(t.Context(), u); err == nil {
		t.Fatal("the comment's 503 did not fail the update")
	}
	if !slices.Equal(steps, []string{crm.StepUpdateRecord}) {
		t.Fatalf("steps recorded after the failed comment: %v", steps)
	}
	u.StepsDone = steps
	if err := c.Apply(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	u.StepsDone = steps // both done: a third attempt sends nothing
	if err := c.Apply(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range nh.Writes() {
		kinds = append(kinds, r.Path[strings.LastIndex(r.Path[:strings.LastIndex(r.Path, "/")], "/")+1:strings.LastIndex(r.Path, "/")])
	}
	if want := []string{"update-record", "create-comment", "create-comment"}; !slices.Equal(kinds, want) {
		t.Errorf("requests %v, want %v (one field update, the failed comment, its retry)", kinds, want)
	}
	if n := len(nh.Comments(id)); n != 1 {
		t.Errorf("%d comments, want 1", n)
	}
	if !slices.Equal(steps, []string{crm.StepUpdateRecord, crm.StepCreateComment}) {
		t.Errorf("steps recorded: %v", steps)
	}

	// A step that cannot be recorded (the lease was lost) stops the update.
	lost := errors.New("outbox lease lost")
	u.StepsDone, steps = nil, nil
	u.StepDone = func(context.Context, string) error { return lost }
	before := len(nh.Writes())
	if err := c.Apply(t.Context(), u); !errors.Is(err, lost) {
		t.Errorf("Apply = %v, want the step's error", err)
	}
	if n := len(nh.Writes()) - before; n != 1 {
		t.Errorf("%d requests after an unrecordable step, want 1 (no comment)", n)
	}
}
