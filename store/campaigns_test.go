package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

func createCampaign(t *testing.T, s *store.Store, in store.Integration, spec store.CampaignSpec, now time.Time) store.Campaign {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "Campaign " + uuid.NewString()[:8]
	}
	if spec.Priority == 0 {
		spec.Priority = 5
	}
	c, err := s.CreateCampaign(t.Context(), "owner-a", in.ID, spec, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// addRecipients adds n recipients with numbers from base, and returns how
// many were added.
func addRecipients(t *testing.T, s *store.Store, c store.Campaign, now time.Time, recipients ...store.Recipient) int {
	t.Helper()
	_, added, err := s.AddRecipients(t.Context(), "owner-a", c.ID, recipients, now)
	if err != nil {
		t.Fatal(err)
	}
	return added
}

func numbered(base, n int) []store.Recipient {
	out := make([]store.Recipient, n)
	for i := range out {
		out[i] = store.Recipient{PhoneNumber: fmt.Sprintf("+38099%07d", base+i)}
	}
	return out
}

func claimed(t *testing.T, s *store.Store, integ uuid.UUID, now time.Time) []store.Claimed {
	t.Helper()
	out, err := dbClockAt(s, now).ClaimCalls(t.Context(), integ, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func laneOf(c store.Call) string {
	if c.CampaignID == nil {
		return "webhook"
	}
	return c.CampaignID.String()
}

// TestFairShareRoundRobin: with two campaigns and webhook calls all
// waiting, freed slots go round the three lanes; over a run each gets its
// share within one slot. A campaign of priority 10 gets twice the share of
// one of priority 5.
func TestFairShareRoundRobin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		priorities [2]int
		want       map[int]float64 // lane index (0 webhook) → share
	}{
		{"equal priorities", [2]int{5, 5}, map[int]float64{0: 1.0 / 3, 1: 1.0 / 3, 2: 1.0 / 3}},
		{"one campaign weighs double", [2]int{10, 5}, map[int]float64{0: 0.25, 1: 0.5, 2: 0.25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			in := activeIntegration(t, s, map[string]any{"concurrency_limit": 3})
			lanes := []string{"webhook"}
			for i, p := range tc.priorities {
				c := createCampaign(t, s, in, store.CampaignSpec{Priority: p}, t0)
				addRecipients(t, s, c, t0, numbered(i*1000, 100)...)
				lanes = append(lanes, c.ID.String())
			}
			queueCalls(t, s, in.ID, 100, t0)

			got := map[string]int{}
			var live []store.Claimed
			const rounds = 60
			now := t0
			for step := 0; len(live) < rounds; step++ {
				if step > 10*rounds {
					t.Fatalf("only %d slots claimed in %d steps", len(live), step)
				}
				now = now.Add(time.Second)
				if len(live) >= 3 { // the oldest live call ends: its slot is free
					c := live[len(live)-3].Call
					apply(t, s, ev(in.ID, c.ID, callstate.CallEnd, now))
				}
				cl := claimed(t, s, in.ID, now)
				for _, c := range cl {
					got[laneOf(c.Call)]++
				}
				live = append(live, cl...)
			}
			for i, lane := range lanes {
				want := tc.want[i] * float64(len(live))
				if math.Abs(float64(got[lane])-want) > 1 {
					t.Errorf("lane %d got %d of %d slots, want %.1f ± 1 (%v)", i, got[lane], len(live), want, got)
				}
			}
		})
	}
}

// TestCampaignLimitPauseResume: a campaign never holds more than its
// concurrencyLimit, however many slots the integration has; a paused
// campaign takes no slot, and resumes where it was.
func TestCampaignLimitPauseResume(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 5})
	c := createCampaign(t, s, in, store.CampaignSpec{ConcurrencyLimit: ptr(2)}, t0)
	addRecipients(t, s, c, t0, numbered(0, 10)...)
	if got := claimed(t, s, in.ID, t0); len(got) != 2 {
		t.Fatalf("claimed %d, want the campaign's limit 2", len(got))
	}
	if got := claimed(t, s, in.ID, t0); len(got) != 0 {
		t.Fatalf("claimed %d more above the campaign's limit", len(got))
	}
	if _, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignPause, t0); err != nil {
		t.Fatal(err)
	}
	live := countRows(t, s, `SELECT count(*) FROM calls WHERE campaign_id = $1 AND status = 'initiated'`, c.ID)
	var one uuid.UUID
	if err := s.Pool().QueryRow(t.Context(), `SELECT id FROM calls WHERE campaign_id = $1 AND status = 'initiated' LIMIT 1`, c.ID).Scan(&one); err != nil {
		t.Fatal(err)
	}
	apply(t, s, ev(in.ID, one, callstate.CallEnd, t0))
	if got := claimed(t, s, in.ID, t0); len(got) != 0 || live != 2 {
		t.Fatalf("paused campaign claimed %d (live before %d)", len(got), live)
	}
	if _, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignPause, t0); err == nil {
		t.Fatal("pausing a paused campaign: no conflict")
	}
	got, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignResume, t0)
	if err != nil || got.Status != store.CampaignRunning {
		t.Fatalf("resume: %v %v", got.Status, err)
	}
	if got := claimed(t, s, in.ID, t0); len(got) != 1 {
		t.Fatalf("resumed campaign claimed %d, want 1 (one slot of its 2 is still live)", len(got))
	}
}

