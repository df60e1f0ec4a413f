package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
)

// Claimed is a call whose slot was taken and whose attempt is recorded:
// it is to be dialled exactly once.
type Claimed struct {
	Call   Call
	Config config.Integration
	// Caller is the caller number the attempt is dialled from
	// (voice.caller_ids); nil without a pool.
	Caller *config.CallerID
	// Claim is the claim's token, recorded on the attempt: the dial's
	// result carries it (CallEvent.Claim) so that it applies only to this
	// claim's attempt.
	Claim uuid.UUID
	// sealed are the dialler's secrets as the claim read them, still
	// encrypted (Store.DiallerSecret opens them).
	sealed []sealedSecret
}

// ClaimCalls takes free concurrency slots of an integration for queued
// calls — shared fairly between its campaigns and its webhook calls, each
// lane oldest first within priority (claimFromLanes) — and records each dial
// attempt, all in one transaction that holds the integration's row lock, so
// the limits hold across any number of dispatchers. open decides whether
// dialling is allowed at all right now (dialler configured, breaker); each
// call's calling window is checked on its own.
func (s *Store) ClaimCalls(ctx context.Context, integrationID uuid.UUID, now time.Time, open func(config.Integration) bool) ([]Claimed, error) {
	res, err := s.Claim(ctx, integrationID, now, open)
	return res.Calls, err
}

// Claims is what one claim did.
type Claims struct {
	// Calls are the calls claimed, to be dialled.
	Calls []Claimed
	// Holds counts the holds of pacing rules written to calls' histories.
	Holds map[pacing.Hold]int
	// Wake, when set, is when a call held for a moment (the dial rate)
	// may go: claim again then.
	Wake time.Time
}

// Claim is ClaimCalls, also telling which pacing rules held calls back and
// when to claim again (contract §9).
func (s *Store) Claim(ctx context.Context, integrationID uuid.UUID, now time.Time, open func(config.Integration) bool) (Claims, error) {
	var (
		out []Claimed
		p   *pacer
	)
	token := uuid.New()
	ambiguous, err := s.inClaimTx(ctx, func(tx pgx.Tx) error {
		out, p = out[:0], nil
		// One round trip: the integration's row lock, then, read under it,
		// its config, its lanes, its claim bucket and its dialler's secret.
		var (
			head          pipeline
			found         bool
			status, owner string
			raw           = map[string]json.RawMessage{}
			laneRows      []laneRow
			bucket        claimBucketRow
			secrets       []sealedSecret
		)
		head.query("lock integration", func(rows pgx.Rows) error {
			found = true
			return rows.Scan(&status, &owner)
		}, `SELECT status, owner_id FROM integrations WHERE id = $1 FOR UPDATE`, integrationID)
		queueConfig(&head, integrationID, raw)
		queueLanes(&head, integrationID, now, &laneRows)
		queueClaimBucket(&head, integrationID, &bucket)
		queueSecrets(&head, integrationID, config.DiallerSecretKeys, &secrets)
		if err := head.send(ctx, tx); err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if status != StatusActive && status != StatusHasErrors {
			return nil
		}
		cfg := config.Decode(raw)
		if open != nil && !open(cfg) {
			return nil
		}
		lanes, held, err := buildLanes(laneRows, cfg)
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
		p = newPacer(integrationID, owner, cfg.CallHandling, cfg.Voice, s.dbClock())
		p.useBucket(bucket, now)
		// Every write of the claim goes in one more round trip.
		var tail pipeline
		claimed, err := claimFromLanes(ctx, tx, integrationID, owner, cfg, lanes, free, now, cs, p, &tail)
		if err != nil {
			return err
		}
		for _, c := range claimed {
			c.Claim, c.sealed = token, secrets
			out = append(out, c)
		}
		if err := cs.queue(ctx, tx, &tail); err != nil {
			return err
		}
		p.queueSave(&tail, now)
		return tail.send(ctx, tx)
	})
	res := Claims{Calls: out}
	if p != nil && err == nil {
		res.Holds, res.Wake = p.Holds, p.Wake
	}
	if ambiguous {
		res.Calls, err = s.resolveClaim(ctx, token, out)
	}
	return res, err
}
