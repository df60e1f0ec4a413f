package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/analysis"
	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// CallEvent is something that happened to a call, addressed by our id, the
// dialler's id, the agent's conversation id or, last, the phone number.
type CallEvent struct {
	IntegrationID  uuid.UUID
	CallID         uuid.UUID
	ExternalCallID string
	ConversationID string
	Phone          string
	// Dial, when set, is what a platform report tells of the dial it is
	// about, for when it names no id we recorded: it may still find the
	// one attempt waiting for that dial's answer (see DialClue).
	Dial *DialClue
	// Attempt, when not zero, is the attempt the event belongs to; an event
	// of an earlier attempt is late and changes nothing.
	Attempt int
	Event   callstate.Event
	// Claim, when set, is the token of the claim whose dial this event is
	// the result of: it applies only while the event's attempt is the one
	// that claim recorded. Applied again after a lost COMMIT answer, once
	// the call was claimed anew at the same attempt, it changes nothing.
	Claim    uuid.UUID
	Postcall *PostcallData
	Detail   map[string]any
	TraceID  string
	// Traceparent is the trace context of the span applying the event:
	// what it causes later (a CRM update, an LLM analysis) continues it.
	Traceparent string
	// Key, when set, makes the event apply at most once (a message's
	// stream position, so a redelivery is recognised).
	Key string
	// DedupeTTL, when set, makes a webhook's event apply once: it is
	// identified by its call, attempt and event type (see naturalKeys).
	DedupeTTL time.Duration
	// DedupeKey is the webhook's body key. It counts only for events that
	// do not name their attempt: a repeat of such a body within DedupeTTL
	// is a duplicate whichever attempt is current by then.
	DedupeKey string
	At        time.Time
}

// PostcallData is what the agent reported after the call.
type PostcallData struct {
	Transcript json.RawMessage
	Analysis   json.RawMessage
	Metadata   json.RawMessage
	Summary    string
	// DurationSecs is the call's length as the agent measured it, for calls
	// that end without the dialler's call_end (ElevenLabs dialling).
	DurationSecs *float64
}

// Applied is the effect of one CallEvent.
type Applied struct {
	Event         CallEvent
	CallID        uuid.UUID
	IntegrationID uuid.UUID
	Found         bool
	Duplicate     bool
	// Parked: the event names a dialler id not recorded yet; it is applied
	// when the dial's answer records it.
	Parked bool
	// ParkedDropped counts the integration's oldest parked events this one
	// pushed out, beyond MaxParkedPerIntegration.
	ParkedDropped int
	Decision      callstate.Decision
}

// FreesSlot reports whether the event released a concurrency slot.
func (a Applied) FreesSlot() bool { return a.Decision.Changed && a.Decision.HoldsSlotChange() < 0 }

// ApplyEvents applies events in order in one transaction: it finds and
// locks their calls, runs the state machine and writes each change with its
// history row. Events whose Key was seen before are skipped.
func (s *Store) ApplyEvents(ctx context.Context, events []CallEvent) ([]Applied, error) {
	var out []Applied
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = applyEvents(ctx, tx, events, s.hooks, s.dbClock())
		return err
	})
	return out, err
}

type lockedCall struct {
	Call
	policy config.CallHandling
	// hasCRM: the integration's CRM receives outcome updates.
	hasCRM bool
	// hasLLM: the integration's LLM analyses finished calls (queued, see
	// pending_analyses), amending the agent's own analysis.
	hasLLM bool
	// agentTimezone is where a recipient window falls back to.
	agentTimezone string
}

// decisionInput is what the state machine decides on.
func (c *lockedCall) decisionInput() callstate.Call {
	return callstate.Call{Status: c.Status, Attempt: c.Attempt, MaxAttempts: c.MaxAttempts,
		Dialing: c.DialState == dialStateDialing, SlotHeld: c.SlotTakenAt != nil}
}