// TestCampaignCancelLeavesLiveCalls: cancelling cancels what was not
// dialled; the live call is cancelled too but keeps its slot until it
// finishes (no hang-up); progress counts it as active until then.
func TestCampaignCancelLeavesLiveCalls(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 1})
	c := createCampaign(t, s, in, store.CampaignSpec{}, t0)
	addRecipients(t, s, c, t0, numbered(0, 4)...)
	live := claimed(t, s, in.ID, t0)
	if len(live) != 1 {
		t.Fatalf("claimed %d", len(live))
	}
	got, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignCancel, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.CampaignCancelled || got.Progress.Cancelled != 4 || got.Progress.Active != 1 || got.Progress.Total != 4 {
		t.Fatalf("after cancel: %s %+v", got.Status, got.Progress)
	}
	if c := getCall(t, s, live[0].Call.ID); c.Status != callstate.Cancelled || c.SlotTakenAt == nil {
		t.Fatalf("the live call is %s holding its slot since %v; want cancelled, still holding it", c.Status, c.SlotTakenAt)
	}
	if _, _, err := s.AddRecipients(t.Context(), "owner-a", c.ID, numbered(100, 1), t0); !errors.Is(err, store.ErrCampaignClosed) {
		t.Fatalf("adding to a cancelled campaign: %v", err)
	}
	if _, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignResume, t0); err == nil {
		t.Fatal("resuming a cancelled campaign: no conflict")
	}
}

