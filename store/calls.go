package store

import (
	"context"
	"encoding/json"
	"fmt"
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
	CampaignID       *uuid.UUID       `json:"campaignId"`
	PhoneNumber      string           `json:"phoneNumber"`
	Timezone         *string          `json:"timezone"`
	ExternalID       *string          `json:"externalId,omitempty"`
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
	// DataStore is the data.store mode its content was stored under.
	DataStore string  `json:"dataStore"`
	TraceID   *string `json:"traceId,omitempty"`
	// TraceParent is the W3C trace context its claim and dial continue
	// (tracing on), never shown.
	TraceParent *string `json:"-"`
	// CallerID is the caller number its current attempt was dialled from
	// (voice.caller_ids); nil without a pool.
	CallerID    *string    `json:"callerId,omitempty"`
	QueuedAt    time.Time  `json:"queuedAt"`
	SlotTakenAt *time.Time `json:"slotTakenAt,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`

	// policy is the integration's data policy when the call was read for a
	// change: what of the content the change may store.
	policy config.Data
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
	call_metadata, dial_state, trace_id, queued_at, slot_taken_at, created_at, updated_at, campaign_id, timezone, external_id,
	data_store, trace_parent, caller_id`

// callListColumns are callColumns for lists: what a call can grow by
// after it ends (its summary, transcript, analysis and metadata, megabytes
// each) is left out, so a page of a thousand calls stays small; GetCall
// has it all. Same order as callColumns, so scanCall reads both.
const callListColumns = `id, integration_id, phone_number, record_id, status, priority, attempt, max_attempts, next_retry_at,
	external_call_id, conversation_id, duration_secs, outcome, NULL::text, dynamic_variables, NULL::jsonb, NULL::jsonb,
	NULL::jsonb, dial_state, trace_id, queued_at, slot_taken_at, created_at, updated_at, campaign_id, timezone, external_id,
	data_store, trace_parent, caller_id`

func scanCall(row pgx.Row) (Call, error) {
	var c Call
	err := row.Scan(callDest(&c)...)
	return c, notFound(err)
}

// callDest is where a row of callColumns is scanned to.
func callDest(c *Call) []any {
	return []any{&c.ID, &c.IntegrationID, &c.PhoneNumber, &c.RecordID, &c.Status, &c.Priority, &c.Attempt, &c.MaxAttempts,
		&c.NextRetryAt, &c.ExternalCallID, &c.ConversationID, &c.DurationSecs, &c.Outcome, &c.Summary, &c.DynamicVariables,
		&c.Transcript, &c.Analysis, &c.Metadata, &c.DialState, &c.TraceID, &c.QueuedAt, &c.SlotTakenAt, &c.CreatedAt, &c.UpdatedAt,
		&c.CampaignID, &c.Timezone, &c.ExternalID, &c.DataStore, &c.TraceParent, &c.CallerID}
}

// NewCall is a call-originate request taken from the queue.
type NewCall struct {
	ID            uuid.UUID
	IntegrationID uuid.UUID
	PhoneNumber   string
	RecordID      string
	Priority      int
	// Timezone is the recipient's IANA zone, when the request named one.
	Timezone         string
	DynamicVariables json.RawMessage
	// IdempotencyKeys are the natural keys of the request; a call already
	// created under any of them within its expiry makes this one a duplicate.
	IdempotencyKeys []string
	TraceID         string
	// Traceparent is the trace context of the step that queued the call.
	Traceparent string
	ReceivedAt  time.Time
}

// IdempotencyWindow is how long a call-originate key maps to its call.
const IdempotencyWindow = 24 * time.Hour

// processedKeyTTL keeps processed-message keys as long as the streams keep
// messages, so a redelivered message never applies twice.
const processedKeyTTL = 8 * 24 * time.Hour

// InsertCalls stores queued calls in one transaction. Duplicates (same id,
// or a live idempotency key) are skipped. It returns the integrations that
// gained a queued call.
//
// The batch is written set-wise — its keys in one statement, its calls and
// their first history rows in another — so a batch costs the same few
// round trips whatever its size: the time from a 202 to a readable call
// is mostly this transaction.
func (s *Store) InsertCalls(ctx context.Context, calls []NewCall, now time.Time) ([]uuid.UUID, error) {
	var touched []uuid.UUID
	hash, err := s.phoneHasher(ctx)
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		configs := map[uuid.UUID]config.Integration{}
		for _, c := range calls {
			if _, ok := configs[c.IntegrationID]; !ok {
				raw, err := loadConfig(ctx, tx, c.IntegrationID)
				if err != nil {
					return err
				}
				configs[c.IntegrationID] = config.Decode(raw)
			}
		}
		fresh, err := takeOriginateKeys(ctx, tx, calls, now)
		if err != nil {
			return err
		}
		n := len(fresh)
		if n == 0 {
			touched = nil
			return nil
		}
		ids, integrations := make([]uuid.UUID, n), make([]uuid.UUID, n)
		phones, records, traces, zones, modes := make([]string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]string, n)
		traceparents := make([]*string, n)
		priorities, maxAttempts := make([]int32, n), make([]int32, n)
		received, vars, hashes := make([]time.Time, n), make([]string, n), make([][]byte, n)
		for i, c := range fresh {
			cfg := configs[c.IntegrationID]
			ids[i], integrations[i], phones[i] = c.ID, c.IntegrationID, c.PhoneNumber
			records[i], traces[i], zones[i] = nullable(c.RecordID), nullable(c.TraceID), nullable(c.Timezone)
			traceparents[i] = nullable(c.Traceparent)
			priorities[i], maxAttempts[i] = int32(c.Priority), int32(cfg.CallHandling.MaxAttempts) //nolint:gosec // both bounded by validation
			received[i], modes[i], hashes[i] = c.ReceivedAt, cfg.Data().Store, hash(c.PhoneNumber)
			vars[i] = "{}"
			if len(c.DynamicVariables) > 0 {
				vars[i] = string(c.DynamicVariables)
			}
		}
		// ON CONFLICT (id) DO NOTHING skips a redelivered call, also one
		// that comes twice in this batch; only calls inserted get history.
		rows, err := tx.Query(ctx, `WITH added AS (
				INSERT INTO calls (id, integration_id, phone_number, record_id, status, priority,
					max_attempts, queued_at, dynamic_variables, trace_id, created_at, updated_at, timezone, data_store, phone_hash,
					trace_parent)
				SELECT id, integration_id, phone, record, 'queued', priority, max_attempts, received, vars::jsonb, trace,
					received, received, zone, mode, phone_hash, trace_parent
				FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[], $7::timestamptz[],
					$8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $14::text[])
					AS v (id, integration_id, phone, record, priority, max_attempts, received, vars, trace, zone, mode, phone_hash,
						trace_parent)
				ON CONFLICT (id) DO NOTHING
				RETURNING id, integration_id, priority, trace_id),
			history AS (
				INSERT INTO call_events (call_id, attempt, kind, to_status, detail, trace_id, occurred_at)
				SELECT id, 0, 'queued', 'queued', jsonb_build_object('priority', priority), trace_id, $13 FROM added)
			SELECT DISTINCT integration_id FROM added`,
			ids, integrations, phones, records, priorities, maxAttempts, received, vars, traces, zones, modes, hashes, now, traceparents)
		if err != nil {
			return fmt.Errorf("insert calls: %w", err)
		}
		touched, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return fmt.Errorf("insert calls: %w", err)
		}
		return nil
	})
	return touched, err
}

// takeOriginateKeys records the batch's idempotency keys and returns the
// calls that are not duplicates: a call is one when any of its keys is
// live — taken earlier (under this id, when it is a redelivery, or under
// another), or by an earlier call of the same batch.
func takeOriginateKeys(ctx context.Context, tx pgx.Tx, calls []NewCall, now time.Time) ([]NewCall, error) {
	owner := map[string]int{} // scoped key → index of the first call naming it
	var keys, refs []string
	for i, c := range calls {
		for _, key := range c.IdempotencyKeys {
			scoped := c.IntegrationID.String() + ":" + key
			if _, ok := owner[scoped]; ok {
				continue
			}
			owner[scoped] = i
			keys, refs = append(keys, scoped), append(refs, c.ID.String())
		}
	}
	taken := map[string]bool{}
	if len(keys) > 0 {
		rows, err := tx.Query(ctx, `INSERT INTO processed_keys (scope, key, ref, expires_at)
			SELECT 'originate', key, ref, $3 FROM unnest($1::text[], $2::text[]) AS v (key, ref) ORDER BY key
			ON CONFLICT (scope, key) DO UPDATE SET ref = EXCLUDED.ref, expires_at = EXCLUDED.expires_at
				WHERE processed_keys.expires_at <= $4
			RETURNING key`, keys, refs, now.Add(IdempotencyWindow), now)
		if err != nil {
			return nil, fmt.Errorf("record idempotency keys: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("record idempotency keys: %w", err)
		}
		for _, k := range got {
			taken[k] = true
		}
	}
	fresh := make([]NewCall, 0, len(calls))
next:
	for i, c := range calls {
		for _, key := range c.IdempotencyKeys {
			scoped := c.IntegrationID.String() + ":" + key
			if !taken[scoped] || owner[scoped] != i {
				continue next
			}
		}
		fresh = append(fresh, c)
	}
	return fresh, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
