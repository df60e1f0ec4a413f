package store

import (
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
	DataStore   string     `json:"dataStore"`
	TraceID     *string    `json:"traceId,omitempty"`
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
	data_store`

// callListColumns are callColumns for lists: what a call can grow by
// after it ends (its summary, transcript, analysis and metadata, megabytes
// each) is left out, so a page of a thousand calls stays small; GetCall
// has it all. Same order as callColumns, so scanCall reads both.
const callListColumns = `id, integration_id, phone_number, record_id, status, priority, attempt, max_attempts, next_retry_at,
	external_call_id, conversation_id, duration_secs, outcome, NULL::text, dynamic_variables, NULL::jsonb, NULL::jsonb,
	NULL::jsonb, dial_state, trace_id, queued_at, slot_taken_at, created_at, updated_at, campaign_id, timezone, external_id,
	data_store`

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
		&c.CampaignID, &c.Timezone, &c.ExternalID, &c.DataStore}
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
	hash, err := s.phoneHasher(ctx)
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		touched = touched[:0]
		configs := map[uuid.UUID]config.Integration{}
		for _, c := range calls {
			if _, ok := configs[c.IntegrationID]; !ok {
				raw, err := loadConfig(ctx, tx, c.IntegrationID)
				if err != nil {
					return err
				}
				configs[c.IntegrationID] = config.Decode(raw)
			}
			cfg := configs[c.IntegrationID]
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
				max_attempts, queued_at, dynamic_variables, trace_id, created_at, updated_at, timezone, data_store, phone_hash)
				VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $7, $7, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
				c.ID, c.IntegrationID, c.PhoneNumber, recordID, c.Priority, cfg.CallHandling.MaxAttempts, c.ReceivedAt, vars, nullable(c.TraceID),
				nullable(c.Timezone), cfg.Data().Store, hash(c.PhoneNumber))
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
