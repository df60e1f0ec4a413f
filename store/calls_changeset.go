package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// changeSet gathers the writes of a transaction's decided changes, so that
// they reach Postgres as a few set-based statements however many events
// there are; several events for one call collapse into one row update.
type changeSet struct {
	calls        map[uuid.UUID]*Call
	order        []uuid.UUID
	history      [][]any
	attemptsNew  [][]any
	attemptsExt  [][]any
	attemptsConv [][]any
	attemptsEnd  [][]any
	attemptsGone [][]any
	// dialsUnsent are claimed dials (call, attempt) that were not sent.
	dialsUnsent [][]any
	// doNotCall are calls whose analysis asks for their number to be suppressed.
	doNotCall []uuid.UUID
	outbox    []outboxIntent
	// analyses are LLM analyses to queue: call, integration, attempt, at,
	// and the content the call's row will not keep (analysisContent).
	analyses [][]any
	// claimToken marks the attempts a claim records, so that an ambiguous
	// COMMIT can be resolved (resolveClaim).
	claimToken *uuid.UUID
	// clock is dbNow's parameter: a slot taken is stamped with the
	// database's clock, which judges its deadlines (OverdueCalls).
	clock *time.Time
}

// outboxIntent is a CRM update to write once the call's final state is known.
type outboxIntent struct {
	callID      uuid.UUID
	event       string
	traceparent string
}

func newChangeSet(clock *time.Time) *changeSet {
	return &changeSet{calls: map[uuid.UUID]*Call{}, clock: clock}
}

func (cs *changeSet) empty() bool {
	return len(cs.order) == 0 && len(cs.history) == 0 && len(cs.outbox) == 0 && len(cs.analyses) == 0
}

// Dial states of a call's current attempt.
const (
	dialStateNone     = "none"
	dialStateDialing  = "dialing"
	dialStateAccepted = "accepted"
	dialStateFailed   = "failed"
)

// note keeps an event that changes nothing in the call's history, under the
// attempt it is about (an event of an earlier attempt). A dial's answer
// still records the dialler's ids on its own attempt, so that later events
// naming them are recognised as that attempt's.
func (cs *changeSet) note(c *Call, ev CallEvent, why string) {
	if ev.Event.Kind == callstate.DialAccepted && (ev.ExternalCallID != "" || ev.ConversationID != "") {
		cs.attemptsExt = append(cs.attemptsExt, []any{c.ID, ev.Attempt, ev.ExternalCallID, ev.ConversationID})
	}
	if ev.ConversationID != "" {
		// Late events still name their attempt's conversation, so that its
		// post-call is recognised as that attempt's too.
		cs.attemptsConv = append(cs.attemptsConv, []any{c.ID, ev.Attempt, ev.ConversationID})
	}
	detail := historyDetail(ev, callstate.Decision{Why: why})
	detail["ignored"] = true
	cs.history = append(cs.history, []any{c.ID, ev.Attempt, string(ev.Event.Kind), string(c.Status), string(c.Status),
		detail, nullable(ev.TraceID), ev.At})
}

