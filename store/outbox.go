package store

import (
	"context"
	"encoding/json"
	"errors"
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
	CreatedAt     time.Time
	// LeaseToken is the claim's fencing token: results, renewals and step
	// records count only while it still holds the lease.
	LeaseToken uuid.UUID
	// StepsDone are the parts of the update already applied.
	StepsDone []string
	// TraceParent is the trace context of the event that made the update.
	TraceParent *string
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
		"summary": deref(c.Summary), "dynamicVariables": c.DynamicVariables, "callerId": c.CallerID,
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

// OutboxClaim says which due updates to lease.
type OutboxClaim struct {
	Now   time.Time
	Lease time.Duration
	Limit int
	// PerIntegration bounds how many of one integration's updates the
	// claimer holds at once, Held included: the claim goes round-robin
	// over integrations (each one's oldest first), so one tenant's backlog
	// cannot fill it.
	PerIntegration int
	// Held is how many of each integration's updates the claimer is
	// delivering already.
	Held map[uuid.UUID]int
	// Skip lists integrations not to claim for now (their breaker is open,
	// or as many of theirs are in flight as they may have).
	Skip []uuid.UUID
	// InFlight lists updates the claimer is delivering already: never
	// claimed again by it, whatever their lease says.
	InFlight []uuid.UUID
}

// ClaimOutbox leases due updates under a new fencing token, so that one
// deliverer works on each however many run.
func (s *Store) ClaimOutbox(ctx context.Context, c OutboxClaim) ([]OutboxItem, error) {
	token := uuid.New()
	// Never NULL: "<> ALL(NULL)" matches nothing.
	skip, inFlight := append([]uuid.UUID{}, c.Skip...), append([]uuid.UUID{}, c.InFlight...)
	heldIDs, heldCounts := make([]uuid.UUID, 0, len(c.Held)), make([]int, 0, len(c.Held))
	for id, n := range c.Held {
		heldIDs, heldCounts = append(heldIDs, id), append(heldCounts, n)
	}
	// Integrations with pending updates are found by skipping through
	// crm_outbox_pending (one probe each); each gives its oldest due
	// updates, up to its room. The subquery cannot lock rows, so the UPDATE
	// checks again that each row is still free: a concurrent claimer's
	// lease makes it skip.
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE pending (integration_id) AS (
			(SELECT integration_id FROM crm_outbox WHERE status = 'pending' ORDER BY integration_id LIMIT 1)
			UNION ALL
			SELECT (SELECT u.integration_id FROM crm_outbox u WHERE u.status = 'pending' AND u.integration_id > p.integration_id
				ORDER BY u.integration_id LIMIT 1)
			FROM pending p WHERE p.integration_id IS NOT NULL)
		UPDATE crm_outbox o SET locked_until = `+dbNow(10)+` + $2, lease_token = $4
		WHERE o.id IN (SELECT d.id FROM pending p
				LEFT JOIN unnest($8::uuid[], $9::int[]) AS h (integration_id, n) ON h.integration_id = p.integration_id
				CROSS JOIN LATERAL (SELECT u.id, u.next_attempt_at, row_number() OVER (ORDER BY u.next_attempt_at, u.id) AS turn
					FROM crm_outbox u WHERE u.integration_id = p.integration_id AND u.status = 'pending' AND u.next_attempt_at <= $1
						AND (u.locked_until IS NULL OR u.locked_until <= `+dbNow(10)+`) AND u.id <> ALL($7::uuid[])
					ORDER BY u.next_attempt_at, u.id LIMIT GREATEST($5 - COALESCE(h.n, 0), 0)) d
				WHERE p.integration_id IS NOT NULL AND p.integration_id <> ALL($6::uuid[])
				ORDER BY d.turn, d.next_attempt_at LIMIT $3)
			AND o.status = 'pending' AND (o.locked_until IS NULL OR o.locked_until <= `+dbNow(10)+`)
		RETURNING id, integration_id, call_id, event, payload, attempts, created_at, lease_token, steps_done, trace_parent`,
		c.Now, c.Lease, c.Limit, token, max(c.PerIntegration, 1), skip, inFlight, heldIDs, heldCounts, s.dbClock())
	if err != nil {
		return nil, err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxItem, error) {
		var it OutboxItem
		err := row.Scan(&it.ID, &it.IntegrationID, &it.CallID, &it.Event, &it.Payload, &it.Attempts, &it.CreatedAt,
			&it.LeaseToken, &it.StepsDone, &it.TraceParent)
		return it, err
	})
	if err := s.answered(ctx, err); err != nil {
		return nil, err
	}
	return items, nil
}

// RenewOutbox extends the leases of items still held under token and
// returns the ids it renewed: an id missing from the answer has lost its
// lease (it lapsed and was claimed by another deliverer). The leases run
// for lease from the database's now.
func (s *Store) RenewOutbox(ctx context.Context, token uuid.UUID, ids []uuid.UUID, lease time.Duration) (map[uuid.UUID]bool, error) {
	rows, err := s.pool.Query(ctx, `UPDATE crm_outbox SET locked_until = `+dbNow(4)+` + $3
		WHERE id = ANY($2) AND lease_token = $1 AND status = 'pending' RETURNING id`, token, ids, lease, s.dbClock())
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	out := make(map[uuid.UUID]bool, len(got))
	for _, id := range got {
		out[id] = true
	}
	return out, err
}

// DeferOutbox moves an integration's due updates, those no deliverer
// holds, to until without counting an attempt: its CRM's breaker is open,
// and one statement waits them all out instead of claiming each in turn.
func (s *Store) DeferOutbox(ctx context.Context, integrationID uuid.UUID, until time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE crm_outbox SET next_attempt_at = $3
		WHERE integration_id = $1 AND status = 'pending' AND next_attempt_at < $3
			AND (locked_until IS NULL OR locked_until <= `+dbNow(2)+`)`, integrationID, s.dbClock(), until)
	return err
}

