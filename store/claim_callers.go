package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
	"github.com/callqueue/callqueue/phone"
)

// callerPool is the caller numbers of one claim (voice.caller_ids,
// contract §9): each number's usage read once, in the claim's
// transaction under the integration's row lock, and counted on as the
// claim takes numbers, so that every replica's claims see each other's
// dials and live calls.
type callerPool struct {
	voice  config.Voice
	usage  []pacing.CallerUsage
	loaded bool
	seq    int64 // the highest round-robin place given so far

	// dialledFrom are the pool numbers each recipient (by its number's key)
	// was dialled from, with the last time (sticky, rotate_on_retry).
	dialledFrom map[string]map[string]time.Time
	keyOf       map[uuid.UUID]string
	used        map[string]time.Time // numbers this claim dialled from
}

func newCallerPool(v config.Voice) *callerPool {
	if len(v.CallerIDs) == 0 {
		return nil
	}
	return &callerPool{voice: v, dialledFrom: map[string]map[string]time.Time{}, keyOf: map[uuid.UUID]string{},
		used: map[string]time.Time{}}
}

// needsHistory: the strategy asks where recipients were dialled from.
func (cp *callerPool) needsHistory() bool {
	return cp != nil && (cp.voice.CallerStrategy() == config.CallerSticky || cp.voice.RotateOnRetry)
}

// load reads every number's usage in one statement: its live calls
// (those holding a slot, dialled from it), its dials in the last hour and
// day (contact_dials, through its caller index) with the oldest of each,
// its dials within its per_second window, and its round-robin place.
func (cp *callerPool) load(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, now time.Time) error {
	numbers := make([]string, len(cp.voice.CallerIDs))
	recentWindow := 0.0
	for i, c := range cp.voice.CallerIDs {
		numbers[i] = c.Number
		w, _ := c.PerSecondWindow()
		recentWindow = max(recentWindow, w)
	}
	rows, err := tx.Query(ctx, `WITH pool AS (SELECT number, ord FROM unnest($2::text[]) WITH ORDINALITY AS p (number, ord)),
			live AS (SELECT k.caller_id, count(*) AS n FROM calls k
				WHERE k.integration_id = $1 AND k.slot_taken_at IS NOT NULL AND k.caller_id = ANY($2) GROUP BY k.caller_id),
			dials AS (SELECT d.caller_id, count(*) FILTER (WHERE d.dialled_at > $3) AS hour, count(*) AS day,
					min(d.dialled_at) FILTER (WHERE d.dialled_at > $3) AS hour_oldest, min(d.dialled_at) AS day_oldest,
					array_agg(d.dialled_at) FILTER (WHERE d.dialled_at > $5) AS recent
				FROM contact_dials d WHERE d.integration_id = $1 AND d.caller_id = ANY($2) AND d.dialled_at > $4
				GROUP BY d.caller_id)
		SELECT COALESCE(live.n, 0), COALESCE(dials.hour, 0), COALESCE(dials.day, 0), dials.hour_oldest, dials.day_oldest,
			COALESCE(dials.recent, '{}'), COALESCE(u.seq, 0)
		FROM pool LEFT JOIN live ON live.caller_id = pool.number LEFT JOIN dials ON dials.caller_id = pool.number
			LEFT JOIN caller_numbers u ON u.integration_id = $1 AND u.number = pool.number
		ORDER BY pool.ord`, integrationID, numbers, now.Add(-time.Hour), now.Add(-24*time.Hour),
		now.Add(-time.Duration(recentWindow*float64(time.Second))))
	if err != nil {
		return err
	}
	defer rows.Close()
	cp.usage = make([]pacing.CallerUsage, 0, len(numbers))
	for rows.Next() {
		var (
			u                 pacing.CallerUsage
			hourOld, dayOld   *time.Time
			live, hour, daily int64
		)
		if err := rows.Scan(&live, &hour, &daily, &hourOld, &dayOld, &u.Recent, &u.Seq); err != nil {
			return err
		}
		u.Live, u.Hour, u.Day = int(live), int(hour), int(daily)
		if hourOld != nil {
			u.HourOldest = *hourOld
		}
		if dayOld != nil {
			u.DayOldest = *dayOld
		}
		cp.seq = max(cp.seq, u.Seq)
		cp.usage = append(cp.usage, u)
	}
	cp.loaded = true
	return rows.Err()
}

