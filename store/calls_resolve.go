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
//  6. what the report tells of its dial (Dial): the one attempt still
//     waiting for that dial's answer;
//  7. the phone number of a live call.
//
// An attempt of 0 means the event did not say which attempt it is about.
func resolveCall(ctx context.Context, tx pgx.Tx, ev CallEvent) (uuid.UUID, int, error) {
	ids, attempts, err := resolveCalls(ctx, tx, []CallEvent{ev})
	return ids[0], attempts[0], err
}

// resolveCalls is resolveCall for a batch. Names 1–4, which nearly every
// event carries, cost one statement for the whole batch; an event left
// unresolved by them is looked up on its own.
func resolveCalls(ctx context.Context, tx pgx.Tx, events []CallEvent) ([]uuid.UUID, []int, error) {
	ids, attempts := make([]uuid.UUID, len(events)), make([]int, len(events))
	var p pipeline
	resolveNamesIn(&p, events, ids, attempts)
	if err := p.send(ctx, tx); err != nil {
		return ids, attempts, err
	}
	for i, ev := range events {
		if ids[i] != uuid.Nil {
			continue
		}
		var err error
		if ids[i], attempts[i], err = resolveOther(ctx, tx, ev); err != nil {
			return ids, attempts, err
		}
	}
	return ids, attempts, nil
}

// resolveNamesIn resolves the events named 1–4 into ids and attempts:
// at once those that name their attempt, the others by a statement queued
// in p, whose answer fills them in when p is sent. Those it cannot resolve
// keep a nil id.
func resolveNamesIn(p *pipeline, events []CallEvent, ids []uuid.UUID, attempts []int) {
	var byRef []int // events named by a dialler id or our bare call id
	for i, ev := range events {
		switch ref := ev.ExternalCallID; {
		case ev.CallID != uuid.Nil && ev.Attempt > 0:
			ids[i], attempts[i] = ev.CallID, ev.Attempt
		// For our own events (CallID set) ExternalCallID is what the dial
		// answered, not a name of the call.
		case ref != "" && ev.CallID == uuid.Nil:
			if id, attempt, ok := callstate.ParseAttemptCallID(ref); ok {
				ids[i], attempts[i] = id, attempt
			} else {
				byRef = append(byRef, i)
			}
		}
	}
	resolveRefsIn(p, events, byRef, ids, attempts)
}

// resolveRefsIn queues in p the statement that resolves events[which],
// named by ExternalCallID: a dialler id recorded for an attempt, else our
// bare call id.
func resolveRefsIn(p *pipeline, events []CallEvent, which []int, ids []uuid.UUID, attempts []int) {
	if len(which) == 0 {
		return
	}
	ns, integrations, refs, parsed := make([]int32, len(which)), make([]uuid.UUID, len(which)), make([]string, len(which)),
		make([]*uuid.UUID, len(which))
	for k, i := range which {
		ns[k], integrations[k], refs[k] = int32(i), events[i].IntegrationID, events[i].ExternalCallID
		if id, err := uuid.Parse(refs[k]); err == nil {
			parsed[k] = &id
		}
	}
	p.query("resolve calls", func(rows pgx.Rows) error {
		var n int32
		var id uuid.UUID
		var attempt int
		if err := rows.Scan(&n, &id, &attempt); err != nil {
			return err
		}
		ids[n], attempts[n] = id, attempt
		return nil
	}, `SELECT r.n, COALESCE(a.call_id, c.id), COALESCE(a.attempt, 0)
		FROM unnest($1::int[], $2::uuid[], $3::text[], $4::uuid[]) AS r (n, integration_id, ref, parsed)
		LEFT JOIN LATERAL (SELECT call_id, attempt FROM call_attempts
			WHERE integration_id = r.integration_id AND external_call_id = r.ref LIMIT 1) a ON true
		LEFT JOIN LATERAL (SELECT id FROM calls WHERE a.call_id IS NULL AND id = r.parsed
			AND integration_id = r.integration_id) c ON true
		WHERE a.call_id IS NOT NULL OR c.id IS NOT NULL`, ns, integrations, refs, parsed)
}

// resolveOther resolves an event by names 5 to 7, or by the call id our
// own workers set.
func resolveOther(ctx context.Context, tx pgx.Tx, ev CallEvent) (uuid.UUID, int, error) {
	var id uuid.UUID
	var attempt int
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
	if ev.Dial != nil {
		if id, attempt, err := resolveUnansweredDial(ctx, tx, ev.IntegrationID, *ev.Dial); err != nil || id != uuid.Nil {
			return id, attempt, err
		}
	}
	if ev.Phone != "" {
		err := tx.QueryRow(ctx, `SELECT id FROM calls WHERE integration_id = $1 AND phone_number = $2
			AND status IN ('initiated', 'in_progress', 'waiting_postcall')
			ORDER BY slot_taken_at DESC NULLS LAST, created_at DESC LIMIT 1`, ev.IntegrationID, ev.Phone).Scan(&id)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return uuid.Nil, 0, err
		}
	}
	return id, 0, nil
}
