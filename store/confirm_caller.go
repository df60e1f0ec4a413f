package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// takeCallerSend judges a pooled dial's caller number's per_second again
// at its originate (now, the database's time), as the integration's dial
// rate is: what happens between a claim and its send (a pre-dial check, a
// slow replica) can bring two of a number's originates closer than their
// claims were. A dial that may go is moved to its send time in
// contact_dials, where the next claims and originates count it; one that
// may not reports when it can. number is the number's limits as the claim
// took them.
//
// Originates of one number serialise on an advisory lock of the number,
// which the confirmation took before (queueSendClock).
func takeCallerSend(ctx context.Context, tx pgx.Tx, c *lockedCall, number config.CallerID, now time.Time) (bool, time.Time, error) {
	window, dials := number.PerSecondWindow()
	if dials == 0 {
		return true, time.Time{}, nil
	}
	span := time.Duration(window * float64(time.Second))
	// The number's last dials in the window (this one left out); when
	// fewer than it allows, this dial moves to its send time.
	var (
		send   bool
		oldest *time.Time
	)
	err := tx.QueryRow(ctx, `WITH recent AS (
			SELECT dialled_at FROM contact_dials
			WHERE integration_id = $1 AND caller_id = $2 AND dialled_at > $3 AND NOT (call_id = $4 AND attempt = $5)
			ORDER BY dialled_at DESC LIMIT $6),
		verdict AS (SELECT count(*) < $6 AS send, min(dialled_at) AS oldest FROM recent),
		sent AS (UPDATE contact_dials SET dialled_at = $7
			WHERE integration_id = $1 AND caller_id = $2 AND call_id = $4 AND attempt = $5 AND (SELECT send FROM verdict))
		SELECT send, oldest FROM verdict`,
		c.IntegrationID, number.Number, now.Add(-span), c.ID, c.Attempt, dials, now).Scan(&send, &oldest)
	if err != nil || send {
		return send, time.Time{}, err
	}
	return false, oldest.Add(span), nil
}
