package servicetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callqueue/callqueue/elevenlabs"
)

// FakeElevenLabsKey is the ELEVENLABS_API_KEY the fake expects.
const FakeElevenLabsKey = "xi-test-key"

// OutboundCall is one outbound-call request the fake ElevenLabs received,
// with what it answered.
type OutboundCall struct {
	// Route is "twilio" or "sip-trunk".
	Route              string
	AgentID            string         `json:"agent_id"`
	AgentPhoneNumberID string         `json:"agent_phone_number_id"`
	ToNumber           string         `json:"to_number"`
	DynamicVariables   map[string]any `json:"-"`
	// Override is conversation_initiation_client_data.conversation_config_override.
	Override map[string]any `json:"-"`
	// RingingTimeoutSecs is telephony_call_config.ringing_timeout_secs (0: not sent).
	RingingTimeoutSecs int    `json:"-"`
	ConversationID     string `json:"-"`
	// CallSid is the telephony id answered: callSid (Twilio) or sip_call_id.
	CallSid string `json:"-"`
	// Failure is why the agent could not hold the conversation, as
	// ElevenLabs reports it ("" when it could): a variable its prompt or
	// first message uses was not given, or an override it does not allow.
	Failure string `json:"-"`
}

// Plan is what the fake does with one outbound call.
type Plan struct {
	// FailFirst, when set, makes ElevenLabs send call_initiation_failure
	// with this failure_reason ("busy", "no-answer") to the webhook, and
	// have it answered, before it answers the outbound-call request: the
	// telephony provider's refusal overtakes ElevenLabs' own answer.
	FailFirst string
	// NotPlaced, when set, answers success:false with this message (and
	// the conversation_id ElevenLabs had opened), as when the trunk refuses
	// the INVITE.
	NotPlaced string
	// AnswerAfter, when set, holds the answer this long. The call is placed
	// at once and goes on whether or not the request is still waiting:
	// ElevenLabs keeps placing a call whose request timed out, and reports
	// on it (Fail) with the ids the caller never got.
	AnswerAfter time.Duration
	// NoAnswer, when set, never answers: the request is held until the
	// caller gives up or NoAnswer is closed, which drops the connection.
	// The call is placed all the same.
	NoAnswer <-chan struct{}
}

// FakeElevenLabs speaks ElevenLabs Agents' outbound-call API as the real one
// does: POST /v1/convai/{twilio|sip-trunk}/outbound-call with xi-api-key,
// answering TwilioOutboundCallResponse (callSid) or
// SIPTrunkOutboundCallResponse (sip_call_id). It never calls agent-init for
// these calls: the agent has only what the request carries. Each accepted
// call gets conversation_id "conv-N" and a telephony id "CA…N" / "SCL_N".
//
// Like the real one it refuses what its schema refuses (422 with
// HTTPValidationError), and an agent that declares dynamic variables (its
// prompt and first message use them) fails the conversation when one is
// missing; so does an override the agent's security settings do not allow.
// Given a webhook (Deliver), it posts signed post-call webhooks there.
type FakeElevenLabs struct {
	*httptest.Server
	mu        sync.Mutex
	calls     []OutboundCall
	arrived   chan OutboundCall
	declared  []string
	overrides bool
	plan      func(OutboundCall) Plan
	hookURL   string
	secret    string
	now       func() time.Time
}

// NewFakeElevenLabs starts a fake ElevenLabs for t.
func NewFakeElevenLabs(t testing.TB) *FakeElevenLabs {
	el := &FakeElevenLabs{arrived: make(chan OutboundCall, 1000)}
	el.Server = httptest.NewServer(http.HandlerFunc(el.serve))
	t.Cleanup(el.Close)
	return el
}

// Agent configures the agent: the dynamic variables its prompt and first
// message use (each required at the start of a conversation), and whether
// its security settings allow overrides of prompt, first message and
// language.
func (el *FakeElevenLabs) Agent(variables []string, allowOverrides bool) {
	el.mu.Lock()
	defer el.mu.Unlock()
	el.declared, el.overrides = append([]string(nil), variables...), allowOverrides
}

