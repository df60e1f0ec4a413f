package service_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callqueue/callqueue/service/servicetest"
)

// elevenLabsSigned is an integration dialling through a fake ElevenLabs
// (over via) that posts its webhooks, signed, to agent-postcall; limit one.
func elevenLabsSigned(t *testing.T, via string) (*servicetest.Env, *servicetest.Instance, *servicetest.Admin, servicetest.Integration,
	*servicetest.FakeElevenLabs) {
	t.Helper()
	return elevenLabsSignedWith(t, via, servicetest.Options{})
}

// elevenLabsSignedWith is elevenLabsSigned with a process started with opt.
func elevenLabsSignedWith(t *testing.T, via string, opt servicetest.Options) (*servicetest.Env, *servicetest.Instance, *servicetest.Admin,
	servicetest.Integration, *servicetest.FakeElevenLabs) {
	t.Helper()
	env := servicetest.New(t)
	el := servicetest.NewFakeElevenLabs(t)
	in := env.Start(opt)
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("ElevenLabs "+via, nil, map[string]any{"concurrency_limit": 1, "retry_delays_secs": []int{600}})
	integ = admin.UseElevenLabs(integ, el, via)
	const secret = "wsec_fake_elevenlabs_01"
	admin.AddSecret(integ, "ELEVENLABS_WEBHOOK_SECRET", secret)
	el.Deliver(in.URL+"/"+integ.Slug+"/webhook/agent-postcall", secret, env.Clock.Now)
	return env, in, admin, integ, el
}

// TestElevenLabsDialCarriesAgentContext: ElevenLabs never calls agent-init
// for a call it dials, and its agent fails a conversation that lacks a
// variable its prompt uses. The dial itself carries what agent-init would
// answer — date, time, weekday, every crm_fields variable ("" when the CRM
// is down), the call's own variables, the override and the ring timeout —
// so the agent's conversation holds, whether the CRM answers or hangs.
func TestElevenLabsDialCarriesAgentContext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		crmHangs   bool
		clientName string
	}{{"CRM answers", false, "Олена"}, {"CRM hangs", true, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, in, admin, integ, el := elevenLabsSigned(t, "twilio")
			crm := servicetest.NewFakeCRM(t)
			admin.UseWebhookCRM(integ, crm)
			const phone = "+380731234567"
			crm.AddRecord(phone, servicetest.CRMRecord{ID: "r-1", Fields: map[string]any{"Name": "Олена"}})
			if tc.crmHangs {
				crm.Hang()
				t.Cleanup(crm.Release)
			}
			admin.PutConfig(integ, "agent", map[string]any{"timezone": "Europe/Kyiv", "locale": "uk-UA", "init_deadline_ms": 300,
				"override": true, "first_message": "Добрий день, {{client_name}}!", "language": "uk"})
			admin.PutConfig(integ, "voice", map[string]any{"provider": "elevenlabs", "base_url": el.URL, "agent_id": "a1",
				"agent_phone_number_id": "p1", "via": "twilio", "ring_timeout_secs": 30})
			if code := admin.Do("PATCH", "/api/integrations/"+integ.ID.String(), map[string]any{"agentPrompt": "Ти — Анна з ACME."}, nil); code != http.StatusOK {
				t.Fatalf("set agentPrompt: %d", code)
			}
			el.Agent([]string{"today_is", "time", "weekday", "client_name", "company", "lead_source", "campaign"}, true)

			id := originateOn(t, in, integ, map[string]any{"phone_number": phone, "dynamic_variables": map[string]any{"campaign": "winter"}})
			dialled := el.Next(t, 10*time.Second)
			if dialled.Failure != "" {
				t.Fatalf("ElevenLabs failed the conversation: %s (variables %v)", dialled.Failure, dialled.DynamicVariables)
			}
			v := dialled.DynamicVariables
			if v["today_is"] != "21.01.2026" || v["time"] != "14:39:12" || v["weekday"] != "Середа" || v["client_name"] != tc.clientName ||
				v["company"] != "" || v["lead_source"] != "" || v["campaign"] != "winter" || v["phone_number"] != phone ||
				v["call_id"] != id.String()+".1" {
				t.Errorf("dynamic variables %v", v)
			}
			agent, _ := dialled.Override["agent"].(map[string]any)
			prompt, _ := agent["prompt"].(map[string]any)
			if prompt["prompt"] != "Ти — Анна з ACME." || agent["first_message"] != "Добрий день, {{client_name}}!" || agent["language"] != "uk" {
				t.Errorf("conversation_config_override %v", dialled.Override)
			}
			if dialled.RingingTimeoutSecs != 30 {
				t.Errorf("ringing_timeout_secs %d, want voice.ring_timeout_secs 30", dialled.RingingTimeoutSecs)
			}
			awaitDialled(t, admin, id)
		})
	}
}

