package store

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
)

// pacer carries the pacing counters of one claim (contract §9): read in
// the claim's transaction, under the integration's row lock, judged by
// package pacing, and written back before the claim commits, so that they
// hold across replicas.
type pacer struct {
	integrationID uuid.UUID
	owner         string
	rules         config.CallHandling // the integration's: campaigns do not override pacing

	bucket     pacing.Bucket
	bucketUsed bool
	// dbClock is the test's database clock (nil: the database's own);
	// bucketSkew is the database's time less the claim's, read with the
	// bucket: buckets are judged on the database's clock.
	dbClock    *time.Time
	bucketSkew time.Duration

	// Contact caps: each call's number key, and the dials of each number
	// within the longest cap's window (this claim's included).
	keyOf map[uuid.UUID]string
	dials map[string][]time.Time
	// busy are calls whose number another claim holds (owner-wide caps):
	// they are left queued for a moment.
	busy map[uuid.UUID]bool

	// callers is the caller number pool (nil without one).
	callers *callerPool

	dialled []dialledCall
	// Holds are the holds this claim wrote to calls' histories, by reason.
	Holds map[pacing.Hold]int
	// Wake is the earliest moment a call held for a moment (dial rate, a
	// busy number) may go: the dispatcher claims again then.
	Wake time.Time
}

type dialledCall struct {
	id       uuid.UUID
	attempt  int
	callerID *string
}

// busyRetry is how soon a call whose number another claim holds is tried again.
const busyRetry = 50 * time.Millisecond

func newPacer(integrationID uuid.UUID, owner string, rules config.CallHandling, voice config.Voice, dbClock *time.Time) *pacer {
	return &pacer{integrationID: integrationID, owner: owner, rules: rules, callers: newCallerPool(voice), dbClock: dbClock,
		keyOf: map[uuid.UUID]string{}, dials: map[string][]time.Time{}, busy: map[uuid.UUID]bool{}, Holds: map[pacing.Hold]int{}}
}

func (p *pacer) wakeAt(t time.Time) {
	if p.Wake.IsZero() || t.Before(p.Wake) {
		p.Wake = t
	}
}

// takeClaimToken takes a token of the dial rate's claim bucket (read with
// the claim's first statements, useBucket) for a call leaving the queue at
// now, or reports when the next is due. The claim holds the integration's
// row lock: claims on every replica take from the one bucket, and the
// calls its tokens cannot cover stay queued.
func (p *pacer) takeClaimToken(now time.Time) (bool, time.Time) {
	r := p.rules.DialRate
	if r == nil {
		return true, time.Time{}
	}
	ok, due := p.bucket.Take(*r, now.Add(p.bucketSkew))
	p.bucketUsed = p.bucketUsed || ok
	if !ok {
		due = due.Add(-p.bucketSkew)
	}
	return ok, due
}

// claimBucketRow is the claim bucket as a claim's first round trip reads
// it (queueClaimBucket), with the database's time of the read.
type claimBucketRow struct {
	tokens *float64
	at     *time.Time
	now    time.Time
}

// queueClaimBucket queues the read of the dial rate's claim bucket and the
// database's clock, after the integration's row lock: in the claim's first
// round trip, before its config says whether there is a dial rate at all
// (the read is one row of a small table).
func queueClaimBucket(p *pipeline, integrationID uuid.UUID, into *claimBucketRow) {
	p.query("read claim bucket", func(rows pgx.Rows) error { return rows.Scan(&into.tokens, &into.at, &into.now) },
		`SELECT b.tokens, b.at, clock_timestamp() FROM (VALUES (1)) AS one
			LEFT JOIN dial_buckets b ON b.integration_id = $1 AND b.bucket = 'claim'`, integrationID)
}

// useBucket takes the claim bucket read with the claim's first statements
// for a claim at now.
func (p *pacer) useBucket(row claimBucketRow, now time.Time) {
	if row.tokens != nil && row.at != nil {
		p.bucket = pacing.Bucket{Tokens: *row.tokens, At: *row.at}
	}
	p.bucketSkew = orTestClock(row.now, p.dbClock).Sub(now)
}

// orTestClock is at, the database's time as a statement read it, or the
// test's database clock when one is set.
func orTestClock(at time.Time, testClock *time.Time) time.Time {
	if testClock != nil {
		return *testClock
	}
	return at
}

