package webhooks_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store/storetest"
	"github.com/callqueue/callqueue/webhooks"
)

// TestOriginateCallIDNeedsTheSecret: the call id answered for an
// Idempotency-Key cannot be computed from what a caller may know (the
// integration id, shown as a metrics label, and the key): it is not the
// name-based UUID of those, and two requests with one key still get one id.
func TestOriginateCallIDNeedsTheSecret(t *testing.T) {
	t.Parallel()
	h := setup(t)
	originate := func(key string) uuid.UUID {
		r := h.post(t, h.integ, "webhook/call-originate", []byte(`{"phone_number":"+380991112233"}`), "Idempotency-Key", key)
		if r.status != http.StatusAccepted {
			t.Fatalf("call-originate: %d %s", r.status, r.body)
		}
		var got struct {
			CallID uuid.UUID `json:"callId"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		return got.CallID
	}
	const key = "order-1842"
	id := originate(key)
	guessable := uuid.NewSHA1(uuid.MustParse("5d6f1c2e-3b4a-4f0e-9c1d-2a7b8e9f0a1b"), []byte(h.integ.ID.String()+"\x00"+key))
	if id == guessable {
		t.Errorf("call id %s is the name-based UUID of the integration id and the key", id)
	}
	// Derived from the server's secret alone: the same after a restart.
	if want := webhooks.KeyedCallID(webhooks.CallIDKey(storetest.SecretKey), h.integ.ID, key); id != want {
		t.Errorf("call id %s, want %s (derived from the secret key)", id, want)
	}
	if again := originate(key); again != id {
		t.Errorf("the same key answered %s, then %s", id, again)
	}
}
