package queue

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// OriginateBody is a validated call-originate request.
type OriginateBody struct {
	CallID           uuid.UUID       `json:"callId"`
	PhoneNumber      string          `json:"phoneNumber"`
	RecordID         string          `json:"recordId,omitempty"`
	Priority         int             `json:"priority,omitempty"`
	Timezone         string          `json:"timezone,omitempty"`
	DynamicVariables json.RawMessage `json:"dynamicVariables,omitempty"`
	// IdempotencyKeys are the request's natural keys (Idempotency-Key,
	// record_id + phone_number).
	IdempotencyKeys []string  `json:"idempotencyKeys,omitempty"`
	ReceivedAt      time.Time `json:"receivedAt"`
}

// EventBody is a validated call event from the dialler.
type EventBody struct {
	EventType string `json:"eventType"`
	// CallRef is our call id or the dialler's id for the call.
	CallRef        string   `json:"callRef"`
	ConversationID string   `json:"conversationId,omitempty"`
	DurationSecs   *float64 `json:"durationSecs,omitempty"`
	// Reason is how call_end says the call ended (contract §4).
	Reason     string          `json:"reason,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	ReceivedAt time.Time       `json:"receivedAt"`
	TraceID    string          `json:"traceId,omitempty"`
	// Traceparent is the W3C trace context of the webhook that sent the
	// event: events of several webhooks share a message, not a trace.
	Traceparent string `json:"traceparent,omitempty"`
	// DedupeKey is the webhook's natural key: the same webhook delivered
	// twice within DedupeWindow is applied once.
	DedupeKey string `json:"dedupeKey,omitempty"`
}

// DedupeWindow is how long a call event's natural key is remembered.
const DedupeWindow = 10 * time.Minute

// PostcallBody is an agent's post-call webhook: the ElevenLabs body as
// received, except audio, which is replaced by its size and hash.
type PostcallBody struct {
	Type        string          `json:"type"`
	Raw         json.RawMessage `json:"raw,omitempty"`
	AudioBytes  int             `json:"audioBytes,omitempty"`
	AudioSHA256 string          `json:"audioSha256,omitempty"`
	// ConversationID is set for audio, whose raw body is not kept.
	ConversationID string    `json:"conversationId,omitempty"`
	ReceivedAt     time.Time `json:"receivedAt"`
}
