package store

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// resolveCall finds the call an event is about and, when the event names
// it, the attempt. The most specific name wins:
//
//  1. our call id with its attempt (set by our own workers);
//  2. the attempt's call_id as we sent it to the dialler (<uuid>.<n>);
//  3. the dialler's id, recorded for one attempt when the dial answered;
//  4. our bare call id: the call, not the attempt (the current one);
//  5. the agent's conversation id, recorded for one attempt;
//  6. the phone number of a live call.
//
// An attempt of 0 means the event did not say which attempt it is about.
func resolveCall(ctx context.Context, tx pgx.Tx, ev CallEvent) (uuid.UUID, int, error) {
	if ev.CallID != uuid.Nil && ev.Attempt > 0 {
		return ev.CallID, ev.Attempt, nil
	}
	var id uuid.UUID
	var attempt int
	// For our own events (CallID set) ExternalCallID is what the dial
	// answered, not a name of the call.
	if ref := ev.ExternalCallID; ref != "" && ev.CallID == uuid.Nil {
		if id, attempt, ok := callstate.ParseAttemptCallID(ref); ok {
			return id, attempt, nil
		}
		err := tx.QueryRow(ctx, `SELECT call_id, attempt FROM call_attempts WHERE integration_id = $1 AND external_call_id = $2`,
			ev.IntegrationID, ref).Scan(&id, &attempt)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return id, attempt, err
		}
		if parsed, err := uuid.Parse(ref); err == nil {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM calls WHERE id = $1 AND integration_id = $2)`,
				parsed, ev.IntegrationID).Scan(&exists); err != nil {
				return uuid.Nil, 0, err
			}
			if exists {
				return parsed, 0, nil
			}
		}
	}
	if ev.ConversationID != "" {
		err := tx.QueryRow(ctx, `SELECT call_id, attempt FROM call_attempts WHERE integration_id = $1 AND conversation_id = $2
			ORDER BY started_at DESC LIMIT 1`, ev.IntegrationID, ev.ConversationID).Scan(&id, &attempt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return uuid.Nil, 0, err
		}
		if err == nil && (ev.CallID == uuid.Nil || ev.CallID == id) {
			return id, attempt, nil
		}
	}
	if ev.CallID != uuid.Nil {
		return ev.CallID, 0, nil
	}
	if ev.ConversationID != "" {
		// Calls whose conversation id was recorded before attempts kept their own.
		err := tx.QueryRow(ctx, `SELECT id FROM calls WHERE conversation_id = $1 AND integration_id = $2
			ORDER BY created_at DESC LIMIT 1`, ev.ConversationID, ev.IntegrationID).Scan(&id)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return id, 0, err
		}
	}
	if ev.Phone != "" {
		err := tx.QueryRow(ctx, `SELECT id FROM calls WHERE integration_id = $1 AND phone_number = $2
			AND status IN ('initiated', 'in_progress', 'waiting_postcall')
			ORDER BY slot_taken_at DESC NULLS LAST, created_at DESC LIMIT 1`, ev.IntegrationID, ev.Phone).Scan(&id)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return id, 0, err
		}
	}
	return id, 0, nil
}
