package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// applyPolicyChange brings the unfinished calls of an integration (or of
// one of its campaigns) in line with a changed max_attempts or retry
// policy: they apply to every dial not made yet (contract §3). Each call
// takes the new maximum; a call waiting for its next attempt whose
// attempts reach it fails, and a waiting retry moves to the time the new
// policy gives it, counted from when its attempt ended. Live calls are
// judged by the new policy when they end.
func applyPolicyChange(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, campaignID *uuid.UUID, cfg config.Integration,
	now time.Time) error {
	type waiting struct {
		call    Call
		overlay json.RawMessage
		ended   *time.Time
	}
	rows, err := tx.Query(ctx, `SELECT `+prefixed("c.", callColumns)+`, k.call_handling, a.ended_at
		FROM calls c LEFT JOIN campaigns k ON k.id = c.campaign_id
			LEFT JOIN call_attempts a ON a.call_id = c.id AND a.attempt = c.attempt
		WHERE c.integration_id = $1 AND ($2::uuid IS NULL OR c.campaign_id = $2)
			AND c.status IN ('queued', 'retry_scheduled', 'initiated', 'in_progress', 'waiting_postcall')
		ORDER BY c.id FOR UPDATE OF c`, integrationID, campaignID)
	if err != nil {
		return err
	}
	var calls []waiting
	for rows.Next() {
		var w waiting
		if err := rows.Scan(append(callDest(&w.call), &w.overlay, &w.ended)...); err != nil {
			rows.Close()
			return err
		}
		calls = append(calls, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	byOverlay := map[string]config.CallHandling{}
	hasCRM := cfg.CRM.Kind != "none" && cfg.CRM.Kind != ""
	var ids []uuid.UUID
	var maxes []int
	cs := newChangeSet(nil) // a policy change takes no slot
	for i := range calls {
		w := &calls[i]
		handling, ok := byOverlay[string(w.overlay)]
		if !ok {
			if handling, err = cfg.CallHandling.Overlay(w.overlay); err != nil {
				handling = cfg.CallHandling
			}
			byOverlay[string(w.overlay)] = handling
		}
		c := &w.call
		// A call's attempts reaching its maximum is what ends it: a maximum
		// lowered below the attempts made is stored as those (the schema
		// holds attempt <= max_attempts), with the same effect.
		if limit := max(handling.MaxAttempts, c.Attempt, 1); c.MaxAttempts != limit {
			c.MaxAttempts = limit
			ids, maxes = append(ids, c.ID), append(maxes, limit)
		}
		if c.Status != callstate.Queued && c.Status != callstate.RetryScheduled {
			continue
		}
		ev := CallEvent{IntegrationID: integrationID, CallID: c.ID, Attempt: c.Attempt, TraceID: deref(c.TraceID), At: now,
			Event: callstate.Event{Kind: callstate.PolicyChanged, EndedAt: c.UpdatedAt}}
		if w.ended != nil {
			ev.Event.EndedAt = *w.ended
		}
		if c.DialState != dialStateNone && c.Outcome != nil {
			// A retry of a failed attempt (not a dial held back unsent).
			ev.Event.Reason = *c.Outcome
		}
		d := callstate.Next(callstate.Call{Status: c.Status, Attempt: c.Attempt, MaxAttempts: c.MaxAttempts}, ev.Event, handling, now)
		if !d.Changed || (d.To == callstate.RetryScheduled && c.NextRetryAt != nil && c.NextRetryAt.Equal(d.NextRetryAt)) {
			continue
		}
		cs.record(c, ev, d)
		if event := outboxEvent(d); event != "" && hasCRM {
			cs.outbox = append(cs.outbox, outboxIntent{callID: c.ID, event: event})
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE calls c SET max_attempts = v.max FROM unnest($1::uuid[], $2::int[]) AS v (id, max)
			WHERE c.id = v.id`, ids, maxes); err != nil {
			return err
		}
	}
	return cs.flush(ctx, tx)
}