// Decide sets what the fake does with each call (default: answer at once).
func (el *FakeElevenLabs) Decide(plan func(OutboundCall) Plan) {
	el.mu.Lock()
	defer el.mu.Unlock()
	el.plan = plan
}

// Deliver makes the fake post its webhooks to url, signed with secret
// (ElevenLabs-Signature) at now's time.
func (el *FakeElevenLabs) Deliver(url, secret string, now func() time.Time) {
	el.mu.Lock()
	defer el.mu.Unlock()
	el.hookURL, el.secret, el.now = url, secret, now
}

// variableName is what ElevenLabs accepts as a dynamic variable's name.
var variableName = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)

func (el *FakeElevenLabs) serve(w http.ResponseWriter, r *http.Request) {
	route, ok := strings.CutPrefix(r.URL.Path, "/v1/convai/")
	route, ok2 := strings.CutSuffix(route, "/outbound-call")
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || !ok || !ok2 || (route != "twilio" && route != "sip-trunk") {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
		return
	}
	if r.Header.Get("xi-api-key") != FakeElevenLabsKey {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}`))
		return
	}
	var req struct {
		OutboundCall
		ClientData *struct {
			DynamicVariables map[string]any `json:"dynamic_variables"`
			Override         map[string]any `json:"conversation_config_override"`
		} `json:"conversation_initiation_client_data"`
		Telephony *struct {
			RingingTimeoutSecs int `json:"ringing_timeout_secs"`
		} `json:"telephony_call_config"`
	}
	refuse := func(loc, msg string) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]any{"detail": []map[string]any{{"loc": strings.Split(loc, "."), "msg": msg, "type": "value_error"}}})
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.AgentID == "" || req.AgentPhoneNumberID == "" || req.ToNumber == "" {
		refuse("body", "Field required")
		return
	}
	call := req.OutboundCall
	call.Route = route
	if req.ClientData != nil {
		call.DynamicVariables, call.Override = req.ClientData.DynamicVariables, req.ClientData.Override
	}
	if req.Telephony != nil {
		call.RingingTimeoutSecs = req.Telephony.RingingTimeoutSecs
	}
	for k, v := range call.DynamicVariables {
		switch v.(type) {
		case string, float64, bool, nil:
		default:
			refuse("body.conversation_initiation_client_data.dynamic_variables."+k, "Input should be a valid string, number or boolean")
			return
		}
		if !variableName.MatchString(k) || strings.HasPrefix(k, "system__") {
			refuse("body.conversation_initiation_client_data.dynamic_variables."+k, "Dynamic variable name is not allowed")
			return
		}
	}
	el.mu.Lock()
	n := len(el.calls) + 1
	call.ConversationID = fmt.Sprintf("conv-%d", n)
	if route == "twilio" {
		call.CallSid = fmt.Sprintf("CA%032d", n)
	} else {
		call.CallSid = fmt.Sprintf("SCL_%d", n)
	}
	call.Failure = el.failure(call)
	plan := Plan{}
	if el.plan != nil {
		plan = el.plan(call)
	}
	el.calls = append(el.calls, call)
	el.mu.Unlock()
	if plan.FailFirst != "" {
		el.send(el.initiationFailure(call, plan.FailFirst))
	}
	el.arrived <- call
	if plan.NoAnswer != nil {
		select {
		case <-plan.NoAnswer:
			panic(http.ErrAbortHandler) // the connection drops without an answer
		case <-r.Context().Done():
			return
		}
	}
	if plan.AnswerAfter > 0 {
		select {
		case <-time.After(plan.AnswerAfter):
		case <-r.Context().Done():
			return // the caller gave up; the call goes on
		}
	}
	answer := map[string]any{"success": true, "message": "Success", "conversation_id": call.ConversationID}
	if plan.NotPlaced != "" {
		answer = map[string]any{"success": false, "message": plan.NotPlaced, "conversation_id": call.ConversationID,
			"callSid": nil, "sip_call_id": nil}
		_ = json.NewEncoder(w).Encode(answer)
		return
	}
	if route == "twilio" {
		answer["callSid"] = call.CallSid
	} else {
		answer["sip_call_id"] = call.CallSid
	}
	_ = json.NewEncoder(w).Encode(answer)
}

// failure is why the agent fails call's conversation ("" when it does
// not), as ElevenLabs words it. el.mu is held.
func (el *FakeElevenLabs) failure(call OutboundCall) string {
	var missing []string
	for _, name := range el.declared {
		if _, ok := call.DynamicVariables[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return "Missing required dynamic variables: {" + strings.Join(missing, ", ") + "}"
	}
	if agent, ok := call.Override["agent"].(map[string]any); ok && len(agent) > 0 && !el.overrides {
		for _, field := range []string{"prompt", "first_message", "language"} {
			if _, ok := agent[field]; ok {
				return "Override for field '" + field + "' is not allowed by config."
			}
		}
	}
	return ""
}

// initiationFailure is the call_initiation_failure ElevenLabs sends for
// call, with the telephony provider's own report as metadata (Twilio's
// status callback or the SIP trunk's error).
func (el *FakeElevenLabs) initiationFailure(call OutboundCall, reason string) map[string]any {
	var meta map[string]any
	if call.Route == "twilio" {
		status := map[string]string{"busy": "busy", "no-answer": "no-answer"}[reason]
		sip := map[string]string{"busy": "486", "no-answer": "487"}[reason]
		meta = map[string]any{"type": "twilio", "body": map[string]any{
			"CallSid": call.CallSid, "CallStatus": status, "To": call.ToNumber, "Called": call.ToNumber,
			"From": "+380441112233", "Direction": "outbound-api", "CallDuration": "0", "SipResponseCode": sip,
			"AccountSid": "AC0123456789abcdef0123456789abcdef", "ApiVersion": "2010-04-01"}}
	} else {
		code := map[string]int{"busy": 486, "no-answer": 480}[reason]
		meta = map[string]any{"type": "sip", "body": map[string]any{
			"call_sid": call.CallSid, "sip_status_code": code, "sip_status": http.StatusText(code),
			"error_reason": fmt.Sprintf("INVITE failed: sip status: %d (SIP %d)", code, code), "twirp_code": "unavailable"}}
	}
	return map[string]any{"type": elevenlabs.TypeInitiationFailure, "event_timestamp": time.Now().Unix(), "data": map[string]any{
		"agent_id": call.AgentID, "conversation_id": call.ConversationID, "failure_reason": reason, "metadata": meta}}
}

// Fail sends the call_initiation_failure of call (failure_reason "busy",
// "no-answer" or "unknown") to the webhook and returns its status.
func (el *FakeElevenLabs) Fail(call OutboundCall, reason string) int {
	return el.send(el.initiationFailure(call, reason))
}

// Send posts any webhook body (an event type of ElevenLabs' own that
// callqueue may not handle, say) and returns the status.
func (el *FakeElevenLabs) Send(body map[string]any) int { return el.send(body) }

func (el *FakeElevenLabs) send(body map[string]any) int {
	el.mu.Lock()
	url, secret, now := el.hookURL, el.secret, el.now
	el.mu.Unlock()
	if url == "" {
		panic("FakeElevenLabs: no webhook to deliver to (Deliver)")
	}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(elevenlabs.SignatureHeader, elevenlabs.Sign(secret, now(), raw))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Calls returns every outbound call so far.
func (el *FakeElevenLabs) Calls() []OutboundCall {
	el.mu.Lock()
	defer el.mu.Unlock()
	return append([]OutboundCall(nil), el.calls...)
}

// Next waits for the next outbound call.
func (el *FakeElevenLabs) Next(t testing.TB, timeout time.Duration) OutboundCall {
	t.Helper()
	select {
	case c := <-el.arrived:
		return c
	case <-time.After(timeout):
		t.Fatalf("no outbound call within %s", timeout)
		return OutboundCall{}
	}
}
