package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestTimeseries plays a campaign through five minutes and reads it back
// per minute, as the campaign's and as its integration's timeseries: the
// integration's counts the live calls and the queue backwards from now,
// the campaign's forwards from its first call, and both must agree.
func TestTimeseries(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 3})
	c := createCampaign(t, s, in, store.CampaignSpec{}, t0.Add(-6*time.Minute))

	// Before the window: one call dialled, still live throughout.
	addRecipients(t, s, c, t0.Add(-5*time.Minute), numbered(100, 1)...)
	if got := claim(t, s, in.ID, t0.Add(-4*time.Minute)); len(got) != 1 {
		t.Fatalf("claimed %d calls before the window, want 1", len(got))
	}
	// Minute 0: four more queued. Minute 1: two of them dialled.
	addRecipients(t, s, c, t0.Add(10*time.Second), numbered(200, 4)...)
	first := claim(t, s, in.ID, t0.Add(70*time.Second))
	if len(first) != 2 {
		t.Fatalf("claimed %d calls at minute 1, want 2", len(first))
	}
	// Minute 2: one of them ends unanswered, and a third is dialled.
	noAnswer := ev(in.ID, first[0], callstate.DialFailed, t0.Add(140*time.Second))
	noAnswer.Event.Reason = callstate.OutcomeNoAnswer
	apply(t, s, noAnswer)
	if got := claim(t, s, in.ID, t0.Add(150*time.Second)); len(got) != 1 {
		t.Fatalf("claimed %d calls at minute 2, want 1", len(got))
	}
	// Minute 3: the other ends answered; the last queued call is cancelled
	// without a dial.
	apply(t, s, callEnd(in.ID, first[1], 42, t0.Add(190*time.Second)))
	var last uuid.UUID
	if err := s.Pool().QueryRow(ctx, `SELECT id FROM calls WHERE campaign_id = $1 AND status = 'queued'`, c.ID).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CancelCall(ctx, "owner-a", last, "", t0.Add(210*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Six buckets asked, five begun by now.
	w := store.Window{From: t0, Step: time.Minute, Points: 6, Now: t0.Add(270 * time.Second)}
	want := []store.Point{
		{T: t0, ByOutcome: map[string]int{}, Active: 1, Queued: 4},
		{T: t0.Add(time.Minute), Dials: 2, ByOutcome: map[string]int{"no_answer": 1, "answered": 1}, Active: 3, Queued: 2},
		{T: t0.Add(2 * time.Minute), Dials: 1, ByOutcome: map[string]int{}, Active: 3, Queued: 1},
		{T: t0.Add(3 * time.Minute), ByOutcome: map[string]int{}, Active: 2, Queued: 0},
		{T: t0.Add(4 * time.Minute), ByOutcome: map[string]int{}, Active: 2, Queued: 0},
	}
	for name, read := range map[string]func() ([]store.Point, error){
		"campaign":    func() ([]store.Point, error) { return s.CampaignTimeseries(ctx, c.ID, w) },
		"integration": func() ([]store.Point, error) { return s.IntegrationTimeseries(ctx, in.ID, w) },
	} {
		got, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if g, w := pointsJSON(t, got), pointsJSON(t, want); g != w {
			t.Errorf("%s timeseries:\n got %s\nwant %s", name, g, w)
		}
	}
}

func pointsJSON(t *testing.T, points []store.Point) string {
	t.Helper()
	b, err := json.Marshal(points)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTimeseriesPlan: the integration timeseries reads only its window,
// however many calls the integration has had. Its plan is printed; a
// sequential scan, or any scan that reads rows outside the window, fails.
func TestTimeseriesPlan(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	busy := activeIntegration(t, s, nil)
	other := activeIntegration(t, s, nil)
	now := t0
	// 10 days of history, a call a minute for each of two integrations with
	// three ended attempts each: ~29,000 calls and 86,000 attempts, of which
	// the last hour holds 60 calls of the busy one.
	const minutes = 10 * 24 * 60
	for _, id := range []uuid.UUID{busy.ID, other.ID} {
		if _, err := s.Pool().Exec(ctx, `
			WITH c AS (
				INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts, queued_at, created_at, updated_at, outcome)
				SELECT gen_random_uuid(), $1, '+38099' || lpad(i::text, 7, '0'), 'completed', 3, 3, at, at, at + interval '30 seconds', 'completed'
				FROM generate_series(1, $2::int) AS i, LATERAL (SELECT $3::timestamptz - i * interval '1 minute' AS at) AS t
				RETURNING id, integration_id, created_at)
			INSERT INTO call_attempts (call_id, attempt, integration_id, started_at, ended_at, outcome)
			SELECT c.id, n, c.integration_id, c.created_at + n * interval '5 seconds', c.created_at + n * interval '9 seconds', 'no_answer'
			FROM c, generate_series(1, 3) AS n`, id, minutes, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE calls; ANALYZE call_attempts`); err != nil {
		t.Fatal(err)
	}

	var plan []struct {
		Plan planNode `json:"Plan"`
	}
	var raw []byte
	if err := s.Pool().QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+store.IntegrationTimeseriesSQL,
		busy.ID, now.Add(-time.Hour), 60.0, 60).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	t.Logf("plan:\n%s", raw)
	// The window holds 60 calls and 180 attempts; the counts now read the
	// busy integration's live and queued calls, none.
	const bound = 200
	plan[0].Plan.walk(func(n planNode) {
		if n.NodeType == "Seq Scan" {
			t.Errorf("sequential scan of %s", n.Relation)
		}
		if n.Relation != "" && n.ActualRows*n.ActualLoops > bound {
			t.Errorf("%s of %s (%s) read %.0f rows, want at most %d", n.NodeType, n.Relation, n.Index, n.ActualRows*n.ActualLoops, bound)
		}
	})
}

type planNode struct {
	NodeType    string  `json:"Node Type"`
	Relation    string  `json:"Relation Name"`
	Index       string  `json:"Index Name"`
	ActualRows  float64 `json:"Actual Rows"`
	ActualLoops float64 `json:"Actual Loops"`
	// RemovedByFilter counts the rows a node read and then dropped.
	RemovedByFilter float64 `json:"Rows Removed by Filter"`
	// The pages a node read (EXPLAIN's BUFFERS), its own and its children's.
	SharedHitBlocks  float64    `json:"Shared Hit Blocks"`
	SharedReadBlocks float64    `json:"Shared Read Blocks"`
	Plans            []planNode `json:"Plans"`
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, p := range n.Plans {
		p.walk(fn)
	}
}
