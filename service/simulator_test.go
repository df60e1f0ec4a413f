package service_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// simulatorVoice is a simulator voice config where every attempt has the
// given outcome weight 1 and the others 0.
func simulatorVoice(outcome string, extra map[string]any) map[string]any {
	v := map[string]any{"provider": "simulator", "answer": 0, "short": 0, "no_answer": 0, "busy": 0,
		"ring_secs": []int{5, 5}, "talk_secs": []int{10, 10}, "speed": 10}
	v[outcome] = 1
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// TestSimulatedCallLooksReal: a call dialled by the simulator is active
// without any secret, and goes through the same states and history as the
// Voice Assistant call of TestCallLifecycle — dial answered with an external
// id, call_start, call_end with the reported (not the compressed) duration,
// then ElevenLabs' post-call with a transcript and analysis.
func TestSimulatedCallLooksReal(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Simulated", nil, map[string]any{"concurrency_limit": 1})
	if integ.Status != "not_configured" {
		t.Fatalf("new integration is %s", integ.Status)
	}
	admin.PutConfig(integ, "voice", simulatorVoice("answer", nil))
	if integ = admin.Refresh(integ); integ.Status != "active" {
		t.Fatalf("integration with a simulator voice config is %s, want active without any secret", integ.Status)
	}

	var resp struct {
		CallID uuid.UUID `json:"callId"`
	}
	start := time.Now()
	if code := servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380991111111",
		"dynamic_variables": map[string]any{"client_name": "Іван"}}, &resp); code != http.StatusAccepted {
		t.Fatalf("originate: %d", code)
	}
	c := waitStatus(t, admin, resp.CallID, "completed")
	// 5 s of ringing and 10 s of talk at speed 10 take 1.5 s; the call
	// must not have been completed before it could have ended.
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("completed after %s; a 15-second call at speed 10 takes 1.5 s", took)
	}
	var kinds []string
	for _, e := range c.Events {
		kinds = append(kinds, e.Kind)
	}
	if want := []string{"queued", "dial", "dial_accepted", "call_start", "call_end", "postcall"}; !equal(kinds, want) {
		t.Fatalf("history = %v, want %v (as a real call's)", kinds, want)
	}
	if c.DurationSecs == nil || *c.DurationSecs != 10 {
		t.Errorf("durationSecs = %v, want the reported 10", c.DurationSecs)
	}
	if c.ExternalCallID == nil || !strings.HasPrefix(*c.ExternalCallID, "sim_") {
		t.Errorf("externalCallId = %v, want the simulated platform's id", c.ExternalCallID)
	}
	if c.ConversationID == nil || !strings.HasPrefix(*c.ConversationID, "conv_sim_") {
		t.Errorf("conversationId = %v", c.ConversationID)
	}
	if c.Summary == nil || *c.Summary == "" || c.Outcome == nil {
		t.Errorf("no summary or outcome from the post-call: %+v", c.Call)
	}
	if c.Transcript == nil || !strings.Contains(string(c.Transcript), "Іван") {
		t.Errorf("transcript does not address the client by the call's dynamic variable: %s", c.Transcript)
	}
	// The webhooks went through the receivers: they are counted as such.
	if n := in.Metric(t, "callqueue_webhook_requests_total", `handler="call-events"`, `code="202"`); n != 2 {
		t.Errorf("call-events taken = %v, want 2", n)
	}
	if n := in.Metric(t, "callqueue_webhook_requests_total", `handler="agent-postcall"`, `code="200"`); n != 1 {
		t.Errorf("agent-postcall taken = %v, want 1", n)
	}
}