// record applies decision d of event ev to c in memory and notes the writes.
func (cs *changeSet) record(c *Call, ev CallEvent, d callstate.Decision) {
	at := ev.At
	if (ev.Event.Kind == callstate.DialAborted || ev.Event.Kind == callstate.DialDeferred) && d.To != callstate.InProgress {
		// Not sent (a call that went live meanwhile was): no dial for the
		// contact caps and caller numbers' limits.
		cs.dialsUnsent = append(cs.dialsUnsent, []any{c.ID, c.Attempt})
	}
	wasHolding := c.SlotTakenAt != nil
	c.Status, c.Attempt = d.To, d.Attempt
	switch {
	case d.KeepsSlot:
	case !d.To.HoldsSlot():
		c.SlotTakenAt = nil
	case !wasHolding:
		c.SlotTakenAt = &at
	}
	c.NextRetryAt = nil
	if d.To == callstate.RetryScheduled {
		next := d.NextRetryAt
		c.NextRetryAt = &next
	}
	if d.Outcome != "" {
		c.Outcome = &d.Outcome
	}
	switch ev.Event.Kind {
	case callstate.Dial:
		// A new attempt: the call shows this attempt's ids once known.
		c.DialState, c.ExternalCallID, c.ConversationID = dialStateDialing, nil, nil
		cs.attemptsNew = append(cs.attemptsNew, []any{c.ID, c.Attempt, c.IntegrationID, at, cs.claimToken, c.CallerID})
	case callstate.DialAccepted:
		c.DialState = dialStateAccepted
		if ev.ExternalCallID != "" {
			c.ExternalCallID = &ev.ExternalCallID
		}
		if ev.ConversationID != "" {
			c.ConversationID = &ev.ConversationID
		}
		if ev.ExternalCallID != "" || ev.ConversationID != "" {
			cs.attemptsExt = append(cs.attemptsExt, []any{c.ID, c.Attempt, ev.ExternalCallID, ev.ConversationID})
		}
	case callstate.DialFailed:
		c.DialState = dialStateFailed
	case callstate.InitiationFailed:
		if ext := ev.ExternalCallID; ext != "" && c.ExternalCallID == nil && c.DialState == dialStateDialing {
			// A failure of a dial whose answer never came: its dialler id
			// is the attempt's, as the answer would have said.
			if _, _, ours := callstate.ParseAttemptCallID(ext); !ours {
				c.ExternalCallID = &ext
				cs.attemptsExt = append(cs.attemptsExt, []any{c.ID, c.Attempt, ext, ""})
			}
		}
	case callstate.DialDeferred:
		c.DialState = dialStateNone
		cs.attemptsGone = append(cs.attemptsGone, []any{c.ID, c.Attempt + 1})
	case callstate.DialAborted:
		if d.To == callstate.Queued {
			c.DialState = dialStateNone
			cs.attemptsGone = append(cs.attemptsGone, []any{c.ID, c.Attempt + 1})
		} else {
			c.DialState = dialStateFailed // the call went live anyway
		}
	case callstate.CallEnd:
		if !ev.Event.DurationUnknown {
			dur := ev.Event.DurationSecs
			c.DurationSecs = &dur
		}
	}
	if ev.ConversationID != "" && c.ConversationID == nil {
		// The agent's conversation id of this attempt, learnt from its events.
		c.ConversationID = &ev.ConversationID
		cs.attemptsConv = append(cs.attemptsConv, []any{c.ID, c.Attempt, ev.ConversationID})
	}
	if p := ev.Postcall; p != nil {
		c.Transcript, c.Analysis, c.Metadata = p.Transcript, p.Analysis, p.Metadata
		if p.Summary != "" {
			c.Summary = &p.Summary
		}
		if p.DurationSecs != nil && c.DurationSecs == nil {
			c.DurationSecs = p.DurationSecs
		}
	}
	c.noteStorage(ev.Postcall != nil, d.To.Terminal())
	if d.To == callstate.Queued && ev.Event.Kind == callstate.RetryDue {
		// A dial that was not sent keeps the call's place in the queue.
		c.QueuedAt = at
	}
	c.UpdatedAt = at
	cs.touch(c)
	if wasHolding && c.SlotTakenAt == nil && ev.Event.Kind != callstate.DialAborted && ev.Event.Kind != callstate.DialDeferred {
		var dur *float64
		if (ev.Event.Kind == callstate.CallEnd || ev.Event.Kind == callstate.Postcall) && !ev.Event.DurationUnknown {
			dur = &ev.Event.DurationSecs
		}
		cs.attemptsEnd = append(cs.attemptsEnd, []any{c.ID, c.Attempt, at, nullable(d.Outcome), dur})
	}
	cs.history = append(cs.history, []any{c.ID, c.Attempt, string(ev.Event.Kind), string(d.From), string(d.To),
		historyDetail(ev, d), nullable(ev.TraceID), at})
}

func historyDetail(ev CallEvent, d callstate.Decision) map[string]any {
	detail := map[string]any{}
	for k, v := range ev.Detail {
		detail[k] = v
	}
	if d.Outcome != "" {
		detail["outcome"] = d.Outcome
	}
	if d.Why != "" {
		detail["reason"] = d.Why
	}
	if d.Rule != "" {
		detail["retryRule"] = d.Rule
	}
	if ev.Event.Reason != "" && (ev.Event.Kind == callstate.CallEnd || ev.Event.Kind == callstate.Postcall) {
		detail["endReason"] = ev.Event.Reason
	}
	if d.To == callstate.RetryScheduled {
		detail["nextRetryAt"] = d.NextRetryAt.UTC().Format(time.RFC3339Nano)
	}
	if ev.Event.Kind == callstate.CallEnd && !ev.Event.DurationUnknown {
		detail["durationSecs"] = ev.Event.DurationSecs
	}
	if ev.ConversationID != "" {
		detail["conversationId"] = ev.ConversationID
	}
	if ev.ExternalCallID != "" {
		detail["externalCallId"] = ev.ExternalCallID
	}
	return detail
}

