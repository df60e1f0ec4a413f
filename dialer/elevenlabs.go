package dialer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/elevenlabs"
)

// ElevenLabsBaseURLDefault is used when voice.base_url is empty.
const ElevenLabsBaseURLDefault = "https://api.elevenlabs.io"

// ElevenLabs dials through ElevenLabs Agents' outbound-call API, over the
// agent phone number's SIP trunk or Twilio (voice.via).
type ElevenLabs struct {
	client *http.Client
}

// NewElevenLabs returns an ElevenLabs client; a nil client gets one with
// TimeoutDefault.
func NewElevenLabs(client *http.Client) *ElevenLabs {
	if client == nil {
		client = egress.NewClient(egress.Policy{}, TimeoutDefault)
	}
	return &ElevenLabs{client: client}
}

// elevenLabsOutboundCall is the body of POST .../outbound-call (ElevenLabs'
// Body_Handle_an_outbound_call_via_{Twilio,SIP_trunk}).
type elevenLabsOutboundCall struct {
	AgentID            string               `json:"agent_id"`
	AgentPhoneNumberID string               `json:"agent_phone_number_id"`
	ToNumber           string               `json:"to_number"`
	ClientData         elevenLabsClientData `json:"conversation_initiation_client_data"`
	Telephony          struct {
		RingingTimeoutSecs int `json:"ringing_timeout_secs"`
	} `json:"telephony_call_config"`
}

// elevenLabsClientData is ConversationInitiationClientDataRequest: what
// agent-init would answer, since ElevenLabs never asks it about the calls
// this API places.
type elevenLabsClientData struct {
	DynamicVariables   map[string]any `json:"dynamic_variables"`
	ConversationConfig map[string]any `json:"conversation_config_override,omitempty"`
}

// elevenLabsAnswer is both SIPTrunkOutboundCallResponse and
// TwilioOutboundCallResponse: they differ only in the telephony id's name.
type elevenLabsAnswer struct {
	Success        *bool  `json:"success"`
	Message        string `json:"message"`
	ConversationID string `json:"conversation_id"`
	CallSid        string `json:"callSid"`
	SipCallID      string `json:"sip_call_id"`
}