// TestAddRecipientsSkipsDuplicates: the same external id, else the same
// number, is one recipient; a retried upload adds nothing.
func TestAddRecipientsSkipsDuplicates(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	c := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{"max_attempts": json.RawMessage(`5`)}}, t0)
	list := []store.Recipient{
		{PhoneNumber: "+380991000001"}, {PhoneNumber: "+380991000001"}, // same number
		{PhoneNumber: "+380991000002", ExternalID: "lead-1"}, {PhoneNumber: "+380991000003", ExternalID: "lead-1"}, // same lead
		{PhoneNumber: "+380991000002", ExternalID: "lead-2", DynamicVariables: json.RawMessage(`{"name":"Olena"}`)},
	}
	if added := addRecipients(t, s, c, t0, list...); added != 3 {
		t.Fatalf("added %d, want 3", added)
	}
	if added := addRecipients(t, s, c, t0, list...); added != 0 {
		t.Fatalf("re-upload added %d", added)
	}
	var calls []store.Call
	if err := s.CampaignCalls(t.Context(), "owner-a", c.ID, func(c store.Call) error { calls = append(calls, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[0].MaxAttempts != 5 || string(calls[2].DynamicVariables) != `{"name": "Olena"}` ||
		*calls[1].ExternalID != "lead-1" || calls[0].CampaignID == nil || *calls[0].CampaignID != c.ID {
		t.Fatalf("calls: %+v", calls)
	}
	patched, err := s.UpdateCampaign(t.Context(), "owner-a", c.ID, t0, func(spec *store.CampaignSpec, _ config.Integration) error {
		spec.Handling["max_attempts"] = json.RawMessage(`2`)
		return nil
	})
	if err != nil || patched.MaxAttempts == nil || *patched.MaxAttempts != 2 {
		t.Fatalf("patch: %+v %v", patched.MaxAttempts, err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM calls WHERE campaign_id = $1 AND max_attempts = 2`, c.ID); n != 3 {
		t.Fatalf("%d undialled calls took the new max attempts", n)
	}
}

// TestSuppressionBlocksAQueuedCall: a number suppressed after its call was
// queued is not dialled; its call ends cancelled, outcome suppressed. An
// owner-wide entry applies to every integration; an expired one to none.
func TestSuppressionBlocksAQueuedCall(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 5})
	ids := queueCalls(t, s, in.ID, 3, t0)
	phones := make([]string, 3)
	for i, id := range ids {
		phones[i] = getCall(t, s, id).PhoneNumber
	}
	past := t0.Add(-time.Minute)
	if _, err := s.AddSuppressions(t.Context(), "owner-a", in.ID, []store.Suppression{{PhoneNumber: phones[0], Reason: "asked by email"},
		{PhoneNumber: phones[2], ExpiresAt: &past}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSuppressions(t.Context(), "owner-a", uuid.Nil, []store.Suppression{{PhoneNumber: phones[1]}}, t0); err != nil {
		t.Fatal(err)
	}
	got := claimed(t, s, in.ID, t0)
	if len(got) != 1 || got[0].Call.ID != ids[2] {
		t.Fatalf("claimed %d calls, want only the one whose suppression expired", len(got))
	}
	for _, id := range ids[:2] {
		c := getCall(t, s, id)
		if c.Status != callstate.Cancelled || deref(c.Outcome) != callstate.OutcomeSuppressed || c.Attempt != 0 {
			t.Fatalf("suppressed call is %s/%s at attempt %d", c.Status, deref(c.Outcome), c.Attempt)
		}
	}
	if err := s.DeleteSuppression(t.Context(), "owner-a", in.ID, phones[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSuppression(t.Context(), "owner-a", in.ID, phones[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	list, err := s.ListSuppressions(t.Context(), "owner-a", in.ID, 10, 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
}

// TestDoNotCallSuppresses: a finished call whose analysis says
// do_not_call suppresses its number for its integration.
func TestDoNotCallSuppresses(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	apply(t, s, callEnd(in.ID, id, 60, t0))
	post := ev(in.ID, id, callstate.Postcall, t0)
	post.Postcall = &store.PostcallData{Analysis: json.RawMessage(`{"source":"elevenlabs","extracted":{"do_not_call":true}}`)}
	apply(t, s, post)
	list, err := s.ListSuppressions(t.Context(), "owner-a", in.ID, 10, 0)
	if err != nil || len(list) != 1 || list[0].Reason != store.SuppressionReasonRequested || list[0].PhoneNumber != getCall(t, s, id).PhoneNumber {
		t.Fatalf("suppressions: %+v %v", list, err)
	}
}

// TestRecipientsDialledInTheirOwnMorning: a Kyiv, a New York and a Tokyo
// recipient of one campaign with a 09:00–20:00 "recipient" window are each
// dialled from 09:00 of their own day, whatever the hour the list came in;
// until then they wait without being looked at, and the scheduler's
// release puts each back when its window opens.
func TestRecipientsDialledInTheirOwnMorning(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10})
	window := json.RawMessage(`{"timezone": "recipient", "start": "09:00", "end": "20:00", "days": [1,2,3,4,5]}`)
	c := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{"calling_window": window}}, t0)
	upload := time.Date(2026, 3, 3, 21, 0, 0, 0, time.UTC) // Tuesday 23:00 in Kyiv, 16:00 in New York, Wed 06:00 in Tokyo
	addRecipients(t, s, c, upload, store.Recipient{PhoneNumber: "+380991234567"}, store.Recipient{PhoneNumber: "+12125550123"},
		store.Recipient{PhoneNumber: "+81312345678"})
	// New York is still open at upload time.
	dialledAt := map[string]time.Time{}
	step := func(now time.Time) {
		if _, err := s.ReleaseWindows(t.Context(), now, 100); err != nil {
			t.Fatal(err)
		}
		for _, cl := range claimed(t, s, in.ID, now) {
			dialledAt[cl.Call.PhoneNumber] = now
		}
	}
	for now := upload; now.Before(upload.Add(24 * time.Hour)); now = now.Add(15 * time.Minute) {
		step(now)
	}
	want := map[string]time.Time{
		"+12125550123":  upload,                                      // 16:00 in New York
		"+81312345678":  time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), // Wednesday 09:00 in Tokyo
		"+380991234567": time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC), // Wednesday 09:00 in Kyiv
	}
	for number, at := range want {
		if !dialledAt[number].Equal(at) {
			t.Errorf("%s dialled at %s, want %s", number, dialledAt[number], at)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM call_events e JOIN calls c ON c.id = e.call_id
		WHERE c.campaign_id = $1 AND e.kind = 'window_wait'`, c.ID); n != 0 {
		t.Errorf("%d calls were looked at and set aside again: their opening was known from the upload", n)
	}
}

// TestRetryIntoAClosedWindowWaits: a retry that comes due when the window
// is closed is set aside at the claim until the window opens.
func TestRetryIntoAClosedWindowWaits(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	window := map[string]any{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00"}
	in := activeIntegration(t, s, map[string]any{"calling_window": window, "retry_delays_secs": []int{7200}})
	id := queueCalls(t, s, in.ID, 1, t0)[0] // t0 is 14:00 in Kyiv
	claim(t, s, in.ID, t0)
	failedAt := time.Date(2026, 1, 21, 17, 30, 0, 0, time.UTC) // 19:30 in Kyiv: retry due at 21:30
	e := ev(in.ID, id, callstate.InitiationFailed, failedAt)
	e.Event.Reason = callstate.OutcomeNoAnswer
	apply(t, s, e)
	due := failedAt.Add(2 * time.Hour)
	if _, err := dbClockAt(s, due).RequeueDue(t.Context(), in.ID, 10); err != nil {
		t.Fatal(err)
	}
	if got := claimed(t, s, in.ID, due); len(got) != 0 {
		t.Fatal("a retry was dialled at 21:30 in Kyiv")
	}
	nextMorning := time.Date(2026, 1, 22, 7, 0, 0, 0, time.UTC)
	var notBefore *time.Time
	if err := s.Pool().QueryRow(t.Context(), `SELECT not_before FROM calls WHERE id = $1`, id).Scan(&notBefore); err != nil {
		t.Fatal(err)
	}
	if notBefore == nil || !notBefore.Equal(nextMorning) {
		t.Fatalf("waits until %v, want %s", notBefore, nextMorning)
	}
	if released, _ := s.ReleaseWindows(t.Context(), nextMorning.Add(-time.Second), 10); len(released) != 0 {
		t.Fatal("released before the window opened")
	}
	if released, _ := s.ReleaseWindows(t.Context(), nextMorning, 10); len(released) != 1 {
		t.Fatal("not released when the window opened")
	}
	if got := claimed(t, s, in.ID, nextMorning); len(got) != 1 || got[0].Call.Attempt != 2 {
		t.Fatalf("claimed %d at 09:00", len(got))
	}
}
