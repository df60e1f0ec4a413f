package api_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// TestCallReadableRightAfterThe202: the call id a call-originate answered
// can be read and cancelled at once, not only after the intake worker has
// stored the call (contract §3: the intake lag is not the client's to
// wait out); an unknown id is still a 404.
func TestCallReadableRightAfterThe202(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Read your write"})
	for i, action := range []string{"GET", "cancel"} {
		var out struct {
			CallID uuid.UUID `json:"callId"`
		}
		if code := servicetest.Webhook(t, w.inst, in, "call-originate", map[string]any{"phone_number": "+38099000003" + string(rune('0'+i))},
			&out); code != http.StatusAccepted {
			t.Fatalf("call-originate: %d", code)
		}
		switch action {
		case "GET":
			w.a.do(t, "GET", "/api/calls/"+out.CallID.String(), nil).expect(t, http.StatusOK)
		case "cancel":
			w.a.do(t, "POST", "/api/calls/"+out.CallID.String()+"/cancel", nil).expect(t, http.StatusOK)
		}
	}
	w.a.do(t, "GET", "/api/calls/"+uuid.NewString(), nil).expect(t, http.StatusNotFound)
}