// TestElevenLabsOverrideNotAllowed: the fake refuses an override its agent
// does not allow, as ElevenLabs does; without agent.override none is sent
// and the conversation holds.
func TestElevenLabsOverrideNotAllowed(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "sip_trunk")
	el.Agent([]string{"today_is", "client_name"}, false)
	admin.PutConfig(integ, "agent", map[string]any{"timezone": "Europe/Kyiv", "locale": "uk-UA", "first_message": "Привіт"})
	originateOn(t, in, integ, map[string]any{"phone_number": "+380731234500"})
	if dialled := el.Next(t, 10*time.Second); dialled.Failure != "" || dialled.Override != nil {
		t.Fatalf("override %v sent while off; failure %q", dialled.Override, dialled.Failure)
	}
}

// TestElevenLabsFailureBeforeAnswer: ElevenLabs may send
// call_initiation_failure before it answers the outbound-call request.
// The failure names the attempt by Twilio's CallSid / the trunk's
// call_sid, waits for the dial's answer, and then ends the attempt with
// its outcome — not, much later, as a watchdog timeout.
func TestElevenLabsFailureBeforeAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ via, reason, outcome string }{
		{"twilio", "busy", "busy"}, {"sip_trunk", "no-answer", "no_answer"},
	} {
		t.Run(tc.via, func(t *testing.T) {
			t.Parallel()
			_, in, admin, integ, el := elevenLabsSigned(t, tc.via)
			el.Decide(func(servicetest.OutboundCall) servicetest.Plan { return servicetest.Plan{FailFirst: tc.reason} })
			id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000011"})
			dialled := el.Next(t, 10*time.Second)
			c := awaitStatus(t, admin, id, "retry_scheduled")
			if deref(c.Outcome) != tc.outcome || deref(c.ExternalCallID) != dialled.CallSid {
				t.Errorf("after an early %s: outcome %s, external id %s (dial answered %s); history %v",
					tc.reason, deref(c.Outcome), deref(c.ExternalCallID), dialled.CallSid, kindsOf(c))
			}
		})
	}
}

// TestElevenLabsFailureAfterOriginateTimeout: ElevenLabs answers the
// outbound-call request after our deadline, but keeps placing the call; its
// call_initiation_failure names a CallSid / call_sid and conversation we
// never got. It is matched to the one attempt still waiting for its dial's
// answer (Twilio's report names the number dialled; the SIP trunk's names
// none, so the integration's only waiting dial), ends it with its
// outcome — not, minutes later, as the watchdog's dial_lost — and the call
// is retried per policy.
func TestElevenLabsFailureAfterOriginateTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ via, reason, outcome string }{
		{"twilio", "busy", "busy"}, {"sip_trunk", "no-answer", "no_answer"},
	} {
		t.Run(tc.via, func(t *testing.T) {
			t.Parallel()
			env, in, admin, integ, el := elevenLabsSignedWith(t, tc.via, servicetest.Options{DialTimeout: 300 * time.Millisecond})
			el.Decide(func(c servicetest.OutboundCall) servicetest.Plan {
				if strings.HasSuffix(c.DynamicVariables["call_id"].(string), ".1") {
					return servicetest.Plan{AnswerAfter: 2 * time.Second}
				}
				return servicetest.Plan{}
			})
			id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000041"})
			dialled := el.Next(t, 10*time.Second)
			awaitCall(t, admin, id, "the dial's timeout recorded", func(c peerCall) bool {
				return len(c.Events) > 0 && c.Events[len(c.Events)-1].Kind == "dial_unanswered"
			})
			if code := el.Fail(dialled, tc.reason); code != http.StatusOK {
				t.Fatalf("call_initiation_failure answered %d", code)
			}
			c := awaitStatus(t, admin, id, "retry_scheduled")
			if deref(c.Outcome) != tc.outcome || c.Attempt != 1 || deref(c.ExternalCallID) != dialled.CallSid ||
				deref(c.ConversationID) != dialled.ConversationID {
				t.Errorf("after a %s reported past the originate timeout: outcome %s, attempt %d, ids %s / %s (ElevenLabs placed %s / %s); history %v",
					tc.reason, deref(c.Outcome), c.Attempt, deref(c.ExternalCallID), deref(c.ConversationID), dialled.CallSid,
					dialled.ConversationID, kindsOf(c))
			}
			if d := historyDetail(t, c, "initiation_failed"); d["outcome"] != tc.outcome || d["failureReason"] != tc.reason {
				t.Errorf("initiation_failed %v", d)
			}
			if c.NextRetryAt == nil || !c.NextRetryAt.Equal(env.Clock.Now().Add(600*time.Second)) {
				t.Errorf("next retry at %v, want retry_delays_secs[0] = 600 s from now (%v)", c.NextRetryAt, env.Clock.Now())
			}
			env.Clock.Advance(601 * time.Second)
			if again := el.Next(t, 10*time.Second); again.DynamicVariables["call_id"] != id.String()+".2" {
				t.Fatalf("the retry dialled %v, want attempt 2 of %s", again.DynamicVariables["call_id"], id)
			}
		})
	}
}

