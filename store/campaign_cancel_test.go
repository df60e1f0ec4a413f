package store_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestCancelledCampaignLiveCallsEndCancelled: the calls of a campaign that
// are live when it is cancelled finish their conversation and end
// cancelled — a short or unanswered one, or one whose pre-dial check or
// breaker held its dial, is never scheduled for a retry nobody would
// claim — and each gives its slot back when it ends.
func TestCancelledCampaignLiveCallsEndCancelled(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10})
	c := createCampaign(t, s, in, store.CampaignSpec{}, t0)
	addRecipients(t, s, c, t0, numbered(100, 5)...)
	live := claimed(t, s, in.ID, t0)
	if len(live) != 5 {
		t.Fatalf("claimed %d, want 5", len(live))
	}
	id := func(i int) (call store.Call) { return live[i].Call }
	apply(t, s, ev(in.ID, id(0).ID, callstate.CallStart, t0))
	if _, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignCancel, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	short := callEnd(in.ID, id(0).ID, 3, at)
	noAnswer := ev(in.ID, id(1).ID, callstate.InitiationFailed, at)
	noAnswer.Event.Reason = callstate.OutcomeNoAnswer
	deferred := ev(in.ID, id(2).ID, callstate.DialDeferred, at)
	deferred.Event.RetryAfter = time.Minute
	aborted := ev(in.ID, id(3).ID, callstate.DialAborted, at)
	answered := callEnd(in.ID, id(4).ID, 60, at)
	apply(t, s, short, noAnswer, deferred, aborted, answered)
	for i := range live {
		got := getCall(t, s, id(i).ID)
		if got.Status != callstate.Cancelled || got.SlotTakenAt != nil || got.NextRetryAt != nil {
			t.Errorf("call %d: %s, slot %v, retry %v; want cancelled with its slot back and no retry", i, got.Status,
				got.SlotTakenAt, got.NextRetryAt)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM calls WHERE campaign_id = $1 AND status NOT IN ('cancelled')`, c.ID); n != 0 {
		t.Errorf("%d calls of the cancelled campaign are not cancelled", n)
	}
}
