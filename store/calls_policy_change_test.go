package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// noAnswers takes the integration's queued calls through n unanswered
// attempts, each put back in the queue at once.
func noAnswers(t *testing.T, s *store.Store, in store.Integration, n int, at time.Time) {
	t.Helper()
	for range n {
		for _, c := range claimed(t, s, in.ID, at) {
			e := ev(in.ID, c.Call.ID, callstate.InitiationFailed, at)
			e.Event.Reason = callstate.OutcomeNoAnswer
			apply(t, s, e)
		}
		at = at.Add(time.Minute)
		if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'queued', next_retry_at = NULL
			WHERE integration_id = $1 AND status = 'retry_scheduled'`, in.ID); err != nil && n > 0 {
			t.Fatal(err)
		}
	}
}

// TestLoweredCampaignMaxAttempts: a campaign's maxAttempts lowered below
// the attempts a waiting call made fails that call instead of dialling it
// again (contract §3), and its waiting retries move to the new policy.
func TestLoweredCampaignMaxAttempts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "retry_delays_secs": []int{0}})
	camp := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{"max_attempts": json.RawMessage(`5`)}}, t0)
	addRecipients(t, s, camp, t0, numbered(200, 1)...)
	noAnswers(t, s, in, 3, t0)
	// The third attempt failed: the call waits for its fourth.
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'retry_scheduled', next_retry_at = $2
		WHERE campaign_id = $1`, camp.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCampaign(t.Context(), "owner-a", camp.ID, t0.Add(time.Hour), func(spec *store.CampaignSpec, _ config.Integration) error {
		spec.Handling["max_attempts"] = json.RawMessage(`2`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var status string
	var attempt, maxAttempts int
	if err := s.Pool().QueryRow(t.Context(), `SELECT status, attempt, max_attempts FROM calls WHERE campaign_id = $1`, camp.ID).
		Scan(&status, &attempt, &maxAttempts); err != nil {
		t.Fatal(err)
	}
	if status != "failed" || attempt != 3 || maxAttempts != 3 {
		t.Errorf("call after maxAttempts 5→2: %s at attempt %d of %d, want failed at attempt 3 (of 3, the attempts made)", status, attempt, maxAttempts)
	}
	if got := claimed(t, s, in.ID, t0.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("dialled again: %+v", got[0].Call)
	}
}

// TestIntegrationMaxAttemptsReachesWaitingCalls: the integration's
// call_handling.max_attempts and retry delays reach calls already waiting:
// a lowered maximum fails a queued retry, a longer delay moves a waiting
// retry to its new time.
func TestIntegrationMaxAttemptsReachesWaitingCalls(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "max_attempts": 5, "retry_delays_secs": []int{60}})
	ids := queueCalls(t, s, in.ID, 2, t0)
	noAnswers(t, s, in, 2, t0) // both on attempt 2, queued again
	// The first one's second attempt waits for its retry; the second is queued.
	first := ids[0]
	for _, c := range claimed(t, s, in.ID, t0.Add(time.Hour)) {
		if c.Call.ID == first {
			e := ev(in.ID, first, callstate.InitiationFailed, t0.Add(time.Hour))
			e.Event.Reason = callstate.OutcomeNoAnswer
			apply(t, s, e)
		}
	}
	putConfig(t, s, in.ID, config.KeyCallHandling, map[string]any{"concurrency_limit": 10, "max_attempts": 5, "retry_delays_secs": []int{7200}})
	c := getCall(t, s, first)
	if c.Status != callstate.RetryScheduled || c.NextRetryAt == nil || !c.NextRetryAt.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("waiting retry after the delay 60→7200: %s next %v, want retry_scheduled at %v", c.Status, c.NextRetryAt, t0.Add(3*time.Hour))
	}
	putConfig(t, s, in.ID, config.KeyCallHandling, map[string]any{"concurrency_limit": 10, "max_attempts": 2, "retry_delays_secs": []int{7200}})
	if c := getCall(t, s, first); c.Status != callstate.Failed || c.MaxAttempts != 3 {
		t.Errorf("waiting retry at attempt 3 after max_attempts 5→2: %s (max %d), want failed", c.Status, c.MaxAttempts)
	}
	if got := claimed(t, s, in.ID, t0.Add(4*time.Hour)); len(got) != 0 {
		t.Errorf("dialled again after max_attempts 5→2: %+v", got[0].Call)
	}
}
