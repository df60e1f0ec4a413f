package workers

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/analysis"
	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// postcallHandler applies the agent's post-call webhooks: the transcript
// and analysis complete the call; an initiation failure ends the attempt
// under the retry policy; audio is recorded as present.
func (w *Workers) postcallHandler() queue.Handler[store.CallEvent] {
	return queue.Handler[store.CallEvent]{
		Decode: func(d queue.Delivery) (store.CallEvent, error) {
			var b queue.PostcallBody
			if err := json.Unmarshal(d.Data, &b); err != nil {
				return store.CallEvent{}, err
			}
			ev, err := decodePostcall(b)
			ev.IntegrationID, ev.TraceID, ev.Key, ev.At = d.IntegrationID, d.TraceID, d.Key, b.ReceivedAt
			ev.Traceparent = d.Header.Get(tracing.HeaderTraceparent)
			return ev, err
		},
		Handle: func(ctx context.Context, events []store.CallEvent) error {
			// No LLM here: a finished call queues its LLM analysis in the
			// same transaction (see Analyses), so one tenant's slow LLM
			// holds up no other tenant's post-calls.
			now := w.clock.Now()
			for i := range events {
				events[i].At = now
			}
			var transitions []store.CallEvent
			for _, ev := range events {
				if ev.Event.Kind == kindAudio {
					if err := w.store.NoteEvent(ctx, ev, string(kindAudio)); err != nil {
						return err
					}
					continue
				}
				transitions = append(transitions, ev)
			}
			if len(transitions) == 0 {
				return nil
			}
			spans := startApplySpans(ctx, transitions)
			applied, err := w.store.ApplyEvents(ctx, transitions)
			endApplySpans(spans, applied, err)
			if err != nil {
				return err
			}
			w.applied(applied)
			return nil
		},
	}
}

// kindAudio marks a post_call_audio note: history only, no transition.
const kindAudio callstate.Kind = "postcall_audio"

func decodePostcall(b queue.PostcallBody) (store.CallEvent, error) {
	var ev store.CallEvent
	if b.Type == elevenlabs.TypeAudio {
		// Audio only says the recording exists; the call's state is not
		// touched. It is kept in the history of the matching call.
		ev.ConversationID = b.ConversationID
		ev.Event = callstate.Event{Kind: kindAudio}
		ev.Detail = map[string]any{"audioBytes": b.AudioBytes, "audioSha256": b.AudioSHA256, "type": b.Type}
		return ev, nil
	}
	wh, err := elevenlabs.ParseWebhook(b.Raw)
	if err != nil {
		return ev, err
	}
	switch wh.Type {
	case elevenlabs.TypeTranscription:
		var data elevenlabs.TranscriptionData
		if err := json.Unmarshal(wh.Data, &data); err != nil {
			return ev, err
		}
		ev.ConversationID = data.ConversationID
		matchByClientData(&ev, data.ClientData.DynamicVariables)
		res := analysis.FromElevenLabs(data.Analysis)
		ev.Postcall = &store.PostcallData{Transcript: data.Transcript, Analysis: data.Analysis, Metadata: data.Metadata}
		// The conversation's length goes through the short-call rule like
		// call_end's, and its termination reason maps onto the same outcomes.
		ev.Event = callstate.Event{Kind: callstate.Postcall, DurationUnknown: true}
		var meta struct {
			CallDurationSecs  *float64 `json:"call_duration_secs"`
			TerminationReason string   `json:"termination_reason"`
		}
		if json.Unmarshal(data.Metadata, &meta) == nil {
			if d := meta.CallDurationSecs; d != nil && *d >= 0 {
				ev.Postcall.DurationSecs = d
				ev.Event.DurationSecs, ev.Event.DurationUnknown = *d, false
			}
			ev.Event.Reason = terminationOutcome(meta.TerminationReason)
		}
		applyAnalysis(ev.Postcall, res)
		ev.Detail = map[string]any{"type": wh.Type, "status": data.Status, "verdict": res.Outcome}
		if meta.TerminationReason != "" {
			ev.Detail["terminationReason"] = meta.TerminationReason
		}
	case elevenlabs.TypeInitiationFailure:
		var data elevenlabs.FailureData
		if err := json.Unmarshal(wh.Data, &data); err != nil {
			return ev, err
		}
		ev.ConversationID = data.ConversationID
		var meta elevenlabs.FailureMetadata
		_ = json.Unmarshal(data.Metadata, &meta) // optional
		// Twilio's CallSid or the trunk's call_sid names the attempt whose
		// dial answered it; a failure that overtakes that answer (or whose
		// conversation_id was never recorded) waits for it, parked. When
		// the answer never came (our request timed out, ElevenLabs placed
		// the call all the same) neither id was recorded: the agent and
		// Twilio's number dialled find the one dial still waiting for it.
		ev.ExternalCallID = meta.ProviderCallID()
		ev.Dial = &store.DialClue{AgentID: data.AgentID, Phone: meta.DialledNumber(), ReceivedAt: b.ReceivedAt}
		ev.Event = callstate.Event{Kind: callstate.InitiationFailed, Reason: failureOutcome(data.FailureReason)}
		ev.Detail = map[string]any{"type": wh.Type, "failureReason": data.FailureReason}
	default:
		return ev, errors.New("unexpected webhook type " + wh.Type)
	}
	return ev, nil
}

