package dialer_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/elevenlabs"
)

const testCallID = "0b8f8a3e-6f7e-4d2a-9a55-6f1c2d3e4f50"

func elevenLabsRequest(baseURL, via string) dialer.Request {
	return dialer.Request{
		IntegrationID: uuid.New(),
		CallID:        uuid.MustParse(testCallID),
		Attempt:       1,
		Phone:         "+380501234567",
		Voice: config.Voice{Provider: "elevenlabs", BaseURL: baseURL, AgentID: "agent_01jx",
			AgentPhoneNumberID: "phnum_01jy", Via: via},
		Secret: "xi-secret",
	}
}

// The answers below follow ElevenLabs' OpenAPI schemas
// SIPTrunkOutboundCallResponse {success, message, conversation_id, sip_call_id}
// and TwilioOutboundCallResponse {success, message, conversation_id, callSid}.
const (
	sipTrunkAccepted = `{"success":true,"message":"Outbound call initiated","conversation_id":"conv_sip_1","sip_call_id":"sip-9f2c"}`
	twilioAccepted   = `{"success":true,"message":"Success","conversation_id":"conv_tw_1","callSid":"CA5f0a1b2c"}`
)

func TestElevenLabsOriginateRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		via      string
		vars     json.RawMessage
		answer   string
		wantPath string
		wantVars string
		want     dialer.Result
	}{
		{
			name: "default via is sip trunk", via: "", answer: sipTrunkAccepted,
			vars:     json.RawMessage(`{"client_name":"Іван"}`),
			wantPath: "/v1/convai/sip-trunk/outbound-call",
			wantVars: `{"client_name":"Іван","call_id":"` + testCallID + `.1","phone_number":"+380501234567"}`,
			want:     dialer.Result{ConversationID: "conv_sip_1", ExternalID: "sip-9f2c"},
		},
		{
			name: "sip_trunk", via: "sip_trunk", answer: sipTrunkAccepted,
			vars:     json.RawMessage(`{"budget":1500,"ratio":0.25,"vip":true,"note":null}`),
			wantPath: "/v1/convai/sip-trunk/outbound-call",
			wantVars: `{"budget":1500,"ratio":0.25,"vip":true,"note":null,"call_id":"` + testCallID + `.1","phone_number":"+380501234567"}`,
			want:     dialer.Result{ConversationID: "conv_sip_1", ExternalID: "sip-9f2c"},
		},
		{
			name: "twilio", via: "twilio", answer: twilioAccepted,
			vars:     json.RawMessage(`{"company":"ACME"}`),
			wantPath: "/v1/convai/twilio/outbound-call",
			wantVars: `{"company":"ACME","call_id":"` + testCallID + `.1","phone_number":"+380501234567"}`,
			want:     dialer.Result{ConversationID: "conv_tw_1", ExternalID: "CA5f0a1b2c"},
		},
		{
			name: "no dynamic variables", via: "twilio", answer: twilioAccepted,
			wantPath: "/v1/convai/twilio/outbound-call",
			wantVars: `{"call_id":"` + testCallID + `.1","phone_number":"+380501234567"}`,
			want:     dialer.Result{ConversationID: "conv_tw_1", ExternalID: "CA5f0a1b2c"},
		},
		{
			name: "our call_id and phone_number win", via: "sip_trunk", answer: sipTrunkAccepted,
			vars:     json.RawMessage(`{"call_id":"forged","phone_number":"+10000000000","x":"y"}`),
			wantPath: "/v1/convai/sip-trunk/outbound-call",
			wantVars: `{"x":"y","call_id":"` + testCallID + `.1","phone_number":"+380501234567"}`,
			want:     dialer.Result{ConversationID: "conv_sip_1", ExternalID: "sip-9f2c"},
		},
		{
			name: "nested values sent as JSON text", via: "sip_trunk", answer: sipTrunkAccepted,
			vars:     json.RawMessage(`{"tags":["a","b"],"crm":{"id":7}}`),
			wantPath: "/v1/convai/sip-trunk/outbound-call",
			wantVars: `{"tags":"[\"a\",\"b\"]","crm":"{\"id\":7}","call_id":"` + testCallID + `.1","phone_number":"+380501234567"}`,
			want:     dialer.Result{ConversationID: "conv_sip_1", ExternalID: "sip-9f2c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(http.StatusOK, tt.answer))
			req := elevenLabsRequest(p.srv.URL+"/", tt.via)
			req.DynamicVariables = tt.vars
			res, err := dialer.NewElevenLabs(p.srv.Client()).Originate(t.Context(), req)
			if err != nil {
				t.Fatalf("Originate: %v", err)
			}
			if res != tt.want {
				t.Errorf("Result = %+v, want %+v", res, tt.want)
			}
			got := p.only(t)
			if got.Method != http.MethodPost || got.Path != tt.wantPath {
				t.Errorf("request %s %s, want POST %s", got.Method, got.Path, tt.wantPath)
			}
			if h := got.Header.Get("xi-api-key"); h != "xi-secret" {
				t.Errorf("xi-api-key %q, want %q", h, "xi-secret")
			}
			if h := got.Header.Get("Authorization"); h != "" {
				t.Errorf("Authorization %q sent; ElevenLabs authenticates with xi-api-key only", h)
			}
			if h := got.Header.Get("Content-Type"); h != "application/json" {
				t.Errorf("Content-Type %q, want application/json", h)
			}
			assertJSON(t, got.Body, `{"agent_id":"agent_01jx","agent_phone_number_id":"phnum_01jy","to_number":"+380501234567",
				"conversation_initiation_client_data":{"dynamic_variables":`+tt.wantVars+`},
				"telephony_call_config":{"ringing_timeout_secs":45}}`)
		})
	}
}

