package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// takeCallerSend judges a pooled dial's caller number's per_second again
// at its originate, as the integration's dial rate is: what happens between
// a claim and its send (a pre-dial check, a slow replica) can bring two of
// a number's originates closer than their claims were. A dial that may go
// is moved to its send time in contact_dials, where the next claims and
// originates count it; one that may not reports when it can.
//
// Originates of one number serialise on an advisory lock of the number
// (replicas confirm dials of one integration without its row lock).
func takeCallerSend(ctx context.Context, tx pgx.Tx, c *lockedCall, now time.Time) (bool, time.Time, error) {
	if c.CallerID == nil {
		return true, time.Time{}, nil
	}
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT value FROM integration_config WHERE integration_id = $1 AND key = $2`,
		c.IntegrationID, config.KeyVoice).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, err
	}
	var voice config.Voice
	if json.Unmarshal(raw, &voice) != nil {
		return true, time.Time{}, nil // unreadable: the claim judged it
	}
	var number *config.CallerID
	for i := range voice.CallerIDs {
		if voice.CallerIDs[i].Number == *c.CallerID {
			number = &voice.CallerIDs[i]
		}
	}
	if number == nil {
		return true, time.Time{}, nil // taken out of the pool since the claim
	}
	window, dials := number.PerSecondWindow()
	if dials == 0 {
		return true, time.Time{}, nil
	}
	span := time.Duration(window * float64(time.Second))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 21))`,
		c.IntegrationID.String()+":"+number.Number); err != nil {
		return false, time.Time{}, err
	}
	rows, err := tx.Query(ctx, `SELECT dialled_at FROM contact_dials
		WHERE integration_id = $1 AND caller_id = $2 AND dialled_at > $3 AND NOT (call_id = $4 AND attempt = $5)
		ORDER BY dialled_at`, c.IntegrationID, number.Number, now.Add(-span), c.ID, c.Attempt)
	if err != nil {
		return false, time.Time{}, err
	}
	recent, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return false, time.Time{}, err
	}
	if len(recent) >= dials {
		return false, recent[len(recent)-dials].Add(span), nil
	}
	_, err = tx.Exec(ctx, `UPDATE contact_dials SET dialled_at = $5
		WHERE integration_id = $1 AND caller_id = $2 AND call_id = $3 AND attempt = $4`,
		c.IntegrationID, number.Number, c.ID, c.Attempt, now)
	return err == nil, time.Time{}, err
}
