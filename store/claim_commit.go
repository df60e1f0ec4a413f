package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A claim's COMMIT can fail after the server committed it: the connection
// is lost while the answer is on its way. Retrying the claim would take
// more slots, dropping it would leave the claimed calls "dialling" until the
// watchdog releases them as dial_lost. Instead every claim stamps the
// attempts it records with a token, and when its COMMIT fails without a
// server answer the dispatcher looks the token up once the database is back:
// the attempts carrying it were claimed (and are dialled once, by this
// dispatcher, which alone knows the token); none means nothing was.

// inClaimTx runs fn in a transaction and commits it. ambiguous reports a
// COMMIT that failed with no answer from the server: it may have happened.
func (s *Store) inClaimTx(ctx context.Context, fn func(pgx.Tx) error) (ambiguous bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return false, err
	}
	err = s.commit(ctx, tx)
	var pgErr *pgconn.PgError
	return err != nil && !errors.As(err, &pgErr), err
}

// resolveClaim learns, after an ambiguous COMMIT, which of claimed were
// claimed: those whose attempt carries token and is still waiting for its
// dial. It retries while the database is unreachable, until ctx ends.
func (s *Store) resolveClaim(ctx context.Context, token uuid.UUID, claimed []Claimed) ([]Claimed, error) {
	var held map[uuid.UUID]bool
	delay := 50 * time.Millisecond
	for {
		rows, err := s.pool.Query(ctx, `SELECT c.id FROM call_attempts a JOIN calls c ON c.id = a.call_id AND c.attempt = a.attempt
			WHERE a.claim_token = $1 AND c.status = 'initiated' AND c.dial_state = 'dialing'`, token)
		if err == nil {
			var ids []uuid.UUID
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err == nil {
				held = make(map[uuid.UUID]bool, len(ids))
				for _, id := range ids {
					held[id] = true
				}
				break
			}
		}
		if !IsTransient(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("claim outcome unknown (the watchdog will release what it took): %w", errors.Join(ctx.Err(), err))
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
	out := claimed[:0]
	for _, c := range claimed {
		if held[c.Call.ID] {
			out = append(out, c)
		}
	}
	return out, nil
}
