package service_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

type callView struct {
	store.Call
	Events []store.CallEventRow `json:"events"`
}

// TestCallLifecycle drives calls through every state of the contract:
// queued → initiated → in_progress → waiting_postcall → completed, with the
// limit holding the second call back until the first one's slot is freed.
func TestCallLifecycle(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Lifecycle", va, map[string]any{"concurrency_limit": 1})
	if integ.Status != "active" {
		t.Fatalf("integration status = %s, want active once voice and its secret are set", integ.Status)
	}

	var first, second struct {
		Success bool      `json:"success"`
		CallID  uuid.UUID `json:"callId"`
	}
	if code := servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380991111111",
		"dynamic_variables": map[string]any{"client_name": "Іван"}}, &first); code != http.StatusAccepted || !first.Success {
		t.Fatalf("originate: %d %+v", code, first)
	}
	o := va.Next(t, 5*time.Second)
	if o.Call() != first.CallID.String() || o.PhoneNumber != "+380991111111" || o.AssistantID != "asst-1" || o.SipID != "sip-1" {
		t.Fatalf("first originate = %+v", o)
	}
	if o.DynamicVariables["client_name"] != "Іван" {
		t.Fatalf("dynamic variables not passed: %+v", o.DynamicVariables)
	}
	// The second call comes once the first holds the only slot: intake
	// stores concurrent batches in parallel, so two calls sent back to back
	// may be stored, and dialled, in either order.
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380992222222"}, &second)
	// The limit is 1: the second call must wait.
	time.Sleep(300 * time.Millisecond)
	if n := len(va.Requests()); n != 1 {
		t.Fatalf("VA got %d originates with a limit of 1", n)
	}

	// agent-init sees the call's own variables and the date in Kyiv time.
	var initAnswer struct {
		Type string         `json:"type"`
		Vars map[string]any `json:"dynamic_variables"`
	}
	if code := servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": "+380991111111"}, &initAnswer); code != http.StatusOK {
		t.Fatalf("agent-init: %d", code)
	}
	if initAnswer.Type != "conversation_initiation_client_data" || initAnswer.Vars["client_name"] != "Іван" ||
		initAnswer.Vars["today_is"] != "21.01.2026" || initAnswer.Vars["time"] != "14:39:12" || initAnswer.Vars["weekday"] != "Середа" {
		t.Fatalf("agent-init answer = %+v", initAnswer)
	}

	// The VA reports the call by its own id.
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_start", "callId": "va-" + o.CallID, "conversation_id": "conv-1"}, nil)
	waitStatus(t, admin, first.CallID, "in_progress")
	va.End(o.CallID)
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_end", "callId": o.CallID, "duration": 45}, nil)
	waitStatus(t, admin, first.CallID, "waiting_postcall")

	// The freed slot dials the second call.
	o2 := va.Next(t, 5*time.Second)
	if o2.Call() != second.CallID.String() {
		t.Fatalf("second originate for %s, want %s", o2.CallID, second.CallID)
	}

	postcall := map[string]any{"type": "post_call_transcription", "event_timestamp": 1705845552, "data": map[string]any{
		"agent_id": "agent_abc123", "conversation_id": "conv-1", "status": "done",
		"transcript":                          []map[string]any{{"role": "agent", "message": "Привіт", "time_in_call_secs": 0}},
		"metadata":                            map[string]any{"call_duration_secs": 45, "termination_reason": "user_ended_call"},
		"analysis":                            map[string]any{"call_successful": "success", "transcript_summary": "Клієнт підтвердив участь"},
		"conversation_initiation_client_data": map[string]any{"dynamic_variables": map[string]any{"phone_number": "+380991111111"}},
	}}
	if code := servicetest.Webhook(t, in, integ, "agent-postcall", postcall, nil); code != http.StatusOK {
		t.Fatalf("agent-postcall: %d", code)
	}
	c := waitStatus(t, admin, first.CallID, "completed")
	if c.Summary == nil || *c.Summary != "Клієнт підтвердив участь" || c.DurationSecs == nil || *c.DurationSecs != 45 ||
		c.ExternalCallID == nil || *c.ExternalCallID != "va-"+o.CallID || c.ConversationID == nil || *c.ConversationID != "conv-1" {
		t.Fatalf("completed call = %+v", c.Call)
	}
	var kinds []string
	for _, e := range c.Events {
		kinds = append(kinds, e.Kind)
	}
	want := []string{"queued", "dial", "dial_accepted", "call_start", "call_end", "postcall"}
	if !equal(kinds, want) {
		t.Fatalf("history = %v, want %v", kinds, want)
	}
	var stats store.Stats
	admin.Do("GET", "/api/integrations/"+integ.ID.String()+"/stats", nil, &stats)
	if stats.Active != 1 || stats.Limit != 1 || stats.Completed != 1 {
		t.Fatalf("stats = %+v", stats)
	}
}