// matchByClientData takes the attempt's call_id we sent (or a bare call
// id) or the phone from the agent's dynamic variables: the attempt call_id
// names the attempt, the others only the call.
func matchByClientData(ev *store.CallEvent, vars map[string]any) {
	if id, ok := vars["call_id"].(string); ok {
		if parsed, attempt, ok := callstate.ParseAttemptCallID(id); ok {
			ev.CallID, ev.Attempt = parsed, attempt
			return
		}
		if parsed, err := uuid.Parse(id); err == nil {
			ev.CallID = parsed
			return
		}
	}
	for _, k := range []string{"phone_number", "to_number", "caller_id"} {
		if phone, ok := vars[k].(string); ok && phone != "" {
			ev.Phone = phone
			return
		}
	}
}

// applyAnalysis sets a post-call's summary from an analysis and keeps its
// verdict, what it extracted and where it came from in the stored analysis.
func applyAnalysis(p *store.PostcallData, res analysis.Result) {
	p.Summary = res.Summary
	stored := map[string]any{}
	_ = json.Unmarshal(p.Analysis, &stored) // absent or not an object: start afresh
	stored["source"] = res.Source
	// The verdict (call_successful, the LLM's) is the analysis' outcome,
	// never the call's (contract §3).
	delete(stored, "outcome")
	if res.Outcome != "" {
		stored["outcome"] = res.Outcome
	}
	delete(stored, "extracted") // an earlier analysis' fields give way
	if len(res.Extracted) > 0 {
		stored["extracted"] = res.Extracted
	}
	if raw, err := json.Marshal(stored); err == nil {
		p.Analysis = raw
	}
}

// Analyzer runs an LLM over a transcript (analysis.LLM).
type Analyzer interface {
	Analyze(ctx context.Context, integrationKey string, cfg analysis.Config, apiKey string,
		transcript json.RawMessage, fallback analysis.Result) analysis.Result
}

// analysisConfig decodes the "analysis" config key; ok is false when no
// usable LLM is configured.
func analysisConfig(raw json.RawMessage) (cfg analysis.Config, ok bool) {
	if len(raw) == 0 || json.Unmarshal(raw, &cfg) != nil {
		return cfg, false
	}
	return cfg, cfg.Enabled()
}

// failureOutcome maps a call_initiation_failure's failure_reason onto an
// attempt's outcome.
func failureOutcome(reason string) string {
	switch normalizeReason(reason) {
	case "busy", "user_busy":
		return callstate.OutcomeBusy
	case "no_answer", "no_response", "timeout":
		return callstate.OutcomeNoAnswer
	case "voicemail", "voicemail_detected", "machine_detected":
		return callstate.OutcomeVoicemail
	}
	return callstate.OutcomeDialError
}

// terminationOutcome maps a conversation's termination_reason onto the
// outcome of an attempt that did not reach the person: "" for an ordinary
// conversation, whose length decides.
func terminationOutcome(reason string) string {
	r := normalizeReason(reason)
	switch {
	case strings.Contains(r, "voicemail"), strings.Contains(r, "answering_machine"):
		return callstate.OutcomeVoicemail
	case strings.Contains(r, "no_answer"):
		return callstate.OutcomeNoAnswer
	case strings.Contains(r, "busy"):
		return callstate.OutcomeBusy
	}
	return ""
}

func normalizeReason(reason string) string {
	return strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(strings.TrimSpace(reason)))
}