// TestElevenLabsFailureOfUnansweredDial: ElevenLabs never answers the
// outbound-call request (it is still waiting when the call fails) yet
// reports the call's failure. No id of it is known; the failure is matched
// to the one dial waiting for its answer to that number and ends it at
// once, and the answer that never comes changes nothing afterwards.
func TestElevenLabsFailureOfUnansweredDial(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSignedWith(t, "twilio", servicetest.Options{DialTimeout: 30 * time.Second})
	hold := make(chan struct{})
	drop := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(drop) // before the process stops, which waits for its dials
	el.Decide(func(servicetest.OutboundCall) servicetest.Plan { return servicetest.Plan{NoAnswer: hold} })
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000042"})
	dialled := el.Next(t, 10*time.Second)
	if code := el.Fail(dialled, "no-answer"); code != http.StatusOK {
		t.Fatalf("call_initiation_failure answered %d", code)
	}
	c := awaitStatus(t, admin, id, "retry_scheduled")
	if deref(c.Outcome) != "no_answer" || c.Attempt != 1 || slices.Contains(kindsOf(c), "dial_unanswered") {
		t.Errorf("after a no-answer while the dial waits for its answer: outcome %s, attempt %d, history %v",
			deref(c.Outcome), c.Attempt, kindsOf(c))
	}
	drop() // the connection drops: the dial's outcome is unknown, and comes too late to matter
	servicetest.Eventually(t, 10*time.Second, "the dropped dial recorded", func() bool {
		return in.Metric(t, "callqueue_dials_total", `result="unanswered"`) == 1
	})
	if c := getCall(t, admin, id); c.Status != "retry_scheduled" || deref(c.Outcome) != "no_answer" || c.Attempt != 1 {
		t.Errorf("after the dropped answer: %s, outcome %s, attempt %d", c.Status, deref(c.Outcome), c.Attempt)
	}
}

// TestElevenLabsUnansweredDialKeptWhileItMayBeLive: ElevenLabs keeps
// placing a call whose outbound-call request timed out, and sends nothing
// while its conversation goes on (no call_start): only the post-call, at
// the end. Past DialLostAfter the call still holds its slot and is not
// dialled again — the person may be talking to the agent — until the
// post-call completes it; max_call_duration_secs still bounds it.
func TestElevenLabsUnansweredDialKeptWhileItMayBeLive(t *testing.T) {
	t.Parallel()
	env, in, admin, integ, el := elevenLabsSignedWith(t, "twilio", servicetest.Options{DialTimeout: 300 * time.Millisecond})
	el.Decide(func(servicetest.OutboundCall) servicetest.Plan { return servicetest.Plan{AnswerAfter: 2 * time.Second} })
	a := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000051"})
	dialled := el.Next(t, 10*time.Second)
	awaitCall(t, admin, a, "the dial's timeout recorded", func(c peerCall) bool {
		return len(c.Events) > 0 && c.Events[len(c.Events)-1].Kind == "dial_unanswered"
	})
	b := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000052"})
	awaitStatus(t, admin, b, "queued")
	env.Clock.Advance(3 * time.Minute) // past DialLostAfter (2 min)
	holdsFor(t, time.Second, "A dialling with its slot, B waiting, nothing dialled again", func() bool {
		return getCall(t, admin, a).Status == "initiated" && getCall(t, admin, b).Status == "queued" && len(el.Calls()) == 1
	})
	if code := el.Send(transcription(dialled.ConversationID, 40, elAnalysis("Домовились", nil),
		map[string]any{"call_id": a.String() + ".1"})); code != http.StatusOK {
		t.Fatalf("post-call answered %d", code)
	}
	if c := awaitStatus(t, admin, a, "completed"); c.Attempt != 1 {
		t.Errorf("A completed on attempt %d", c.Attempt)
	}
	if next := el.Next(t, 10*time.Second); next.DynamicVariables["call_id"] != b.String()+".1" {
		t.Fatalf("the freed slot dialled %v, want B", next.DynamicVariables["call_id"])
	}
	awaitCall(t, admin, b, "B's dial timed out", func(c peerCall) bool {
		return len(c.Events) > 0 && c.Events[len(c.Events)-1].Kind == "dial_unanswered"
	})
	env.Clock.Advance(31 * time.Minute) // past max_call_duration_secs (1800 s)
	if c := awaitStatus(t, admin, b, "retry_scheduled"); deref(c.Outcome) != "dial_lost" {
		t.Errorf("B released at max_call_duration_secs with outcome %s", deref(c.Outcome))
	}
}