// databaseNow is the time the dial rate's buckets are judged at: the
// database's (a test's database clock when set), so that replicas whose
// clocks differ take from one rate. A replica 40 s ahead judging by its
// own clock found a bucket 40 s fuller than it was.
func databaseNow(ctx context.Context, q querier, testClock *time.Time) (time.Time, error) {
	if testClock != nil {
		return *testClock, nil
	}
	var now time.Time
	err := q.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now)
	return now, err
}

// takeSendToken takes a token of the dial rate's send bucket for an
// originate sent at now (the database's time), under the bucket's row lock,
// or reports when the next is due. Claims are paced already; this bucket
// keeps the originates paced where the carrier counts them, whatever
// happens between a claim and its send (a pre-dial check, a slow replica).
func takeSendToken(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, r config.DialRate, now time.Time) (bool, time.Time, error) {
	// Most originates find their token: one statement refills the bucket
	// and takes it, as pacing.Bucket.Take does, under the row's lock (an
	// update that waited for another's judges the row it left).
	refilled := `CASE WHEN $2::timestamptz > at THEN least($3::float8, tokens + extract(epoch FROM $2::timestamptz - at)::float8 * $4::float8)
		ELSE tokens END`
	tag, err := tx.Exec(ctx, `UPDATE dial_buckets SET tokens = greatest(`+refilled+` - 1, 0), at = greatest(at, $2)
		WHERE integration_id = $1 AND bucket = 'send' AND `+refilled+` >= 1 - $5::float8`,
		integrationID, now, r.Capacity(), r.PerSecond, pacing.TokenEpsilon)
	if err != nil || tag.RowsAffected() == 1 {
		return err == nil, time.Time{}, err
	}
	// No bucket yet, or no token: read it to make it, or to say when.
	var b pacing.Bucket
	err = tx.QueryRow(ctx, `SELECT tokens, at FROM dial_buckets WHERE integration_id = $1 AND bucket = 'send' FOR UPDATE`,
		integrationID).Scan(&b.Tokens, &b.At)
	if errors.Is(err, pgx.ErrNoRows) {
		// The first originate: a full bucket. Two at once: the loser's
		// insert waits for the winner's, then it reads the row.
		if _, err := tx.Exec(ctx, `INSERT INTO dial_buckets (integration_id, bucket, tokens, at) VALUES ($1, 'send', $2, $3)
			ON CONFLICT DO NOTHING`, integrationID, r.Capacity(), now); err != nil {
			return false, time.Time{}, err
		}
		err = tx.QueryRow(ctx, `SELECT tokens, at FROM dial_buckets WHERE integration_id = $1 AND bucket = 'send' FOR UPDATE`,
			integrationID).Scan(&b.Tokens, &b.At)
	}
	if err != nil {
		return false, time.Time{}, err
	}
	ok, due := b.Take(r, now)
	if !ok {
		return false, due, nil
	}
	_, err = tx.Exec(ctx, `UPDATE dial_buckets SET tokens = $2, at = $3 WHERE integration_id = $1 AND bucket = 'send'`,
		integrationID, b.Tokens, b.At)
	return err == nil, time.Time{}, err
}

