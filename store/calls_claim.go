package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// Claimed is a call whose slot was taken and whose attempt is recorded:
// it is to be dialled exactly once.
type Claimed struct {
	Call   Call
	Config config.Integration
	// Claim is the claim's token, recorded on the attempt: the dial's
	// result carries it (CallEvent.Claim) so that it applies only to this
	// claim's attempt.
	Claim uuid.UUID
}

// ClaimCalls takes free concurrency slots of an integration for queued
// calls — shared fairly between its campaigns and its webhook calls, each
// lane oldest first within priority (claimFromLanes) — and records each dial
// attempt, all in one transaction that holds the integration's row lock, so
// the limits hold across any number of dispatchers. open decides whether
// dialling is allowed at all right now (dialler configured, breaker); each
// call's calling window is checked on its own.
func (s *Store) ClaimCalls(ctx context.Context, integrationID uuid.UUID, now time.Time, open func(config.Integration) bool) ([]Claimed, error) {
	var out []Claimed
	token := uuid.New()
	ambiguous, err := s.inClaimTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		var status, owner string
		err := tx.QueryRow(ctx, `SELECT status, owner_id FROM integrations WHERE id = $1 FOR UPDATE`, integrationID).Scan(&status, &owner)
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
		// Read after the row lock, so the slots held include those of every
		// claim that committed before this one.
		lanes, held, err := loadLanes(ctx, tx, integrationID, cfg, now)
		if err != nil {
			return err
		}
		free := cfg.CallHandling.ConcurrencyLimit - held
		if free <= 0 {
			return nil
		}
		for _, l := range lanes {
			l.room = min(l.room, free)
		}
		cs := newChangeSet(s.dbClock())
		cs.claimToken = &token
		claimed, err := claimFromLanes(ctx, tx, integrationID, owner, cfg, lanes, free, now, cs)
		if err != nil {
			return err
		}
		for _, c := range claimed {
			c.Claim = token
			out = append(out, c)
		}
		return cs.flush(ctx, tx)
	})
	if ambiguous {
		return s.resolveClaim(ctx, token, out)
	}
	return out, err
}