func jsonText(raw json.RawMessage) *string {
	if len(raw) == 0 {
		return nil
	}
	s := string(raw)
	return &s
}

// flush writes the change set: attempts first (a dial's attempt row before
// the call that points at it), then the calls, then their history, in one
// round trip (two when a post-call asks never to be called again).
func (cs *changeSet) flush(ctx context.Context, tx pgx.Tx) error {
	var p pipeline
	if err := cs.queue(ctx, tx, &p); err != nil {
		return err
	}
	return p.send(ctx, tx)
}

// queue queues flush's statements on p, after what p holds already, so
// that a caller's own writes share their round trip. It sends p only when
// a statement needs the answers of those before it.
func (cs *changeSet) queue(ctx context.Context, tx pgx.Tx, p *pipeline) error {
	if cs.empty() {
		return nil
	}
	if len(cs.attemptsGone) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsGone)
		p.exec("delete attempts", `DELETE FROM call_attempts a USING unnest($1::uuid[], $2::int[]) AS v (call_id, attempt)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt`, ids, attempts)
	}
	if len(cs.dialsUnsent) > 0 {
		// Read through the number's index: a few rows per number.
		ids, attempts := columns2[uuid.UUID, int](cs.dialsUnsent)
		p.exec("uncount dials", `DELETE FROM contact_dials d USING unnest($1::uuid[], $2::int[]) AS v (call_id, attempt), calls c
			WHERE c.id = v.call_id AND d.phone_key = `+phoneKey+` AND d.call_id = v.call_id AND d.attempt = v.attempt`, ids, attempts)
	}
	if len(cs.attemptsNew) > 0 {
		// After the deletes: a dial aborted earlier in this same batch frees
		// its attempt number. Not a COPY, which would cost a round trip of
		// its own.
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsNew)
		p.exec("insert attempts", `INSERT INTO call_attempts (call_id, attempt, integration_id, started_at, claim_token, caller_id)
			SELECT call_id, attempt, integration_id, started_at, $5, caller_id
			FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::timestamptz[], $6::text[])
				AS v (call_id, attempt, integration_id, started_at, caller_id)`,
			ids, attempts, column[uuid.UUID](cs.attemptsNew, 2), column[time.Time](cs.attemptsNew, 3), cs.claimToken,
			column[*string](cs.attemptsNew, 5))
	}
	if len(cs.attemptsExt) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsExt)
		ext, conv := column[string](cs.attemptsExt, 2), column[string](cs.attemptsExt, 3)
		named := map[string]bool{}
		for i := len(ext) - 1; i >= 0; i-- {
			if named[ext[i]] {
				ext[i] = "" // an earlier answer of this batch naming the same id
			}
			named[ext[i]] = true
		}
		// A dialler may answer every attempt of a call with the same id
		// (it is sent our call id each time), or reuse an id for another
		// call: the attempt answered last takes it over, so the unique
		// index holds and events by it find the dial the dialler reports
		// on from then. Within a batch, the last answer naming an id wins.
		p.exec("update attempts", `UPDATE call_attempts a SET external_call_id = NULL
			FROM call_attempts mine, unnest($1::uuid[], $2::int[], $3::text[]) AS v (call_id, attempt, ext)
			WHERE mine.call_id = v.call_id AND mine.attempt = v.attempt AND v.ext <> ''
				AND a.integration_id = mine.integration_id AND a.external_call_id = v.ext
				AND (a.call_id, a.attempt) <> (v.call_id, v.attempt)`, ids, attempts, ext)
		p.exec("update attempts", `UPDATE call_attempts a SET external_call_id = COALESCE(NULLIF(v.ext, ''), a.external_call_id),
				conversation_id = COALESCE(NULLIF(v.conv, ''), a.conversation_id)
			FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[]) AS v (call_id, attempt, ext, conv)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt`, ids, attempts, ext, conv)
	}
	if len(cs.attemptsConv) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsConv)
		p.exec("update attempts", `UPDATE call_attempts a SET conversation_id = v.conv
			FROM unnest($1::uuid[], $2::int[], $3::text[]) AS v (call_id, attempt, conv)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt AND a.conversation_id IS NULL`, ids, attempts, column[string](cs.attemptsConv, 2))
	}
	if len(cs.attemptsEnd) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsEnd)
		p.exec("end attempts", `UPDATE call_attempts a SET ended_at = v.ended_at, outcome = v.outcome, duration_secs = v.dur
			FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[], $5::float8[]) AS v (call_id, attempt, ended_at, outcome, dur)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt`, ids, attempts, column[time.Time](cs.attemptsEnd, 2), column[*string](cs.attemptsEnd, 3), column[*float64](cs.attemptsEnd, 4))
	}
	if n := len(cs.order); n > 0 {
		var (
			ids                              = make([]uuid.UUID, n)
			statuses, dialStates             = make([]string, n), make([]string, n)
			attempts                         = make([]int, n)
			slots, retries                   = make([]*time.Time, n), make([]*time.Time, n)
			outcomes, exts, convs, summaries = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
			transcripts, analyses, metas     = make([]*string, n), make([]*string, n), make([]*string, n)
			durations                        = make([]*float64, n)
			dataStores                       = make([]string, n)
			callerIDs                        = make([]*string, n)
			clearVariables                   = make([]bool, n)
			queuedAt, updatedAt              = make([]time.Time, n), make([]time.Time, n)
		)
		for i, id := range cs.order {
			c := cs.calls[id]
			ids[i], statuses[i], attempts[i], slots[i], retries[i] = c.ID, string(c.Status), c.Attempt, c.SlotTakenAt, c.NextRetryAt
			outcomes[i], dialStates[i], exts[i], convs[i], durations[i] = c.Outcome, c.DialState, c.ExternalCallID, c.ConversationID, c.DurationSecs
			kept := c.storedContent()
			transcripts[i], analyses[i], metas[i], summaries[i] = kept.transcript, kept.analysis, kept.metadata, kept.summary
			dataStores[i], clearVariables[i] = cmp.Or(c.DataStore, config.StoreEverything), kept.clearVariables
			queuedAt[i], updatedAt[i], callerIDs[i] = c.QueuedAt, c.UpdatedAt, c.CallerID
		}
		// A slot newly taken is stamped by the database's clock; one kept
		// keeps its stamp.
		p.exec("update calls", `UPDATE calls c SET status = v.status, attempt = v.attempt,
				slot_taken_at = CASE WHEN v.slot IS NULL THEN NULL ELSE COALESCE(c.slot_taken_at, `+dbNow(19)+`) END,
				next_retry_at = v.retry, outcome = v.outcome, dial_state = v.dial_state, external_call_id = v.ext,
				conversation_id = v.conv, duration_secs = v.dur, transcript = v.transcript::jsonb, analysis = v.analysis::jsonb,
				call_metadata = v.meta::jsonb, summary = v.summary, queued_at = v.queued_at, updated_at = v.updated_at,
				data_store = v.data_store, caller_id = v.caller_id,
				dynamic_variables = CASE WHEN v.clear_vars THEN '{}'::jsonb ELSE c.dynamic_variables END
			FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::float8[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[],
				$16::timestamptz[], $17::text[], $18::bool[], $20::text[])
				AS v (id, status, attempt, slot, retry, outcome, dial_state, ext, conv, dur, transcript, analysis, meta, summary,
				      queued_at, updated_at, data_store, clear_vars, caller_id)
			WHERE c.id = v.id`,
			ids, statuses, attempts, slots, retries, outcomes, dialStates, exts, convs, durations, transcripts, analyses, metas,
			summaries, queuedAt, updatedAt, dataStores, clearVariables, cs.clock, callerIDs)
	}
	if len(cs.doNotCall) > 0 {
		if err := p.send(ctx, tx); err != nil {
			return err
		}
		if err := suppressRequested(ctx, tx, cs.doNotCall, cs.calls[cs.doNotCall[0]].UpdatedAt); err != nil {
			return fmt.Errorf("suppress numbers: %w", err)
		}
	}
	// A later attempt's post-call replaces an earlier attempt's analysis
	// still waiting: the call's result is the later attempt's, and a worker
	// holding the earlier one loses its lease.
	if len(cs.analyses) > 0 {
		calls, integrations := columns2[uuid.UUID, uuid.UUID](cs.analyses)
		p.exec("queue analyses", `INSERT INTO pending_analyses (call_id, integration_id, attempt, created_at, transcript, agent_analysis,
				trace_parent)
			SELECT call_id, integration_id, attempt, created_at, transcript::jsonb, agent_analysis::jsonb, trace_parent
			FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])
				AS v (call_id, integration_id, attempt, created_at, transcript, agent_analysis, trace_parent)
			ON CONFLICT (call_id) DO UPDATE SET attempt = EXCLUDED.attempt, created_at = EXCLUDED.created_at,
				transcript = EXCLUDED.transcript, agent_analysis = EXCLUDED.agent_analysis, trace_parent = EXCLUDED.trace_parent,
				tries = 0, locked_until = NULL, lease_token = NULL
			WHERE pending_analyses.attempt < EXCLUDED.attempt`, calls, integrations, column[int](cs.analyses, 2), column[time.Time](cs.analyses, 3),
			column[*string](cs.analyses, 4), column[*string](cs.analyses, 5), column[*string](cs.analyses, 6))
	}
	if len(cs.outbox) > 0 {
		awaitsLLM := map[uuid.UUID]bool{}
		for _, a := range cs.analyses {
			awaitsLLM[a[0].(uuid.UUID)] = true
		}
		n := len(cs.outbox)
		ids, integrations, calls, events, payloads, at := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n),
			make([]string, n), make([]string, n), make([]time.Time, n)
		next, traceparents := make([]time.Time, n), make([]*string, n)
		for i, o := range cs.outbox {
			traceparents[i] = nullable(o.traceparent)
			c := cs.calls[o.callID]
			raw, err := json.Marshal(crmPayload(c, o.event))
			if err != nil {
				return err
			}
			ids[i], integrations[i], calls[i], events[i], payloads[i], at[i] = uuid.New(), c.IntegrationID, c.ID, o.event, string(raw), c.UpdatedAt
			next[i] = c.UpdatedAt
			if awaitsLLM[c.ID] {
				// Held for the LLM's analysis, which releases it; sent as it
				// is if the analysis takes longer than AnalysisHold.
				next[i] = c.UpdatedAt.Add(AnalysisHold)
			}
		}
		p.exec("write crm outbox", `INSERT INTO crm_outbox (id, integration_id, call_id, event, payload, next_attempt_at, created_at, trace_parent)
			SELECT id, integration_id, call_id, event, payload::jsonb, next, at, trace_parent
			FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[])
				AS v (id, integration_id, call_id, event, payload, at, next, trace_parent)
			ON CONFLICT (call_id, event) DO NOTHING`, ids, integrations, calls, events, payloads, at, next, traceparents)
	}
	if n := len(cs.history); n > 0 {
		// In the same round trip as the rest: a COPY would cost two more.
		details := make([]string, n)
		for i, row := range cs.history {
			raw, err := json.Marshal(row[5])
			if err != nil {
				return fmt.Errorf("insert history: %w", err)
			}
			details[i] = string(raw)
		}
		p.exec("insert history", `INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, detail, trace_id, occurred_at)
			SELECT call_id, attempt, kind, from_status, to_status, detail::jsonb, trace_id, occurred_at
			FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
				AS v (call_id, attempt, kind, from_status, to_status, detail, trace_id, occurred_at)`,
			column[uuid.UUID](cs.history, 0), column[int](cs.history, 1), column[string](cs.history, 2), column[string](cs.history, 3),
			column[string](cs.history, 4), details, column[*string](cs.history, 6), column[time.Time](cs.history, 7))
	}
	return nil
}

func column[T any](rows [][]any, i int) []T {
	out := make([]T, len(rows))
	for j, r := range rows {
		out[j], _ = r[i].(T)
	}
	return out
}

func columns2[A, B any](rows [][]any) ([]A, []B) { return column[A](rows, 0), column[B](rows, 1) }
