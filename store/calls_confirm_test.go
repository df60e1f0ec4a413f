package store_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestConfirmDialAfterCancel: a call cancelled between its claim and its
// originate (during a pre-dial check) is not dialled, and its slot is free
// at once for the next call, not after the watchdog's minutes.
func TestConfirmDialAfterCancel(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 1})
	ids := queueCalls(t, s, in.ID, 2, t0)
	claimed := claimOne(t, s, in.ID, t0)
	call := claimed.Call
	if _, _, err := s.CancelCall(t.Context(), "owner-a", call.ID, "", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	verdict, _, _, err := s.ConfirmDial(t.Context(), claimed, t0.Add(2*time.Second), 0)
	if err != nil || verdict != store.DialCancelled {
		t.Fatalf("confirm after cancel: %q %v, want %q", verdict, err, store.DialCancelled)
	}
	if c := getCall(t, s, call.ID); c.Status != callstate.Cancelled || c.SlotTakenAt != nil {
		t.Errorf("cancelled call %s holds slot since %v; want its slot back", c.Status, c.SlotTakenAt)
	}
	next := claim(t, s, in.ID, t0.Add(3*time.Second))
	if len(next) != 1 || next[0] == call.ID || !(next[0] == ids[0] || next[0] == ids[1]) {
		t.Errorf("next claim %v: want the other call in the freed slot", next)
	}
}

// TestConfirmDialGo: an attempt still current with its window open is
// sent; one the watchdog or an event settled meanwhile is not.
func TestConfirmDialGo(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	queueCalls(t, s, in.ID, 1, t0)
	claimed := claimOne(t, s, in.ID, t0)
	call := claimed.Call
	if verdict, _, applied, err := s.ConfirmDial(t.Context(), claimed, t0.Add(time.Second), 0); err != nil || verdict != store.DialGo || len(applied) != 0 {
		t.Fatalf("confirm: %q %d %v, want go with nothing recorded", verdict, len(applied), err)
	}
	apply(t, s, ev(in.ID, call.ID, callstate.Timeout, t0.Add(time.Minute)))
	if verdict, _, _, err := s.ConfirmDial(t.Context(), claimed, t0.Add(time.Minute), 0); err != nil || verdict != store.DialStale {
		t.Fatalf("confirm after the watchdog: %q %v, want stale", verdict, err)
	}
}

// TestConfirmDialWindowClosed: a call claimed at 19:59:58 whose originate
// would go at 20:00:01 waits for the next opening without spending its
// attempt (contract §6: windows are judged when the originate is sent).
func TestConfirmDialWindowClosed(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"calling_window": map[string]any{"timezone": "Europe/Kyiv", "start": "09:00",
		"end": "20:00", "days": []int{1, 2, 3, 4, 5}}})
	kyiv, _ := time.LoadLocation("Europe/Kyiv")
	claimAt := time.Date(2026, 1, 21, 19, 59, 58, 0, kyiv)
	id := queueCalls(t, s, in.ID, 1, claimAt.Add(-time.Hour))[0]
	verdict, _, _, err := s.ConfirmDial(t.Context(), claimOne(t, s, in.ID, claimAt), claimAt.Add(3*time.Second), 0)
	if err != nil || verdict != store.DialWindowClosed {
		t.Fatalf("confirm at 20:00:01: %q %v, want %q", verdict, err, store.DialWindowClosed)
	}
	c := getCall(t, s, id)
	opens := time.Date(2026, 1, 22, 9, 0, 0, 0, kyiv)
	if c.Status != callstate.RetryScheduled || c.Attempt != 0 || c.NextRetryAt == nil || !c.NextRetryAt.Equal(opens) || c.SlotTakenAt != nil {
		t.Errorf("call %s attempt %d next %v slot %v; want retry_scheduled at attempt 0 until %v, slot free",
			c.Status, c.Attempt, c.NextRetryAt, c.SlotTakenAt, opens)
	}
}

// TestConfirmDialExpired: a claim held past half the watchdog's window for
// dials that never report back (an outage between the claim and the
// originate) is not sent: the watchdog, counting from the claim, could
// release it as lost while it is live at the platform and give its slot
// to another call. It goes back to the queue without spending its attempt;
// a claim younger than that is sent. Both with and without limits on the
// originate (the transaction and the one round trip).
func TestConfirmDialExpired(t *testing.T) {
	t.Parallel()
	const dialLost = 2 * time.Minute
	for name, handling := range map[string]map[string]any{
		"no limit":  {"concurrency_limit": 1},
		"dial rate": {"concurrency_limit": 1, "dial_rate": map[string]any{"per_second": 10, "burst": 5}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			in := activeIntegration(t, s, handling)
			id := queueCalls(t, s, in.ID, 1, t0)[0]
			claimed := claimOne(t, s, in.ID, t0)
			late := t0.Add(dialLost/2 + time.Second)
			verdict, _, applied, err := dbClockAt(s, late).ConfirmDial(t.Context(), claimed, late, dialLost)
			if err != nil || verdict != store.DialExpired || len(applied) != 1 {
				t.Fatalf("confirm %s after the claim: %q, %d recorded, %v; want %q recorded", late.Sub(t0), verdict, len(applied), err, store.DialExpired)
			}
			if c := getCall(t, s, id); c.Status != callstate.Queued || c.Attempt != 0 || c.SlotTakenAt != nil {
				t.Errorf("expired claim left the call %s at attempt %d, slot %v; want it queued at attempt 0, slot free", c.Status, c.Attempt, c.SlotTakenAt)
			}
			again := claimOne(t, s, in.ID, late)
			inTime := late.Add(dialLost/2 - time.Second)
			if verdict, _, _, err := dbClockAt(s, inTime).ConfirmDial(t.Context(), again, inTime, dialLost); err != nil || verdict != store.DialGo {
				t.Errorf("confirm %s after the claim: %q %v, want go", inTime.Sub(late), verdict, err)
			}
		})
	}
}
