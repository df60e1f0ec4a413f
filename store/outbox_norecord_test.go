package store_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestOutboxNoRecord: an update the CRM has no record for is kept as
// no_record — not claimed again, shown on the call, counted apart from
// failures.
func TestOutboxNoRecord(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	in := activeIntegration(t, s, nil)
	ids := pendingUpdates(t, s, in.ID, 2, t0)
	items, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: t0, Lease: time.Minute, Limit: 10, PerIntegration: 10})
	if err != nil || len(items) != 2 {
		t.Fatalf("claim: %+v, %v", items, err)
	}
	results := []store.OutboxResult{
		{ID: items[0].ID, LeaseToken: items[0].LeaseToken, Attempted: true, NoRecord: true, Error: "no CRM record for the phone"},
		{ID: items[1].ID, LeaseToken: items[1].LeaseToken, Attempted: true, Permanent: true, Error: "CRM answered 400: Bad Request"},
	}
	if err := s.FinishOutbox(t.Context(), t0, results); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{items[0].ID.String(): "no_record", items[1].ID.String(): "failed"}
	for _, id := range ids {
		if status, attempts, _ := outboxStatus(t, s, id); status != want[id.String()] || attempts != 1 {
			t.Errorf("update %s: %s after %d attempts, want %s", id, status, attempts, want[id.String()])
		}
	}
	if again, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: t0.Add(time.Hour), Lease: time.Minute, Limit: 10, PerIntegration: 10}); err != nil || len(again) != 0 {
		t.Fatalf("claimed again: %+v, %v", again, err)
	}
	counts, err := s.OutboxCounts(t.Context())
	if err != nil || counts["no_record"] != 1 || counts["failed"] != 1 || counts["pending"] != 0 {
		t.Fatalf("OutboxCounts = %v, %v", counts, err)
	}
	b, err := s.OutboxBacklog(t.Context())
	if err != nil || b.NoRecord != 1 || b.Failed != 1 || b.Pending != 0 {
		t.Fatalf("OutboxBacklog = %+v, %v", b, err)
	}
}
