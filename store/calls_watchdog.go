package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// Overdue is a call that has held its slot too long.
type Overdue struct {
	CallID        uuid.UUID
	IntegrationID uuid.UUID
	Attempt       int
	Reason        string
}

// OverdueCalls finds an integration's calls holding a slot past
// max_call_duration_secs, and calls whose dial never reported back within
// dialLost (the dialling process died mid-request, or the request got no
// answer) unless call_start has shown them live. ElevenLabs sends no
// call_start: a dial of its whose answer never came may be a conversation
// under way, which it reports on only once it is over, so such a dial is
// released at max_call_duration_secs only, never dialled again while it
// may be live. The stored limit is read defensively (type-checked, clamped to its bounds) so that no stored
// value can make the query fail.
//
// Both deadlines are judged by the database's clock (dbNow), which also
// stamped slot_taken_at: a replica whose own clock is off neither releases
// a live dial early nor keeps a dead one.
func (s *Store) OverdueCalls(ctx context.Context, integrationID uuid.UUID, dialLost time.Duration, limit int) ([]Overdue, error) {
	rows, err := s.pool.Query(ctx, `WITH clock AS (SELECT `+dbNow(1)+` AS now)
		SELECT c.id, c.integration_id, c.attempt,
			CASE WHEN c.dial_state = 'dialing' AND c.status <> 'in_progress' AND c.slot_taken_at <= clock.now - $2::interval THEN 'dial_lost' ELSE 'timeout' END
		FROM clock, calls c LEFT JOIN integration_config cfg ON cfg.integration_id = c.integration_id AND cfg.key = 'call_handling'
			LEFT JOIN integration_config voice ON voice.integration_id = c.integration_id AND voice.key = 'voice'
		WHERE c.integration_id = $4 AND c.slot_taken_at IS NOT NULL
		  AND ((c.dial_state = 'dialing' AND c.status <> 'in_progress' AND c.slot_taken_at <= clock.now - $2::interval
				AND voice.value->>'provider' IS DISTINCT FROM 'elevenlabs')
		    OR c.slot_taken_at <= clock.now - make_interval(secs => (CASE
				WHEN jsonb_typeof(cfg.value->'max_call_duration_secs') = 'number'
				THEN LEAST(GREATEST((cfg.value->>'max_call_duration_secs')::numeric, $5), $6)
				ELSE 1800 END)::float8))
		ORDER BY c.slot_taken_at LIMIT $3`, s.dbClock(), dialLost, limit, integrationID,
		config.MaxCallDurationMinSecs, config.MaxCallDurationMaxSecs)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Overdue])
}

// awaitingPostcallSQL reads calls_awaiting_postcall: the waiting calls
// only, not the history.
var awaitingPostcallSQL = `SELECT id, integration_id, attempt, 'postcall_timeout' FROM calls
	WHERE status = 'waiting_postcall' AND updated_at <= ` + dbNow(1) + ` - $2::interval ORDER BY updated_at LIMIT $3`

// AwaitingPostcall finds calls that have waited for their post-call report
// longer than wait since their call_end: the report may never come, and
// the call is completed from what is known. The wait is judged by the
// database's clock.
func (s *Store) AwaitingPostcall(ctx context.Context, wait time.Duration, limit int) ([]Overdue, error) {
	rows, err := s.pool.Query(ctx, awaitingPostcallSQL, s.dbClock(), wait, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Overdue])
}