// TestSimulatedShortCallRetries: a simulated short call is retried like a
// real one, the retry is dialled again by the simulator, and the call fails
// once its attempts are exhausted.
func TestSimulatedShortCallRetries(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Simulated short", nil, map[string]any{"max_attempts": 2, "retry_delays_secs": []int{60}})
	admin.PutConfig(integ, "voice", simulatorVoice("short", map[string]any{"speed": 100}))

	var resp struct {
		CallID uuid.UUID `json:"callId"`
	}
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380992222222"}, &resp)
	c := waitStatus(t, admin, resp.CallID, "retry_scheduled")
	if c.Outcome == nil || *c.Outcome != "short_call" || c.DurationSecs == nil || *c.DurationSecs > 4 {
		t.Fatalf("after a short call: %+v", c.Call)
	}
	env.Clock.Advance(60 * time.Second)
	c = waitStatus(t, admin, resp.CallID, "failed")
	if c.Attempt != 2 || *c.Outcome != "short_call" {
		t.Fatalf("after the second short call: attempt %d, outcome %v", c.Attempt, *c.Outcome)
	}
	var kinds []string
	for _, e := range c.Events {
		kinds = append(kinds, e.Kind)
	}
	// A 1–4 s call at speed 100 ends 10–40 ms after it starts: as with a
	// real dialler, call_start and call_end may be stored in different
	// messages and applied in either order (a call_start after the call_end
	// changes nothing and is not in the history).
	attempt := func(kinds []string) ([]string, bool) {
		for _, a := range [][]string{{"dial", "dial_accepted", "call_start", "call_end"},
			// A call_start that arrives after its call_end is kept, marked ignored.
			{"dial", "dial_accepted", "call_end", "call_start"}, {"dial", "dial_accepted", "call_end"}} {
			if len(kinds) >= len(a) && equal(kinds[:len(a)], a) {
				return kinds[len(a):], true
			}
		}
		return kinds, false
	}
	rest, ok := kinds[1:], kinds[0] == "queued"
	if ok {
		rest, ok = attempt(rest)
	}
	if ok && len(rest) > 0 && rest[0] == "retry_due" {
		rest, ok = attempt(rest[1:])
	} else {
		ok = false
	}
	if !ok || len(rest) != 0 {
		t.Fatalf("history = %v, want queued, an attempt, retry_due, an attempt", kinds)
	}
}

// TestLimitHoldsUnderSimulator: three worker processes dial an
// integration with concurrency_limit 3 through the simulator; the
// simulated phone network never has more than 3 calls live, and every call
// completes.
func TestLimitHoldsUnderSimulator(t *testing.T) {
	t.Parallel()
	const calls, limit = 30, 3
	c := startCluster(t, 3, clusterOptions{CallHandling: map[string]any{"concurrency_limit": limit}})
	c.admin.PutConfig(c.integ, "voice", simulatorVoice("answer", map[string]any{"ring_secs": []int{0, 2}, "talk_secs": []int{10, 30},
		"speed": 200}))

	var mu sync.Mutex
	live, maxLive, dials := 0, 0, 0
	for _, w := range c.workers {
		w.Simulator.Observe(func(delta int) {
			mu.Lock()
			defer mu.Unlock()
			live += delta
			maxLive = max(maxLive, live)
			if delta > 0 {
				dials++
			}
		})
	}
	for i := range calls {
		if _, err := c.originate(map[string]any{"phone_number": fmt.Sprintf("+38097%07d", i)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	servicetest.Eventually(t, 60*time.Second, "every call to complete", func() bool {
		return c.countStatus(t, "completed") == calls
	})
	mu.Lock()
	defer mu.Unlock()
	if maxLive > limit {
		t.Errorf("the simulated network had %d calls live at once; the limit is %d", maxLive, limit)
	}
	if maxLive < 2 {
		t.Errorf("at most %d call live at once: the test did not load the limit", maxLive)
	}
	if dials != calls {
		t.Errorf("%d dials for %d calls", dials, calls)
	}
	dialling := 0
	for _, w := range c.workers {
		if metricValue(t, w.URL, "callqueue_dials_total", `result="accepted"`) > 0 {
			dialling++
		}
	}
	if dialling < 2 {
		t.Errorf("%d of %d worker processes dialled", dialling, len(c.workers))
	}
}
