package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
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

// TestSweepsAcrossSkewedClocks: the replicas' clocks are 110 s apart. One
// behind dials calls; one ahead runs the watchdog and the retry sweep. By
// its own clock the live dial is 220 s old, past DialLostAfter (2 min), a
// retry scheduled in 60 s is due, and a post-call awaited for 1 min is
// late. Decided by the database's clock (which also stamped the slot),
// none of them is.
func TestSweepsAcrossSkewedClocks(t *testing.T) {
	t.Parallel()
	s := newStore(t) // no test clock: the database's own
	const skew = 110 * time.Second
	behind := time.Now().Add(-skew)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "max_attempts": 3, "retry_delays_secs": []int{60}})
	ids := queueCalls(t, s, in.ID, 3, behind)
	if claimed, err := s.ClaimCalls(t.Context(), in.ID, behind, nil); err != nil || len(claimed) != 3 {
		t.Fatalf("the replica behind claimed %d calls, %v", len(claimed), err)
	}
	dialling, retrying, talked := ids[0], ids[1], ids[2]
	for _, id := range []uuid.UUID{retrying, talked} {
		accept(t, s, in.ID, id, "", "", time.Now())
	}
	noAnswer := callEnd(in.ID, retrying, 0, time.Now())
	noAnswer.Event.Reason = callstate.OutcomeNoAnswer
	apply(t, s, noAnswer, callEnd(in.ID, talked, 40, time.Now()))
	if c := getCall(t, s, retrying); c.Status != callstate.RetryScheduled {
		t.Fatalf("the unanswered call is %s, want retry_scheduled", c.Status)
	}

	// The replica ahead sweeps.
	if overdue, err := s.OverdueCalls(t.Context(), in.ID, 2*time.Minute, 10); err != nil || len(overdue) != 0 {
		t.Errorf("the watchdog 110 s ahead releases %+v (%v); the dial of %s is live", overdue, err, dialling)
	}
	if due, err := s.IntegrationsWithDueRetries(t.Context()); err != nil || len(due) != 0 {
		t.Errorf("the replica 110 s ahead sees retries due in %v (%v), 60 s early", due, err)
	}
	if due, err := s.RequeueDue(t.Context(), in.ID, 10); err != nil || len(due) != 0 {
		t.Errorf("the replica 110 s ahead requeued %+v (%v), 60 s early", due, err)
	}
	if late, err := s.AwaitingPostcall(t.Context(), time.Minute, 10); err != nil || len(late) != 0 {
		t.Errorf("the replica 110 s ahead gives up on post-calls %+v (%v) after 0 s of 60", late, err)
	}
}
