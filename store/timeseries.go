package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Window is the time range of a timeseries: Points buckets of Step from
// From. Only buckets that have begun by Now are answered.
type Window struct {
	From   time.Time
	Step   time.Duration
	Points int
	Now    time.Time
}

// Point is one bucket of a timeseries (contract §10): the dials started in
// it, those dials by how they ended (a dial still live is in no outcome),
// and the calls live and the calls waiting for their first dial at its end
// (at Now for the bucket under way).
type Point struct {
	T         time.Time      `json:"t"`
	Dials     int            `json:"dials"`
	ByOutcome map[string]int `json:"byOutcome"`
	Active    int            `json:"active"`
	Queued    int            `json:"queued"`
}

// Event kinds the timeseries queries count per bucket. A dial moves active
// up and its end down; a call joins the queue when created and leaves it at
// its first dial or when it ends undialled (cancelled, suppressed,
// ineligible).
const (
	evFirstDial = "first_dial"
	evRedial    = "redial"
	evEnded     = "ended"
	evCreated   = "created"
	evUndialled = "undialled"
	evActiveNow = "active_now"
	evQueuedNow = "queued_now"
)

// bucketOf is the bucket of an event time: -1 before the window, w.Points
// at or after its end.
const bucketOf = `GREATEST(-1, LEAST($4::int, floor(extract(epoch FROM (at - $2::timestamptz)) / $3::float8)))::int`

// IntegrationTimeseries counts an integration's dials, live calls and
// queue per bucket. Only what happened since the window's start is read,
// through indexes by time (migration 0018): the live and queued counts
// before it are the counts now less what changed since, so the cost follows
// the window, not the integration's history.
func (s *Store) IntegrationTimeseries(ctx context.Context, integrationID uuid.UUID, w Window) ([]Point, error) {
	return s.timeseries(ctx, w, integrationTimeseriesSQL, integrationID)
}

// CampaignTimeseries counts a campaign's dials, live calls and queue per
// bucket. A campaign's calls are read whole (by calls_campaign_status, and
// their attempts by key), so the counts before the window are counted, not
// derived; the cost follows the campaign's size.
func (s *Store) CampaignTimeseries(ctx context.Context, campaignID uuid.UUID, w Window) ([]Point, error) {
	return s.timeseries(ctx, w, campaignTimeseriesSQL, campaignID)
}

// The counting queries: $1 the integration or campaign, $2 the window's
// start, $3 its step in seconds, $4 its number of buckets.
const (
	integrationTimeseriesSQL = `WITH ev (kind, at, outcome) AS (
			SELECT CASE WHEN attempt = 1 THEN '` + evFirstDial + `' ELSE '` + evRedial + `' END, started_at, outcome
				FROM call_attempts WHERE integration_id = $1 AND started_at >= $2
			UNION ALL SELECT '` + evEnded + `', ended_at, NULL FROM call_attempts WHERE integration_id = $1 AND ended_at >= $2
			UNION ALL SELECT '` + evCreated + `', created_at, NULL FROM calls WHERE integration_id = $1 AND created_at >= $2
			UNION ALL SELECT '` + evUndialled + `', updated_at, NULL FROM calls WHERE integration_id = $1 AND updated_at >= $2
				AND attempt = 0 AND status IN ('completed', 'failed', 'cancelled'))
		SELECT kind, ` + bucketOf + `, outcome, count(*) FROM ev GROUP BY 1, 2, 3
		UNION ALL SELECT '` + evActiveNow + `', 0, NULL, count(*) FROM calls WHERE integration_id = $1 AND slot_taken_at IS NOT NULL
		UNION ALL SELECT '` + evQueuedNow + `', 0, NULL, count(*) FROM calls WHERE integration_id = $1 AND status = 'queued' AND attempt = 0`
	campaignTimeseriesSQL = `WITH cc AS (SELECT id, created_at, updated_at, status, attempt FROM calls WHERE campaign_id = $1),
		ev (kind, at, outcome) AS (
			SELECT CASE WHEN a.attempt = 1 THEN '` + evFirstDial + `' ELSE '` + evRedial + `' END, a.started_at, a.outcome
				FROM cc JOIN call_attempts a ON a.call_id = cc.id
			UNION ALL SELECT '` + evEnded + `', a.ended_at, NULL FROM cc JOIN call_attempts a ON a.call_id = cc.id WHERE a.ended_at IS NOT NULL
			UNION ALL SELECT '` + evCreated + `', created_at, NULL FROM cc
			UNION ALL SELECT '` + evUndialled + `', updated_at, NULL FROM cc WHERE attempt = 0 AND status IN ('completed', 'failed', 'cancelled'))
		SELECT kind, ` + bucketOf + `, outcome, count(*) FROM ev GROUP BY 1, 2, 3`
)

// timeseries runs one counting query (a single statement, so one snapshot)
// and folds its rows (kind, bucket, outcome, count) into points.
func (s *Store) timeseries(ctx context.Context, w Window, query string, id uuid.UUID) ([]Point, error) {
	rows, err := s.pool.Query(ctx, query, id, w.From, w.Step.Seconds(), w.Points)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		// Per bucket, shifted by one so that bucket -1 (before the window)
		// is index 0 and bucket w.Points (after it) the last.
		activeDelta = make([]int, w.Points+2)
		queuedDelta = make([]int, w.Points+2)
		points      = make([]Point, w.Points)
		activeNow   = -1
		queuedNow   = -1
	)
	for i := range points {
		points[i] = Point{T: w.From.Add(time.Duration(i) * w.Step).UTC(), ByOutcome: map[string]int{}}
	}
	for rows.Next() {
		var (
			kind    string
			bucket  int
			outcome *string
			n       int
		)
		if err := rows.Scan(&kind, &bucket, &outcome, &n); err != nil {
			return nil, err
		}
		switch kind {
		case evActiveNow:
			activeNow = n
			continue
		case evQueuedNow:
			queuedNow = n
			continue
		}
		b := bucket + 1
		switch kind {
		case evFirstDial, evRedial:
			activeDelta[b] += n
			if kind == evFirstDial {
				queuedDelta[b] -= n
			}
			if bucket >= 0 && bucket < w.Points {
				points[bucket].Dials += n
				if outcome != nil {
					points[bucket].ByOutcome[*outcome] += n
				}
			}
		case evEnded:
			activeDelta[b] -= n
		case evCreated:
			queuedDelta[b] += n
		case evUndialled:
			queuedDelta[b] -= n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Read from the window's start on, the counts before it are the counts
	// now less every change since.
	if activeNow >= 0 {
		activeDelta[0] = activeNow - sum(activeDelta[1:])
	}
	if queuedNow >= 0 {
		queuedDelta[0] = queuedNow - sum(queuedDelta[1:])
	}
	active, queued := activeDelta[0], queuedDelta[0]
	for i := range points {
		if points[i].T.After(w.Now) {
			return points[:i], nil
		}
		active += activeDelta[i+1]
		queued += queuedDelta[i+1]
		points[i].Active, points[i].Queued = max(active, 0), max(queued, 0)
	}
	return points, nil
}

func sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}
