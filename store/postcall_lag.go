package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// PostcallLag is when an integration's platform last opened a conversation
// that should have ended by now, and when its last post-call report (a
// transcription or an initiation failure) was recorded; either is nil when
// there is none within the lookback.
type PostcallLag struct {
	LastDialAt     *time.Time
	LastPostcallAt *time.Time
}

// Stale reports whether a conversation opened since the last post-call
// should have been reported by now: the sign of a post-call webhook that
// is not arriving (disabled by the platform, wrong URL, retries off after
// an outage).
func (l PostcallLag) Stale() bool {
	return l.LastDialAt != nil && (l.LastPostcallAt == nil || l.LastPostcallAt.Before(*l.LastDialAt))
}

// PostcallLagLookback bounds how far back PostcallLagOf looks.
const PostcallLagLookback = 24 * time.Hour

// PostcallLagOf reads an integration's PostcallLag at now: the last
// conversation the platform accepted (an attempt with a conversation id)
// that started at least settle ago — long enough for any call to have
// ended and been reported — against the last post-call recorded.
func (s *Store) PostcallLagOf(ctx context.Context, integrationID uuid.UUID, now time.Time, settle time.Duration) (PostcallLag, error) {
	var lag PostcallLag
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT max(started_at) FROM call_attempts WHERE integration_id = $1 AND conversation_id IS NOT NULL
			AND started_at BETWEEN $2 AND $3),
		(SELECT max(e.occurred_at) FROM call_events e JOIN calls c ON c.id = e.call_id
			WHERE c.integration_id = $1 AND e.kind IN ('postcall', 'initiation_failed') AND e.occurred_at >= $2)`,
		integrationID, now.Add(-PostcallLagLookback), now.Add(-settle)).Scan(&lag.LastDialAt, &lag.LastPostcallAt)
	return lag, err
}