// ErrLeaseLost means the outbox item is no longer leased under the token.
var ErrLeaseLost = errors.New("outbox lease lost")

// RecordOutboxStep records that step of the update is applied, under the
// lease's token (ErrLeaseLost when it no longer holds the lease).
func (s *Store) RecordOutboxStep(ctx context.Context, id, token uuid.UUID, step string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE crm_outbox SET steps_done = array_append(steps_done, $3)
		WHERE id = $1 AND lease_token = $2 AND status = 'pending' AND NOT ($3 = ANY(steps_done))`, id, token, step)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		var held bool
		if err := s.pool.QueryRow(ctx, `SELECT lease_token = $2 AND status = 'pending' FROM crm_outbox WHERE id = $1`,
			id, token).Scan(&held); err != nil || !held {
			return ErrLeaseLost
		}
	}
	return nil
}

// OutboxResult is what one delivery attempt came to.
type OutboxResult struct {
	ID uuid.UUID
	// LeaseToken is the claim's: a result under a lease that was lost
	// changes nothing.
	LeaseToken uuid.UUID
	// Delivered, or else NoRecord (the CRM has no record for the call:
	// kept as no_record), or else Permanent (failed for good), or else
	// retry at NextAt.
	Delivered bool
	NoRecord  bool
	Permanent bool
	// Attempted is false when nothing was sent (the breaker was open): the
	// update waits without an attempt counted.
	Attempted bool
	NextAt    time.Time
	Error     string
}

// FinishOutbox records delivery results in one statement, each only if its
// lease token still holds the item (fencing: a deliverer that lost its
// lease cannot undo or repeat what the next one recorded).
func (s *Store) FinishOutbox(ctx context.Context, now time.Time, results []OutboxResult) error {
	if len(results) == 0 {
		return nil
	}
	n := len(results)
	ids, statuses, attempted, next, errs := make([]uuid.UUID, n), make([]string, n), make([]int, n), make([]time.Time, n), make([]*string, n)
	tokens := make([]uuid.UUID, n)
	for i, r := range results {
		ids[i], next[i], tokens[i] = r.ID, r.NextAt, r.LeaseToken
		switch {
		case r.Delivered:
			statuses[i] = "delivered"
		case r.NoRecord:
			statuses[i] = "no_record"
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
			delivered_at = CASE WHEN v.status = 'delivered' THEN $2::timestamptz END,
			-- A minimal call's content served its update; once sent (or
			-- failed for good) it is not kept.
			payload = CASE WHEN v.status <> 'pending'
				AND EXISTS (SELECT 1 FROM calls k WHERE k.id = o.call_id AND k.data_store = 'minimal')
				THEN o.payload - $8::text[] ELSE o.payload END
		FROM unnest($1::uuid[], $3::text[], $4::int[], $5::timestamptz[], $6::text[], $7::uuid[]) AS v (id, status, attempted, next, err, token)
		WHERE o.id = v.id AND o.status = 'pending' AND o.lease_token = v.token`, ids, now, statuses, attempted, next, errs, tokens,
		minimalPayloadContent)
	return s.answered(ctx, err)
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
	out := map[string]int{"pending": 0, "failed": 0, "no_record": 0}
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
