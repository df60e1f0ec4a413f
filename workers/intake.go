package workers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/store"
)

// originateHandler stores queued calls and kicks their integrations'
// dispatch.
func (w *Workers) originateHandler() queue.Handler[store.NewCall] {
	return queue.Handler[store.NewCall]{
		Decode: func(d queue.Delivery) (store.NewCall, error) {
			var b queue.OriginateBody
			if err := json.Unmarshal(d.Data, &b); err != nil {
				return store.NewCall{}, err
			}
			if b.CallID == uuid.Nil || b.PhoneNumber == "" {
				return store.NewCall{}, errors.New("originate body lacks callId or phoneNumber")
			}
			return store.NewCall{ID: b.CallID, IntegrationID: d.IntegrationID, PhoneNumber: b.PhoneNumber,
				RecordID: b.RecordID, Priority: b.Priority, Timezone: b.Timezone, DynamicVariables: b.DynamicVariables,
				IdempotencyKeys: b.IdempotencyKeys, TraceID: d.TraceID, ReceivedAt: b.ReceivedAt}, nil
		},
		Handle: func(ctx context.Context, calls []store.NewCall) error {
			touched, err := w.store.InsertCalls(ctx, calls, w.clock.Now())
			if err != nil {
				return err
			}
			for _, id := range touched {
				w.Dispatcher.Kick(id)
			}
			return nil
		},
	}
}

// eventsHandler applies the dialler's call events; one message holds the
// events of several webhooks (queue.Batcher).
func (w *Workers) eventsHandler() queue.Handler[[]store.CallEvent] {
	return queue.Handler[[]store.CallEvent]{
		Decode: func(d queue.Delivery) ([]store.CallEvent, error) {
			var batch queue.EventBatch
			if err := json.Unmarshal(d.Data, &batch); err != nil {
				return nil, err
			}
			out := make([]store.CallEvent, 0, len(batch.Events))
			for i, b := range batch.Events {
				ev, err := decodeEvent(b)
				if err != nil {
					return nil, err
				}
				ev.IntegrationID = d.IntegrationID
				ev.Key = fmt.Sprintf("%s:%d", d.Key, i)
				ev.TraceID = cmp.Or(b.TraceID, d.TraceID)
				out = append(out, ev)
			}
			return out, nil
		},
		Handle: func(ctx context.Context, batches [][]store.CallEvent) error {
			var events []store.CallEvent
			for _, b := range batches {
				events = append(events, b...)
			}
			// Stamp events when they are applied: the clock decides retry times.
			now := w.clock.Now()
			for i := range events {
				events[i].At = now
			}
			applied, err := w.store.ApplyEvents(ctx, events)
			if err != nil {
				return err
			}
			w.applied(applied)
			return nil
		},
	}
}

// endOutcome maps call_end's reason onto an attempt's outcome; completed
// (or none) leaves the duration to decide.
func endOutcome(reason string) string {
	switch reason {
	case "no_answer":
		return callstate.OutcomeNoAnswer
	case "busy":
		return callstate.OutcomeBusy
	case "voicemail":
		return callstate.OutcomeVoicemail
	case "failed":
		return callstate.OutcomeDialError
	}
	return ""
}

func decodeEvent(b queue.EventBody) (store.CallEvent, error) {
	// The ref may be our call id or the dialler's (which may look like a
	// uuid too): the store tries ours first, then the dialler's.
	ev := store.CallEvent{ConversationID: b.ConversationID, DedupeKey: b.DedupeKey, DedupeTTL: queue.DedupeWindow,
		ExternalCallID: b.CallRef}
	switch b.EventType {
	case "call_start", "media_start":
		ev.Event = callstate.Event{Kind: callstate.CallStart}
	case "call_end", "media_end":
		// Without a duration the call is not judged short: its reason, or
		// the post-call, says how it went.
		ev.Event = callstate.Event{Kind: callstate.CallEnd, Reason: endOutcome(b.Reason), DurationUnknown: b.DurationSecs == nil}
		if b.DurationSecs != nil {
			ev.Event.DurationSecs = *b.DurationSecs
		}
	default:
		return ev, errors.New("unknown eventType " + b.EventType)
	}
	ev.Detail = map[string]any{"eventType": b.EventType}
	if len(b.Metadata) > 0 {
		ev.Detail["metadata"] = b.Metadata
	}
	return ev, nil
}
