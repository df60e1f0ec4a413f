package service_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// TestDialTimeoutKeepsTheSlot: the VA places a call but answers after our
// originate request has given up. Whether the call is live is unknown, so
// the call keeps its slot: the next call waits and the call is not dialled
// again. Its events settle it (call_end frees the slot; once call_start has
// come the watchdog never takes it for lost); without any, the watchdog
// releases it as dial_lost after DialLostAfter.
func TestDialTimeoutKeepsTheSlot(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	const timeout = 300 * time.Millisecond
	slow := map[string]bool{}
	va.Decide(func(o servicetest.Originate) (int, time.Duration) {
		if slow[o.PhoneNumber] && strings.HasSuffix(o.CallID, ".1") {
			return http.StatusOK, 3 * timeout // placed; the answer comes too late
		}
		return http.StatusOK, 0
	})
	slow["+380501110101"], slow["+380501110103"] = true, true
	in := env.Start(servicetest.Options{DialTimeout: timeout, Workers: workers.Config{DialLostAfter: 2 * time.Minute}})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Slow VA", va, map[string]any{"concurrency_limit": 1, "max_attempts": 3,
		"retry_delays_secs": []int{0}})

	a := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110101"})
	first := va.Next(t, 10*time.Second)
	b := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110102"})
	c := awaitCall(t, admin, a, "the dial's failure recorded", func(c peerCall) bool {
		return len(c.Events) > 0 && c.Events[len(c.Events)-1].Kind == "dial_unanswered"
	})
	if c.Status != "initiated" || c.DialState != "dialing" || c.Attempt != 1 {
		t.Fatalf("A after its dial timed out: %s, dial %s, attempt %d; want initiated, dialing, 1", c.Status, c.DialState, c.Attempt)
	}
	holdsFor(t, 500*time.Millisecond, "A holds the slot, B waits, nothing dialled", func() bool {
		return len(va.Requests()) == 1 && getCall(t, admin, b).Status == "queued"
	})

	// The call was live: its events settle it, then B gets the slot. Its
	// dial never answered, yet once call_start came it is not dial_lost.
	callEvent(t, in, integ, map[string]any{"eventType": "call_start", "callId": first.CallID})
	awaitStatus(t, admin, a, "in_progress")
	env.Clock.Advance(3 * time.Minute)
	holdsFor(t, 500*time.Millisecond, "A live past DialLostAfter, nothing dialled", func() bool {
		return getCall(t, admin, a).Status == "in_progress" && len(va.Requests()) == 1
	})
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": first.CallID, "duration": 40, "reason": "completed"})
	awaitStatus(t, admin, a, "waiting_postcall")
	second := va.Next(t, 10*time.Second)
	if second.Call() != b.String() {
		t.Fatalf("dialled %s after A ended, want B", second.CallID)
	}
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": second.CallID, "duration": 40})
	awaitStatus(t, admin, b, "waiting_postcall")

	// A call the VA never reports on is released by the watchdog, once.
	d := originateOn(t, in, integ, map[string]any{"phone_number": "+380501110103"})
	lost := va.Next(t, 10*time.Second)
	awaitCall(t, admin, d, "the dial's failure recorded", func(c peerCall) bool {
		return len(c.Events) > 0 && c.Events[len(c.Events)-1].Kind == "dial_unanswered"
	})
	env.Clock.Advance(3 * time.Minute)
	c = awaitCall(t, admin, d, "attempt 2 dialled", func(c peerCall) bool { return c.Attempt == 2 && c.DialState != "dialing" })
	if historyDetail(t, c, "timeout")["outcome"] != callstate.OutcomeDialLost {
		t.Errorf("the watchdog's release: %v", historyDetail(t, c, "timeout"))
	}
	if va.CountFor(lost.CallID) != 1 || va.CountFor(d.String()) != 2 || va.CountFor(a.String()) != 1 {
		t.Errorf("dials: %d of %s, %d of D, %d of A", va.CountFor(lost.CallID), lost.CallID, va.CountFor(d.String()), va.CountFor(a.String()))
	}
}
