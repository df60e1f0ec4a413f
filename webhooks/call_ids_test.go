package webhooks_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
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
	originate := func(key string) uuid.UUID { return h.originateWithKey(t, `{"phone_number":"+380991112233"}`, key) }
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

// TestRetriedOriginateAfterTheStreamLostItsMessage: the originate stream
// no longer holds the first request's message (evicted under its byte
// budget; deleted here) while the server still remembers its message id.
// A retry with the same Idempotency-Key is a duplicate in the stream and is
// answered with the same call id, not 503.
func TestRetriedOriginateAfterTheStreamLostItsMessage(t *testing.T) {
	t.Parallel()
	h := setup(t)
	const body, key = `{"phone_number":"+380991112244"}`, "retry-after-eviction"
	id := h.originateWithKey(t, body, key)
	h.dropLastOriginate(t)
	if again := h.originateWithKey(t, body, key); again != id {
		t.Errorf("the retry answered %s, want %s", again, id)
	}

	// Named by its record, the retry may carry another key: its call id
	// is the one the first request's call was created under.
	const byRecord = `{"phone_number":"+380991112255","record_id":"lead-7"}`
	first := h.originateWithKey(t, byRecord, "first-key")
	servicetest.Eventually(t, 15*time.Second, "the first call to be stored", func() bool {
		for _, c := range h.calls(t, h.integ.ID) {
			if c.ID == first {
				return true
			}
		}
		return false
	})
	h.dropLastOriginate(t)
	if again := h.originateWithKey(t, byRecord, "another-key"); again != first {
		t.Errorf("the retry of the record answered %s, want %s", again, first)
	}
}

// dropLastOriginate deletes the originate stream's last message, as its
// byte budget evicts the oldest.
func (h *harness) dropLastOriginate(t *testing.T) {
	t.Helper()
	stream, err := h.js.Stream(t.Context(), "CALLQUEUE_ORIGINATE")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(t.Context(), info.State.LastSeq); err != nil {
		t.Fatal(err)
	}
}

// originateWithKey posts a call-originate with an Idempotency-Key and
// returns the call id it was answered with.
func (h *harness) originateWithKey(t *testing.T, body, key string) uuid.UUID {
	t.Helper()
	r := h.post(t, h.integ, "webhook/call-originate", []byte(body), "Idempotency-Key", key)
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
