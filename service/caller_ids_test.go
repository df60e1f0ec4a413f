package service_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestCallerNumberPool: an integration with a pool of a San Francisco
// number (on its own VA trunk) and a London one, each with one live call
// at most, under the local strategy. A +1 415 call is originated from the
// 415 number through its trunk and a +44 one from the London number (the
// fake VA's own ledger shows the caller_id and the trunk it was sent to);
// a third call, with both numbers busy, stays queued with one
// deferred: caller_id entry, counted by the metric, and is dialled once a
// number frees. The attempt and the CRM update name the number.
func TestCallerNumberPool(t *testing.T) {
	t.Parallel()
	p := setupPeers(t, servicetest.Options{}, map[string]any{"max_attempts": 1, "concurrency_limit": 10})
	if code := p.admin.Do("PUT", "/api/integrations/"+p.integ.ID.String()+"/config/voice", map[string]any{
		"provider": "va", "base_url": p.va.URL, "sip_id": "sip-1", "assistant_id": "asst-1",
		"caller_ids": []map[string]any{
			{"number": "+1 415 555 0100", "sip_id": "sf-trunk", "concurrency_limit": 1},
			{"number": "+442079460000", "concurrency_limit": 1},
		}}, nil); code != http.StatusOK {
		t.Fatalf("put voice: %d", code)
	}

	sf := originateOn(t, p.in, p.integ, map[string]any{"phone_number": "+14155559876"})
	awaitDialled(t, p.admin, sf)
	uk := originateOn(t, p.in, p.integ, map[string]any{"phone_number": "+441612345678"})
	awaitDialled(t, p.admin, uk)
	waiting := originateOn(t, p.in, p.integ, map[string]any{"phone_number": "+14155550199"})

	sent := map[string]servicetest.Originate{}
	for _, o := range p.va.Requests() {
		sent[o.Call()] = o
	}
	if o := sent[sf.String()]; o.CallerID != "+14155550100" || o.SipID != "sf-trunk" {
		t.Errorf("the 415 call was sent from %q to trunk %q, want +14155550100 on sf-trunk", o.CallerID, o.SipID)
	}
	if o := sent[uk.String()]; o.CallerID != "+442079460000" || o.SipID != "sip-1" {
		t.Errorf("the UK call was sent from %q to trunk %q, want +442079460000 on the integration's sip-1", o.CallerID, o.SipID)
	}

	// Both numbers are busy: the third call waits, once in its history.
	servicetest.Eventually(t, 10*time.Second, "the third call held for a caller number", func() bool {
		return slices.Contains(holdsOf(t, p.admin, waiting), "caller_id")
	})
	holdsFor(t, 300*time.Millisecond, "the third call queued while both numbers are busy", func() bool {
		return len(p.va.Requests()) == 2
	})
	if n := metricValue(t, p.in.URL, "callqueue_dispatch_deferred_total", `reason="caller_id"`); n != 1 {
		t.Errorf(`callqueue_dispatch_deferred_total{reason="caller_id"} = %v, want 1`, n)
	}

	// The 415 call ends short (failed, one attempt): its number frees and
	// the waiting call takes it.
	callEvent(t, p.in, p.integ, map[string]any{"eventType": "call_end", "callId": sf, "duration": 2})
	awaitStatus(t, p.admin, sf, "failed")
	awaitDialled(t, p.admin, waiting)
	if h := holdsOf(t, p.admin, waiting); len(h) != 1 {
		t.Errorf("the third call's holds = %v, want one caller_id", h)
	}
	for _, o := range p.va.Requests() {
		if o.Call() == waiting.String() && (o.CallerID != "+14155550100" || o.SipID != "sf-trunk") {
			t.Errorf("the third call was sent from %q to %q, want the freed 415 number on sf-trunk", o.CallerID, o.SipID)
		}
	}

	var detail struct {
		CallerID string          `json:"callerId"`
		Attempts []store.Attempt `json:"attempts"`
	}
	if code := p.admin.Do("GET", "/api/calls/"+sf.String(), nil, &detail); code != http.StatusOK {
		t.Fatalf("call detail: %d", code)
	}
	if detail.CallerID != "+14155550100" || len(detail.Attempts) != 1 || deref(detail.Attempts[0].CallerID) != "+14155550100" {
		t.Errorf("call detail callerId %q, attempts %+v", detail.CallerID, detail.Attempts)
	}
	servicetest.Eventually(t, 10*time.Second, "the failed call's CRM update", func() bool {
		for _, u := range p.crm.Updates() {
			if body := u.JSON(t); body["callId"] == sf.String() {
				if body["callerId"] != "+14155550100" {
					t.Fatalf("CRM update callerId = %v, want +14155550100", body["callerId"])
				}
				return true
			}
		}
		return false
	})
}

// holdsOf lists the pacing holds in a call's history.
func holdsOf(t *testing.T, admin *servicetest.Admin, id uuid.UUID) []string {
	t.Helper()
	var detail struct {
		Events []store.CallEventRow `json:"events"`
	}
	if code := admin.Do("GET", "/api/calls/"+id.String(), nil, &detail); code != http.StatusOK {
		t.Fatalf("call %s: %d", id, code)
	}
	var out []string
	for _, ev := range detail.Events {
		if ev.Kind == "deferred" && jsonHas(ev.Detail, "notBefore", "") {
			var d struct {
				Deferred string `json:"deferred"`
			}
			_ = json.Unmarshal(ev.Detail, &d)
			out = append(out, d.Deferred)
		}
	}
	return out
}

// TestCallerNumberPoolElevenLabs: dialling through ElevenLabs, the call is
// placed from the pool number's own agent_phone_number_id (a number without
// one uses the voice config's).
func TestCallerNumberPoolElevenLabs(t *testing.T) {
	t.Parallel()
	_, in, admin, integ, el := elevenLabsSigned(t, "sip_trunk")
	admin.PutConfig(integ, "voice", map[string]any{"provider": "elevenlabs", "base_url": el.URL, "agent_id": "a1",
		"agent_phone_number_id": "p1", "via": "sip_trunk", "caller_id_strategy": "local",
		"caller_ids": []map[string]any{{"number": "+442079460000"}, {"number": "+14155550100", "agent_phone_number_id": "phnum_sf"}}})
	sf := originateOn(t, in, integ, map[string]any{"phone_number": "+14155559876"})
	call := el.Next(t, 10*time.Second)
	if call.ToNumber != "+14155559876" || call.AgentPhoneNumberID != "phnum_sf" {
		t.Fatalf("ElevenLabs was asked to call %s from %q, want +14155559876 from phnum_sf", call.ToNumber, call.AgentPhoneNumberID)
	}
	var detail struct {
		CallerID string `json:"callerId"`
	}
	if code := admin.Do("GET", "/api/calls/"+sf.String(), nil, &detail); code != http.StatusOK || detail.CallerID != "+14155550100" {
		t.Fatalf("call detail: %d, callerId %q", code, detail.CallerID)
	}
}