// clock is dbNow's parameter (Store.dbClock).
func applyEvents(ctx context.Context, tx pgx.Tx, events []CallEvent, hooks *ApplyHooks, clock *time.Time) ([]Applied, error) {
	if len(events) == 0 {
		return nil, nil
	}
	out := make([]Applied, len(events))
	// The message keys are claimed and the events' names resolved in one
	// round trip: duplicates are resolved too, and their answer dropped.
	var p pipeline
	keys := claimKeysIn(&p, events[0].At, messageKeys(events))
	ids, attempts := make([]uuid.UUID, len(events)), make([]int, len(events))
	resolveNamesIn(&p, events, ids, attempts)
	if err := p.send(ctx, tx); err != nil {
		return nil, err
	}
	fresh := keys.fresh()
	for i, ev := range events {
		out[i].IntegrationID, out[i].Event = ev.IntegrationID, ev
		out[i].Duplicate = !fresh[i]
		if !fresh[i] {
			ids[i], attempts[i] = uuid.Nil, 0
		}
	}
	// Resolve every event to a call id (and, where it says, its attempt).
	resolve := func(i int) error {
		id, attempt, err := resolveCall(ctx, tx, events[i])
		ids[i] = id
		if attempt > 0 && events[i].Attempt == 0 {
			events[i].Attempt = attempt
		}
		return err
	}
	for i := range events {
		if !fresh[i] {
			continue
		}
		if ids[i] == uuid.Nil {
			var err error
			if ids[i], attempts[i], err = resolveOther(ctx, tx, events[i]); err != nil {
				return nil, err
			}
		}
		if attempts[i] > 0 && events[i].Attempt == 0 {
			events[i].Attempt = attempts[i]
		}
	}
	hooks.resolved()
	// Park and release serialise on the dialler ids involved, taken before
	// any call row: an event about to be parked looks its id up again
	// under the lock, so a dial's answer recorded meanwhile is seen, and a
	// dial's answer releasing parked events sees every row parked before it.
	if err := lockDiallerIDs(ctx, tx, diallerIDsToLock(events, ids, fresh)); err != nil {
		return nil, err
	}
	for i := range events {
		if fresh[i] && ids[i] == uuid.Nil && parkable(events[i]) {
			if err := resolve(i); err != nil {
				return nil, err
			}
		}
	}
	calls, err := lockCalls(ctx, tx, events, ids, nil)
	if err != nil {
		return nil, err
	}
	natural, err := claimKeys(ctx, tx, events[0].At, naturalKeys(events, ids, calls, fresh))
	if err != nil {
		return nil, err
	}
	current, err := currentClaims(ctx, tx, events, ids)
	if err != nil {
		return nil, err
	}
	for i := range events {
		if fresh[i] && (!natural[i] || !current[i]) {
			fresh[i], out[i].Duplicate = false, true
		}
	}
	cs := newChangeSet(clock)
	for i, ev := range events {
		c := calls[ids[i]]
		if !fresh[i] || c == nil || c.IntegrationID != ev.IntegrationID {
			continue
		}
		out[i].Found, out[i].CallID, out[i].Event = true, c.ID, ev
		if ev.Attempt != 0 && ev.Attempt != c.Attempt {
			// About another attempt: kept in the history, never applied to
			// the current one.
			out[i].Decision = callstate.Decision{From: c.Status, To: c.Status, Attempt: c.Attempt,
				Why: fmt.Sprintf("event of attempt %d; the call is on attempt %d", ev.Attempt, c.Attempt)}
			cs.note(&c.Call, ev, out[i].Decision.Why)
			cs.honourDoNotCall(c, ev)
			continue
		}
		d := callstate.Next(c.decisionInput(), ev.Event, c.policy, ev.At)
		out[i].Decision = d
		if !d.Changed {
			if ev.Event.Kind.Reported() || ev.Event.Kind == callstate.DialAccepted {
				// Late, out of order or about a finished call: acknowledged,
				// so kept where an operator looks for it. A dial's answer
				// after the platform's reports still records the ids it
				// carries (note), which later events may name the call by.
				if ev.Attempt == 0 {
					ev.Attempt = c.Attempt
				}
				cs.note(&c.Call, ev, d.Why)
			}
			if ev.Postcall != nil {
				// The report of the current attempt, come after the call
				// moved on (a short call waiting for its retry, a failed or
				// timed-out one): kept, analysed and honoured all the same.
				cs.keepReport(&c.Call, ev)
				cs.queueAnalysis(c, ev)
				cs.honourDoNotCall(c, ev)
			}
			continue
		}
		cs.record(&c.Call, ev, d)
		if event := outboxEvent(d); event != "" && c.hasCRM {
			cs.outbox = append(cs.outbox, outboxIntent{callID: c.ID, event: event, traceparent: ev.Traceparent})
		}
		if ev.Postcall != nil {
			// The call has the agent's analysis now; the LLM's amends it
			// later, off this transaction's critical path.
			cs.queueAnalysis(c, ev)
			cs.honourDoNotCall(c, ev)
		}
	}
	var parked []CallEvent
	for i, ev := range events {
		if fresh[i] && !out[i].Found && ev.CallID == uuid.Nil && parkable(ev) {
			parked = append(parked, ev)
			out[i].Parked = true
		}
	}
	if err := park(ctx, tx, parked); err != nil {
		return nil, err
	}
	dropped, err := dropParkedBeyondQuota(ctx, tx, parked)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if n := dropped[out[i].Event.IntegrationID]; n > 0 && out[i].Parked {
			out[i].ParkedDropped, dropped[out[i].Event.IntegrationID] = n, 0
		}
	}
	if err := cs.flush(ctx, tx); err != nil {
		return nil, err
	}
	hooks.parked(len(parked))
	// The dialler's ids just recorded may be what parked events wait for.
	if len(cs.attemptsExt) > 0 {
		unparked, err := unpark(ctx, tx, cs.attemptsExt, events[len(events)-1].At)
		if err != nil {
			return nil, err
		}
		if len(unparked) > 0 {
			more, err := applyEvents(ctx, tx, unparked, hooks, clock)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	return out, nil
}

// currentClaims reports, for each event, whether it is not fenced by a
// claim or its claim is the one recorded on the event's attempt. An attempt
// claimed anew (a result already applied gave the call back to the queue)
// or gone (aborted, deferred) fences out the earlier claim's results.
func currentClaims(ctx context.Context, tx pgx.Tx, events []CallEvent, ids []uuid.UUID) ([]bool, error) {
	out := make([]bool, len(events))
	var calls []uuid.UUID
	var attempts []int
	var tokens []uuid.UUID
	for i, ev := range events {
		out[i] = ev.Claim == uuid.Nil
		if !out[i] && ids[i] != uuid.Nil {
			calls, attempts, tokens = append(calls, ids[i]), append(attempts, ev.Attempt), append(tokens, ev.Claim)
		}
	}
	if len(calls) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT a.call_id, a.attempt, a.claim_token FROM call_attempts a
		JOIN unnest($1::uuid[], $2::int[], $3::uuid[]) AS v (call_id, attempt, token)
		ON a.call_id = v.call_id AND a.attempt = v.attempt AND a.claim_token = v.token`, calls, attempts, tokens)
	if err != nil {
		return nil, err
	}
	type claim struct {
		call    uuid.UUID
		attempt int
		token   uuid.UUID
	}
	held := map[claim]bool{}
	for rows.Next() {
		var c claim
		if err := rows.Scan(&c.call, &c.attempt, &c.token); err != nil {
			rows.Close()
			return nil, err
		}
		held[c] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, ev := range events {
		if ev.Claim != uuid.Nil {
			out[i] = held[claim{ids[i], ev.Attempt, ev.Claim}]
		}
	}
	return out, nil
}

// lockCalls locks the calls events were resolved to, each only for an
// event of its own integration: a call named by another tenant (its id is
// no secret once dialled) is not found, so that tenant can neither move it
// nor record its event keys (naturalKeys) ahead of the real events.
//
// The statements of after, when there are any, go in the same round trip,
// after the lock.
func lockCalls(ctx context.Context, tx batchSender, events []CallEvent, ids []uuid.UUID, after *pipeline) (map[uuid.UUID]*lockedCall, error) {
	var want, owners, integrations []uuid.UUID
	for i, id := range ids {
		if id != uuid.Nil {
			want, owners = append(want, id), append(owners, events[i].IntegrationID)
			if !slices.Contains(integrations, events[i].IntegrationID) {
				integrations = append(integrations, events[i].IntegrationID)
			}
		}
	}
	out := map[uuid.UUID]*lockedCall{}
	if len(want) == 0 {
		if after != nil {
			return out, after.send(ctx, tx)
		}
		return out, nil
	}
	// The calls, their integrations' config and their campaigns' call
	// handling in one round trip: a call is locked only for an event of its
	// own integration, so the events' integrations are the calls'.
	var p pipeline
	// Rows are locked in id order so that concurrent batches cannot deadlock.
	p.query("lock calls", func(rows pgx.Rows) error {
		c, err := scanCall(rows)
		if err != nil {
			return err
		}
		out[c.ID] = &lockedCall{Call: c}
		return nil
	}, `SELECT `+callColumns+` FROM calls c WHERE c.id = ANY($1)
		AND EXISTS (SELECT 1 FROM unnest($1::uuid[], $2::uuid[]) AS v (id, integration_id)
			WHERE v.id = c.id AND v.integration_id = c.integration_id)
		ORDER BY c.id FOR UPDATE`, want, owners)
	configs := decisionConfigsIn(&p, integrations)
	overlays := campaignOverlaysIn(&p, want)
	if after != nil {
		p.then(after)
	}
	if err := p.send(ctx, tx); err != nil {
		return nil, err
	}
	for _, c := range out {
		cfg := configs.of(c.IntegrationID)
		c.policy, c.hasCRM = cfg.CallHandling, cfg.CRM.Kind != "none" && cfg.CRM.Kind != ""
		c.Call.policy = cfg.Data()
		c.hasLLM = llmConfigured(cfg.Raw[analysis.ConfigKey])
		c.agentTimezone = cfg.Agent.Timezone
	}
	overlays.overlay(out)
	return out, nil
}

// decisionConfigs is what deciding a call's events needs of several
// integrations' config (call_handling, crm, analysis, agent and data),
// read by a statement queued in a pipeline.
type decisionConfigs struct {
	raw     map[uuid.UUID]map[string]json.RawMessage
	decoded map[uuid.UUID]config.Integration
}

// decisionConfigsIn queues the read of integrations' configs in p.
func decisionConfigsIn(p *pipeline, integrations []uuid.UUID) *decisionConfigs {
	d := &decisionConfigs{raw: map[uuid.UUID]map[string]json.RawMessage{}, decoded: map[uuid.UUID]config.Integration{}}
	for _, id := range integrations {
		d.raw[id] = map[string]json.RawMessage{}
	}
	if len(integrations) == 0 {
		return d
	}
	p.query("read configs", func(rows pgx.Rows) error {
		var id uuid.UUID
		var key string
		var value []byte
		if err := rows.Scan(&id, &key, &value); err != nil {
			return err
		}
		d.raw[id][key] = value
		return nil
	}, `SELECT integration_id, key, value FROM integration_config
		WHERE key IN ('call_handling', 'crm', 'analysis', 'agent', 'data') AND integration_id = ANY($1)`, integrations)
	return d
}

// of is an integration's config, once the pipeline was sent.
func (d *decisionConfigs) of(id uuid.UUID) config.Integration {
	cfg, ok := d.decoded[id]
	if !ok {
		cfg = config.Decode(d.raw[id])
		d.decoded[id] = cfg
	}
	return cfg
}

// NoteEvent adds an entry about the call's content (post-call audio) to
// the matching call's history without moving it. An unmatched event is
// dropped, and so is the note where the integration's data.store keeps no
// content.
func (s *Store) NoteEvent(ctx context.Context, ev CallEvent, kind string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		fresh, err := claimKeys(ctx, tx, ev.At, messageKeys([]CallEvent{ev}))
		if err != nil || !fresh[0] {
			return err
		}
		id, attempt, err := resolveCall(ctx, tx, ev)
		if err != nil || id == uuid.Nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO call_events (call_id, attempt, kind, detail, trace_id, occurred_at)
			SELECT id, COALESCE(NULLIF($2, 0), attempt), $3, $4, $5, $6 FROM calls WHERE id = $1 AND integration_id = $7
				AND NOT EXISTS (SELECT 1 FROM integration_config k WHERE k.integration_id = $7 AND k.key = 'data'
					AND k.value->>'store' IN ('no_content', 'minimal'))`,
			id, attempt, kind, ev.Detail, nullable(ev.TraceID), ev.At, ev.IntegrationID)
		return err
	})
}
