package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// pendingUpdates writes n due CRM updates for finished calls of integ.
func pendingUpdates(t *testing.T, s *store.Store, integ uuid.UUID, n int, at time.Time) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts,
			queued_at, outcome, created_at, updated_at)
		SELECT id, $2, '+380990000000', 'completed', 1, 3, $3, 'success', $3, $3 FROM unnest($1::uuid[]) AS id`, ids, integ, at); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Pool().Query(t.Context(), `INSERT INTO crm_outbox (id, integration_id, call_id, event, payload, next_attempt_at, created_at)
		SELECT gen_random_uuid(), $2, id, 'call.completed', '{}', $3, $3 FROM unnest($1::uuid[]) AS id RETURNING id`, ids, integ, at)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

func outboxStatus(t *testing.T, s *store.Store, id uuid.UUID) (status string, attempts int, steps []string) {
	t.Helper()
	if err := s.Pool().QueryRow(t.Context(), `SELECT status, attempts, steps_done FROM crm_outbox WHERE id = $1`, id).
		Scan(&status, &attempts, &steps); err != nil {
		t.Fatal(err)
	}
	return status, attempts, steps
}

// TestOutboxLeaseFencing: a deliverer whose lease lapsed and was taken over
// can neither renew it, nor record a step, nor record a result: only the
// holder of the current lease can.
func TestOutboxLeaseFencing(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	in := activeIntegration(t, s, nil)
	id := pendingUpdates(t, s, in.ID, 1, t0)[0]
	claim := func(at time.Time) store.OutboxItem {
		t.Helper()
		s.SetClock(func() time.Time { return at }) // leases follow the database's clock, shifted to at
		items, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: at, Lease: time.Minute, Limit: 10, PerIntegration: 10})
		if err != nil || len(items) != 1 || items[0].ID != id {
			t.Fatalf("claim at %v: %+v, %v", at, items, err)
		}
		return items[0]
	}
	first := claim(t0)
	s.SetClock(func() time.Time { return t0.Add(30 * time.Second) })
	if items, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: t0.Add(30 * time.Second), Lease: time.Minute, Limit: 10}); err != nil || len(items) != 0 {
		t.Fatalf("claimed a leased update: %+v, %v", items, err)
	}
	if err := s.RecordOutboxStep(t.Context(), id, first.LeaseToken, "nethunt:update-record"); err != nil {
		t.Fatal(err)
	}
	// The first deliverer stalls past its lease; a second takes over and
	// sees the step the first applied.
	second := claim(t0.Add(2 * time.Minute))
	if second.LeaseToken == first.LeaseToken || !slices.Equal(second.StepsDone, []string{"nethunt:update-record"}) {
		t.Fatalf("second claim: token %v (first %v), steps %v", second.LeaseToken, first.LeaseToken, second.StepsDone)
	}
	if renewed, err := s.RenewOutbox(t.Context(), first.LeaseToken, []uuid.UUID{id}, time.Hour); err != nil || renewed[id] {
		t.Errorf("the stale lease renewed: %v, %v", renewed, err)
	}
	if err := s.RecordOutboxStep(t.Context(), id, first.LeaseToken, "nethunt:create-comment"); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("stale step record: %v, want ErrLeaseLost", err)
	}
	stale := store.OutboxResult{ID: id, LeaseToken: first.LeaseToken, Attempted: true, NextAt: t0.Add(time.Hour), Error: "late"}
	if err := s.FinishOutbox(t.Context(), t0.Add(3*time.Minute), []store.OutboxResult{stale}); err != nil {
		t.Fatal(err)
	}
	if status, attempts, _ := outboxStatus(t, s, id); status != "pending" || attempts != 0 {
		t.Fatalf("a stale result was recorded: %s, %d attempts", status, attempts)
	}
	if renewed, err := s.RenewOutbox(t.Context(), second.LeaseToken, []uuid.UUID{id}, time.Hour); err != nil || !renewed[id] {
		t.Errorf("the current lease not renewed: %v, %v", renewed, err)
	}
	if err := s.RecordOutboxStep(t.Context(), id, second.LeaseToken, "nethunt:create-comment"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishOutbox(t.Context(), t0.Add(3*time.Minute), []store.OutboxResult{{ID: id, LeaseToken: second.LeaseToken,
		Attempted: true, Delivered: true}}); err != nil {
		t.Fatal(err)
	}
	if status, attempts, steps := outboxStatus(t, s, id); status != "delivered" || attempts != 1 || len(steps) != 2 {
		t.Errorf("after the holder's result: %s, %d attempts, steps %v", status, attempts, steps)
	}
}

// TestOutboxClaimIsFair: a claim goes round-robin over integrations, each
// bounded together with what the claimer holds of it already, so one
// tenant's backlog cannot fill it; skipped integrations and updates in
// flight are not claimed; a deferred integration waits.
func TestOutboxClaimIsFair(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	busy, quiet, skipped := activeIntegration(t, s, nil), activeIntegration(t, s, nil), activeIntegration(t, s, nil)
	busyIDs := pendingUpdates(t, s, busy.ID, 50, t0.Add(-time.Hour)) // older: a plain oldest-first claim takes only these
	pendingUpdates(t, s, quiet.ID, 2, t0)
	pendingUpdates(t, s, skipped.ID, 2, t0)
	items, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: t0, Lease: time.Minute, Limit: 10, PerIntegration: 4,
		Skip: []uuid.UUID{skipped.ID}, InFlight: busyIDs[:1], Held: map[uuid.UUID]int{busy.ID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	per := map[uuid.UUID]int{}
	for _, it := range items {
		per[it.IntegrationID]++
		if it.ID == busyIDs[0] {
			t.Error("claimed an update already in flight")
		}
	}
	// busy has one in flight: three more make its four.
	if per[busy.ID] != 3 || per[quiet.ID] != 2 || per[skipped.ID] != 0 {
		t.Errorf("claimed per integration: busy %d, quiet %d, skipped %d; want 3, 2, 0", per[busy.ID], per[quiet.ID], per[skipped.ID])
	}
	if err := s.DeferOutbox(t.Context(), skipped.ID, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	items, err = s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: t0, Lease: time.Minute, Limit: 100, PerIntegration: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.IntegrationID == skipped.ID {
			t.Fatal("claimed a deferred integration's update before its time")
		}
	}
}
