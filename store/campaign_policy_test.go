package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// failWith ends the call's attempt before it was answered, as the VA
// reports a no-answer or a busy line.
func failWith(t *testing.T, s *store.Store, integ, id uuid.UUID, outcome string, at time.Time) {
	t.Helper()
	e := ev(integ, id, callstate.InitiationFailed, at)
	e.Event.Reason = outcome
	apply(t, s, e)
}

// retryRule is the rule the call's last failed attempt was judged by.
func retryRule(t *testing.T, s *store.Store, id uuid.UUID) string {
	t.Helper()
	var rule *string
	if err := s.Pool().QueryRow(t.Context(), `SELECT detail->>'retryRule' FROM call_events WHERE call_id = $1 AND kind = 'initiation_failed'
		ORDER BY id DESC LIMIT 1`, id).Scan(&rule); err != nil {
		t.Fatal(err)
	}
	return deref(rule)
}

// TestCampaignRetryPolicyOverlay: a campaign's retryPolicy replaces the
// integration's for its own calls — other delays per outcome, another
// budget — while the integration's webhook calls keep the integration's.
func TestCampaignRetryPolicyOverlay(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "max_attempts": 3, "retry_policy": map[string]any{
		"no_answer": map[string]any{"max_attempts": 3, "delays_secs": []int{1800}},
		"busy":      map[string]any{"max_attempts": 3, "delays_secs": []int{120}},
	}})
	c := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{"retry_policy": json.RawMessage(`{
		"no_answer": {"max_attempts": 3, "delays_secs": [86400]},
		"busy": {"max_attempts": 1}}`)}}, t0)
	addRecipients(t, s, c, t0, store.Recipient{PhoneNumber: "+380991000001"}, store.Recipient{PhoneNumber: "+380991000002"})
	hooks := queueCalls(t, s, in.ID, 2, t0)
	if got := claimed(t, s, in.ID, t0); len(got) != 4 {
		t.Fatalf("claimed %d of 4", len(got))
	}
	var campaignCalls []uuid.UUID
	if err := s.CampaignCalls(t.Context(), "owner-a", c.ID, func(k store.Call) error {
		campaignCalls = append(campaignCalls, k.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	failedAt := t0.Add(time.Minute)
	outcomes := map[uuid.UUID]string{campaignCalls[0]: callstate.OutcomeNoAnswer, campaignCalls[1]: callstate.OutcomeBusy,
		hooks[0]: callstate.OutcomeNoAnswer, hooks[1]: callstate.OutcomeBusy}
	for id, outcome := range outcomes {
		failWith(t, s, in.ID, id, outcome, failedAt)
	}
	for _, tc := range []struct {
		name   string
		id     uuid.UUID
		status callstate.Status
		retry  time.Duration
		rule   string
	}{
		{"campaign no-answer: tomorrow", campaignCalls[0], callstate.RetryScheduled, 24 * time.Hour, "retry_policy.no_answer"},
		{"campaign busy: its budget of one", campaignCalls[1], callstate.Failed, 0, "retry_policy.busy"},
		{"webhook no-answer: the integration's 30 minutes", hooks[0], callstate.RetryScheduled, 30 * time.Minute, "retry_policy.no_answer"},
		{"webhook busy: the integration's 2 minutes", hooks[1], callstate.RetryScheduled, 2 * time.Minute, "retry_policy.busy"},
	} {
		k := getCall(t, s, tc.id)
		if k.Status != tc.status || deref(k.Outcome) != outcomes[tc.id] {
			t.Errorf("%s: %s/%s, want %s/%s", tc.name, k.Status, deref(k.Outcome), tc.status, outcomes[tc.id])
		}
		if tc.retry > 0 && (k.NextRetryAt == nil || !k.NextRetryAt.Equal(failedAt.Add(tc.retry))) {
			t.Errorf("%s: next retry at %v, want %s", tc.name, k.NextRetryAt, failedAt.Add(tc.retry))
		}
		if rule := retryRule(t, s, tc.id); rule != tc.rule {
			t.Errorf("%s: history names rule %q, want %q", tc.name, rule, tc.rule)
		}
	}
	// The webhook busy call is due first; the campaign's no-answer only
	// the next day.
	due, err := dbClockAt(s, failedAt.Add(time.Hour)).RequeueDue(t.Context(), in.ID, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("an hour later %d calls are due (%v), want the two webhook calls", len(due), err)
	}
	due, err = dbClockAt(s, failedAt.Add(24*time.Hour)).RequeueDue(t.Context(), in.ID, 10)
	if err != nil || len(due) != 1 || due[0].CallID != campaignCalls[0] {
		t.Fatalf("a day later %v are due (%v), want the campaign's no-answer", due, err)
	}
}

// TestCampaignCompletes: a running campaign becomes completed once every
// one of its calls is over — not while one still waits for its post-call
// — with its progress counted; recipients added later run it again.
func TestCampaignCompletes(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 5, "max_attempts": 1})
	c := createCampaign(t, s, in, store.CampaignSpec{}, t0)
	addRecipients(t, s, c, t0, numbered(0, 3)...)
	ids := claim(t, s, in.ID, t0)
	if len(ids) != 3 {
		t.Fatalf("claimed %d", len(ids))
	}
	advance := func(now time.Time) store.Campaign {
		t.Helper()
		if _, err := s.AdvanceCampaigns(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetCampaign(t.Context(), "owner-a", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	at := t0.Add(time.Minute)
	apply(t, s, callEnd(in.ID, ids[0], 60, at))
	apply(t, s, ev(in.ID, ids[0], callstate.Postcall, at))
	failWith(t, s, in.ID, ids[1], callstate.OutcomeBusy, at)
	apply(t, s, callEnd(in.ID, ids[2], 60, at))
	if got := advance(at); got.Status != store.CampaignRunning || got.Progress.WaitingPostcall != 1 {
		t.Fatalf("with a post-call to come: %s %+v", got.Status, got.Progress)
	}
	apply(t, s, ev(in.ID, ids[2], callstate.Postcall, at.Add(time.Minute)))
	got := advance(at.Add(time.Minute))
	want := store.CampaignProgress{Total: 3, Completed: 2, Failed: 1}
	if got.Status != store.CampaignCompleted || got.Progress != want {
		t.Fatalf("all calls over: %s %+v, want completed %+v", got.Status, got.Progress, want)
	}
	if _, err := s.ChangeCampaignStatus(t.Context(), "owner-a", c.ID, store.CampaignPause, at); err == nil {
		t.Fatal("a completed campaign was paused")
	}
	addRecipients(t, s, c, at, numbered(100, 1)...)
	if got := advance(at.Add(2 * time.Minute)); got.Status != store.CampaignRunning || got.Progress.Queued != 1 {
		t.Fatalf("after a new recipient: %s %+v", got.Status, got.Progress)
	}
}

// TestCampaignEffectiveHandling: a campaign shows what is in force for its
// calls: its own window (replacing the integration's whole: no days means
// every day), else the integration's retry policy and max attempts.
func TestCampaignEffectiveHandling(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"max_attempts": 4,
		"calling_window": map[string]any{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": []int{1, 2, 3, 4, 5}},
		"retry_policy":   map[string]any{"busy": map[string]any{"max_attempts": 2, "delays_secs": []int{60}}}})
	c := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{
		"calling_window": json.RawMessage(`{"timezone": "Europe/Kyiv", "start": "10:00", "end": "18:00"}`)}}, t0)
	got, err := s.GetCampaign(t.Context(), "owner-a", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	e := got.Effective
	if e.CallingWindow == nil || e.CallingWindow.Start != "10:00" || len(e.CallingWindow.Days) != 0 {
		t.Errorf("effective window %+v, want the campaign's 10:00–18:00 on every day", e.CallingWindow)
	}
	if e.MaxAttempts != 4 || e.RetryPolicy == nil || e.RetryPolicy.Busy == nil || e.RetryPolicy.Busy.MaxAttempts != 2 {
		t.Errorf("effective max attempts %d, retry policy %+v; want the integration's", e.MaxAttempts, e.RetryPolicy)
	}
}
