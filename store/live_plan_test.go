package store_test

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

// TestLiveCallReadsIgnoreHistory: what runs at every scrape (the gauges and
// the status ages) and at every watchdog tick (the calls waiting for their
// post-call report) reads the calls under way, however many calls have
// ended. Each plan is printed; a sequential scan of calls, or a scan that
// reads more rows than there are live calls or more pages than they fill,
// fails. The answers are checked
// too, so that an index that made them wrong would not pass.
func TestLiveCallReadsIgnoreHistory(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	busy := activeIntegration(t, s, nil)
	other := activeIntegration(t, s, nil)
	now := time.Now()

	// 20,000 ended calls of each integration: the history.
	for _, id := range []uuid.UUID{busy.ID, other.ID} {
		if _, err := s.Pool().Exec(ctx, `
			INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts, queued_at, created_at, updated_at, outcome)
			SELECT gen_random_uuid(), $1, '+38099' || lpad(i::text, 7, '0'), (ARRAY['completed', 'failed', 'cancelled'])[1 + i % 3], 1, 1,
				at, at, at + interval '30 seconds', (ARRAY['answered', 'no_answer', 'cancelled'])[1 + i % 3]
			FROM generate_series(1, 20000) AS i, LATERAL (SELECT $2::timestamptz - i * interval '1 minute' AS at) AS t`, id, now); err != nil {
			t.Fatal(err)
		}
	}
	// The busy integration's calls under way: 40 queued, 2 dialled, 1
	// cancelled while live (it keeps its slot), 2 awaiting a retry and 3
	// awaiting their post-call report, one of them for ten minutes.
	if _, err := s.Pool().Exec(ctx, `
		INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts, queued_at, created_at, updated_at,
			slot_taken_at, dial_state, next_retry_at)
		SELECT gen_random_uuid(), $1, '+38098' || lpad(i::text, 7, '0'), l.status, l.attempt, 3, $2::timestamptz, $2, $2 - l.age,
			CASE WHEN l.status IN ('initiated', 'cancelled') THEN $2 END,
			CASE WHEN l.status IN ('initiated', 'cancelled') THEN 'accepted' ELSE 'none' END,
			CASE WHEN l.status = 'retry_scheduled' THEN $2 + interval '1 hour' END
		FROM (VALUES ('queued', 0, 40, interval '0'), ('initiated', 1, 2, interval '0'), ('cancelled', 1, 1, interval '0'),
			('retry_scheduled', 1, 2, interval '0'), ('waiting_postcall', 1, 2, interval '0'),
			('waiting_postcall', 1, 1, interval '10 minutes')) AS l (status, attempt, n, age),
			LATERAL generate_series(1, l.n) AS i`, busy.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE calls`); err != nil {
		t.Fatal(err)
	}
	const live = 48

	for _, q := range []struct {
		name string
		sql  string
		args []any
	}{
		{"gauges", store.LiveGaugesSQL, nil},
		{"status ages", store.CallStatusAgesSQL, nil},
		{"awaiting post-call", store.AwaitingPostcallSQL, []any{nil, 5 * time.Minute, 100}},
	} {
		var raw []byte
		if err := s.Pool().QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+q.sql, q.args...).Scan(&raw); err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		var plan []struct {
			Plan planNode `json:"Plan"`
		}
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s plan:\n%s", q.name, raw)
		plan[0].Plan.walk(func(n planNode) {
			if n.Relation != "calls" {
				return
			}
			if n.NodeType == "Seq Scan" {
				t.Errorf("%s: sequential scan of calls", q.name)
			}
			if read := n.ActualRows*n.ActualLoops + n.RemovedByFilter; read > live {
				t.Errorf("%s: %s of calls (%s) read %.0f rows, want at most the %d live", q.name, n.NodeType, n.Index, read, live)
			}
			// The live calls fit in a page or two, with a few pages of index;
			// the history's rows and index entries span hundreds.
			if pages := n.SharedHitBlocks + n.SharedReadBlocks; pages > 15 {
				t.Errorf("%s: %s of calls (%s) read %.0f pages, want at most 15", q.name, n.NodeType, n.Index, pages)
			}
		})
	}

	gauges, err := s.Gauges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got store.Gauge
	for _, g := range gauges {
		if g.IntegrationID == busy.ID {
			got = g
		}
	}
	if got.Active != 3 || got.Queued != 40 {
		t.Errorf("busy integration's gauges: %d active, %d queued; want 3 and 40", got.Active, got.Queued)
	}
	ages, err := s.CallStatusAges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, a := range ages {
		if a.IntegrationID != busy.ID.String() {
			t.Errorf("status ages name %s, which has no call under way", a.IntegrationID)
		}
		counts[a.Status] = a.Calls
		if a.Status == "waiting_postcall" && a.Oldest < 9*time.Minute {
			t.Errorf("oldest call awaiting its post-call: %s, want about 10 minutes", a.Oldest)
		}
	}
	if want := map[string]int{"queued": 40, "initiated": 2, "retry_scheduled": 2, "waiting_postcall": 3}; !maps.Equal(counts, want) {
		t.Errorf("status ages: %v, want %v", counts, want)
	}
	overdue, err := s.AwaitingPostcall(ctx, 5*time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(overdue) != 1 || overdue[0].IntegrationID != busy.ID {
		t.Errorf("calls past their post-call wait: %+v, want the one waiting for ten minutes", overdue)
	}
}
