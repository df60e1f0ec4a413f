// Package elevenlabs is the ElevenLabs Agents wire format callqueue speaks:
// the post-call webhooks (transcription, audio, initiation failure), their
// HMAC signature, and the conversation_initiation_client_data answer.
package elevenlabs

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callqueue/callqueue/hmacsig"
)

// Webhook types.
const (
	TypeTranscription     = "post_call_transcription"
	TypeAudio             = "post_call_audio"
	TypeInitiationFailure = "call_initiation_failure"
)

// SignatureHeader carries "t=<unix>,v0=<hex hmac>".
const SignatureHeader = "ElevenLabs-Signature"

// SignatureTolerance is how old a signed timestamp may be.
const SignatureTolerance = 30 * time.Minute

// Signature errors.
var (
	ErrSignatureMissing   = errors.New("signature header is missing")
	ErrSignatureMalformed = errors.New("signature header is malformed")
	ErrSignatureStale     = errors.New("signature timestamp is too old")
	ErrSignatureMismatch  = errors.New("signature does not match")
)

// Sign returns the header value for body signed at t with secret.
func Sign(secret string, t time.Time, body []byte) string {
	return hmacsig.Header(secret, "v0", strconv.FormatInt(t.Unix(), 10), body)
}

// Verify checks header against body: HMAC-SHA256(secret, "<t>.<body>"),
// with t no older than SignatureTolerance (nor further in the future).
func Verify(secret, header string, body []byte, now time.Time) error {
	if err := CheckHeader(header, now); err != nil {
		return err
	}
	ts, _, sigs, _ := hmacsig.Parse(header, "v0")
	want := hmacsig.Sum(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrSignatureMismatch
}

// CheckHeader is what Verify checks before the body: a signature header is
// present, well formed and fresh. It lets a receiver refuse a request
// without reading a large body it would throw away.
func CheckHeader(header string, now time.Time) error {
	if strings.TrimSpace(header) == "" {
		return ErrSignatureMissing
	}
	_, unix, _, err := hmacsig.Parse(header, "v0")
	if err != nil {
		return ErrSignatureMalformed
	}
	age := now.Sub(time.Unix(unix, 0))
	if age > SignatureTolerance || age < -5*time.Minute {
		return ErrSignatureStale
	}
	return nil
}

// Webhook is a post-call webhook envelope. Unknown fields are kept in Data.
// event_timestamp is not read: nothing depends on it, and a value of a
// shape we did not expect must not make a genuine webhook fail.
type Webhook struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// TranscriptionData is the data of a post_call_transcription webhook.
type TranscriptionData struct {
	AgentID        string          `json:"agent_id"`
	ConversationID string          `json:"conversation_id"`
	Status         string          `json:"status"`
	Transcript     json.RawMessage `json:"transcript"`
	Metadata       json.RawMessage `json:"metadata"`
	Analysis       json.RawMessage `json:"analysis"`
	ClientData     struct {
		DynamicVariables map[string]any `json:"dynamic_variables"`
	} `json:"conversation_initiation_client_data"`
}

// Analysis is the part of ElevenLabs' analysis callqueue reads.
type Analysis struct {
	CallSuccessful    string `json:"call_successful"`
	TranscriptSummary string `json:"transcript_summary"`
}

// Metadata is the part of the call metadata callqueue reads.
type Metadata struct {
	CallDurationSecs  float64 `json:"call_duration_secs"`
	TerminationReason string  `json:"termination_reason"`
}

// FailureData is the data of a call_initiation_failure webhook.
type FailureData struct {
	AgentID        string          `json:"agent_id"`
	ConversationID string          `json:"conversation_id"`
	FailureReason  string          `json:"failure_reason"`
	Metadata       json.RawMessage `json:"metadata"`
}

// FailureMetadata is a call_initiation_failure's metadata: the telephony
// provider's own report, "twilio" (Twilio's status callback, CallSid, To,
// CallStatus...) or "sip" (call_sid, sip_status_code, error_reason...).
type FailureMetadata struct {
	Type string         `json:"type"`
	Body map[string]any `json:"body"`
}

// ProviderCallID is the telephony id the failure names: Twilio's CallSid
// or the SIP trunk's call_sid, which the outbound-call answer gave as
// callSid / sip_call_id. Whichever is present counts, whatever the type
// says, since only one of them is ever sent.
func (m FailureMetadata) ProviderCallID() string {
	for _, k := range []string{"CallSid", "call_sid"} {
		if id, ok := m.Body[k].(string); ok && id != "" {
			return id
		}
	}
	return ""
}

// DialledNumber is the number the failed call was placed to, when the
// report says: Twilio's To. The SIP trunk's report does not name it.
func (m FailureMetadata) DialledNumber() string {
	if to, ok := m.Body["To"].(string); ok {
		return strings.TrimSpace(to)
	}
	return ""
}

// AudioData is the data of a post_call_audio webhook.
type AudioData struct {
	AgentID        string `json:"agent_id"`
	ConversationID string `json:"conversation_id"`
	FullAudio      string `json:"full_audio"`
}

// ErrUnhandledType is a webhook of a type callqueue does not handle: a
// receiver answers it 2xx and ignores it, since ElevenLabs disables a
// webhook that keeps failing and sends new event types as it adds them.
var ErrUnhandledType = errors.New("webhook type is not handled")

// ParseWebhook decodes and checks the envelope. A JSON object whose type is
// missing or not one of ours is ErrUnhandledType (wrapped).
func ParseWebhook(body []byte) (Webhook, error) {
	var envelope struct {
		Type json.RawMessage `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return Webhook{}, fmt.Errorf("body is not a JSON object: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return Webhook{}, errors.New("body is not a JSON object")
	}
	w := Webhook{Data: envelope.Data}
	if json.Unmarshal(envelope.Type, &w.Type) != nil {
		w.Type = ""
	}
	switch w.Type {
	case TypeTranscription, TypeAudio, TypeInitiationFailure:
	case "":
		return w, fmt.Errorf("%w: no type", ErrUnhandledType)
	default:
		return w, fmt.Errorf("%w: %q", ErrUnhandledType, w.Type)
	}
	if len(w.Data) == 0 || w.Data[0] != '{' {
		return w, errors.New("data must be an object")
	}
	return w, nil
}

// ClientData is the answer to a conversation-initiation webhook.
type ClientData struct {
	Type               string         `json:"type"`
	DynamicVariables   map[string]any `json:"dynamic_variables"`
	ConversationConfig map[string]any `json:"conversation_config_override,omitempty"`
}

// SystemVariablePrefix starts the names of ElevenLabs' own dynamic
// variables (system__call_sid, system__time...), which a client may not set.
const SystemVariablePrefix = "system__"

// ClientDataType is ClientData's type.
const ClientDataType = "conversation_initiation_client_data"
