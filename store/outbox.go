package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// CRM update events.
const (
	CRMEventCompleted = "call.completed"
	CRMEventFailed    = "call.failed"
)

// OutboxItem is a pending CRM update.
type OutboxItem struct {
	ID            uuid.UUID
	IntegrationID uuid.UUID
	CallID        uuid.UUID
	Event         string
	Payload       json.RawMessage
	Attempts      int
}

// Delivery is a call's CRM update as the API shows it.
type Delivery struct {
	Event       string     `json:"event"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   *string    `json:"lastError"`
	NextAttempt *time.Time `json:"nextAttemptAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
}

// outboxEvent is the CRM event a decision calls for, if any.
func outboxEvent(d callstate.Decision) string {
	switch {
	case d.From != d.To && d.To == callstate.Completed:
		return CRMEventCompleted
	case d.From != d.To && d.To == callstate.Failed:
		return CRMEventFailed
	}
	return ""
}

// crmPayload is the update's body, built from the call's final state; its
// fields are the contract's webhook body (crm.Update decodes it).
func crmPayload(c *Call, event string) map[string]any {
	p := map[string]any{
		"event": event, "callId": c.ID, "recordId": deref(c.RecordID), "phoneNumber": c.PhoneNumber,
		"status": c.Status, "attempt": c.Attempt, "durationSecs": c.DurationSecs, "outcome": deref(c.Outcome),
		"summary": deref(c.Summary), "dynamicVariables": c.DynamicVariables,
	}
	if len(c.Analysis) > 0 {
		p["analysis"] = c.Analysis
		var a struct {
			Extracted map[string]any `json:"extracted"`
		}
		if json.Unmarshal(c.Analysis, &a) == nil && len(a.Extracted) > 0 {
			p["extracted"] = a.Extracted
		}
	}
	return p
}

// ClaimOutbox leases up to limit due updates for lease, so that one
// deliverer works on each however many run.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxItem, error) {
	rows, err := s.pool.Query(ctx, `UPDATE crm_outbox o SET locked_until = $2
		WHERE id IN (SELECT id FROM crm_outbox WHERE status = 'pending' AND next_attempt_at <= $1
			AND (locked_until IS NULL OR locked_until <= $1) ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id, integration_id, call_id, event, payload, attempts`, now, now.Add(lease), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		if err := rows.Scan(&it.ID, &it.IntegrationID, &it.CallID, &it.Event, &it.Payload, &it.Attempts); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// OutboxResult is what one delivery attempt came to.
type OutboxResult struct {
	ID uuid.UUID
	// Delivered, or else Permanent (failed for good), or else retry at NextAt.
	Delivered bool
	Permanent bool
	// Attempted is false when nothing was sent (the breaker was open): the
	// update waits without an attempt counted.
	Attempted bool
	NextAt    time.Time
	Error     string
}

// FinishOutbox records delivery results in one statement.
func (s *Store) FinishOutbox(ctx context.Context, now time.Time, results []OutboxResult) error {
	if len(results) == 0 {
		return nil
	}
	n := len(results)
	ids, statuses, attempted, next, errs := make([]uuid.UUID, n), make([]string, n), make([]int, n), make([]time.Time, n), make([]*string, n)
	for i, r := range results {
		ids[i], next[i] = r.ID, r.NextAt
		switch {
		case r.Delivered:
			statuses[i] = "delivered"
		case r.Permanent:
			statuses[i] = "failed"
		default:
			statuses[i] = "pending"
		}
		if r.Attempted {
			attempted[i] = 1
		}
		if r.Error != "" {
			errs[i] = &results[i].Error
		}
	}
	_, err := s.pool.Exec(ctx, `UPDATE crm_outbox o SET status = v.status, attempts = o.attempts + v.attempted,
			next_attempt_at = CASE WHEN v.status = 'pending' THEN v.next ELSE o.next_attempt_at END,
			locked_until = NULL, last_error = COALESCE(v.err, CASE WHEN v.status = 'delivered' THEN NULL ELSE o.last_error END),
			delivered_at = CASE WHEN v.status = 'delivered' THEN $2::timestamptz END
		FROM unnest($1::uuid[], $3::text[], $4::int[], $5::timestamptz[], $6::text[]) AS v (id, status, attempted, next, err)
		WHERE o.id = v.id AND o.status = 'pending'`, ids, now, statuses, attempted, next, errs)
	return err
}

// CallDeliveries lists a call's CRM updates.
func (s *Store) CallDeliveries(ctx context.Context, callID uuid.UUID) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT event, status, attempts, last_error,
			CASE WHEN status = 'pending' THEN next_attempt_at END, delivered_at
		FROM crm_outbox WHERE call_id = $1 ORDER BY created_at`, callID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		err := row.Scan(&d.Event, &d.Status, &d.Attempts, &d.LastError, &d.NextAttempt, &d.DeliveredAt)
		return d, err
	})
}

// OutboxCounts counts updates by status, for metrics.
func (s *Store) OutboxCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM crm_outbox WHERE status <> 'delivered' GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{"pending": 0, "failed": 0}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
