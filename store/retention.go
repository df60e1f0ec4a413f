package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// dailyLockClass is the first key of the advisory locks that let one
// replica at a time run a daily job (the second is the job's name hashed).
const dailyLockClass = 0x6371 // "cq"

// JobRetention names the retention job in maintenance_runs.
const JobRetention = "retention"

// RetentionPolicy is an integration's data.retention_days.
type RetentionPolicy struct {
	IntegrationID uuid.UUID
	Days          int
}

// RetentionPolicies lists the integrations that keep calls for a bounded
// time.
func (s *Store) RetentionPolicies(ctx context.Context) ([]RetentionPolicy, error) {
	rows, err := s.pool.Query(ctx, `SELECT integration_id, (value->>'retention_days')::int FROM integration_config
		WHERE key = $1 AND jsonb_typeof(value->'retention_days') = 'number'
			AND (value->>'retention_days')::numeric BETWEEN $2 AND $3
		ORDER BY integration_id`, config.KeyData, config.RetentionDaysMin, config.RetentionDaysMax)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RetentionPolicy])
}

// RemoveExpired removes up to limit of an integration's finished calls
// last changed before cutoff, with everything linked to them, in one short
// transaction. Calls another transaction has locked are skipped for the
// next batch, never waited for; calls that have not ended are kept.
func (s *Store) RemoveExpired(ctx context.Context, integrationID uuid.UUID, cutoff time.Time, limit int) (Removed, error) {
	var r Removed
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM calls WHERE integration_id = $1 AND status IN ('completed', 'failed', 'cancelled')
			AND updated_at < $2 ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED`, integrationID, cutoff, limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		r, err = removeCalls(ctx, tx, ids)
		return err
	})
	return r, err
}

// ErrJobNotDue means a once-a-day job ran less than a day ago, or another
// replica runs it now.
var ErrJobNotDue = errors.New("job not due")

// RunDaily runs job when it last finished a day or more before now and
// no other replica is running it (a session advisory lock, held on one
// connection for the run and released with it), then records that it
// finished. It returns ErrJobNotDue without running it otherwise.
func (s *Store) RunDaily(ctx context.Context, job string, now time.Time, run func(ctx context.Context) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, dailyLockClass, job).Scan(&locked); err != nil {
		return err
	}
	if !locked {
		return ErrJobNotDue
	}
	defer func() {
		// A connection that cannot unlock is closed, which unlocks.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext($2))`, dailyLockClass, job); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	var last time.Time
	switch err := conn.QueryRow(ctx, `SELECT finished_at FROM maintenance_runs WHERE job = $1`, job).Scan(&last); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	case now.Sub(last) < 24*time.Hour:
		return ErrJobNotDue
	}
	if err := run(ctx); err != nil {
		return fmt.Errorf("%s: %w", job, err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO maintenance_runs (job, finished_at) VALUES ($1, $2)
		ON CONFLICT (job) DO UPDATE SET finished_at = EXCLUDED.finished_at`, job, now)
	return err
}
