package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
)

// Text Postgres cannot store (U+0000) in a webhook body is refused before
// the publish, with the field named: a 202 would name a call that is never
// stored. The ElevenLabs post-call, text of a peer we must keep, is taken
// without it instead.
func TestWebhookTextPostgresCannotStore(t *testing.T) {
	t.Parallel()
	h := setup(t)
	before := h.snapshot(t, h.integ)
	for _, c := range []struct {
		name, endpoint, body, field string
	}{
		{"variable", originate, `{"phone_number":"+380991111111","dynamic_variables":{"client_name":"A\u0000B"}}`,
			"dynamic_variables.client_name"},
		{"nested variable", originate, `{"phone_number":"+380991111111","dynamic_variables":{"deal":{"notes":["ok","\u0000"]}}}`,
			"dynamic_variables.deal.notes[1]"},
		{"variable name", originate, `{"phone_number":"+380991111111","dynamic_variables":{"na\u0000me":"x"}}`,
			"dynamic_variables.name"},
		{"variable not UTF-8", originate, "{\"phone_number\":\"+380991111111\",\"dynamic_variables\":{\"x\":[\"caf\xe9\"]}}",
			"dynamic_variables.x[0]"},
		{"record id", originate, `{"phone_number":"+380991111111","record_id":"r\u0000"}`, "record_id"},
		{"event call id", events, `{"eventType":"call_start","callId":"c\u0000"}`, "callId"},
		{"event metadata", events, `{"eventType":"call_end","callId":"c1","metadata":{"a":{"b":"\u0000"}}}`, "metadata.a.b"},
		{"event unknown member", events, `{"eventType":"call_end","callId":"c1","extra":"\u0000"}`, "extra"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := h.post(t, h.integ, c.endpoint, []byte(c.body)).expectError(t, http.StatusUnprocessableEntity, c.field)
			if e.Code != "invalid_value" {
				t.Fatalf("code %q, want invalid_value", e.Code)
			}
		})
	}
	h.assertUnchanged(t, h.integ, before)

	// agent-init answers ElevenLabs synchronously and never fails the
	// call: a NUL in what it is handed is dropped, not refused.
	r := h.post(t, h.integ, agentInit, []byte(`{"phone_number":"+380991111111\u0000"}`))
	var init clientData
	if r.status != http.StatusOK || json.Unmarshal(r.body, &init) != nil || init.Vars["phone_number"] != "+380991111111" {
		t.Fatalf("agent-init with a NUL: %d %s", r.status, r.body)
	}

	// A transcript with a NUL is taken, and kept without it.
	r = h.post(t, h.integ, postcall, []byte(`{"type":"post_call_transcription","event_timestamp":1,"data":{"conversation_id":"conv-nul",`+
		`"transcript":[{"role":"user","message":"Добрий\u0000 день"}],"analysis":{"transcript_summary":"s\u0000"}}}`))
	if r.status != http.StatusOK {
		t.Fatalf("post-call with a NUL: %d %s", r.status, r.body)
	}
	stored := h.lastPostcall(t, h.integ.ID)
	if bytes.Contains(stored, []byte(`\u0000`)) || !strings.Contains(string(stored), "Добрий день") {
		t.Fatalf("the post-call is kept as %s", stored)
	}
}

// lastPostcall is the body of the newest post-call JetStream holds for
// the integration.
func (h *harness) lastPostcall(t testing.TB, integrationID uuid.UUID) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subject := queue.Subject(queue.KindPostcall, integrationID)
	name, err := h.js.StreamNameBySubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	var body queue.PostcallBody
	if err := json.Unmarshal(m.Data, &body); err != nil {
		t.Fatal(err)
	}
	return body.Raw
}

// A request id that Postgres cannot store (header values may carry bytes
// that are not UTF-8) is not taken as the trace id: the call it answers
// 202 for is stored.
func TestRequestIDPostgresCannotStore(t *testing.T) {
	t.Parallel()
	h := setup(t)
	r := h.post(t, h.integ, originate, []byte(`{"phone_number":"+380991111111"}`), "X-Request-Id", "req-\xff\xfe")
	var accepted struct {
		CallID uuid.UUID `json:"callId"`
	}
	if r.status != http.StatusAccepted || json.Unmarshal(r.body, &accepted) != nil {
		t.Fatalf("originate: %d %s", r.status, r.body)
	}
	servicetest.Eventually(t, 10*time.Second, "the call to be stored", func() bool {
		return servicetest.Request(t, "GET", h.in.URL+"/api/calls/"+accepted.CallID.String(),
			map[string]string{"Authorization": "Bearer " + h.admin.Token}, nil, nil) == http.StatusOK
	})
}
