package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

// TestCampaignNotCompletedOverAnUpload: the completion sweep that runs
// while an upload holds the campaign's row does not mark it completed over
// the recipients that upload adds (contract §6: completed only when every
// call is terminal, recipients added at the same moment included).
func TestCampaignNotCompletedOverAnUpload(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	c := createCampaign(t, s, in, store.CampaignSpec{}, t0)
	addRecipients(t, s, c, t0, numbered(300, 1)...)
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'failed' WHERE campaign_id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	// An upload in flight: it holds the campaign's row and has added a
	// queued call it has not committed yet.
	upload, err := s.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = upload.Rollback(t.Context()) }()
	if _, err := upload.Exec(t.Context(), `SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE`, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := upload.Exec(t.Context(), `INSERT INTO calls (id, integration_id, campaign_id, phone_number, status, priority,
		max_attempts, queued_at, dynamic_variables, created_at, updated_at)
		VALUES ($1, $2, $3, '+380990000399', 'queued', 0, 3, $4, '{}', $4, $4)`, uuid.New(), in.ID, c.ID, t0); err != nil {
		t.Fatal(err)
	}
	swept := make(chan error, 1)
	go func() {
		_, err := s.AdvanceCampaigns(t.Context(), t0.Add(time.Minute))
		swept <- err
	}()
	// Let the sweep reach the campaign's row (it waits for it, or passes it by).
	deadline := time.Now().Add(10 * time.Second)
	for done := false; !done; {
		select {
		case err := <-swept:
			if err != nil {
				t.Fatal(err)
			}
			swept <- nil
			done = true
		default:
			if countRows(t, s, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`) > 0 {
				done = true
			}
			if time.Now().After(deadline) {
				t.Fatal("the sweep neither waited for the campaign nor finished")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := upload.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-swept; err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCampaign(t.Context(), "owner-a", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.CampaignRunning || got.Progress.Queued != 1 {
		t.Errorf("campaign %s with %d queued, want running with the uploaded call queued", got.Status, got.Progress.Queued)
	}
	// The next sweep still leaves it running; once the call is over, it completes.
	if _, err := s.AdvanceCampaigns(t.Context(), t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'failed' WHERE campaign_id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceCampaigns(t.Context(), t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetCampaign(t.Context(), "owner-a", c.ID); got.Status != store.CampaignCompleted {
		t.Errorf("campaign %s after every call ended, want completed", got.Status)
	}
}
