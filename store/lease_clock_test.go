package store_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestOutboxLeaseAcrossSkewedClocks: two replicas share the outbox, the
// second's clock 40 s ahead of the first's. The first leases an update for
// 30 s; the second, by its own clock already past that lease, must not
// take it (which would send the update twice): leases are decided by the
// database's clock.
func TestOutboxLeaseAcrossSkewedClocks(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	in := activeIntegration(t, s, nil)
	pendingUpdates(t, s, in.ID, 1, t0)
	lease := 30 * time.Second
	first, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: time.Now(), Lease: lease, Limit: 10, PerIntegration: 10})
	if err != nil || len(first) != 1 {
		t.Fatalf("first replica's claim: %d items, %v", len(first), err)
	}
	skewed := time.Now().Add(40 * time.Second)
	second, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: skewed, Lease: lease, Limit: 10, PerIntegration: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 0 {
		t.Errorf("the replica 40 s ahead claimed %d updates under a live 30 s lease", len(second))
	}
	jobs := pendingAnalysis(t, s, in.ID)
	if got, err := s.ClaimAnalyses(t.Context(), store.AnalysisClaim{Now: time.Now(), Lease: lease, Limit: 10, PerIntegration: 10}); err != nil || len(got) != 1 {
		t.Fatalf("first replica's analysis claim: %d jobs (%d pending), %v", len(got), jobs, err)
	}
	if got, err := s.ClaimAnalyses(t.Context(), store.AnalysisClaim{Now: skewed, Lease: lease, Limit: 10, PerIntegration: 10}); err != nil || len(got) != 0 {
		t.Errorf("the replica 40 s ahead claimed %d analyses under a live 30 s lease (%v)", len(got), err)
	}
}

// pendingAnalysis queues an LLM analysis of a finished call of integ.
func pendingAnalysis(t *testing.T, s *store.Store, integ [16]byte) int {
	t.Helper()
	ids := pendingUpdates(t, s, integ, 1, t0)
	tag, err := s.Pool().Exec(t.Context(), `INSERT INTO pending_analyses (call_id, integration_id, attempt, created_at)
		SELECT call_id, integration_id, 1, $2 FROM crm_outbox WHERE id = $1`, ids[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	return int(tag.RowsAffected())
}