// TestElevenLabsRequestMatchesSchema: a dial carrying the agent's context
// (with a conversation override and a ring timeout) sends only members the
// published request schema has, each of its JSON kind
// (testdata/outbound_call_request.json, written from ElevenLabs' OpenAPI),
// dynamic variables all scalar and none of ElevenLabs' system__ names.
func TestElevenLabsRequestMatchesSchema(t *testing.T) {
	t.Parallel()
	published := readFixture(t, "outbound_call_request.json")
	for _, via := range []string{"sip_trunk", "twilio"} {
		p := newPlatform(t, reply(http.StatusOK, sipTrunkAccepted))
		req := elevenLabsRequest(p.srv.URL, via)
		req.Voice.RingTimeoutSecs = 30
		req.Agent = &elevenlabs.ClientData{Type: elevenlabs.ClientDataType,
			DynamicVariables: map[string]any{"today_is": "21.01.2026", "client_name": "", "visits": 3, "vip": true, "note": nil,
				"tags": []any{"a"}, "crm": map[string]any{"id": 7}, "system__call_sid": "forged"},
			ConversationConfig: map[string]any{"agent": map[string]any{"prompt": map[string]any{"prompt": "Be brief."},
				"first_message": "Добрий день, {{client_name}}!", "language": "uk"}}}
		if _, err := dialer.NewElevenLabs(p.srv.Client()).Originate(t.Context(), req); err != nil {
			t.Fatalf("%s: Originate: %v", via, err)
		}
		var sent map[string]any
		if err := json.Unmarshal(p.only(t).Body, &sent); err != nil {
			t.Fatal(err)
		}
		checkShape(t, via, "", sent, published)
		client := sent["conversation_initiation_client_data"].(map[string]any)
		vars := client["dynamic_variables"].(map[string]any)
		for k, v := range vars {
			switch v.(type) {
			case string, float64, bool, nil:
			default:
				t.Errorf("%s: dynamic variable %s = %v is not a scalar", via, k, v)
			}
			if strings.HasPrefix(k, "system__") {
				t.Errorf("%s: sent ElevenLabs' own variable %s", via, k)
			}
		}
		if vars["today_is"] != "21.01.2026" || vars["client_name"] != "" || vars["call_id"] != testCallID+".1" || vars["tags"] != `["a"]` {
			t.Errorf("%s: dynamic variables %v", via, vars)
		}
		if sent["telephony_call_config"].(map[string]any)["ringing_timeout_secs"] != 30.0 {
			t.Errorf("%s: telephony_call_config %v", via, sent["telephony_call_config"])
		}
	}
}

// checkShape fails for every member of got that published lacks or holds
// with another JSON kind. dynamic_variables is a map: its values are
// checked against the kinds its sample values show.
func checkShape(t *testing.T, via, path string, got, published map[string]any) {
	t.Helper()
	for k, v := range got {
		at := strings.TrimPrefix(path+"."+k, ".")
		want, ok := published[k]
		if path == "conversation_initiation_client_data.dynamic_variables" {
			continue
		}
		if !ok {
			t.Errorf("%s: %s is not in ElevenLabs' request schema", via, at)
			continue
		}
		if fmt.Sprintf("%T", v) != fmt.Sprintf("%T", want) {
			t.Errorf("%s: %s is %T, the schema has %T", via, at, v, want)
			continue
		}
		if obj, ok := v.(map[string]any); ok {
			checkShape(t, via, at, obj, want.(map[string]any))
		}
	}
}

