package store

import (
	"context"
	"time"
)

// StatusAge counts an integration's calls in one non-terminal status and
// says how long the oldest has been in it (since its last change).
type StatusAge struct {
	IntegrationID string
	Status        string
	Calls         int
	Oldest        time.Duration
}

// callStatusAgesSQL reads calls_live alone (an index-only scan): its cost
// grows with the calls under way, not with the history.
const callStatusAgesSQL = `SELECT integration_id::text, status, count(*),
		COALESCE(EXTRACT(EPOCH FROM now() - min(updated_at)), 0)::float8
	FROM calls WHERE status IN ('queued', 'initiated', 'in_progress', 'waiting_postcall', 'retry_scheduled')
	GROUP BY integration_id, status`

// CallStatusAges reads, for the operator's metrics, how many calls sit in
// each non-terminal status per integration and the age of the oldest.
func (s *Store) CallStatusAges(ctx context.Context) ([]StatusAge, error) {
	rows, err := s.pool.Query(ctx, callStatusAgesSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StatusAge
	for rows.Next() {
		var a StatusAge
		var secs float64
		if err := rows.Scan(&a.IntegrationID, &a.Status, &a.Calls, &secs); err != nil {
			return nil, err
		}
		a.Oldest = time.Duration(max(secs, 0) * float64(time.Second))
		out = append(out, a)
	}
	return out, rows.Err()
}

// OutboxBacklog is the CRM outbox's undelivered updates.
type OutboxBacklog struct {
	Pending, Failed, NoRecord int
	// OldestPending is the age of the oldest pending update (0 when none).
	OldestPending time.Duration
}

// OutboxBacklog reads the outbox's pending and failed updates and how old
// the oldest pending one is.
func (s *Store) OutboxBacklog(ctx context.Context) (OutboxBacklog, error) {
	var b OutboxBacklog
	var secs float64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed'),
			count(*) FILTER (WHERE status = 'no_record'),
			COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending')), 0)::float8
		FROM crm_outbox WHERE status <> 'delivered'`).Scan(&b.Pending, &b.Failed, &b.NoRecord, &secs)
	b.OldestPending = time.Duration(max(secs, 0) * float64(time.Second))
	return b, err
}
