package api_test

import (
	"fmt"
	"net/http"
	"strings"
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

// Free-form config keys are bounded: 64 KiB a value (413), 32 keys (422
// quota_exceeded); replacing an existing key is not a new one.
func TestFreeFormConfigQuotas(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Quotas"})
	big := `"` + strings.Repeat("x", 64<<10) + `"`
	expectError(t, w.a.do(t, "PUT", integrationPath(in, "/config/notes"), big), http.StatusRequestEntityTooLarge)
	for i := range 32 {
		w.a.do(t, "PUT", integrationPath(in, fmt.Sprintf("/config/extra_%d", i)), `{"n": 1}`).expect(t, http.StatusOK)
	}
	e := expectFieldError(t, w.a.do(t, "PUT", integrationPath(in, "/config/extra_32"), `{"n": 1}`), http.StatusUnprocessableEntity, "key")
	if e.Code != "quota_exceeded" {
		t.Errorf("code %q, want quota_exceeded", e.Code)
	}
	w.a.do(t, "PUT", integrationPath(in, "/config/extra_0"), `{"n": 2}`).expect(t, http.StatusOK)
	w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), `{"concurrency_limit": 2}`).expect(t, http.StatusOK)
}
