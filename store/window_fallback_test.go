package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callqueue/callqueue/store"
)

// TestTollFreeRecipientIsDialled: a recipient whose number implies zones
// whose windows never overlap (+1 800: UTC−11 to UTC+10, under 09:00–18:00)
// is dialled in the integration's agent timezone, and its history says
// timezoneFallback — never parked again and again for a window that
// cannot open.
func TestTollFreeRecipientIsDialled(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10})
	window := json.RawMessage(`{"timezone": "recipient", "start": "09:00", "end": "18:00", "days": [1,2,3,4,5]}`)
	c := createCampaign(t, s, in, store.CampaignSpec{Handling: map[string]json.RawMessage{"calling_window": window}}, t0)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // Monday
	addRecipients(t, s, c, start, store.Recipient{PhoneNumber: "+18005550123"})
	var dialled []store.Claimed
	for now := start; now.Before(start.Add(7*24*time.Hour)) && len(dialled) == 0; now = now.Add(30 * time.Minute) {
		if _, err := s.ReleaseWindows(t.Context(), now, 100); err != nil {
			t.Fatal(err)
		}
		dialled = claimed(t, s, in.ID, now)
	}
	if len(dialled) != 1 {
		t.Fatal("the toll-free recipient was not dialled within a week")
	}
	if n := countRows(t, s, `SELECT count(*) FROM call_events WHERE call_id = $1 AND detail->>'timezoneFallback' = 'Europe/Kyiv'`,
		dialled[0].Call.ID); n == 0 {
		t.Error("the history does not say timezoneFallback")
	}
}
