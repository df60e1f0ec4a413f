package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// Call is a call as stored and shown by the API.
type Call struct {
	ID               uuid.UUID        `json:"id"`
	IntegrationID    uuid.UUID        `json:"integrationId"`
	PhoneNumber      string           `json:"phoneNumber"`
	RecordID         *string          `json:"recordId"`
	Status           callstate.Status `json:"status"`
	Priority         int              `json:"priority"`
	Attempt          int              `json:"attempt"`
	MaxAttempts      int              `json:"maxAttempts"`
	NextRetryAt      *time.Time       `json:"nextRetryAt"`
	ExternalCallID   *string          `json:"externalCallId"`
	ConversationID   *string          `json:"conversationId"`
	DurationSecs     *float64         `json:"durationSecs"`
	Outcome          *string          `json:"outcome"`
	Summary          *string          `json:"summary,omitempty"`
	DynamicVariables json.RawMessage  `json:"dynamicVariables"`
	Transcript       json.RawMessage  `json:"transcript,omitempty"`
	Analysis         json.RawMessage  `json:"analysis,omitempty"`
	Metadata         json.RawMessage  `json:"metadata,omitempty"`
	DialState        string           `json:"dialState"`
	TraceID          *string          `json:"traceId,omitempty"`
	QueuedAt         time.Time        `json:"queuedAt"`
	SlotTakenAt      *time.Time       `json:"slotTakenAt,omitempty"`
	CreatedAt        time.Time        `json:"createdAt"`
	UpdatedAt        time.Time        `json:"updatedAt"`
}

// CallEventRow is one entry of a call's history.
type CallEventRow struct {
	ID         int64           `json:"id"`
	Attempt    int             `json:"attempt"`
	Kind       string          `json:"kind"`
	FromStatus *string         `json:"fromStatus"`
	ToStatus   *string         `json:"toStatus"`
	Detail     json.RawMessage `json:"detail"`
	TraceID    *string         `json:"traceId,omitempty"`
	OccurredAt time.Time       `json:"occurredAt"`
}

const callColumns = `id, integration_id, phone_number, record_id, status, priority, attempt, max_attempts, next_retry_at,
	external_call_id, conversation_id, duration_secs, outcome, summary, dynamic_variables, transcript, analysis,
	call_metadata, dial_state, trace_id, queued_at, slot_taken_at, created_at, updated_at`

func scanCall(row pgx.Row) (Call, error) {
	var c Call
	err := row.Scan(&c.ID, &c.IntegrationID, &c.PhoneNumber, &c.RecordID, &c.Status, &c.Priority, &c.Attempt, &c.MaxAttempts,
		&c.NextRetryAt, &c.ExternalCallID, &c.ConversationID, &c.DurationSecs, &c.Outcome, &c.Summary, &c.DynamicVariables,
		&c.Transcript, &c.Analysis, &c.Metadata, &c.DialState, &c.TraceID, &c.QueuedAt, &c.SlotTakenAt, &c.CreatedAt, &c.UpdatedAt)
	return c, notFound(err)
}

// NewCall is a call-originate request taken from the queue.
type NewCall struct {
	ID               uuid.UUID
	IntegrationID    uuid.UUID
	PhoneNumber      string
	RecordID         string
	Priority         int
	DynamicVariables json.RawMessage
	// IdempotencyKeys are the natural keys of the request; a call already
	// created under any of them within its expiry makes this one a duplicate.
	IdempotencyKeys []string
	TraceID         string
	ReceivedAt      time.Time
}

// IdempotencyWindow is how long a call-originate key maps to its call.
const IdempotencyWindow = 24 * time.Hour

// processedKeyTTL keeps processed-message keys as long as the streams keep
// messages, so a redelivered message never applies twice.
const processedKeyTTL = 8 * 24 * time.Hour

