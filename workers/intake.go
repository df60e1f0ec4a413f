package workers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
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
				IdempotencyKeys: b.IdempotencyKeys, TraceID: d.TraceID, Traceparent: d.Header.Get(tracing.HeaderTraceparent),
				ReceivedAt: b.ReceivedAt}, nil
		},
		Handle: func(ctx context.Context, calls []store.NewCall) error {
			// Each call's intake is a span of its webhook's trace; the call
			// keeps that span's context for its claims and dials.
			spans := make([]trace.Span, len(calls))
			for i, c := range calls {
				var sctx context.Context
				sctx, spans[i] = tracing.Start(tracing.FromTraceparent(ctx, c.Traceparent), "intake call", trace.SpanKindConsumer)
				tracing.Call(spans[i], c.IntegrationID, c.ID, 0)
				calls[i].Traceparent = cmp.Or(tracing.Traceparent(sctx), c.Traceparent)
			}
			touched, err := w.store.InsertCalls(ctx, calls, w.clock.Now())
			endSpans(spans, err)
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
				ev.Traceparent = cmp.Or(b.Traceparent, d.Header.Get(tracing.HeaderTraceparent))
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
			spans := startApplySpans(ctx, events)
			applied, err := w.store.ApplyEvents(ctx, events)
			endApplySpans(spans, applied, err)
			if err != nil {
				return err
			}
			w.applied(applied)
			return nil
		},
	}
}

// startApplySpans starts a span for each event in the trace of the webhook
// that sent it (events of several webhooks are applied together, each in
// its own trace); what an event causes later continues its span.
func startApplySpans(ctx context.Context, events []store.CallEvent) []trace.Span {
	if !tracing.Enabled() {
		return nil
	}
	spans := make([]trace.Span, len(events))
	for i, ev := range events {
		var sctx context.Context
		sctx, spans[i] = tracing.Start(tracing.FromTraceparent(ctx, ev.Traceparent), "apply "+string(ev.Event.Kind), trace.SpanKindConsumer)
		tracing.Call(spans[i], ev.IntegrationID, ev.CallID, ev.Attempt)
		events[i].Traceparent = tracing.Traceparent(sctx)
	}
	return spans
}

// endApplySpans labels each event's span with what it did to its call.
func endApplySpans(spans []trace.Span, applied []store.Applied, err error) {
	for i, span := range spans {
		if err == nil && i < len(applied) {
			a := applied[i]
			tracing.Call(span, uuid.Nil, a.CallID, a.Decision.Attempt)
			tracing.Outcome(span, cmp.Or(a.Decision.Outcome, string(a.Decision.To)))
		}
	}
	endSpans(spans, err)
}

// endSpans ends spans, failed when err is set (a database error's words
// are the operator's: the span says only that it failed).
func endSpans(spans []trace.Span, err error) {
	for _, span := range spans {
		if err != nil {
			tracing.Fail(span, "failed")
		}
		span.End()
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
