package store

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The periodic sweeps (watchdog, due retries) run one integration at a
// time: a query that fails on one tenant's rows must not stop the sweep for
// every other tenant. These lists are what the sweeps iterate over.

// IntegrationsHoldingSlots lists integrations with calls holding a slot,
// cancelled-but-live ones included: their call_end may never come, and the
// watchdog's hard limit is what frees them then.
func (s *Store) IntegrationsHoldingSlots(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT integration_id FROM calls WHERE slot_taken_at IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// IntegrationsWithDueRetries lists integrations with a retry due by the
// database's clock.
func (s *Store) IntegrationsWithDueRetries(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT integration_id FROM calls
		WHERE status = 'retry_scheduled' AND next_retry_at <= `+dbNow(1), s.dbClock())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// IntegrationIDs lists every integration, so that in-memory state kept per
// integration (breakers, clients, metric series) can forget deleted ones.
func (s *Store) IntegrationIDs(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM integrations`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}