// InsertCalls stores queued calls in one transaction. Duplicates (same id,
// or a live idempotency key) are skipped. It returns the integrations that
// gained a queued call.
func (s *Store) InsertCalls(ctx context.Context, calls []NewCall, now time.Time) ([]uuid.UUID, error) {
	var touched []uuid.UUID
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		touched = touched[:0]
		maxAttempts := map[uuid.UUID]int{}
		for _, c := range calls {
			if _, ok := maxAttempts[c.IntegrationID]; !ok {
				raw, err := loadConfig(ctx, tx, c.IntegrationID)
				if err != nil {
					return err
				}
				maxAttempts[c.IntegrationID] = config.Decode(raw).CallHandling.MaxAttempts
			}
			duplicate := false
			for _, key := range c.IdempotencyKeys {
				var ref string
				err := tx.QueryRow(ctx, `INSERT INTO processed_keys (scope, key, ref, expires_at) VALUES ('originate', $1, $2, $3)
					ON CONFLICT (scope, key) DO UPDATE SET ref = EXCLUDED.ref, expires_at = EXCLUDED.expires_at
						WHERE processed_keys.expires_at <= $4
					RETURNING ref`, c.IntegrationID.String()+":"+key, c.ID.String(), now.Add(IdempotencyWindow), now).Scan(&ref)
				if errors.Is(err, pgx.ErrNoRows) {
					// A live key: this request was already taken (under this
					// id, when it is a redelivery, or under another).
					duplicate = true
					continue
				}
				if err != nil {
					return err
				}
			}
			if duplicate {
				continue
			}
			vars := c.DynamicVariables
			if len(vars) == 0 {
				vars = json.RawMessage(`{}`)
			}
			var recordID *string
			if c.RecordID != "" {
				recordID = &c.RecordID
			}
			tag, err := tx.Exec(ctx, `INSERT INTO calls (id, integration_id, phone_number, record_id, status, priority,
				max_attempts, queued_at, dynamic_variables, trace_id, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $7, $7) ON CONFLICT (id) DO NOTHING`,
				c.ID, c.IntegrationID, c.PhoneNumber, recordID, c.Priority, maxAttempts[c.IntegrationID], c.ReceivedAt, vars, nullable(c.TraceID))
			if err != nil {
				return fmt.Errorf("insert call %s: %w", c.ID, err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO call_events (call_id, attempt, kind, to_status, detail, trace_id, occurred_at)
				VALUES ($1, 0, 'queued', 'queued', $2, $3, $4)`, c.ID, map[string]any{"priority": c.Priority}, nullable(c.TraceID), now); err != nil {
				return err
			}
			if !slices.Contains(touched, c.IntegrationID) {
				touched = append(touched, c.IntegrationID)
			}
		}
		return nil
	})
	return touched, err
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

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

// changeSet gathers the writes of a transaction's decided changes, so that
// they reach Postgres as a few set-based statements however many events
// there are; several events for one call collapse into one row update.
type changeSet struct {
	calls        map[uuid.UUID]*Call
	order        []uuid.UUID
	history      [][]any
	attemptsNew  [][]any
	attemptsExt  [][]any
	attemptsEnd  [][]any
	attemptsGone [][]any
	outbox       []outboxIntent
}

// outboxIntent is a CRM update to write once the call's final state is known.
type outboxIntent struct {
	callID uuid.UUID
	event  string
}

func newChangeSet() *changeSet {
	return &changeSet{calls: map[uuid.UUID]*Call{}}
}

func (cs *changeSet) empty() bool {
	return len(cs.order) == 0 && len(cs.history) == 0 && len(cs.outbox) == 0
}

// record applies decision d of event ev to c in memory and notes the writes.
func (cs *changeSet) record(c *Call, ev CallEvent, d callstate.Decision) {
	at := ev.At
	wasHolding := c.Status.HoldsSlot()
	c.Status, c.Attempt = d.To, d.Attempt
	if !d.To.HoldsSlot() {
		c.SlotTakenAt = nil
	} else if !wasHolding {
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
		c.DialState = "dialing"
		cs.attemptsNew = append(cs.attemptsNew, []any{c.ID, c.Attempt, c.IntegrationID, at})
	case callstate.DialAccepted:
		c.DialState = "accepted"
		if ev.ExternalCallID != "" {
			c.ExternalCallID = &ev.ExternalCallID
			cs.attemptsExt = append(cs.attemptsExt, []any{c.ID, c.Attempt, ev.ExternalCallID})
		}
	case callstate.DialFailed:
		c.DialState = "failed"
	case callstate.DialAborted:
		c.DialState = "none"
		cs.attemptsGone = append(cs.attemptsGone, []any{c.ID, c.Attempt + 1})
	case callstate.CallEnd:
		dur := ev.Event.DurationSecs
		c.DurationSecs = &dur
	}
	if ev.ConversationID != "" && c.ConversationID == nil {
		c.ConversationID = &ev.ConversationID
	}
	if p := ev.Postcall; p != nil {
		c.Transcript, c.Analysis, c.Metadata = p.Transcript, p.Analysis, p.Metadata
		if p.Summary != "" {
			c.Summary = &p.Summary
		}
		if p.Outcome != "" {
			c.Outcome = &p.Outcome
		}
		if p.DurationSecs != nil && c.DurationSecs == nil {
			c.DurationSecs = p.DurationSecs
		}
	}
	if d.To == callstate.Queued {
		c.QueuedAt = at
	}
	c.UpdatedAt = at
	if _, seen := cs.calls[c.ID]; !seen {
		cs.order = append(cs.order, c.ID)
	}
	cs.calls[c.ID] = c
	if wasHolding && !d.To.HoldsSlot() && ev.Event.Kind != callstate.DialAborted {
		var dur *float64
		if ev.Event.Kind == callstate.CallEnd {
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
	if d.To == callstate.RetryScheduled {
		detail["nextRetryAt"] = d.NextRetryAt.UTC().Format(time.RFC3339Nano)
	}
	if ev.Event.Kind == callstate.CallEnd {
		detail["durationSecs"] = ev.Event.DurationSecs
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
// the call that points at it), then the calls, then their history.
func (cs *changeSet) flush(ctx context.Context, tx pgx.Tx) error {
	if cs.empty() {
		return nil
	}
	if len(cs.attemptsGone) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsGone)
		if _, err := tx.Exec(ctx, `DELETE FROM call_attempts a USING unnest($1::uuid[], $2::int[]) AS v (call_id, attempt)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt`, ids, attempts); err != nil {
			return fmt.Errorf("delete attempts: %w", err)
		}
	}
	if len(cs.attemptsNew) > 0 {
		// A dial aborted earlier in this same batch frees its attempt number.
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"call_attempts"}, []string{"call_id", "attempt", "integration_id", "started_at"},
			pgx.CopyFromRows(cs.attemptsNew)); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
	}
	if len(cs.attemptsExt) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsExt)
		ext := column[string](cs.attemptsExt, 2)
		// A dialler may answer every attempt of a call with the same id
		// (it is sent our call id each time): the new attempt takes it
		// over, so the unique index holds and events by it find the
		// current attempt.
		if _, err := tx.Exec(ctx, `UPDATE call_attempts a SET external_call_id = NULL
			FROM unnest($1::uuid[], $2::int[], $3::text[]) AS v (call_id, attempt, ext)
			WHERE a.call_id = v.call_id AND a.attempt <> v.attempt AND a.external_call_id = v.ext`, ids, attempts, ext); err != nil {
			return fmt.Errorf("update attempts: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE call_attempts a SET external_call_id = v.ext
			FROM unnest($1::uuid[], $2::int[], $3::text[]) AS v (call_id, attempt, ext)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt`, ids, attempts, ext); err != nil {
			return fmt.Errorf("update attempts: %w", err)
		}
	}
	if len(cs.attemptsEnd) > 0 {
		ids, attempts := columns2[uuid.UUID, int](cs.attemptsEnd)
		if _, err := tx.Exec(ctx, `UPDATE call_attempts a SET ended_at = v.ended_at, outcome = v.outcome, duration_secs = v.dur
			FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[], $5::float8[]) AS v (call_id, attempt, ended_at, outcome, dur)
			WHERE a.call_id = v.call_id AND a.attempt = v.attempt`,
			ids, attempts, column[time.Time](cs.attemptsEnd, 2), column[*string](cs.attemptsEnd, 3), column[*float64](cs.attemptsEnd, 4)); err != nil {
			return fmt.Errorf("end attempts: %w", err)
		}
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
			queuedAt, updatedAt              = make([]time.Time, n), make([]time.Time, n)
		)
		for i, id := range cs.order {
			c := cs.calls[id]
			ids[i], statuses[i], attempts[i], slots[i], retries[i] = c.ID, string(c.Status), c.Attempt, c.SlotTakenAt, c.NextRetryAt
			outcomes[i], dialStates[i], exts[i], convs[i], durations[i] = c.Outcome, c.DialState, c.ExternalCallID, c.ConversationID, c.DurationSecs
			transcripts[i], analyses[i], metas[i], summaries[i] = jsonText(c.Transcript), jsonText(c.Analysis), jsonText(c.Metadata), c.Summary
			queuedAt[i], updatedAt[i] = c.QueuedAt, c.UpdatedAt
		}
		if _, err := tx.Exec(ctx, `UPDATE calls c SET status = v.status, attempt = v.attempt, slot_taken_at = v.slot,
				next_retry_at = v.retry, outcome = v.outcome, dial_state = v.dial_state, external_call_id = v.ext,
				conversation_id = v.conv, duration_secs = v.dur, transcript = v.transcript::jsonb, analysis = v.analysis::jsonb,
				call_metadata = v.meta::jsonb, summary = v.summary, queued_at = v.queued_at, updated_at = v.updated_at
			FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::float8[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[],
				$16::timestamptz[])
				AS v (id, status, attempt, slot, retry, outcome, dial_state, ext, conv, dur, transcript, analysis, meta, summary,
				      queued_at, updated_at)
			WHERE c.id = v.id`,
			ids, statuses, attempts, slots, retries, outcomes, dialStates, exts, convs, durations, transcripts, analyses, metas,
			summaries, queuedAt, updatedAt); err != nil {
			return fmt.Errorf("update calls: %w", err)
		}
	}
	if len(cs.outbox) > 0 {
		n := len(cs.outbox)
		ids, integrations, calls, events, payloads, at := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n),
			make([]string, n), make([]string, n), make([]time.Time, n)
		for i, o := range cs.outbox {
			c := cs.calls[o.callID]
			raw, err := json.Marshal(crmPayload(c, o.event))
			if err != nil {
				return err
			}
			ids[i], integrations[i], calls[i], events[i], payloads[i], at[i] = uuid.New(), c.IntegrationID, c.ID, o.event, string(raw), c.UpdatedAt
		}
		if _, err := tx.Exec(ctx, `INSERT INTO crm_outbox (id, integration_id, call_id, event, payload, next_attempt_at, created_at)
			SELECT id, integration_id, call_id, event, payload::jsonb, at, at
			FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[])
				AS v (id, integration_id, call_id, event, payload, at)
			ON CONFLICT (call_id, event) DO NOTHING`, ids, integrations, calls, events, payloads, at); err != nil {
			return fmt.Errorf("write crm outbox: %w", err)
		}
	}
	if len(cs.history) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"call_events"},
			[]string{"call_id", "attempt", "kind", "from_status", "to_status", "detail", "trace_id", "occurred_at"},
			pgx.CopyFromRows(cs.history)); err != nil {
			return fmt.Errorf("insert history: %w", err)
		}
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

