package servicetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
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
	ConversationID     string         `json:"-"`
	CallSid            string         `json:"-"`
}

// FakeElevenLabs speaks ElevenLabs Agents' outbound-call API:
// POST /v1/convai/{twilio|sip-trunk}/outbound-call with xi-api-key. Each
// accepted call gets conversation_id "conv-N" and callSid "CAN".
type FakeElevenLabs struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []OutboundCall
	arrived chan OutboundCall
}

// NewFakeElevenLabs starts a fake ElevenLabs for t.
func NewFakeElevenLabs(t testing.TB) *FakeElevenLabs {
	el := &FakeElevenLabs{arrived: make(chan OutboundCall, 1000)}
	el.Server = httptest.NewServer(http.HandlerFunc(el.serve))
	t.Cleanup(el.Close)
	return el
}

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
		ClientData struct {
			DynamicVariables map[string]any `json:"dynamic_variables"`
		} `json:"conversation_initiation_client_data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.AgentID == "" || req.AgentPhoneNumberID == "" || req.ToNumber == "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"detail":[{"loc":["body"],"msg":"field required","type":"missing"}]}`))
		return
	}
	call := req.OutboundCall
	call.Route, call.DynamicVariables = route, req.ClientData.DynamicVariables
	el.mu.Lock()
	n := len(el.calls) + 1
	call.ConversationID, call.CallSid = fmt.Sprintf("conv-%d", n), fmt.Sprintf("CA%032d", n)
	el.calls = append(el.calls, call)
	el.mu.Unlock()
	el.arrived <- call
	_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "message": "Success",
		"conversation_id": call.ConversationID, "callSid": call.CallSid})
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
