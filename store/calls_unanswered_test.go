package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// elevenLabsIntegration is an active integration dialling through
// ElevenLabs agent, with the given call_handling.
func elevenLabsIntegration(t *testing.T, s *store.Store, agent string, callHandling map[string]any) uuid.UUID {
	t.Helper()
	in := activeIntegration(t, s, callHandling)
	putConfig(t, s, in.ID, config.KeyVoice, map[string]any{"provider": "elevenlabs", "agent_id": agent,
		"agent_phone_number_id": "p1", "via": "twilio"})
	if _, err := s.PutSecret(t.Context(), "test", in.ID, store.KindSecret, "ELEVENLABS_API_KEY", "xi-key-1234567890", true); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, in.ID); st != store.StatusActive {
		t.Fatalf("integration is %s with the ElevenLabs voice config and key, want active", st)
	}
	return in.ID
}

// dialTo queues a call to phone and claims it: its dial is sent, its
// answer not recorded.
func dialTo(t *testing.T, s *store.Store, integ uuid.UUID, phone string, at time.Time) uuid.UUID {
	t.Helper()
	c := newCall(integ, at)
	c.PhoneNumber = phone
	insert(t, s, at, c)
	if ids := claim(t, s, integ, at); len(ids) != 1 || ids[0] != c.ID {
		t.Fatalf("claim = %v, want %s", ids, c.ID)
	}
	return c.ID
}

// unansweredFailure is ElevenLabs' call_initiation_failure of a dial whose
// answer never came: its CallSid and conversation were never recorded.
func unansweredFailure(integ uuid.UUID, agent, phone, callSid string, at time.Time) store.CallEvent {
	return store.CallEvent{IntegrationID: integ, ExternalCallID: callSid, ConversationID: "conv-" + callSid,
		Dial:  &store.DialClue{AgentID: agent, Phone: phone, ReceivedAt: at},
		Event: callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeBusy}, At: at,
		Detail: map[string]any{"type": "call_initiation_failure"}}
}

// TestUnansweredDialFailure: an initiation failure naming no id we recorded
// is matched to the one dial still waiting for its answer — to the number
// it names, of the integration and agent it is delivered for — and to
// nothing when it could be about two dials, another agent's or another
// integration's.
func TestUnansweredDialFailure(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	handling := map[string]any{"concurrency_limit": 3, "max_attempts": 3, "retry_delays_secs": []int{60}}
	at := t0.Add(40 * time.Second)

	t.Run("the one dial to the number", func(t *testing.T) {
		integ := elevenLabsIntegration(t, s, "agent-a", handling)
		id := dialTo(t, s, integ, "+380501000001", t0)
		other := dialTo(t, s, integ, "+380501000002", t0)
		out := apply(t, s, unansweredFailure(integ, "agent-a", "+380501000001", "CA-1", at))
		if !out[0].Found || out[0].CallID != id || out[0].Decision.Outcome != callstate.OutcomeBusy {
			t.Fatalf("failure = %+v, want call %s ended busy", out[0], id)
		}
		c := getCall(t, s, id)
		if c.ExternalCallID == nil || *c.ExternalCallID != "CA-1" || c.ConversationID == nil || *c.ConversationID != "conv-CA-1" {
			t.Errorf("the call shows ids %v / %v, want the failure's CA-1 / conv-CA-1", c.ExternalCallID, c.ConversationID)
		}
		if st := getCall(t, s, other).Status; st != callstate.Initiated {
			t.Errorf("the dial to another number is %s", st)
		}
	})

	t.Run("SIP: the integration's one waiting dial", func(t *testing.T) {
		integ := elevenLabsIntegration(t, s, "agent-a", handling)
		id := dialTo(t, s, integ, "+380501000011", t0)
		accepted := dialTo(t, s, integ, "+380501000012", t0)
		accept(t, s, integ, accepted, "SCL_known", "conv-known", t0.Add(time.Second))
		if out := apply(t, s, unansweredFailure(integ, "agent-a", "", "SCL_9", at)); !out[0].Found || out[0].CallID != id {
			t.Fatalf("failure = %+v, want call %s", out[0], id)
		}
	})

	for _, tc := range []struct {
		name, agent, phone string
		setup              func(t *testing.T, integ uuid.UUID) []uuid.UUID
	}{
		{"two dials to the number", "agent-a", "+380501000021", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			return []uuid.UUID{dialTo(t, s, integ, "+380501000021", t0), dialTo(t, s, integ, "+380501000021", t0)}
		}},
		{"SIP with two waiting dials", "agent-a", "", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			return []uuid.UUID{dialTo(t, s, integ, "+380501000031", t0), dialTo(t, s, integ, "+380501000032", t0)}
		}},
		{"another agent", "agent-b", "+380501000041", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			return []uuid.UUID{dialTo(t, s, integ, "+380501000041", t0)}
		}},
		{"another integration's dial", "agent-a", "+380501000051", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			other := elevenLabsIntegration(t, s, "agent-a", handling)
			return []uuid.UUID{dialTo(t, s, other, "+380501000051", t0)}
		}},
		{"a dial older than the window", "agent-a", "+380501000061", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			return []uuid.UUID{dialTo(t, s, integ, "+380501000061", at.Add(-store.UnansweredDialWindow-time.Second))}
		}},
		{"a dial started after the failure arrived", "agent-a", "+380501000071", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			return []uuid.UUID{dialTo(t, s, integ, "+380501000071", at.Add(time.Minute))}
		}},
		{"a dial the watchdog gave up on, and its retry", "agent-a", "+380501000081", func(t *testing.T, integ uuid.UUID) []uuid.UUID {
			// The failure may be the lost dial's, come late, or the retry's.
			id := dialTo(t, s, integ, "+380501000081", t0.Add(-5*time.Minute))
			lost := apply(t, s, store.CallEvent{IntegrationID: integ, CallID: id, Attempt: 1, At: t0.Add(-3 * time.Minute),
				Event: callstate.Event{Kind: callstate.Timeout, Reason: callstate.OutcomeDialLost}})
			if lost[0].Decision.To != callstate.RetryScheduled {
				t.Fatalf("dial_lost = %+v", lost[0].Decision)
			}
			if due, err := dbClockAt(s, t0).RequeueDue(t.Context(), uuid.Nil, 10); err != nil || len(due) != 1 {
				t.Fatalf("RequeueDue = %v, %v", due, err)
			}
			if ids := claim(t, s, integ, t0); len(ids) != 1 || ids[0] != id {
				t.Fatalf("claim = %v", ids)
			}
			return []uuid.UUID{id}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			integ := elevenLabsIntegration(t, s, "agent-a", handling)
			ids := tc.setup(t, integ)
			out := apply(t, s, unansweredFailure(integ, tc.agent, tc.phone, "CA-"+uuid.NewString()[:8], at))
			if out[0].Found {
				t.Errorf("failure matched call %s: %+v", out[0].CallID, out[0].Decision)
			}
			for _, id := range ids {
				if c := getCall(t, s, id); c.Status != callstate.Initiated {
					t.Errorf("call %s is %s (outcome %v), want still initiated", id, c.Status, c.Outcome)
				}
			}
		})
	}
}