// Originate implements Dialer:
// POST {base_url}/v1/convai/{sip-trunk|twilio}/outbound-call.
func (e *ElevenLabs) Originate(ctx context.Context, req Request) (Result, error) {
	route, err := elevenLabsRoute(req.Voice.Via)
	if err != nil {
		return Result{}, err
	}
	vars, err := elevenLabsVariables(req)
	if err != nil {
		return Result{}, err
	}
	call := elevenLabsOutboundCall{AgentID: req.Voice.AgentID, AgentPhoneNumberID: req.Voice.AgentPhoneNumberID, ToNumber: req.Phone}
	call.ClientData.DynamicVariables = vars
	if req.Agent != nil {
		call.ClientData.ConversationConfig = req.Agent.ConversationConfig
	}
	call.Telephony.RingingTimeoutSecs = req.Voice.RingTimeout()
	body, err := json.Marshal(call)
	if err != nil {
		return Result{}, err
	}
	base := req.Voice.BaseURL
	if base == "" {
		base = ElevenLabsBaseURLDefault
	}
	url := strings.TrimRight(base, "/") + "/v1/convai/" + route + "/outbound-call"
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("xi-api-key", req.Secret)
	resp, err := e.client.Do(httpReq)
	if err != nil {
		return Result{}, egress.Fail("elevenlabs outbound call", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		var ans elevenLabsAnswer
		if err := json.Unmarshal(raw, &ans); err != nil || ans.Success == nil {
			// Not ElevenLabs' answer (a proxy, a wrong base_url): nothing says a
			// call was placed, so the attempt is retried like a 5xx.
			return Result{}, fmt.Errorf("elevenlabs outbound call: unexpected %d answer, not ElevenLabs' shape: %w", resp.StatusCode, egress.ErrMalformed)
		}
		if !*ans.Success {
			// The API worked but the call was not placed (e.g. the trunk refused
			// the INVITE): this attempt fails, ElevenLabs is healthy. Its
			// message says why, and a conversation it opened stays findable.
			return Result{}, &RejectedError{Status: resp.StatusCode, Reason: "the call was not placed",
				Message: boundedText(ans.Message), ConversationID: boundedText(ans.ConversationID)}
		}
		return Result{ConversationID: ans.ConversationID, ExternalID: cmp.Or(ans.CallSid, ans.SipCallID)}, nil
	case permanentStatus(resp.StatusCode):
		return Result{}, &RejectedError{Status: resp.StatusCode, Message: errorDetail(raw)}
	}
	return Result{}, &egress.StatusError{Op: "elevenlabs outbound call", Status: resp.StatusCode}
}

// elevenLabsRoute maps voice.via to the API's path segment.
func elevenLabsRoute(via string) (string, error) {
	switch via {
	case "", "sip_trunk":
		return "sip-trunk", nil
	case "twilio":
		return "twilio", nil
	}
	// Config validation keeps this out; a stored value that slipped past it is
	// a configuration fault, not an outage, so it must not trip the breaker.
	return "", &RejectedError{Reason: fmt.Sprintf(`voice.via %q is neither "sip_trunk" nor "twilio"`, via)}
}

// elevenLabsVariables is what the agent gets as dynamic variables: the
// answer agent-init would give (req.Agent; else the call's own variables),
// plus the attempt's call_id and phone_number, which the post-call webhook
// echoes back so the conversation can be matched to the attempt even
// without the conversation_id.
//
// ElevenLabs accepts only scalar (or null) dynamic variables; a nested object
// or array is sent as its JSON text rather than failing the dial with a 422.
// Its own system__ names are never sent.
func elevenLabsVariables(req Request) (map[string]any, error) {
	vars := map[string]any{}
	if req.Agent != nil {
		maps.Copy(vars, req.Agent.DynamicVariables)
	} else if raw := bytes.TrimSpace(req.DynamicVariables); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // keep numbers exactly as given
		if err := dec.Decode(&vars); err != nil {
			return nil, &RejectedError{Reason: "dynamic_variables must be a JSON object"}
		}
	}
	for k, v := range vars {
		if strings.HasPrefix(k, elevenlabs.SystemVariablePrefix) {
			delete(vars, k)
			continue
		}
		switch v.(type) {
		case map[string]any, []any:
			text, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			vars[k] = string(text)
		}
	}
	// The attempt's call_id, so that its post-call names the attempt.
	vars["call_id"] = callstate.AttemptCallID(req.CallID, req.Attempt)
	vars["phone_number"] = req.Phone
	return vars, nil
}

// maxPlatformText bounds the platform's words kept in a call's history.
const maxPlatformText = 300

// boundedText is s as valid UTF-8 without control characters (NUL cannot
// be stored), cut to maxPlatformText bytes on a rune boundary.
func boundedText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if len(s) <= maxPlatformText {
		return s
	}
	cut := maxPlatformText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// errorDetail reads ElevenLabs' 4xx answer: {"detail": "..."},
// {"detail": {"status", "message"}} or a 422's HTTPValidationError
// {"detail": [{"loc", "msg", "type"}]}. Anything else gives "".
func errorDetail(raw []byte) string {
	var body struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(raw, &body) != nil || len(body.Detail) == 0 {
		return ""
	}
	var text string
	if json.Unmarshal(body.Detail, &text) == nil {
		return boundedText(text)
	}
	var obj struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body.Detail, &obj) == nil && (obj.Message != "" || obj.Status != "") {
		return boundedText(cmp.Or(obj.Message, obj.Status))
	}
	var list []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	if json.Unmarshal(body.Detail, &list) != nil {
		return ""
	}
	parts := make([]string, 0, len(list))
	for _, e := range list {
		loc := make([]string, 0, len(e.Loc))
		for _, l := range e.Loc {
			loc = append(loc, fmt.Sprint(l))
		}
		parts = append(parts, strings.TrimLeft(strings.Join(loc, ".")+": "+e.Msg, ": "))
	}
	return boundedText(strings.Join(parts, "; "))
}

// permanentStatus reports whether an HTTP status fails the attempt without
// saying anything about the platform's health: a 4xx other than 408 and 429.
func permanentStatus(code int) bool {
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

var _ Dialer = (*ElevenLabs)(nil)
