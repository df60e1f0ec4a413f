package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/callqueue/callqueue/store"
)

// TestQuotasAnswer422: a secret or handler beyond the integration's quota
// is a 422 quota_exceeded, and nothing is added.
func TestQuotasAnswer422(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Quota"})
	for i := range store.MaxSecretsPerIntegration {
		if _, err := w.env.Store.PutSecret(t.Context(), "t", in.ID, store.KindSecret, fmt.Sprintf("K_%d", i), "v-000001", false); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []string{"secrets", "credentials"} {
		e := expectFieldError(t, w.a.do(t, "POST", integrationPath(in, "/"+kind), map[string]any{"key": "MORE", "value": "v-000002"}),
			http.StatusUnprocessableEntity, "key")
		if e.Code != "quota_exceeded" {
			t.Errorf("%s beyond the quota: code %q", kind, e.Code)
		}
	}
	for i := range store.MaxHandlersPerIntegration {
		if _, err := w.env.Store.CreateHandler(t.Context(), ownerA, "t", in.ID, fmt.Sprintf("h%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	e := expectFieldError(t, w.a.do(t, "POST", integrationPath(in, "/handlers"), map[string]any{"name": "more"}),
		http.StatusUnprocessableEntity, "name")
	if e.Code != "quota_exceeded" {
		t.Errorf("handler beyond the quota: code %q", e.Code)
	}
}