// TestElevenLabsNotPlacedFailureStaysWithItsAttempt: ElevenLabs answers
// success:false (the trunk refused the INVITE) and later reports that
// conversation's call_initiation_failure, whose call_sid we never got. By
// then the retry's dial is waiting for its answer; the failure is the
// refused attempt's (by its conversation), kept in its history, and the
// retry goes on.
func TestElevenLabsNotPlacedFailureStaysWithItsAttempt(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "sip_trunk")
	admin.PutConfig(integ, "call_handling", map[string]any{"concurrency_limit": 1, "max_attempts": 3, "retry_delays_secs": []int{0}})
	hold := make(chan struct{})
	drop := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(drop) // before the process stops, which waits for its dials
	el.Decide(func(c servicetest.OutboundCall) servicetest.Plan {
		if strings.HasSuffix(c.DynamicVariables["call_id"].(string), ".1") {
			return servicetest.Plan{NotPlaced: "Failed to initiate call: sip status: 486: Busy Here"}
		}
		return servicetest.Plan{NoAnswer: hold}
	})
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000061"})
	refused := el.Next(t, 10*time.Second)
	if retry := el.Next(t, 10*time.Second); retry.DynamicVariables["call_id"] != id.String()+".2" {
		t.Fatalf("dialled %v, want the retry", retry.DynamicVariables["call_id"])
	}
	if code := el.Fail(refused, "busy"); code != http.StatusOK {
		t.Fatalf("call_initiation_failure answered %d", code)
	}
	c := awaitCall(t, admin, id, "the refused attempt's failure in its history", func(c peerCall) bool {
		for _, e := range c.Events {
			if e.Kind == "initiation_failed" && e.Attempt == 1 {
				return true
			}
		}
		return c.Status != "initiated"
	})
	holdsFor(t, 300*time.Millisecond, "the retry still dialling", func() bool {
		c = getCall(t, admin, id)
		return c.Status == "initiated" && c.Attempt == 2
	})
}

// TestElevenLabsFailureByCallSid: a call_initiation_failure whose
// conversation_id we never recorded is matched by the telephony id alone.
func TestElevenLabsFailureByCallSid(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "sip_trunk")
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000012"})
	dialled := el.Next(t, 10*time.Second)
	awaitDialled(t, admin, id)
	dialled.ConversationID = "conv-unknown"
	if code := el.Fail(dialled, "busy"); code != http.StatusOK {
		t.Fatalf("call_initiation_failure answered %d", code)
	}
	if c := awaitStatus(t, admin, id, "retry_scheduled"); deref(c.Outcome) != "busy" {
		t.Errorf("outcome %s", deref(c.Outcome))
	}
}