// loadHistory reads which pool numbers the recipients of calls were
// dialled from (by the integration), for sticky and rotate_on_retry.
func (cp *callerPool) loadHistory(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, calls []laneCall) error {
	if !cp.needsHistory() {
		return nil
	}
	var ids []uuid.UUID
	for _, lc := range calls {
		if _, ok := cp.keyOf[lc.call.ID]; !ok && lc.suppressed == nil {
			ids = append(ids, lc.call.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT c.id, `+phoneKey+`, d.caller_id, max(d.dialled_at) FROM calls c
		LEFT JOIN contact_dials d ON d.phone_key = `+phoneKey+` AND d.integration_id = $2 AND d.caller_id IS NOT NULL
		WHERE c.id = ANY($1) GROUP BY 1, 2, 3`, ids, integrationID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id     uuid.UUID
			key    []byte
			caller *string
			at     *time.Time
		)
		if err := rows.Scan(&id, &key, &caller, &at); err != nil {
			return err
		}
		k := string(key)
		cp.keyOf[id] = k
		from := cp.dialledFrom[k]
		if from == nil {
			from = map[string]time.Time{}
			cp.dialledFrom[k] = from
		}
		if caller != nil && at != nil && at.After(from[*caller]) {
			from[*caller] = *at
		}
	}
	return rows.Err()
}

// pick chooses the number for a dial of c at now without taking it.
func (cp *callerPool) pick(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, c *Call, now time.Time) (pacing.CallerChoice, error) {
	if !cp.loaded {
		if err := cp.load(ctx, tx, integrationID, now); err != nil {
			return pacing.CallerChoice{}, err
		}
	}
	r := pacing.Recipient{DialledFrom: cp.dialledFrom[cp.keyOf[c.ID]], Retry: c.Attempt > 0}
	if cp.voice.CallerStrategy() == config.CallerLocal {
		r.Locality = phone.LocalityOf(c.PhoneNumber)
	}
	return pacing.PickCaller(cp.voice.CallerIDs, cp.usage, cp.voice.CallerStrategy(), cp.voice.RotateOnRetry, r, now), nil
}

// take counts a dial of c from the chosen number at now and returns it.
func (cp *callerPool) take(c *Call, choice pacing.CallerChoice, now time.Time) config.CallerID {
	caller := cp.voice.CallerIDs[choice.Index]
	cp.seq++
	cp.usage[choice.Index].Use(now, cp.seq)
	cp.used[caller.Number] = now
	if k, ok := cp.keyOf[c.ID]; ok {
		from := cp.dialledFrom[k]
		if from == nil {
			from = map[string]time.Time{}
			cp.dialledFrom[k] = from
		}
		from[caller.Number] = now
	}
	return caller
}

// queueSave queues the write of each number's round-robin place on tail.
func (cp *callerPool) queueSave(tail *pipeline, integrationID uuid.UUID) {
	if cp == nil || len(cp.used) == 0 {
		return
	}
	numbers, seqs, at := make([]string, 0, len(cp.used)), make([]int64, 0, len(cp.used)), make([]time.Time, 0, len(cp.used))
	for i, c := range cp.voice.CallerIDs {
		if t, ok := cp.used[c.Number]; ok {
			numbers, seqs, at = append(numbers, c.Number), append(seqs, cp.usage[i].Seq), append(at, t)
		}
	}
	tail.exec("save caller numbers", `INSERT INTO caller_numbers (integration_id, number, last_dialled_at, seq)
		SELECT $1, number, at, seq FROM unnest($2::text[], $3::timestamptz[], $4::bigint[]) AS v (number, at, seq)
		ON CONFLICT (integration_id, number) DO UPDATE SET last_dialled_at = EXCLUDED.last_dialled_at, seq = EXCLUDED.seq`,
		integrationID, numbers, at, seqs)
}
