package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// DialClue is what a platform report tells of the dial it is about when it
// names none of the ids we recorded: ElevenLabs' call_initiation_failure
// of a dial whose outbound-call request timed out (or never got its
// answer) carries a CallSid / call_sid and a conversation we never learnt,
// since ElevenLabs places the call whether or not we are still waiting.
type DialClue struct {
	// AgentID is the ElevenLabs agent whose call it is: only an integration
	// dialling through that agent (voice.agent_id) placed it.
	AgentID string
	// Phone is the number dialled, when the report says (Twilio's To); a
	// SIP trunk's report does not, and then any number will do.
	Phone string
	// ReceivedAt is when the report arrived: a dial started later is not
	// the one it reports on.
	ReceivedAt time.Time
}

// dialClockSkew is how far the clocks of the process that dialled and the
// one that received a report may disagree: a dial stamped that much after
// the report still counts as one it could be about, which can only make a
// match ambiguous, never wrong.
const dialClockSkew = 5 * time.Second

// UnansweredDialWindow is how long after its start a dial may still be
// reported on: ElevenLabs reports a failure once the phone stopped ringing
// (at most config.RingTimeoutMax, 600 s) and the report takes its time.
const UnansweredDialWindow = 15 * time.Minute

// resolveUnansweredDial finds the attempt a report with clue c is about:
// among the integration's attempts started within UnansweredDialWindow
// before the report, to c.Phone when it says, whose dial's answer never
// named them (no dialler id, no conversation), the ones the report may be
// about are the current dials still waiting for their answer and the dials
// the watchdog gave up on (dial_lost, timeout), which the platform may
// have placed all the same. Exactly one is the match; none, or two that
// the report could equally be about, is no match, so that a report never
// ends a call it may not be about: the event then waits for the dial's
// answer (parked by its dialler id) or the watchdog settles the call.
func resolveUnansweredDial(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, c DialClue) (uuid.UUID, int, error) {
	if c.AgentID == "" {
		return uuid.Nil, 0, nil
	}
	var ours bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM integration_config WHERE integration_id = $1 AND key = 'voice'
		AND value->>'agent_id' = $2)`, integrationID, c.AgentID).Scan(&ours); err != nil || !ours {
		return uuid.Nil, 0, err
	}
	// Two index-friendly halves: the live dials (calls_slots) and the given
	// up ones (call_attempts_given_up); LIMIT 2 is enough to tell one from
	// several.
	rows, err := tx.Query(ctx, `(SELECT a.call_id, a.attempt FROM calls c
			JOIN call_attempts a ON a.call_id = c.id AND a.attempt = c.attempt
			WHERE c.integration_id = $1 AND c.slot_taken_at IS NOT NULL AND c.dial_state = 'dialing'
				AND ($2 = '' OR c.phone_number = $2)
				AND a.external_call_id IS NULL AND a.conversation_id IS NULL AND a.started_at BETWEEN $3 AND $4
			LIMIT 2)
		UNION ALL
		(SELECT a.call_id, a.attempt FROM call_attempts a JOIN calls c ON c.id = a.call_id
			WHERE a.integration_id = $1 AND a.outcome IN ('dial_lost', 'timeout')
				AND a.external_call_id IS NULL AND a.conversation_id IS NULL AND a.started_at BETWEEN $3 AND $4
				AND ($2 = '' OR c.phone_number = $2)
			LIMIT 2)`,
		integrationID, c.Phone, c.ReceivedAt.Add(-UnansweredDialWindow), c.ReceivedAt.Add(dialClockSkew))
	if err != nil {
		return uuid.Nil, 0, err
	}
	type attempt struct {
		CallID  uuid.UUID
		Attempt int
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[attempt])
	if err != nil || len(found) != 1 {
		return uuid.Nil, 0, err
	}
	return found[0].CallID, found[0].Attempt, nil
}
