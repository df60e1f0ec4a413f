package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	// Attempt, when not zero, is the attempt the event belongs to; an event
	// of an earlier attempt is late and changes nothing.
	Attempt  int
	Event    callstate.Event
	Postcall *PostcallData
	Detail   map[string]any
	TraceID  string
	// Key, when set, makes the event apply at most once (a message's
	// stream position, so a redelivery is recognised).
	Key string
	// DedupeKey, when set, is the event's natural key: a second event with
	// it within DedupeTTL is a duplicate webhook and changes nothing.
	DedupeKey string
	DedupeTTL time.Duration
	At        time.Time
}

// PostcallData is what the agent reported after the call.
type PostcallData struct {
	Transcript json.RawMessage
	Analysis   json.RawMessage
	Metadata   json.RawMessage
	Summary    string
	Outcome    string
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
	Parked   bool
	Decision callstate.Decision
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
		out, err = applyEvents(ctx, tx, events)
		return err
	})
	return out, err
}

type lockedCall struct {
	Call
	policy config.CallHandling
	// hasCRM: the integration's CRM receives outcome updates.
	hasCRM bool
}

func applyEvents(ctx context.Context, tx pgx.Tx, events []CallEvent) ([]Applied, error) {
	out := make([]Applied, len(events))
	fresh, err := claimKeys(ctx, tx, events)
	if err != nil {
		return nil, err
	}
	// Resolve every event to a call id (and, for a dialler id, its attempt).
	ids := make([]uuid.UUID, len(events))
	for i, ev := range events {
		out[i].IntegrationID, out[i].Event = ev.IntegrationID, ev
		out[i].Duplicate = !fresh[i]
		if !fresh[i] {
			continue
		}
		id, attempt, err := resolveCall(ctx, tx, ev)
		if err != nil {
			return nil, err
		}
		ids[i] = id
		if attempt > 0 && events[i].Attempt == 0 {
			events[i].Attempt = attempt
		}
	}
	calls, err := lockCalls(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	cs := newChangeSet()
	for i, ev := range events {
		c := calls[ids[i]]
		if !fresh[i] || c == nil || c.IntegrationID != ev.IntegrationID {
			continue
		}
		out[i].Found, out[i].CallID = true, c.ID
		d := callstate.Decision{From: c.Status, To: c.Status, Attempt: c.Attempt, Why: "event of an earlier attempt"}
		if ev.Attempt == 0 || ev.Attempt == c.Attempt {
			d = callstate.Next(callstate.Call{Status: c.Status, Attempt: c.Attempt, MaxAttempts: c.MaxAttempts}, ev.Event, c.policy, ev.At)
		}
		out[i].Decision = d
		if !d.Changed {
			continue
		}
		cs.record(&c.Call, ev, d)
		if event := outboxEvent(d); event != "" && c.hasCRM {
			cs.outbox = append(cs.outbox, outboxIntent{callID: c.ID, event: event})
		}
	}
	var parked []CallEvent
	for i, ev := range events {
		if fresh[i] && !out[i].Found && ev.CallID == uuid.Nil && ev.ExternalCallID != "" {
			parked = append(parked, ev)
			out[i].Parked = true
		}
	}
	if err := park(ctx, tx, parked); err != nil {
		return nil, err
	}
	if err := cs.flush(ctx, tx); err != nil {
		return nil, err
	}
	// The dialler's ids just recorded may be what parked events wait for.
	if len(cs.attemptsExt) > 0 {
		unparked, err := unpark(ctx, tx, cs.attemptsExt, events[len(events)-1].At)
		if err != nil {
			return nil, err
		}
		if len(unparked) > 0 {
			more, err := applyEvents(ctx, tx, unparked)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	return out, nil
}

// claimKeys records the events' keys; an event whose key was already
// recorded is not fresh.
func claimKeys(ctx context.Context, tx pgx.Tx, events []CallEvent) ([]bool, error) {
	fresh := make([]bool, len(events))
	var keys []string
	var expiries []time.Time
	// Each key once: ON CONFLICT DO UPDATE fails the whole statement when
	// two of its rows hit the same key (two copies of one webhook in a
	// batch). Later copies are marked duplicates below.
	listed := map[string]bool{}
	add := func(key string, expires time.Time) {
		if key != "" && !listed[key] {
			listed[key] = true
			keys = append(keys, key)
			expiries = append(expiries, expires)
		}
	}
	for i, ev := range events {
		fresh[i] = true
		add(ev.Key, ev.At.Add(processedKeyTTL))
		add(ev.DedupeKey, ev.At.Add(ev.DedupeTTL))
	}
	if len(keys) == 0 {
		return fresh, nil
	}
	// An expired natural key is taken over; a live one marks a duplicate.
	rows, err := tx.Query(ctx, `INSERT INTO processed_keys (scope, key, expires_at)
		SELECT 'event', k, e FROM unnest($1::text[], $2::timestamptz[]) AS t (k, e)
		ON CONFLICT (scope, key) DO UPDATE SET expires_at = EXCLUDED.expires_at
			WHERE processed_keys.expires_at <= $3
		RETURNING key`, keys, expiries, events[0].At)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		taken[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, ev := range events {
		// Fresh only for the first event carrying newly recorded keys.
		for _, k := range []string{ev.Key, ev.DedupeKey} {
			if k == "" {
				continue
			}
			fresh[i] = fresh[i] && taken[k] && !seen[k]
			seen[k] = true
		}
	}
	return fresh, nil
}

func resolveCall(ctx context.Context, tx pgx.Tx, ev CallEvent) (uuid.UUID, int, error) {
	if ev.CallID != uuid.Nil {
		return ev.CallID, 0, nil
	}
	var id uuid.UUID
	var attempt int
	if ev.ExternalCallID != "" {
		if parsed, err := uuid.Parse(ev.ExternalCallID); err == nil {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM calls WHERE id = $1 AND integration_id = $2)`,
				parsed, ev.IntegrationID).Scan(&exists); err != nil {
				return id, 0, err
			}
			if exists {
				return parsed, 0, nil
			}
		}
		err := tx.QueryRow(ctx, `SELECT call_id, attempt FROM call_attempts WHERE integration_id = $1 AND external_call_id = $2`,
			ev.IntegrationID, ev.ExternalCallID).Scan(&id, &attempt)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return id, attempt, err
		}
	}
	if ev.ConversationID != "" {
		err := tx.QueryRow(ctx, `SELECT id FROM calls WHERE conversation_id = $1 AND integration_id = $2
			ORDER BY created_at DESC LIMIT 1`, ev.ConversationID, ev.IntegrationID).Scan(&id)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return id, 0, err
		}
	}
	if ev.Phone != "" {
		err := tx.QueryRow(ctx, `SELECT id FROM calls WHERE integration_id = $1 AND phone_number = $2
			AND status IN ('initiated', 'in_progress', 'waiting_postcall')
			ORDER BY slot_taken_at DESC NULLS LAST, created_at DESC LIMIT 1`, ev.IntegrationID, ev.Phone).Scan(&id)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return id, 0, err
		}
	}
	return id, 0, nil
}

func lockCalls(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*lockedCall, error) {
	var want []uuid.UUID
	for _, id := range ids {
		if id != uuid.Nil && !slices.Contains(want, id) {
			want = append(want, id)
		}
	}
	out := map[uuid.UUID]*lockedCall{}
	if len(want) == 0 {
		return out, nil
	}
	// Rows are locked in id order so that concurrent batches cannot deadlock.
	rows, err := tx.Query(ctx, `SELECT `+callColumns+` FROM calls WHERE id = ANY($1) ORDER BY id FOR UPDATE`, want)
	if err != nil {
		return nil, err
	}
	var integrations []uuid.UUID
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out[c.ID] = &lockedCall{Call: c}
		if !slices.Contains(integrations, c.IntegrationID) {
			integrations = append(integrations, c.IntegrationID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	configs, err := decisionConfigs(ctx, tx, integrations)
	if err != nil {
		return nil, err
	}
	for _, c := range out {
		cfg := configs[c.IntegrationID]
		c.policy, c.hasCRM = cfg.CallHandling, cfg.CRM.Kind != "none" && cfg.CRM.Kind != ""
	}
	return out, nil
}

// decisionConfigs loads what deciding a call's events needs of several
// integrations' config: call_handling and crm.
func decisionConfigs(ctx context.Context, q querier, integrations []uuid.UUID) (map[uuid.UUID]config.Integration, error) {
	raw := map[uuid.UUID]map[string]json.RawMessage{}
	for _, id := range integrations {
		raw[id] = map[string]json.RawMessage{}
	}
	if len(integrations) > 0 {
		rows, err := q.Query(ctx, `SELECT integration_id, key, value FROM integration_config
			WHERE key IN ('call_handling', 'crm') AND integration_id = ANY($1)`, integrations)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			var key string
			var value []byte
			if err := rows.Scan(&id, &key, &value); err != nil {
				return nil, err
			}
			raw[id][key] = value
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make(map[uuid.UUID]config.Integration, len(raw))
	for id, r := range raw {
		out[id] = config.Decode(r)
	}
	return out, nil
}

// NoteEvent adds an entry to the matching call's history without moving
// it (post-call audio, for instance). An unmatched event is dropped.
func (s *Store) NoteEvent(ctx context.Context, ev CallEvent, kind string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		fresh, err := claimKeys(ctx, tx, []CallEvent{ev})
		if err != nil || !fresh[0] {
			return err
		}
		id, attempt, err := resolveCall(ctx, tx, ev)
		if err != nil || id == uuid.Nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO call_events (call_id, attempt, kind, detail, trace_id, occurred_at)
			SELECT id, COALESCE(NULLIF($2, 0), attempt), $3, $4, $5, $6 FROM calls WHERE id = $1 AND integration_id = $7`,
			id, attempt, kind, ev.Detail, nullable(ev.TraceID), ev.At, ev.IntegrationID)
		return err
	})
}