// readFixture decodes one of ElevenLabs' wire samples.
func readFixture(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "elevenlabs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// TestElevenLabsRejectionKeepsWhy: a success:false answer keeps ElevenLabs'
// message and the conversation it opened; a 4xx keeps its detail, in each
// of the shapes ElevenLabs gives it (samples from its published schemas).
func TestElevenLabsRejectionKeepsWhy(t *testing.T) {
	t.Parallel()
	fixture := func(name string) string {
		raw, err := os.ReadFile(filepath.Join("..", "elevenlabs", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	tests := []struct {
		name, body, wantMessage, wantConversation string
		status                                    int
	}{
		{"success false", fixture("sip_trunk_outbound_call_failed.json"), "Failed to initiate call: sip status: 486: Busy Here",
			"conv_01jzb1c2d3e4f5g6h7j8k9l0m1", 200},
		{"422 validation error", fixture("http_validation_error.json"), "body.to_number: Field required", "", 422},
		{"404 detail object", fixture("error_detail.json"), "Phone number phnum_01jy0a1b2c3d4e5f6g7h8j9k0m was not found", "", 404},
		{"400 detail string", `{"detail":"Agent has no phone number"}`, "Agent has no phone number", "", 400},
		{"401 detail status only", `{"detail":{"status":"invalid_api_key"}}`, "invalid_api_key", "", 401},
		{"403 no detail", `Forbidden`, "", "", 403},
		{"control characters dropped", `{"detail":"busy\u0000\nhere"}`, "busy  here", "", 400},
		{"long message bounded", `{"detail":"` + strings.Repeat("й", 400) + `"}`, strings.Repeat("й", 150) + "…", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(tt.status, tt.body))
			_, err := dialer.NewElevenLabs(p.srv.Client()).Originate(t.Context(), elevenLabsRequest(p.srv.URL, "sip_trunk"))
			var rej *dialer.RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("err = %v, want a *RejectedError", err)
			}
			if rej.Message != tt.wantMessage || rej.ConversationID != tt.wantConversation {
				t.Errorf("message %q, conversation %q; want %q, %q", rej.Message, rej.ConversationID, tt.wantMessage, tt.wantConversation)
			}
			if tt.wantMessage != "" && !strings.Contains(err.Error(), tt.wantMessage) {
				t.Errorf("error %q lacks the platform's message", err)
			}
		})
	}
}

// roundTripFunc lets a test see the URL without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestElevenLabsDefaultBaseURL(t *testing.T) {
	t.Parallel()
	var got string
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.URL.String()
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: r,
			Body: io.NopCloser(strings.NewReader(sipTrunkAccepted))}, nil
	})}
	if _, err := dialer.NewElevenLabs(client).Originate(t.Context(), elevenLabsRequest("", "")); err != nil {
		t.Fatalf("Originate: %v", err)
	}
	if want := "https://api.elevenlabs.io/v1/convai/sip-trunk/outbound-call"; got != want {
		t.Errorf("URL %q, want %q", got, want)
	}
}

func TestElevenLabsOriginateAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		via        string
		status     int
		body       string
		want       dialer.Result
		wantReject bool
		wantErr    bool
	}{
		{name: "sip trunk accepted", via: "sip_trunk", status: 200, body: sipTrunkAccepted,
			want: dialer.Result{ConversationID: "conv_sip_1", ExternalID: "sip-9f2c"}},
		{name: "twilio accepted", via: "twilio", status: 200, body: twilioAccepted,
			want: dialer.Result{ConversationID: "conv_tw_1", ExternalID: "CA5f0a1b2c"}},
		{name: "null telephony id", via: "twilio", status: 200,
			body: `{"success":true,"message":"Success","conversation_id":"conv_tw_2","callSid":null}`,
			want: dialer.Result{ConversationID: "conv_tw_2"}},
		{name: "success false is rejected", via: "sip_trunk", status: 200,
			body:       `{"success":false,"message":"Failed to initiate call: 486 Busy Here","conversation_id":null,"sip_call_id":null}`,
			wantReject: true, wantErr: true},
		{name: "401 rejected", status: 401, body: `{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}`,
			wantReject: true, wantErr: true},
		{name: "404 rejected", status: 404, body: `{"detail":{"status":"not_found","message":"Agent not found"}}`,
			wantReject: true, wantErr: true},
		{name: "422 rejected", status: 422,
			body:       `{"detail":[{"loc":["body","to_number"],"msg":"Field required","type":"missing"}]}`,
			wantReject: true, wantErr: true},
		{name: "408 retryable", status: 408, wantErr: true},
		{name: "429 retryable", status: 429, body: `{"detail":{"status":"too_many_concurrent_requests"}}`, wantErr: true},
		{name: "500 retryable", status: 500, body: `Internal Server Error`, wantErr: true},
		{name: "503 retryable", status: 503, wantErr: true},
		{name: "2xx without JSON retryable", status: 200, body: `<html>proxy</html>`, wantErr: true},
		{name: "2xx without success retryable", status: 200, body: `{"conversation_id":"conv_x"}`, wantErr: true},
		{name: "2xx over 64 KiB is not read past the limit", status: 200,
			body: `{"success":true,"message":"` + strings.Repeat("x", 64<<10) + `","conversation_id":"conv_big"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(tt.status, tt.body))
			res, err := dialer.NewElevenLabs(p.srv.Client()).Originate(t.Context(), elevenLabsRequest(p.srv.URL, tt.via))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := dialer.IsRejected(err); got != tt.wantReject {
				t.Errorf("IsRejected = %v, want %v (err %v)", got, tt.wantReject, err)
			}
			if tt.wantReject {
				var rej *dialer.RejectedError
				if !errors.As(err, &rej) {
					t.Fatalf("err = %v, want a *RejectedError", err)
				}
				if rej.Status != tt.status {
					t.Errorf("RejectedError.Status = %d, want %d", rej.Status, tt.status)
				}
			}
			if res != tt.want {
				t.Errorf("Result = %+v, want %+v", res, tt.want)
			}
		})
	}
}

func TestElevenLabsRejectsWithoutDialling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		via  string
		vars json.RawMessage
	}{
		{name: "unknown via", via: "vonage"},
		{name: "dynamic variables not an object", via: "sip_trunk", vars: json.RawMessage(`["a"]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(http.StatusOK, sipTrunkAccepted))
			req := elevenLabsRequest(p.srv.URL, tt.via)
			req.DynamicVariables = tt.vars
			_, err := dialer.NewElevenLabs(p.srv.Client()).Originate(t.Context(), req)
			if !dialer.IsRejected(err) {
				t.Errorf("err = %v, want a RejectedError", err)
			}
			if n := len(p.requests()); n != 0 {
				t.Errorf("platform received %d requests, want none", n)
			}
		})
	}
}

func TestRouterDispatchesByProvider(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		provider   string
		wantPath   string
		want       dialer.Result
		wantReject bool
	}{
		{name: "va", provider: "va", wantPath: "/sip-7/originate/", want: dialer.Result{ExternalID: "va-call-1"}},
		{name: "elevenlabs", provider: "elevenlabs", wantPath: "/v1/convai/sip-trunk/outbound-call",
			want: dialer.Result{ConversationID: "conv_sip_1", ExternalID: "sip-9f2c"}},
		{name: "empty provider", provider: "", wantReject: true},
		{name: "unknown provider", provider: "vapi", wantReject: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/sip-7/originate/":
					reply(http.StatusOK, `{"callId":"va-call-1"}`)(w, r)
				case "/v1/convai/sip-trunk/outbound-call":
					reply(http.StatusOK, sipTrunkAccepted)(w, r)
				default:
					http.NotFound(w, r)
				}
			})
			req := vaRequest(p.srv.URL)
			el := elevenLabsRequest(p.srv.URL, "")
			req.Voice.AgentID, req.Voice.AgentPhoneNumberID = el.Voice.AgentID, el.Voice.AgentPhoneNumberID
			req.Voice.Provider = tt.provider
			res, err := dialer.NewRouter(p.srv.Client()).Originate(t.Context(), req)
			if tt.wantReject {
				if !dialer.IsRejected(err) {
					t.Errorf("err = %v, want a RejectedError", err)
				}
				if n := len(p.requests()); n != 0 {
					t.Errorf("platform received %d requests, want none", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Originate: %v", err)
			}
			if res != tt.want {
				t.Errorf("Result = %+v, want %+v", res, tt.want)
			}
			if got := p.only(t); got.Path != tt.wantPath {
				t.Errorf("path %s, want %s", got.Path, tt.wantPath)
			}
		})
	}
}
