package service_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// historyDetail decodes the last history entry of kind in c.
func historyDetail(t *testing.T, c peerCall, kind string) map[string]any {
	t.Helper()
	for i := len(c.Events) - 1; i >= 0; i-- {
		if c.Events[i].Kind == kind {
			var d map[string]any
			if err := json.Unmarshal(c.Events[i].Detail, &d); err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	t.Fatalf("no %s in the history %v", kind, kindsOf(c))
	return nil
}

// TestShutdownFinishesDialsInFlight: a deploy stops the process while the
// VA is still answering an originate request. The request is not
// abandoned: its answer is recorded, the call is never dialled again (not
// even by the watchdog of the next process), and it holds its slot until
// its call_end.
func TestShutdownFinishesDialsInFlight(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	old := env.Start(servicetest.Options{})
	admin := env.Admin(old, "owner-a")
	integ := admin.CreateIntegration("Deploys", va, map[string]any{"concurrency_limit": 1})
	va.Hang() // the VA places the call but answers slowly
	id := originateOn(t, old, integ, map[string]any{"phone_number": "+380501110001"})
	o := va.Next(t, 10*time.Second)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- old.Shutdown(ctx)
	}()
	// Shutdown has begun once the process stops taking requests.
	servicetest.Eventually(t, 10*time.Second, "the old process to stop serving", func() bool {
		resp, err := http.Get(old.URL + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err != nil
	})
	va.Release()
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	c, err := env.Store.CallByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != callstate.Initiated || c.DialState != "accepted" || deref(c.ExternalCallID) != "va-"+o.CallID || c.SlotTakenAt == nil {
		t.Fatalf("after the deploy the call is %s, dial %s, external id %q: want the VA's answer recorded", c.Status, c.DialState, deref(c.ExternalCallID))
	}

	// The next process: long past the dial-lost deadline, the call is live,
	// not lost, and keeps its slot.
	in := env.Start(servicetest.Options{})
	admin = env.Admin(in, "owner-a")
	env.Clock.Advance(10 * time.Minute)
	overdue, err := env.Store.OverdueCalls(t.Context(), c.IntegrationID, 2*time.Minute, 10)
	if err != nil || len(overdue) != 0 {
		t.Fatalf("the watchdog would release %v (%v): the call is live", overdue, err)
	}
	second := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110002"})
	awaitStatus(t, admin, second, "queued")
	holdsFor(t, 300*time.Millisecond, "the live call to keep its slot", func() bool {
		return getCall(t, admin, second).Status == "queued" && getCall(t, admin, id).Status == "initiated"
	})
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": o.CallID, "duration": 40})
	awaitStatus(t, admin, id, "waiting_postcall")
	if next := va.Next(t, 10*time.Second); next.Call() != second.String() {
		t.Fatalf("the freed slot dialled %s, want %s", next.CallID, second)
	}
	if n := va.CountFor(id.String()); n != 1 {
		t.Fatalf("the call was dialled %d times", n)
	}
}

// TestLateEventsOfAnEarlierAttempt: the VA failed attempt 1's originate
// request but the call went through anyway; its call_start, call_end (by
// the attempt's call_id) and post-call (by its conversation id) arrive
// while attempt 2 is live. They are kept in the history and attempt 2 goes on.
func TestLateEventsOfAnEarlierAttempt(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Late", va, map[string]any{"max_attempts": 3, "retry_delays_secs": []int{60}})
	va.SetStatus(http.StatusBadGateway)
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110003"})
	first := va.Next(t, 10*time.Second)
	awaitStatus(t, admin, id, "retry_scheduled")
	va.SetStatus(http.StatusOK)
	env.Clock.Advance(time.Minute)
	second := va.Next(t, 10*time.Second)
	if second.CallID != callstate.AttemptCallID(id, 2) {
		t.Fatalf("attempt 2 dialled as %q", second.CallID)
	}
	awaitCall(t, admin, id, "attempt 2 accepted", func(c peerCall) bool { return c.Attempt == 2 && c.DialState == "accepted" })

	callEvent(t, in, integ, map[string]any{"eventType": "call_start", "callId": first.CallID, "conversation_id": "conv-a1"})
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": first.CallID, "duration": 300, "reason": "completed"})
	awaitCall(t, admin, id, "the late call events in the history", func(c peerCall) bool { return lateRows(c) == 2 })
	postcall(t, in, integ, transcription("conv-a1", 300, elAnalysis("attempt 1", nil), nil))
	c := awaitCall(t, admin, id, "the late post-call in the history", func(c peerCall) bool { return lateRows(c) == 3 })
	if c.Status != "initiated" || c.Attempt != 2 || c.Summary != nil {
		t.Fatalf("attempt 2 after attempt 1's late events: %s on %d, summary %v", c.Status, c.Attempt, deref(c.Summary))
	}
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": second.CallID, "duration": 50})
	awaitStatus(t, admin, id, "waiting_postcall")
}

// lateRows counts attempt 1's events kept in the history without moving
// the call.
func lateRows(c peerCall) int {
	late := 0
	for _, e := range c.Events {
		if e.Attempt == 1 && e.Kind != "dial" && e.Kind != "dial_failed" && e.ToStatus != nil && *e.ToStatus == "initiated" {
			late++
		}
	}
	return late
}

// TestIdenticalNoAnswerBodies: a VA that answers every attempt with the
// same id reports each no-answer with the same body; each attempt's
// no-answer applies, and the call fails when its attempts are spent.
func TestIdenticalNoAnswerBodies(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	va.ReuseIDs()
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Same body", va, map[string]any{"max_attempts": 2, "retry_delays_secs": []int{60}})
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110004"})
	body := `{"eventType":"call_end","callId":"va-` + id.String() + `","duration":0,"reason":"no_answer"}`
	va.Next(t, 10*time.Second)
	awaitDialled(t, admin, id)
	sendRaw := func() {
		t.Helper()
		if code := servicetest.Webhook(t, in, integ, "call-events", body, nil); code != http.StatusAccepted {
			t.Fatalf("call-events: %d", code)
		}
	}
	sendRaw()
	awaitStatus(t, admin, id, "retry_scheduled")
	env.Clock.Advance(time.Minute)
	va.Next(t, 10*time.Second)
	awaitCall(t, admin, id, "attempt 2 accepted", func(c peerCall) bool { return c.Attempt == 2 && c.DialState == "accepted" })
	sendRaw()
	c := awaitStatus(t, admin, id, "failed")
	if deref(c.Outcome) != "no_answer" {
		t.Fatalf("outcome %s", deref(c.Outcome))
	}
}

// elevenLabsRetries is an integration dialling through the fake
// ElevenLabs with two attempts and a minute between them.
func elevenLabsRetries(t *testing.T) (*servicetest.Env, *servicetest.Instance, *servicetest.Admin, servicetest.Integration, *servicetest.FakeElevenLabs) {
	t.Helper()
	env := servicetest.New(t)
	el := servicetest.NewFakeElevenLabs(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("ElevenLabs retries", nil, map[string]any{"concurrency_limit": 1, "max_attempts": 2,
		"min_call_duration_secs": 5, "retry_delays_secs": []int{60}})
	integ = admin.UseElevenLabs(integ, el, "twilio")
	return env, in, admin, integ, el
}

func initiationFailure(conversationID, reason string) map[string]any {
	return map[string]any{"type": "call_initiation_failure", "event_timestamp": 1768999152, "data": map[string]any{
		"agent_id": "a1", "conversation_id": conversationID, "failure_reason": reason, "metadata": map[string]any{"type": "twilio"}}}
}

// TestElevenLabsShortConversationRetried: with ElevenLabs dialling there
// are no VA events; a 2-second conversation reported by the post-call is a
// short call and is retried. Attempt 2's initiation failure (busy) is
// matched by attempt 2's conversation id and fails the call at its
// max_attempts.
func TestElevenLabsShortConversationRetried(t *testing.T) {
	t.Parallel()
	env, in, admin, integ, el := elevenLabsRetries(t)
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110005"})
	first := el.Next(t, 10*time.Second)
	awaitDialled(t, admin, id)
	postcall(t, in, integ, transcription(first.ConversationID, 2, elAnalysis("автовідповідач", nil),
		map[string]any{"call_id": first.DynamicVariables["call_id"]}))
	c := awaitStatus(t, admin, id, "retry_scheduled")
	if deref(c.Outcome) != "short_call" {
		t.Fatalf("a 2-second conversation ended as %s", deref(c.Outcome))
	}
	env.Clock.Advance(time.Minute)
	second := el.Next(t, 10*time.Second)
	if second.DynamicVariables["call_id"] != callstate.AttemptCallID(id, 2) || second.ConversationID == first.ConversationID {
		t.Fatalf("attempt 2 dialled as %+v", second)
	}
	c = awaitCall(t, admin, id, "attempt 2 accepted", func(c peerCall) bool { return c.Attempt == 2 && c.DialState == "accepted" })
	if deref(c.ConversationID) != second.ConversationID {
		t.Fatalf("attempt 2's conversation id = %s, want %s", deref(c.ConversationID), second.ConversationID)
	}
	// Attempt 1's failure report, late, changes nothing; attempt 2's ends the call.
	postcall(t, in, integ, initiationFailure(first.ConversationID, "busy"))
	postcall(t, in, integ, initiationFailure(second.ConversationID, "busy"))
	c = awaitStatus(t, admin, id, "failed")
	if deref(c.Outcome) != "busy" || c.Attempt != 2 {
		t.Fatalf("failed call: outcome %s, attempt %d", deref(c.Outcome), c.Attempt)
	}
	if n := len(el.Calls()); n != 2 {
		t.Fatalf("ElevenLabs was asked for %d calls, want 2", n)
	}
}

// TestRetryPolicyPerOutcome: each outcome is retried after its own
// delays and within its own budget; the history names the rule.
func TestRetryPolicyPerOutcome(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Policy", va, map[string]any{"concurrency_limit": 5, "max_attempts": 5, "retry_delays_secs": []int{900},
		"retry_policy": map[string]any{
			"no_answer": map[string]any{"max_attempts": 3, "delays_secs": []int{1800}},
			"busy":      map[string]any{"max_attempts": 2, "delays_secs": []int{120}},
			"voicemail": map[string]any{"max_attempts": 1},
		}})
	noAnswer := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110006"})
	oNA := va.Next(t, 10*time.Second)
	busy := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110007"})
	oBusy := va.Next(t, 10*time.Second)
	voicemail := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110008"})
	oVM := va.Next(t, 10*time.Second)
	short := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110009"})
	oShort := va.Next(t, 10*time.Second)
	now := env.Clock.Now()
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": oNA.CallID, "reason": "no_answer"})
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": oBusy.CallID, "reason": "busy", "duration": 0})
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": oVM.CallID, "reason": "voicemail", "duration": 20})
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": oShort.CallID, "duration": 1})

	for _, tc := range []struct {
		id      uuid.UUID
		status  string
		outcome string
		rule    string
		delay   time.Duration
	}{
		{noAnswer, "retry_scheduled", "no_answer", "retry_policy.no_answer", 1800 * time.Second},
		{busy, "retry_scheduled", "busy", "retry_policy.busy", 120 * time.Second},
		{voicemail, "failed", "voicemail", "retry_policy.voicemail", 0},
		{short, "retry_scheduled", "short_call", "retry_delays_secs", 900 * time.Second},
	} {
		c := awaitStatus(t, admin, tc.id, tc.status)
		if deref(c.Outcome) != tc.outcome {
			t.Errorf("%s: outcome %s, want %s", tc.outcome, deref(c.Outcome), tc.outcome)
		}
		if tc.delay > 0 && (c.NextRetryAt == nil || !c.NextRetryAt.Equal(now.Add(tc.delay))) {
			t.Errorf("%s: next retry at %v, want %v", tc.outcome, c.NextRetryAt, now.Add(tc.delay))
		}
		if d := historyDetail(t, c, "call_end"); d["retryRule"] != tc.rule || d["outcome"] != tc.outcome {
			t.Errorf("%s: history says %v", tc.outcome, d)
		}
	}
	var stats store.Stats
	admin.Do("GET", "/api/integrations/"+integ.ID.String()+"/stats", nil, &stats)
	if stats.RetryScheduled != 3 || stats.Failed != 1 {
		t.Fatalf("stats %+v", stats)
	}
	// Only the busy call is due after two minutes.
	env.Clock.Advance(120 * time.Second)
	if o := va.Next(t, 10*time.Second); o.CallID != callstate.AttemptCallID(busy, 2) {
		t.Fatalf("dialled %s, want the busy call's attempt 2", o.CallID)
	}
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": callstate.AttemptCallID(busy, 2), "reason": "busy"})
	if c := awaitStatus(t, admin, busy, "failed"); deref(c.Outcome) != "busy" || c.Attempt != 2 {
		t.Fatalf("busy call after its budget: %s on attempt %d", deref(c.Outcome), c.Attempt)
	}
}

// TestPostcallDeadline: a call whose post-call report never comes does not
// wait for it forever: past the deadline (15 minutes by default) it is
// completed from what is known and the CRM is told.
func TestPostcallDeadline(t *testing.T) {
	t.Parallel()
	p := setupPeers(t, servicetest.Options{}, nil)
	id := originateOn(t, p.in, p.integ, map[string]any{"phone_number": "+380501110010"})
	o := p.va.Next(t, 10*time.Second)
	awaitDialled(t, p.admin, id)
	callEvent(t, p.in, p.integ, map[string]any{"eventType": "call_end", "callId": o.CallID, "duration": 45})
	awaitStatus(t, p.admin, id, "waiting_postcall")
	p.env.Clock.Advance(14 * time.Minute)
	holdsFor(t, 300*time.Millisecond, "the call to wait for its post-call within the deadline", func() bool {
		return getCall(t, p.admin, id).Status == "waiting_postcall"
	})
	p.env.Clock.Advance(time.Minute)
	c := awaitStatus(t, p.admin, id, "completed")
	if d := historyDetail(t, c, "postcall_timeout"); d["by"] != "watchdog" || c.DurationSecs == nil || *c.DurationSecs != 45 {
		t.Fatalf("completed call %+v, history detail %v", c.Call, d)
	}
	servicetest.Eventually(t, 10*time.Second, "the CRM update", func() bool {
		for _, r := range p.crm.Updates() {
			var body struct {
				Event  string `json:"event"`
				CallID string `json:"callId"`
			}
			if json.Unmarshal(r.Body, &body) == nil && body.Event == "call.completed" && body.CallID == id.String() && r.Status == http.StatusOK {
				return true
			}
		}
		return false
	})
}
