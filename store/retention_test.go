package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// TestRemoveExpired: a batch removes an integration's finished calls last
// changed before the cutoff, with their linked rows, oldest first; it keeps
// recent calls, calls that have not ended, and other integrations' calls;
// campaign progress keeps counting what was removed.
func TestRemoveExpired(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in, other := activeIntegration(t, s, nil), activeIntegration(t, s, nil)
	putConfig(t, s, in.ID, config.KeyCRM, map[string]any{"kind": "webhook", "update_url": "http://127.0.0.1:1/update"})
	putConfig(t, s, in.ID, config.KeyData, map[string]any{"retention_days": 30})
	campaign, err := s.CreateCampaign(t.Context(), "owner-a", in.ID, store.CampaignSpec{Name: "Old", Priority: 5}, t0)
	if err != nil {
		t.Fatal(err)
	}
	old := []uuid.UUID{finishCall(t, s, in.ID, t0), finishCall(t, s, in.ID, t0.Add(time.Second))}
	recent := finishCall(t, s, in.ID, t0.Add(60*24*time.Hour))
	if _, _, err := s.AddRecipients(t.Context(), "owner-a", campaign.ID, []store.Recipient{{PhoneNumber: "+380501110001"},
		{PhoneNumber: "+380501110002"}}, t0); err != nil {
		t.Fatal(err)
	}
	var recipients []uuid.UUID
	rows, _ := s.Pool().Query(t.Context(), `SELECT id FROM calls WHERE campaign_id = $1`, campaign.ID)
	for rows.Next() {
		var id uuid.UUID
		_ = rows.Scan(&id)
		recipients = append(recipients, id)
	}
	rows.Close()
	// One recipient ended long ago, one is still queued.
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'failed', outcome = 'no_answer' WHERE id = $1`, recipients[0]); err != nil {
		t.Fatal(err)
	}
	before, err := s.GetCampaign(t.Context(), "owner-a", campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	othersOld := callTo(t, s, other.ID, "+380501110003", t0)
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'cancelled', outcome = 'cancelled' WHERE id = $1`, othersOld); err != nil {
		t.Fatal(err)
	}

	policies, err := s.RetentionPolicies(t.Context())
	if err != nil || len(policies) != 1 || policies[0] != (store.RetentionPolicy{IntegrationID: in.ID, Days: 30}) {
		t.Fatalf("policies %+v, %v", policies, err)
	}
	cutoff := t0.Add(60*24*time.Hour - 30*24*time.Hour)
	first, err := s.RemoveExpired(t.Context(), in.ID, cutoff, 2)
	if err != nil || first.Calls != 2 {
		t.Fatalf("first batch %+v, %v", first, err)
	}
	second, err := s.RemoveExpired(t.Context(), in.ID, cutoff, 2)
	if err != nil || second.Calls != 1 {
		t.Fatalf("second batch %+v, %v", second, err)
	}
	if second.CRMUpdates+first.CRMUpdates != 2 || first.Events+second.Events < 8 || first.Attempts+second.Attempts != 2 {
		t.Fatalf("linked rows removed: %+v and %+v", first, second)
	}
	for _, id := range append(old, recipients[0]) {
		if _, err := s.CallByID(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired call %s kept: %v", id, err)
		}
	}
	for _, id := range []uuid.UUID{recent, recipients[1], othersOld} {
		if _, err := s.CallByID(t.Context(), id); err != nil {
			t.Fatalf("call %s removed: %v", id, err)
		}
	}
	after, err := s.GetCampaign(t.Context(), "owner-a", campaign.ID)
	if err != nil || after.Progress.Total != before.Progress.Total || after.Progress.Failed != 1 || after.Progress.Queued != 1 {
		t.Fatalf("campaign progress %+v → %+v (%v)", before.Progress, after.Progress, err)
	}
}

// TestRunDaily: one replica at a time runs a daily job, and once it has
// finished, not again until a day has passed.
func TestRunDaily(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.RunDaily(t.Context(), "test-job", t0, func(context.Context) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	ran := false
	if err := s.RunDaily(t.Context(), "test-job", t0, func(context.Context) error { ran = true; return nil }); !errors.Is(err, store.ErrJobNotDue) || ran {
		t.Fatalf("second replica during the run: ran %v, %v", ran, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.RunDaily(t.Context(), "test-job", t0.Add(23*time.Hour), func(context.Context) error { ran = true; return nil }); !errors.Is(err, store.ErrJobNotDue) || ran {
		t.Fatalf("run within the day: ran %v, %v", ran, err)
	}
	if err := s.RunDaily(t.Context(), "test-job", t0.Add(24*time.Hour), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("run a day later: ran %v, %v", ran, err)
	}
}

// TestRemovalReadsOnlyItsOwnKeys: removing a batch of calls removes the
// idempotency keys that name them by reading those keys only, however many
// other calls' keys the last eight days hold.
func TestRemovalReadsOnlyItsOwnKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Pool().Exec(ctx, `INSERT INTO processed_keys (scope, key, ref, expires_at)
		SELECT 'originate', 'idem:' || g, gen_random_uuid()::text, now() + interval '8 days' FROM generate_series(1, 50000) g;
		ANALYZE processed_keys`); err != nil {
		t.Fatal(err)
	}
	batch := make([]uuid.UUID, 100)
	for i := range batch {
		batch[i] = uuid.New()
	}
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var raw []byte
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+store.RemoveOriginateKeysSQL, batch).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	plan[0].Plan.walk(func(n planNode) {
		if n.Relation == "processed_keys" && n.NodeType != "ModifyTable" && n.ActualRows*n.ActualLoops+n.RemovedByFilter > 100 {
			t.Errorf("%s of processed_keys (%s) read %.0f rows to remove the keys of 100 calls", n.NodeType, n.Index, n.ActualRows*n.ActualLoops+n.RemovedByFilter)
		}
	})
	if t.Failed() {
		t.Logf("plan:\n%s", raw)
	}
}
