package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// notBefore is when a queued call waits until (nil: it is ready).
func notBefore(t *testing.T, s *store.Store, id uuid.UUID) *time.Time {
	t.Helper()
	var at *time.Time
	if err := s.Pool().QueryRow(t.Context(), `SELECT not_before FROM calls WHERE id = $1`, id).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestWindowChangeReschedulesWaitingCalls: changing the integration's
// calling window recomputes when its waiting calls may be dialled — webhook
// calls and calls of campaigns that follow the integration's window — and
// leaves alone the calls of a campaign with a window of its own. A window
// that is open now puts them back in the ready queue at once.
func TestWindowChangeReschedulesWaitingCalls(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	kyivDay := map[string]any{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00"}
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "calling_window": kyivDay})
	evening := time.Date(2026, 1, 21, 21, 0, 0, 0, time.UTC) // 23:00 in Kyiv
	s.SetClock(func() time.Time { return evening })

	webhook := queueCalls(t, s, in.ID, 1, evening)[0]
	follows := createCampaign(t, s, in, store.CampaignSpec{}, evening)
	own := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{
		"calling_window": json.RawMessage(`{"timezone": "Asia/Tokyo", "start": "09:00", "end": "20:00"}`)}}, evening)
	addRecipients(t, s, follows, evening, store.Recipient{PhoneNumber: "+380991000001"})
	addRecipients(t, s, own, evening, store.Recipient{PhoneNumber: "+380991000002"})
	if got := claimed(t, s, in.ID, evening); len(got) != 0 {
		t.Fatalf("claimed %d calls at 23:00 in Kyiv", len(got))
	}
	callOf := func(c store.Campaign) uuid.UUID {
		var id uuid.UUID
		if err := s.Pool().QueryRow(t.Context(), `SELECT id FROM calls WHERE campaign_id = $1`, c.ID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	kyivMorning := time.Date(2026, 1, 22, 7, 0, 0, 0, time.UTC)
	tokyoMorning := time.Date(2026, 1, 22, 0, 0, 0, 0, time.UTC)
	for id, want := range map[uuid.UUID]time.Time{webhook: kyivMorning, callOf(follows): kyivMorning, callOf(own): tokyoMorning} {
		if at := notBefore(t, s, id); at == nil || !at.Equal(want) {
			t.Fatalf("call %s waits until %v before the change, want %s", id, at, want)
		}
	}

	// A later window: the calls that follow the integration wait longer.
	putConfig(t, s, in.ID, "call_handling", map[string]any{"concurrency_limit": 10,
		"calling_window": map[string]any{"timezone": "Europe/Kyiv", "start": "12:00", "end": "14:00"}})
	for id, want := range map[uuid.UUID]time.Time{webhook: kyivMorning.Add(3 * time.Hour),
		callOf(follows): kyivMorning.Add(3 * time.Hour), callOf(own): tokyoMorning} {
		if at := notBefore(t, s, id); at == nil || !at.Equal(want) {
			t.Fatalf("call %s waits until %v after the window moved, want %s", id, at, want)
		}
	}

	// A night window, open now: they are ready and dialled at once.
	putConfig(t, s, in.ID, "call_handling", map[string]any{"concurrency_limit": 10,
		"calling_window": map[string]any{"timezone": "Europe/Kyiv", "start": "22:00", "end": "06:00"}})
	if at := notBefore(t, s, callOf(own)); at == nil || !at.Equal(tokyoMorning) {
		t.Fatalf("the campaign with its own window waits until %v, want %s", at, tokyoMorning)
	}
	got := claimed(t, s, in.ID, evening)
	dialled := map[uuid.UUID]bool{}
	for _, c := range got {
		dialled[c.Call.ID] = true
	}
	if len(got) != 2 || !dialled[webhook] || !dialled[callOf(follows)] {
		t.Fatalf("claimed %d calls once the window was open, want the webhook call and the following campaign's", len(got))
	}
}

// TestWindowChangeReleasesDeferredDials: a dial held back at its originate
// because the window had closed meanwhile waits for the next opening as a
// retry. When the window changes — the integration's, or a campaign's own
// — that wait is judged again at once, as the waits of queued calls are:
// with the window removed it is due now, not at tomorrow's opening.
func TestWindowChangeReleasesDeferredDials(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	kyivDay := map[string]any{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00"}
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "calling_window": kyivDay})
	kyiv, _ := time.LoadLocation("Europe/Kyiv")
	claimAt := time.Date(2026, 1, 21, 19, 59, 58, 0, kyiv)
	changeAt := claimAt.Add(time.Minute)
	s.SetClock(func() time.Time { return changeAt })
	own := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{
		"calling_window": json.RawMessage(`{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00"}`)}}, claimAt.Add(-time.Hour))
	addRecipients(t, s, own, claimAt.Add(-time.Hour), store.Recipient{PhoneNumber: "+380991000003"})
	webhook := queueCalls(t, s, in.ID, 1, claimAt.Add(-time.Hour))[0]
	var campaignCall uuid.UUID
	for _, c := range claimed(t, s, in.ID, claimAt) {
		if verdict, _, _, err := s.ConfirmDial(t.Context(), c, claimAt.Add(3*time.Second), 0); err != nil || verdict != store.DialWindowClosed {
			t.Fatalf("confirm at 20:00:01: %q %v, want %q", verdict, err, store.DialWindowClosed)
		}
		if c.Call.ID != webhook {
			campaignCall = c.Call.ID
		}
	}
	if campaignCall == uuid.Nil {
		t.Fatal("the campaign's call was not claimed")
	}

	putConfig(t, s, in.ID, "call_handling", map[string]any{"concurrency_limit": 10})
	if _, err := s.UpdateCampaign(t.Context(), "owner-a", own.ID, changeAt, func(spec *store.CampaignSpec, _ config.Integration) error {
		delete(spec.Handling, "calling_window")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for what, id := range map[string]uuid.UUID{"the integration's window": webhook, "the campaign's window": campaignCall} {
		c := getCall(t, s, id)
		if c.Status != callstate.RetryScheduled || c.NextRetryAt == nil || c.NextRetryAt.After(changeAt) {
			t.Errorf("%s removed at %s: call %s waits until %v", what, changeAt.UTC().Format(time.RFC3339), c.Status, c.NextRetryAt)
		}
	}
}
