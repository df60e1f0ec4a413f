package store_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// awaitingAnalyses writes n completed calls of integ whose LLM analysis is
// queued and whose CRM update is held for it, as a post-call leaves them.
func awaitingAnalyses(t *testing.T, s *store.Store, integ uuid.UUID, n int, at time.Time) []uuid.UUID {
	t.Helper()
	ids := pendingUpdates(t, s, integ, n, at)
	var calls []uuid.UUID
	rows, err := s.Pool().Query(t.Context(), `UPDATE crm_outbox SET next_attempt_at = $2 WHERE id = ANY($1) RETURNING call_id`,
		ids, at.Add(store.AnalysisHold))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, id)
	}
	rows.Close()
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET transcript = '[{"role":"user","message":"так"}]',
			analysis = '{"call_successful":"success","source":"elevenlabs"}' WHERE id = ANY($1)`, calls); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO pending_analyses (call_id, integration_id, attempt, created_at)
		SELECT id, $2, 1, $3 FROM unnest($1::uuid[]) AS id`, calls, integ, at); err != nil {
		t.Fatal(err)
	}
	return calls
}

// TestAnalysisClaimIsFairAndFenced: claims go round-robin over
// integrations, each bounded with what its claimer runs already counted; a
// leased analysis is not claimed twice; a worker whose lease passed to
// another cannot apply its answer; the holder's answer amends the call and
// releases its held CRM update rebuilt from the amended call.
func TestAnalysisClaimIsFairAndFenced(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	busy, quiet := activeIntegration(t, s, nil), activeIntegration(t, s, nil)
	awaitingAnalyses(t, s, busy.ID, 20, t0.Add(-time.Hour)) // older: an oldest-first claim takes only these
	quietCalls := awaitingAnalyses(t, s, quiet.ID, 1, t0)

	claim := func(at time.Time, inFlight map[uuid.UUID]int) []store.AnalysisJob {
		t.Helper()
		s.SetClock(func() time.Time { return at }) // leases follow the database's clock, shifted to at
		jobs, err := s.ClaimAnalyses(t.Context(), store.AnalysisClaim{Now: at, Lease: time.Minute, Limit: 10,
			PerIntegration: 2, InFlight: inFlight})
		if err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	per := func(jobs []store.AnalysisJob) map[uuid.UUID]int {
		out := map[uuid.UUID]int{}
		for _, j := range jobs {
			out[j.IntegrationID]++
		}
		return out
	}
	first := claim(t0, map[uuid.UUID]int{busy.ID: 1})
	if got := per(first); got[busy.ID] != 1 || got[quiet.ID] != 1 || len(first) != 2 {
		t.Fatalf("first claim per integration %v, want busy 1 (one in flight already), quiet 1", got)
	}
	if again := claim(t0.Add(time.Second), nil); per(again)[quiet.ID] != 0 {
		t.Fatalf("a leased analysis was claimed again: %+v", again)
	}
	var job store.AnalysisJob
	for _, j := range first {
		if j.IntegrationID == quiet.ID {
			job = j
		}
	}
	if job.CallID != quietCalls[0] || job.Tries != 1 || string(job.Transcript) == "" || string(job.Analysis) == "" {
		t.Fatalf("claimed job %+v", job)
	}

	// The worker stalls past its lease; another takes the job over.
	var second store.AnalysisJob
	for _, j := range claim(t0.Add(2*time.Minute), map[uuid.UUID]int{busy.ID: 2}) {
		if j.IntegrationID == quiet.ID {
			second = j
		}
	}
	if second.CallID != job.CallID || second.LeaseToken == job.LeaseToken || second.Tries != 2 {
		t.Fatalf("takeover %+v of %+v", second, job)
	}
	amended := store.Amendment{Analysis: json.RawMessage(`{"source":"llm","outcome":"not_interested","extracted":{"do_not_call":true}}`),
		Summary: "Клієнт просить не дзвонити", Detail: map[string]any{"source": "llm"}}
	if err := s.FinishAnalysis(t.Context(), t0.Add(3*time.Minute), job, amended); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the stale worker's answer: %v, want ErrLeaseLost", err)
	}
	if err := s.FinishAnalysis(t.Context(), t0.Add(3*time.Minute), second, amended); err != nil {
		t.Fatal(err)
	}

	c, err := s.GetCall(t.Context(), "owner-a", job.CallID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Outcome == nil || *c.Outcome == "not_interested" || c.Summary == nil || *c.Summary != amended.Summary {
		t.Errorf("amended call: outcome %v, summary %v", c.Outcome, c.Summary)
	}
	var payload map[string]any
	var next time.Time
	if err := s.Pool().QueryRow(t.Context(), `SELECT payload, next_attempt_at FROM crm_outbox WHERE call_id = $1`, job.CallID).
		Scan(&payload, &next); err != nil {
		t.Fatal(err)
	}
	verdict, _ := payload["analysis"].(map[string]any)
	if !next.Equal(t0.Add(3*time.Minute)) || verdict["outcome"] != "not_interested" || payload["outcome"] == "not_interested" ||
		payload["summary"] != amended.Summary {
		t.Errorf("the held CRM update: due %v, payload %v; want due at the analysis with its verdict (analysis.outcome) and summary", next, payload)
	}
	var suppressed int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM suppressions WHERE integration_id = $1`, quiet.ID).
		Scan(&suppressed); err != nil || suppressed != 1 {
		t.Errorf("do_not_call from the LLM: %d suppressions, %v", suppressed, err)
	}
	if n, err := s.AnalysisBacklog(t.Context()); err != nil || n.Pending != 20 {
		t.Errorf("pending analyses %d, %v; want the busy integration's 20", n.Pending, err)
	}
}