// TestElevenLabsWebhooksNeverRefused: ElevenLabs disables a webhook after
// ten failed deliveries, so a well-signed body of a type callqueue does not
// handle, or with an event_timestamp of another shape, is answered 200; the
// handled one is still applied.
func TestElevenLabsWebhooksNeverRefused(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "twilio")
	for _, body := range []map[string]any{
		{"type": "conversation_started", "event_timestamp": 1768999152, "data": map[string]any{"conversation_id": "conv-x"}},
		{"type": "post_call_transcription_v2", "data": []any{}},
		{"event_timestamp": 1768999152, "data": map[string]any{}},
	} {
		if code := el.Send(body); code != http.StatusOK {
			t.Errorf("%v answered %d, want 200", body, code)
		}
	}
	if n := in.Metric(t, "callqueue_webhook_ignored_total", `reason="unknown_type"`); n != 3 {
		t.Errorf("callqueue_webhook_ignored_total{reason=\"unknown_type\"} = %v, want 3", n)
	}
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000013"})
	dialled := el.Next(t, 10*time.Second)
	awaitDialled(t, admin, id)
	body := transcription(dialled.ConversationID, 40, elAnalysis("Домовились", nil), nil)
	body["event_timestamp"] = "2026-01-21T12:39:12Z"
	if code := el.Send(body); code != http.StatusOK {
		t.Fatalf("a transcription with a string event_timestamp answered %d", code)
	}
	awaitStatus(t, admin, id, "completed")
}

// TestElevenLabsPostcallHealth: the integration's health warns when
// ElevenLabs opened a conversation that should long have been reported and
// no post-call has come since (its webhook disabled, or a 503 not retried).
func TestElevenLabsPostcallHealth(t *testing.T) {
	t.Parallel()
	env, in, admin, integ, el := elevenLabsSigned(t, "twilio")
	postcallState := func() string {
		var h struct {
			Checks map[string]map[string]any `json:"checks"`
		}
		servicetest.Request(t, "GET", in.URL+"/"+integ.Slug+"/health", map[string]string{"X-Webhook-Token": integ.WebhookToken}, nil, &h)
		state, _ := h.Checks["postcall"]["state"].(string)
		return state
	}
	first := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000021"})
	dialled := el.Next(t, 10*time.Second)
	awaitDialled(t, admin, first)
	if code := el.Send(transcription(dialled.ConversationID, 40, elAnalysis("Так", nil), nil)); code != http.StatusOK {
		t.Fatalf("transcription: %d", code)
	}
	awaitStatus(t, admin, first, "completed")
	env.Clock.Advance(2 * time.Hour)
	if s := postcallState(); s != "ok" {
		t.Errorf("postcall check %q with every conversation reported, want ok", s)
	}
	second := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000022"})
	el.Next(t, 10*time.Second)
	awaitDialled(t, admin, second)
	if s := postcallState(); s != "ok" {
		t.Errorf("postcall check %q while the call may still be under way, want ok", s)
	}
	env.Clock.Advance(time.Hour) // beyond max_call_duration_secs + ring + grace
	servicetest.Eventually(t, 10*time.Second, "the stale post-call warning", func() bool { return postcallState() == "stale" })
}

// TestElevenLabsDialCarriesPredialVariables: the variables a pre-dial check
// adds reach the ElevenLabs agent with the rest of its context.
func TestElevenLabsDialCarriesPredialVariables(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "sip_trunk")
	const secret = "predial-secret-el"
	srv := fakePredial(t, secret)
	admin.AddSecret(integ, "PREDIAL_SECRET", secret)
	admin.PutConfig(integ, "predial", map[string]any{"url": srv.URL, "timeout_ms": 2000})
	el.Agent([]string{"segment", "today_is", "client_name"}, false)
	originateOn(t, in, integ, map[string]any{"phone_number": "+380990000001"})
	dialled := el.Next(t, 10*time.Second)
	if dialled.Failure != "" || dialled.DynamicVariables["segment"] != "vip" {
		t.Fatalf("variables %v; failure %q", dialled.DynamicVariables, dialled.Failure)
	}
}

// TestElevenLabsNotPlacedKeepsWhy: a success:false answer fails the attempt
// with ElevenLabs' message and the conversation it opened in the history.
func TestElevenLabsNotPlacedKeepsWhy(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "sip_trunk")
	const message = "Failed to initiate call: sip status: 486: Busy Here"
	el.Decide(func(servicetest.OutboundCall) servicetest.Plan { return servicetest.Plan{NotPlaced: message} })
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000031"})
	dialled := el.Next(t, 10*time.Second)
	c := awaitStatus(t, admin, id, "retry_scheduled")
	var detail map[string]any
	for _, e := range c.Events {
		if e.Kind == "dial_failed" {
			_ = json.Unmarshal(e.Detail, &detail)
		}
	}
	if msg, _ := detail["error"].(string); !strings.Contains(msg, message) || detail["conversationId"] != dialled.ConversationID {
		t.Errorf("dial_failed detail %v, want ElevenLabs' message and conversation %s; history %v", detail, dialled.ConversationID, kindsOf(c))
	}
}
