package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"
)

// TestCallListOutcomeFilter: GET /api/calls filters by outcome, one of the
// enumerated outcomes; any other value is a 400 naming the field.
func TestCallListOutcomeFilter(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Outcomes"})
	busy := w.originate(t, w.a, in, "+380990000021")
	w.originate(t, w.a, in, "+380990000022")
	if _, err := w.env.Store.Pool().Exec(t.Context(), `UPDATE calls SET status = 'failed', outcome = 'busy' WHERE id = $1`,
		busy); err != nil {
		t.Fatal(err)
	}
	r := w.a.do(t, "GET", "/api/calls?outcome=busy&integrationId="+in.ID.String(), nil).expect(t, http.StatusOK)
	var list []struct {
		ID uuid.UUID `json:"id"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 1 || list[0].ID != busy {
		t.Fatalf("outcome=busy: %s (%v), want only %s", r.body, err, busy)
	}
	expectFieldError(t, w.a.do(t, "GET", "/api/calls?outcome=success", nil), http.StatusBadRequest, "outcome")
}
