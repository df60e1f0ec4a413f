package store_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestDialAnswerAfterReportsRecordsIDs: the platform reports the call's
// start and end (naming it <call>.1) before the dial's answer arrives. The
// answer moves nothing, but the dialler's and the agent's ids it carries
// are recorded on the attempt, so later events naming only them are
// recognised.
func TestDialAnswerAfterReportsRecordsIDs(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	ref := callstate.AttemptCallID(id, 1)
	apply(t, s, webhookEvent(in.ID, ref, callstate.CallStart, "call_start", "start", t0.Add(time.Second)))
	end := webhookEvent(in.ID, ref, callstate.CallEnd, "call_end", "end", t0.Add(time.Minute))
	end.Event.DurationSecs = 50
	apply(t, s, end)
	status := getCall(t, s, id).Status
	if status == callstate.Initiated || status == callstate.InProgress {
		t.Fatalf("call is %s after call_end", status)
	}

	apply(t, s, store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1, ExternalCallID: "va-77", ConversationID: "conv-77",
		Event: callstate.Event{Kind: callstate.DialAccepted}, At: t0.Add(2 * time.Minute)})
	var ext, conv *string
	if err := s.Pool().QueryRow(t.Context(), `SELECT external_call_id, conversation_id FROM call_attempts
		WHERE call_id = $1 AND attempt = 1`, id).Scan(&ext, &conv); err != nil {
		t.Fatal(err)
	}
	if ext == nil || *ext != "va-77" || conv == nil || *conv != "conv-77" {
		t.Fatalf("attempt 1 of a %s call records external id %v, conversation id %v; want va-77, conv-77", status, ext, conv)
	}
	byExt := apply(t, s, webhookEvent(in.ID, "va-77", callstate.CallEnd, "media_end", "by-ext", t0.Add(3*time.Minute)))
	if !byExt[0].Found || byExt[0].CallID != id {
		t.Errorf("an event naming va-77 found %v (call %s), want call %s", byExt[0].Found, byExt[0].CallID, id)
	}
}

// TestDialerReusesExternalID: the dialler answers the dials of two calls
// with the same id. The second answer is recorded like any other (not
// refused by the unique index and lost): the id names the newest attempt,
// the one the dialler reports on from then.
func TestDialerReusesExternalID(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 2})
	ids := queueCalls(t, s, in.ID, 2, t0)
	claim(t, s, in.ID, t0)
	accept(t, s, in.ID, ids[0], "va-same", "", t0.Add(time.Second))
	out, err := s.ApplyEvents(t.Context(), []store.CallEvent{{IntegrationID: in.ID, CallID: ids[1], Attempt: 1,
		ExternalCallID: "va-same", Event: callstate.Event{Kind: callstate.DialAccepted}, At: t0.Add(2 * time.Second)}})
	if err != nil {
		t.Fatalf("the second dial answer naming va-same: %v", err)
	}
	if !out[0].Decision.Changed {
		t.Errorf("the second dial answer changed nothing: %s", out[0].Decision.Why)
	}
	if c := getCall(t, s, ids[1]); c.ExternalCallID == nil || *c.ExternalCallID != "va-same" {
		t.Errorf("the second call shows external id %v", c.ExternalCallID)
	}
	start := apply(t, s, webhookEvent(in.ID, "va-same", callstate.CallStart, "call_start", "start", t0.Add(3*time.Second)))
	if start[0].CallID != ids[1] {
		t.Errorf("call_start naming va-same went to %s, want the newest dial's call %s", start[0].CallID, ids[1])
	}
}
