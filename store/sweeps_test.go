package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
)

// A max_call_duration_secs above int4 (or of the wrong type), stored before
// the API's bounds or straight in the database, used to make the shared
// watchdog query fail for every tenant. Now each integration is swept alone
// and its stored limit is read defensively.
func TestOverdueCallsSurviveAnotherTenantsBadLimit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	good := activeIntegration(t, s, map[string]any{"max_call_duration_secs": 60})
	huge := activeIntegration(t, s, nil)
	typo := activeIntegration(t, s, nil)
	for id, value := range map[uuid.UUID]string{
		huge.ID: `{"max_call_duration_secs": 3000000000, "retry_delays_secs": [9300000000000]}`,
		typo.ID: `{"max_call_duration_secs": "forever"}`,
	} {
		if _, err := s.Pool().Exec(t.Context(), `INSERT INTO integration_config (integration_id, key, value) VALUES ($1, 'call_handling', $2)
			ON CONFLICT (integration_id, key) DO UPDATE SET value = EXCLUDED.value`,
			id, value); err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range []uuid.UUID{good.ID, huge.ID, typo.ID} {
		id := queueCalls(t, s, in, 1, t0)[0]
		claim(t, s, in, t0)
		apply(t, s, ev(in, id, callstate.DialAccepted, t0))
	}
	holding, err := s.IntegrationsHoldingSlots(t.Context())
	if err != nil || len(holding) != 3 {
		t.Fatalf("IntegrationsHoldingSlots = %v, %v; want the three integrations", holding, err)
	}
	check := func(in uuid.UUID, after time.Duration, want int) {
		t.Helper()
		got, err := dbClockAt(s, t0.Add(after)).OverdueCalls(t.Context(), in, time.Minute, 10)
		if err != nil {
			t.Fatalf("OverdueCalls(%s, t0+%v): %v", in, after, err)
		}
		if len(got) != want {
			t.Fatalf("OverdueCalls(%s, t0+%v) = %d calls, want %d", in, after, len(got), want)
		}
	}
	check(good.ID, 61*time.Second, 1)
	check(huge.ID, 61*time.Second, 0)
	check(huge.ID, 86401*time.Second, 1) // clamped to the 24-hour bound
	check(typo.ID, 1799*time.Second, 0)
	check(typo.ID, 1801*time.Second, 1) // the default
}

func TestIntegrationsWithDueRetries(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a := activeIntegration(t, s, map[string]any{"retry_delays_secs": []int{60}})
	b := activeIntegration(t, s, map[string]any{"retry_delays_secs": []int{600}})
	for _, in := range []uuid.UUID{a.ID, b.ID} {
		id := queueCalls(t, s, in, 1, t0)[0]
		claim(t, s, in, t0)
		apply(t, s, ev(in, id, callstate.DialFailed, t0))
	}
	got, err := dbClockAt(s, t0.Add(2*time.Minute)).IntegrationsWithDueRetries(t.Context())
	if err != nil || len(got) != 1 || got[0] != a.ID {
		t.Fatalf("IntegrationsWithDueRetries(t0+2m) = %v, %v; want only %s", got, err, a.ID)
	}
}
