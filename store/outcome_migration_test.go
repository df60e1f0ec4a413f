package store_test

import (
	"testing"

	"github.com/callqueue/callqueue/migrations"
)

// TestMigrationMovesVerdictsOutOfOutcome: stored completed calls whose
// outcome is an analysis verdict get outcome completed, the verdict kept as
// the analysis' outcome; enumerated outcomes are left alone.
func TestMigrationMovesVerdictsOutOfOutcome(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	ids := queueCalls(t, s, in.ID, 3, t0)
	if _, err := s.Pool().Exec(t.Context(), `UPDATE calls SET status = 'completed', outcome = v.outcome, analysis = NULLIF(v.analysis, '')::jsonb
		FROM unnest($1::uuid[], $2::text[], $3::text[]) AS v (id, outcome, analysis) WHERE calls.id = v.id`,
		ids, []string{"success", "interested, call back", "completed"}, []string{`{"source":"elevenlabs"}`, "", `{"source":"x"}`}); err != nil {
		t.Fatal(err)
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Name == "call_outcome_enumerated" {
			if _, err := s.Pool().Exec(t.Context(), m.Up); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, want := range []string{"success", "interested, call back", ""} {
		var outcome, verdict string
		if err := s.Pool().QueryRow(t.Context(), `SELECT outcome, COALESCE(analysis->>'outcome', '') FROM calls WHERE id = $1`, ids[i]).
			Scan(&outcome, &verdict); err != nil {
			t.Fatal(err)
		}
		if outcome != "completed" || verdict != want {
			t.Errorf("call %d: outcome %q, analysis.outcome %q; want completed and %q", i, outcome, verdict, want)
		}
	}
}