// loadDials reads the dials of the numbers of calls within the longest
// contact cap's window, in the caps' scope. With owner-wide caps it first
// takes each number's advisory lock (claims of the owner's other
// integrations do not hold this integration's row lock); a number another
// claim holds marks its calls busy. The lock is taken in a statement of its
// own: a statement's snapshot predates the locks it takes.
func (p *pacer) loadDials(ctx context.Context, tx pgx.Tx, calls []laneCall, now time.Time) error {
	if len(p.rules.ContactCaps) == 0 {
		return nil
	}
	var ids []uuid.UUID
	for _, lc := range calls {
		if _, ok := p.keyOf[lc.call.ID]; !ok && lc.suppressed == nil {
			ids = append(ids, lc.call.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	owner := p.rules.CapsScope() == config.ContactCapsOwner
	if owner {
		rows, err := tx.Query(ctx, `SELECT c.id FROM calls c WHERE c.id = ANY($1)
			AND NOT pg_try_advisory_xact_lock(hashtextextended($2 || ':' || encode(`+phoneKey+`, 'hex'), 20))`, ids, p.owner)
		if err != nil {
			return err
		}
		busy, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		for _, id := range busy {
			p.busy[id] = true
		}
	}
	scope, in := "d.integration_id = $3", any(p.integrationID)
	if owner {
		scope, in = "d.owner_id = $3", p.owner
	}
	rows, err := tx.Query(ctx, `SELECT c.id, `+phoneKey+`, d.dialled_at FROM calls c
		LEFT JOIN contact_dials d ON d.phone_key = `+phoneKey+` AND d.dialled_at > $2 AND `+scope+`
		WHERE c.id = ANY($1)`, ids, now.Add(-p.rules.LongestCapWindow()), in)
	if err != nil {
		return err
	}
	defer rows.Close()
	fresh := map[string]bool{}
	for rows.Next() {
		var (
			id  uuid.UUID
			key []byte
			at  *time.Time
		)
		if err := rows.Scan(&id, &key, &at); err != nil {
			return err
		}
		k := string(key)
		p.keyOf[id] = k
		if _, known := p.dials[k]; known && !fresh[k] {
			continue // read earlier in this claim, with its dials since
		}
		fresh[k] = true
		if at != nil {
			p.dials[k] = append(p.dials[k], *at)
		} else if p.dials[k] == nil {
			p.dials[k] = []time.Time{}
		}
	}
	return rows.Err()
}

// phoneKey is what contact_dials knows a call's number by.
const phoneKey = `COALESCE(c.phone_hash, convert_to(c.phone_number, 'UTF8'))`

// capUntil judges the contact caps for a dial of c at now.
func (p *pacer) capUntil(c *Call, now time.Time) (bool, time.Time) {
	if len(p.rules.ContactCaps) == 0 {
		return true, time.Time{}
	}
	return pacing.CapUntil(p.rules.ContactCaps, p.dials[p.keyOf[c.ID]], now)
}

// dial counts the dial of c at now.
func (p *pacer) dial(c *Call, now time.Time) {
	p.dialled = append(p.dialled, dialledCall{id: c.ID, attempt: c.Attempt, callerID: c.CallerID})
	if k, ok := p.keyOf[c.ID]; ok {
		p.dials[k] = append(p.dials[k], now)
	}
}

// hold writes a short hold (one that does not set the call aside) to c's
// history, once per hold: not again while the call stays held for the same
// reason.
func (p *pacer) hold(ctx context.Context, tx pgx.Tx, cs *changeSet, c *Call, why pacing.Hold, until, now time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE calls SET held = $2 WHERE id = $1 AND held IS DISTINCT FROM $2`, c.ID, string(why))
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	p.noteHold(cs, c, why, until, now)
	return nil
}

// noteHold adds a hold's history entry.
func (p *pacer) noteHold(cs *changeSet, c *Call, why pacing.Hold, until, now time.Time) {
	p.Holds[why]++
	cs.history = append(cs.history, []any{c.ID, c.Attempt, "deferred", string(c.Status), string(c.Status),
		map[string]any{"deferred": string(why), "notBefore": until.UTC().Format(time.RFC3339Nano)}, c.TraceID, now})
}

// queueSave queues the writes of the claim's counters on tail: the claim
// bucket, and every dial for the contact caps (of every integration: an
// owner-wide cap counts them all). A dialled call's hold is over.
func (p *pacer) queueSave(tail *pipeline, now time.Time) {
	if p.bucketUsed {
		tail.exec("save claim bucket", `INSERT INTO dial_buckets (integration_id, bucket, tokens, at) VALUES ($1, 'claim', $2, $3)
			ON CONFLICT (integration_id, bucket) DO UPDATE SET tokens = EXCLUDED.tokens, at = EXCLUDED.at`,
			p.integrationID, p.bucket.Tokens, p.bucket.At)
	}
	p.callers.queueSave(tail, p.integrationID)
	if len(p.dialled) == 0 {
		return
	}
	ids, attempts, callers := make([]uuid.UUID, len(p.dialled)), make([]int, len(p.dialled)), make([]*string, len(p.dialled))
	for i, d := range p.dialled {
		ids[i], attempts[i], callers[i] = d.id, d.attempt, d.callerID
	}
	tail.exec("count dials", `WITH v AS (SELECT * FROM unnest($1::uuid[], $2::int[], $6::text[]) AS v (id, attempt, caller_id)),
			over AS (UPDATE calls c SET held = NULL FROM v WHERE c.id = v.id AND c.held IS NOT NULL)
		INSERT INTO contact_dials (phone_key, dialled_at, integration_id, owner_id, call_id, attempt, caller_id)
		SELECT `+phoneKey+`, $3, $4, $5, c.id, v.attempt, v.caller_id FROM v JOIN calls c ON c.id = v.id`,
		ids, attempts, now, p.integrationID, p.owner, callers)
}
