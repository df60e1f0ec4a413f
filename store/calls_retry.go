package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Due is a call whose retry time has come, put back in the queue.
type Due struct {
	CallID        uuid.UUID
	IntegrationID uuid.UUID
}

// RequeueDue moves retry_scheduled calls whose time has come, by the
// database's clock, back to queued, of one integration or (uuid.Nil) of
// all. Each call moves once however many schedulers run.
func (s *Store) RequeueDue(ctx context.Context, integrationID uuid.UUID, limit int) ([]Due, error) {
	rows, err := s.pool.Query(ctx, `WITH clock AS (SELECT `+dbNow(1)+` AS now),
		due AS (
			UPDATE calls SET status = 'queued', next_retry_at = NULL, queued_at = clock.now, updated_at = clock.now
			FROM clock
			WHERE id IN (SELECT id FROM calls, clock WHERE status = 'retry_scheduled' AND next_retry_at <= clock.now
				AND ($3 = '00000000-0000-0000-0000-000000000000'::uuid OR integration_id = $3)
				ORDER BY next_retry_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING id, integration_id, attempt, trace_id),
		history AS (
			INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, trace_id, occurred_at)
			SELECT id, attempt, 'retry_due', 'retry_scheduled', 'queued', trace_id, clock.now FROM due, clock)
		SELECT id, integration_id FROM due`, s.dbClock(), limit, integrationID)
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
