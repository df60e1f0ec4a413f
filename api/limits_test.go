package api_test

import (
	"net/http"
	"testing"
)

// One tenant's numbers must not break shared work: values outside the
// bounds of the contract are refused at the API with a 422 naming the
// field, and nothing is stored.
func TestConfigBoundsAreEnforced(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Bounds"})
	path := integrationPath(in, "/config/call_handling")
	before := w.a.do(t, "GET", path, nil).expect(t, http.StatusOK).body
	for _, tt := range []struct {
		body  string
		field string
	}{
		{`{"max_call_duration_secs": 3000000000}`, "max_call_duration_secs"},
		{`{"max_call_duration_secs": 86401}`, "max_call_duration_secs"},
		{`{"retry_delays_secs": [60, 9300000000000]}`, "retry_delays_secs[1]"},
		{`{"retry_delays_secs": [2592001]}`, "retry_delays_secs[0]"},
		{`{"max_attempts": 21}`, "max_attempts"},
		{`{"min_call_duration_secs": 601}`, "min_call_duration_secs"},
		{`{"concurrency_limit": 1001}`, "concurrency_limit"},
	} {
		expectFieldError(t, w.a.do(t, "PUT", path, tt.body), http.StatusUnprocessableEntity, tt.field)
	}
	if after := w.a.do(t, "GET", path, nil).expect(t, http.StatusOK).body; !jsonEqual(t, after, string(before)) {
		t.Errorf("a refused value changed the config: %s, was %s", after, before)
	}
}