// Claimed is a call whose slot was taken and whose attempt is recorded:
// it is to be dialled exactly once.
type Claimed struct {
	Call   Call
	Config config.Integration
}

// ClaimCalls takes free concurrency slots of an integration for its oldest
// queued calls (highest priority first) and records each dial attempt, all
// in one transaction that holds the integration's row lock, so the limit
// holds across any number of dispatchers. open decides whether dialling is
// allowed at all right now (calling window, breaker).
func (s *Store) ClaimCalls(ctx context.Context, integrationID uuid.UUID, now time.Time, open func(config.Integration) bool) ([]Claimed, error) {
	var out []Claimed
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM integrations WHERE id = $1 FOR UPDATE`, integrationID).Scan(&status)
		if err != nil {
			return notFound(err)
		}
		if status != StatusActive && status != StatusHasErrors {
			return nil
		}
		raw, err := loadConfig(ctx, tx, integrationID)
		if err != nil {
			return err
		}
		cfg := config.Decode(raw)
		if open != nil && !open(cfg) {
			return nil
		}
		var active int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM calls WHERE integration_id = $1 AND status IN ('initiated', 'in_progress')`,
			integrationID).Scan(&active); err != nil {
			return err
		}
		free := cfg.CallHandling.ConcurrencyLimit - active
		if free <= 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+callColumns+` FROM calls WHERE integration_id = $1 AND status = 'queued'
			ORDER BY priority DESC, queued_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, integrationID, free)
		if err != nil {
			return err
		}
		var calls []Call
		for rows.Next() {
			c, err := scanCall(rows)
			if err != nil {
				rows.Close()
				return err
			}
			calls = append(calls, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		cs := newChangeSet()
		for i := range calls {
			c := &calls[i]
			d := callstate.Next(callstate.Call{Status: c.Status, Attempt: c.Attempt, MaxAttempts: c.MaxAttempts},
				callstate.Event{Kind: callstate.Dial}, cfg.CallHandling, now)
			if !d.Changed {
				continue
			}
			cs.record(c, CallEvent{IntegrationID: integrationID, Event: callstate.Event{Kind: callstate.Dial}, At: now,
				TraceID: deref(c.TraceID)}, d)
			out = append(out, Claimed{Call: *c, Config: cfg})
		}
		return cs.flush(ctx, tx)
	})
	return out, err
}

// Due is a call whose retry time has come, put back in the queue.
type Due struct {
	CallID        uuid.UUID
	IntegrationID uuid.UUID
}

// RequeueDue moves retry_scheduled calls whose time has come back to
// queued, of one integration or (uuid.Nil) of all. Each call moves once
// however many schedulers run.
func (s *Store) RequeueDue(ctx context.Context, integrationID uuid.UUID, now time.Time, limit int) ([]Due, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			UPDATE calls SET status = 'queued', next_retry_at = NULL, queued_at = $1, updated_at = $1
			WHERE id IN (SELECT id FROM calls WHERE status = 'retry_scheduled' AND next_retry_at <= $1
				AND ($3 = '00000000-0000-0000-0000-000000000000'::uuid OR integration_id = $3)
				ORDER BY next_retry_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING id, integration_id, attempt, trace_id),
		history AS (
			INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, trace_id, occurred_at)
			SELECT id, attempt, 'retry_due', 'retry_scheduled', 'queued', trace_id, $1 FROM due)
		SELECT id, integration_id FROM due`, now, limit, integrationID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Due
	for rows.Next() {
		var d Due
		if err := rows.Scan(&d.CallID, &d.IntegrationID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// NextRetryAt is the earliest scheduled retry, or zero when none.
func (s *Store) NextRetryAt(ctx context.Context) (time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT min(next_retry_at) FROM calls WHERE status = 'retry_scheduled'`).Scan(&at)
	if at == nil {
		return time.Time{}, err
	}
	return *at, err
}

// Overdue is a call that has held its slot too long.
type Overdue struct {
	CallID        uuid.UUID
	IntegrationID uuid.UUID
	Attempt       int
	Reason        string
}

// OverdueCalls finds an integration's calls holding a slot past
// max_call_duration_secs, and calls whose dial never reported back within
// dialLost (the dialling process died mid-request). The stored limit is
// read defensively (type-checked, clamped to its bounds) so that no stored
// value can make the query fail.
func (s *Store) OverdueCalls(ctx context.Context, integrationID uuid.UUID, now time.Time, dialLost time.Duration, limit int) ([]Overdue, error) {
	// $1 is cast: beside an interval, Postgres would infer it as an interval.
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.integration_id, c.attempt,
			CASE WHEN c.dial_state = 'dialing' AND c.slot_taken_at <= $2 THEN 'dial_lost' ELSE 'timeout' END
		FROM calls c LEFT JOIN integration_config cfg ON cfg.integration_id = c.integration_id AND cfg.key = 'call_handling'
		WHERE c.integration_id = $4 AND c.status IN ('initiated', 'in_progress')
		  AND ((c.dial_state = 'dialing' AND c.slot_taken_at <= $2)
		    OR c.slot_taken_at <= $1::timestamptz - make_interval(secs => (CASE
				WHEN jsonb_typeof(cfg.value->'max_call_duration_secs') = 'number'
				THEN LEAST(GREATEST((cfg.value->>'max_call_duration_secs')::numeric, $5), $6)
				ELSE 1800 END)::float8))
		ORDER BY c.slot_taken_at LIMIT $3`, now, now.Add(-dialLost), limit, integrationID,
		config.MaxCallDurationMinSecs, config.MaxCallDurationMaxSecs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Overdue
	for rows.Next() {
		var o Overdue
		if err := rows.Scan(&o.CallID, &o.IntegrationID, &o.Attempt, &o.Reason); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// PruneKeys deletes expired processed keys and parked events that waited
// in vain.
func (s *Store) PruneKeys(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM processed_keys WHERE expires_at < $1`, now)
	if err != nil {
		return 0, err
	}
	parked, err := s.pool.Exec(ctx, `DELETE FROM parked_events WHERE parked_at < $1`, now.Add(-ParkedTTL))
	return tag.RowsAffected() + parked.RowsAffected(), err
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

// parkedEvent is a parked CallEvent, without the keys it already claimed.
type parkedEvent struct {
	Kind           callstate.Kind `json:"kind"`
	DurationSecs   float64        `json:"durationSecs,omitempty"`
	Reason         string         `json:"reason,omitempty"`
	ConversationID string         `json:"conversationId,omitempty"`
	Detail         map[string]any `json:"detail,omitempty"`
	TraceID        string         `json:"traceId,omitempty"`
}

// ParkedTTL is how long an event waits for the dialler's id it names.
const ParkedTTL = time.Hour

func park(ctx context.Context, tx pgx.Tx, events []CallEvent) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	for i, ev := range events {
		raw, err := json.Marshal(parkedEvent{Kind: ev.Event.Kind, DurationSecs: ev.Event.DurationSecs, Reason: ev.Event.Reason,
			ConversationID: ev.ConversationID, Detail: ev.Detail, TraceID: ev.TraceID})
		if err != nil {
			return err
		}
		rows[i] = []any{ev.IntegrationID, ev.ExternalCallID, string(raw), ev.At}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"parked_events"}, []string{"integration_id", "external_call_id", "event", "parked_at"},
		pgx.CopyFromRows(rows))
	return err
}

// unpark takes the parked events waiting for the dialler ids in ext
// (rows of call id, attempt, external id) and returns them, oldest first,
// addressed by that id again.
func unpark(ctx context.Context, tx pgx.Tx, ext [][]any, at time.Time) ([]CallEvent, error) {
	ids := column[string](ext, 2)
	rows, err := tx.Query(ctx, `DELETE FROM parked_events p USING call_attempts a
		WHERE a.external_call_id = p.external_call_id AND a.integration_id = p.integration_id
		  AND p.external_call_id = ANY($1) AND p.parked_at > $2
		RETURNING p.integration_id, p.external_call_id, p.seq, p.event`, ids, at.Add(-ParkedTTL))
	if err != nil {
		return nil, err
	}
	type row struct {
		ev  CallEvent
		seq int64
	}
	var got []row
	for rows.Next() {
		var r row
		var raw []byte
		if err := rows.Scan(&r.ev.IntegrationID, &r.ev.ExternalCallID, &r.seq, &raw); err != nil {
			rows.Close()
			return nil, err
		}
		var p parkedEvent
		if err := json.Unmarshal(raw, &p); err != nil {
			rows.Close()
			return nil, err
		}
		r.ev.Event = callstate.Event{Kind: p.Kind, DurationSecs: p.DurationSecs, Reason: p.Reason}
		r.ev.ConversationID, r.ev.Detail, r.ev.TraceID, r.ev.At = p.ConversationID, p.Detail, p.TraceID, at
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]CallEvent, len(got))
	for i, r := range got {
		out[i] = r.ev
	}
	return out, nil
}