// TestShortCallRetries: a call shorter than min_call_duration_secs is
// retried after retry_delays_secs on the test's clock, and fails once its
// attempts are exhausted.
func TestShortCallRetries(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Retries", va, map[string]any{"max_attempts": 2, "retry_delays_secs": []int{60}})

	var resp struct {
		CallID uuid.UUID `json:"callId"`
	}
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380993333333"}, &resp)
	o := va.Next(t, 5*time.Second)
	start := env.Clock.Now()
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_end", "callId": o.CallID, "duration": 2}, nil)
	c := waitStatus(t, admin, resp.CallID, "retry_scheduled")
	if c.NextRetryAt == nil || !c.NextRetryAt.Equal(start.Add(60*time.Second)) || c.Outcome == nil || *c.Outcome != "short_call" {
		t.Fatalf("retry scheduled as %+v", c.Call)
	}
	// Not before its time.
	env.Clock.Advance(59 * time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := va.CountFor(o.CallID); n != 1 {
		t.Fatalf("redialled before nextRetryAt: %d originates", n)
	}
	env.Clock.Advance(time.Second)
	o2 := va.Next(t, 5*time.Second)
	if o2.CallID != resp.CallID.String()+".2" || o.CallID != resp.CallID.String()+".1" {
		t.Fatalf("attempts dialled as %s, then %s: want the call id with each attempt's number", o.CallID, o2.CallID)
	}
	c = waitStatus(t, admin, resp.CallID, "initiated")
	if c.Attempt != 2 {
		t.Fatalf("attempt = %d, want 2", c.Attempt)
	}
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_end", "callId": o2.CallID, "duration": 1}, nil)
	c = waitStatus(t, admin, resp.CallID, "failed")
	if *c.Outcome != "short_call" {
		t.Fatalf("outcome = %v", *c.Outcome)
	}
}

func waitStatus(t *testing.T, admin *servicetest.Admin, id uuid.UUID, status string) callView {
	t.Helper()
	var c callView
	servicetest.Eventually(t, 10*time.Second, "call "+id.String()+" to be "+status, func() bool {
		c = callView{}
		admin.Do("GET", "/api/calls/"+id.String(), nil, &c)
		return string(c.Status) == status
	})
	return c
}

func equal(a, b []string) bool {
	raw1, _ := json.Marshal(a)
	raw2, _ := json.Marshal(b)
	return string(raw1) == string(raw2)
}

// TestEventsBeforeTheDialAnswer: the VA's events can name the call by the
// VA's own id before its answer to the originate request is recorded; they
// wait for that answer instead of being lost.
func TestEventsBeforeTheDialAnswer(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Early events", va, nil)
	va.Hang()
	var resp struct {
		CallID uuid.UUID `json:"callId"`
	}
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380994444444"}, &resp)
	o := va.Next(t, 5*time.Second)
	// The VA starts and ends the call while our originate request is still open.
	if code := servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_start", "callId": "va-" + o.CallID}, nil); code != http.StatusAccepted {
		t.Fatalf("call_start: %d", code)
	}
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_end", "callId": "va-" + o.CallID, "duration": 40}, nil)
	time.Sleep(200 * time.Millisecond) // let the events reach the workers while the dial is unanswered
	if c := waitStatus(t, admin, resp.CallID, "initiated"); c.ExternalCallID != nil {
		t.Fatalf("external id recorded before the VA answered: %v", *c.ExternalCallID)
	}
	va.Release()
	c := waitStatus(t, admin, resp.CallID, "waiting_postcall")
	if c.DurationSecs == nil || *c.DurationSecs != 40 {
		t.Fatalf("call_end not applied: %+v", c.Call)
	}
	var kinds []string
	for _, e := range c.Events {
		kinds = append(kinds, e.Kind)
	}
	// The two events may be stored in different messages and applied in
	// either order; a call_start that comes after the call_end changes
	// nothing and is kept in the history marked ignored.
	inOrder := []string{"queued", "dial", "dial_accepted", "call_start", "call_end"}
	endFirst := []string{"queued", "dial", "dial_accepted", "call_end", "call_start"}
	switch {
	case equal(kinds, inOrder):
	case equal(kinds, endFirst):
		var detail map[string]any
		if err := json.Unmarshal(c.Events[len(c.Events)-1].Detail, &detail); err != nil || detail["ignored"] != true {
			t.Fatalf("late call_start not marked ignored: %s", c.Events[len(c.Events)-1].Detail)
		}
		if c.Events[len(c.Events)-1].ToStatus == nil || *c.Events[len(c.Events)-1].ToStatus != "waiting_postcall" {
			t.Fatalf("late call_start changed the status: %+v", c.Events[len(c.Events)-1])
		}
	default:
		t.Fatalf("history = %v, want %v or %v", kinds, inOrder, endFirst)
	}
}
