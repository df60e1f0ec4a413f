// Package dialer places outbound calls through the integration's voice
// platform: the Voice Assistant (VA) originate API. Each integration's dials
// go through its own circuit breaker.
package dialer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/elevenlabs"
)

// Request is one dial of one call attempt.
type Request struct {
	IntegrationID    uuid.UUID
	CallID           uuid.UUID
	Attempt          int
	Phone            string
	DynamicVariables json.RawMessage
	Voice            config.Voice
	// CallerID is the number to dial from (voice.caller_ids), "" for the
	// trunk's own; Voice already names its sip_id or agent_phone_number_id.
	CallerID string
	// Secret authenticates with the platform (VA_AUTH_TOKEN).
	Secret string
	// Agent is what the agent gets at the start of the conversation
	// (callerctx.Answer), for a platform that dials without asking
	// agent-init (ElevenLabs); nil sends the call's own variables only.
	Agent *elevenlabs.ClientData
}

// Result is what the platform answered.
type Result struct {
	// ExternalID is the platform's own id for the call, when it gave one.
	ExternalID string
	// ConversationID is ElevenLabs' conversation id, which its post-call
	// webhook carries; empty for the VA.
	ConversationID string
}

// Dialer places a call.
type Dialer interface {
	Originate(ctx context.Context, req Request) (Result, error)
}

// RejectedError is a 4xx answer: this attempt fails, the platform is
// healthy. Reason is our own words, never the platform's body: errors end
// up in call history, where a tenant reads them. Message is the platform's
// own explanation where its documented answer carries one (ElevenLabs'
// message and detail), bounded; ConversationID its id for a conversation
// it opened before failing.
type RejectedError struct {
	Status         int
	Reason         string
	Message        string
	ConversationID string
}

func (e *RejectedError) Error() string {
	text := ""
	switch {
	case e.Status == 0:
		text = "dial rejected: " + e.Reason
	case e.Reason == "":
		text = fmt.Sprintf("dial rejected with %d %s", e.Status, http.StatusText(e.Status))
	default:
		text = fmt.Sprintf("dial rejected with %d: %s", e.Status, e.Reason)
	}
	if e.Message != "" {
		text += ": " + e.Message
	}
	return text
}

// Describe is what a tenant is shown (egress.Described): the status, our
// own reason and the platform's own message about the dial (ElevenLabs'
// success:false message or 4xx detail, bounded and stripped of control
// characters where it is read), never transport text.
func (e *RejectedError) Describe() string {
	text := ""
	switch {
	case e.Status == 0:
		text = "rejected: " + e.Reason
	case e.Reason == "":
		text = egress.BadStatus(e.Status)
	default:
		text = egress.BadStatus(e.Status) + ": " + e.Reason
	}
	if e.Message != "" {
		text += ": " + e.Message
	}
	return text
}

// IsRejected reports whether err is a RejectedError.
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}

// TimeoutDefault bounds one originate request.
const TimeoutDefault = 10 * time.Second

// VA is the Voice Assistant originate client.
type VA struct {
	client *http.Client
}

// NewVA returns a VA client; a nil client gets one with TimeoutDefault
// under the strict egress policy.
func NewVA(client *http.Client) *VA {
	if client == nil {
		client = egress.NewClient(egress.Policy{}, TimeoutDefault)
	}
	return &VA{client: client}
}

type vaOriginate struct {
	PhoneNumber      string          `json:"phone_number"`
	AssistantID      string          `json:"assistant_id"`
	CallID           string          `json:"call_id"`
	DynamicVariables json.RawMessage `json:"dynamic_variables"`
	CallerID         string          `json:"caller_id,omitempty"`
}

// Originate implements Dialer: POST {base_url}/{sip_id}/originate/.
func (v *VA) Originate(ctx context.Context, req Request) (Result, error) {
	vars := req.DynamicVariables
	if len(vars) == 0 {
		vars = json.RawMessage(`{}`)
	}
	body, err := json.Marshal(vaOriginate{PhoneNumber: req.Phone, AssistantID: req.Voice.AssistantID,
		CallID: callstate.AttemptCallID(req.CallID, req.Attempt), DynamicVariables: vars, CallerID: req.CallerID})
	if err != nil {
		return Result{}, err
	}
	url := strings.TrimRight(req.Voice.BaseURL, "/") + "/" + req.Voice.SipID + "/originate/"
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("Authorization", "Bearer "+req.Secret)
	resp, err := v.client.Do(httpReq)
	if err != nil {
		return Result{}, egress.Fail("originate", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Result{ExternalID: externalID(raw)}, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return Result{}, &RejectedError{Status: resp.StatusCode}
	}
	return Result{}, &egress.StatusError{Op: "originate", Status: resp.StatusCode}
}

// externalID finds the VA's id in its answer: callId, call_id or id.
func externalID(raw []byte) string {
	var body map[string]any
	if json.Unmarshal(raw, &body) != nil {
		return ""
	}
	for _, k := range []string{"callId", "call_id", "id"} {
		switch v := body[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return fmt.Sprint(int64(v))
		}
	}
	return ""
}

// Breaking wraps a Dialer with one circuit breaker per integration. A 4xx
// rejection counts as the platform being healthy.
type Breaking struct {
	next     Dialer
	breakers *breaker.Set[Result]
}

// WithBreakers wraps next.
func WithBreakers(next Dialer, breakers *breaker.Set[Result]) *Breaking {
	return &Breaking{next: next, breakers: breakers}
}

// Originate implements Dialer.
func (b *Breaking) Originate(ctx context.Context, req Request) (Result, error) {
	return b.breakers.Execute(req.IntegrationID.String(), func() (Result, error) { return b.next.Originate(ctx, req) })
}

// Allows reports whether the integration's breaker lets dials through.
func (b *Breaking) Allows(integrationID uuid.UUID) bool {
	return b.breakers.Allows(integrationID.String())
}

// Breakers returns the breaker set, for health and metrics.
func (b *Breaking) Breakers() *breaker.Set[Result] { return b.breakers }
