package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
)

// Fair share. An integration's free slots go round-robin between its
// lanes — each running campaign, and the calls that came in by webhook —
// weighted by priority (stride scheduling: a lane's pass advances by
// 1/priority for each slot it takes, and the lane with the lowest pass goes
// next). A campaign never takes more than its concurrencyLimit. It all
// happens in the claim's transaction, under the integration's row lock, so
// it holds across replicas; the passes are kept in dispatch_lanes between
// claims.

// WebhookLanePriority is the weight of the webhook-originated calls' lane.
const WebhookLanePriority = 5

// claimScanLimit bounds the queued calls one claim looks at (suppressed
// ones are cancelled and ones outside their window set aside on the way).
const claimScanLimit = 500

// lane is one queue sharing an integration's slots.
type lane struct {
	id       uuid.UUID // the campaign's, or uuid.Nil for webhook calls
	weight   float64
	room     int // slots it may still take
	pass     float64
	known    bool // pass was stored
	handling config.CallHandling

	buf  []laneCall
	last *Call // keyset position of the next fetch
	done bool
}

type laneCall struct {
	call       Call
	suppressed *string // the suppression's reason
}

// claimFromLanes picks up to free queued calls of the integration in
// fair-share order from lanes (loadLanes), records their dials in cs,
// cancels suppressed ones and sets aside those whose calling window is
// closed until it opens. A lane's calls are fetched only when it is its
// turn, a few at a time: a claim for one freed slot reads and locks the
// calls of one lane, not of every campaign. The calls set aside and the
// lanes' passes are written by statements queued on tail.
func claimFromLanes(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, owner string, cfg config.Integration,
	lanes []*lane, free int, now time.Time, cs *changeSet, p *pacer, tail *pipeline) ([]Claimed, error) {
	evenUp(lanes)
	total := 0.0
	for _, l := range lanes {
		if !l.done {
			total += l.weight
		}
	}

	var out []Claimed
	waits := map[uuid.UUID]time.Time{}
	for scanned := 0; free > 0 && scanned < claimScanLimit; {
		l := nextLane(lanes)
		if l == nil {
			break
		}
		if len(l.buf) == 0 {
			// The lane's share of the free slots, and a little more for
			// calls that are suppressed or outside their window.
			share := int(math.Ceil(float64(free)*l.weight/max(total, 1))) + 2
			if err := l.fill(ctx, tx, integrationID, owner, min(share, l.room+2, 200), now); err != nil {
				return nil, err
			}
			if err := p.loadDials(ctx, tx, l.buf, now); err != nil {
				return nil, err
			}
			if err := p.callers.loadHistory(ctx, tx, integrationID, l.buf); err != nil {
				return nil, err
			}
			continue
		}
		lc := l.buf[0]
		l.buf = l.buf[1:]
		scanned++
		c := lc.call
		if lc.suppressed != nil {
			ev := CallEvent{IntegrationID: integrationID, Event: callstate.Event{Kind: callstate.Cancel, Reason: callstate.OutcomeSuppressed},
				Detail: map[string]any{"suppression": *lc.suppressed}, TraceID: deref(c.TraceID), At: now}
			cs.record(&c, ev, callstate.Next(callstate.Call{Status: c.Status, Attempt: c.Attempt, MaxAttempts: c.MaxAttempts},
				ev.Event, l.handling, now))
			continue
		}
		at, fallback := windowOpensAt(l.handling.CallingWindow, c.PhoneNumber, deref(c.Timezone), cfg.Agent.Timezone, now)
		var detail map[string]any
		if fallback != "" {
			detail = map[string]any{"timezoneFallback": fallback}
		}
		if at.After(now) {
			waits[c.ID] = at
			if plain, _ := windowOpensAt(l.handling.CallingWindow.WithoutExcludedDates(), c.PhoneNumber, deref(c.Timezone),
				cfg.Agent.Timezone, now); plain.Before(at) {
				p.noteHold(cs, &c, pacing.ExcludedDate, at, now)
				continue
			}
			wait := map[string]any{"notBefore": at.UTC().Format(time.RFC3339)}
			maps.Copy(wait, detail)
			cs.history = append(cs.history, []any{c.ID, c.Attempt, "window_wait", string(c.Status), string(c.Status),
				wait, c.TraceID, now})
			continue
		}
		ev := CallEvent{IntegrationID: integrationID, Event: callstate.Event{Kind: callstate.Dial}, At: now, TraceID: deref(c.TraceID),
			Detail: detail}
		d := callstate.Next(callstate.Call{Status: c.Status, Attempt: c.Attempt, MaxAttempts: c.MaxAttempts}, ev.Event, l.handling, now)
		if !d.Changed {
			continue
		}
		var caller *config.CallerID
		if d.To == callstate.Initiated {
			if p.busy[c.ID] {
				p.wakeAt(now.Add(busyRetry))
				continue
			}
			if ok, until := p.capUntil(&c, now); !ok {
				waits[c.ID] = until
				p.noteHold(cs, &c, pacing.ContactCap, until, now)
				continue
			}
			var choice pacing.CallerChoice
			if p.callers != nil {
				var err error
				if choice, err = p.callers.pick(ctx, tx, integrationID, &c, now); err != nil {
					return nil, err
				}
				if choice.Index < 0 {
					// Every number this call may take is at one of its limits.
					if err := p.hold(ctx, tx, cs, &c, pacing.CallerID, cmp.Or(choice.Until, now), now); err != nil {
						return nil, err
					}
					if !choice.Until.IsZero() {
						p.wakeAt(choice.Until)
					}
					if choice.PoolBusy {
						break // no call of the integration can take a number now
					}
					continue
				}
			}
			if ok, due := p.takeClaimToken(now); !ok {
				// The integration's rate is spent: nothing more is dialled
				// before the next token, whichever lane's turn it is.
				if err := p.hold(ctx, tx, cs, &c, pacing.DialRate, due, now); err != nil {
					return nil, err
				}
				p.wakeAt(due)
				break
			}
			c.CallerID = nil
			if p.callers != nil {
				number := p.callers.take(&c, choice, now)
				caller = &number
				c.CallerID = &caller.Number
				ev.Detail = maps.Clone(ev.Detail)
				if ev.Detail == nil {
					ev.Detail = map[string]any{}
				}
				ev.Detail["callerId"] = caller.Number
			}
		}
		cs.record(&c, ev, d)
		if d.To != callstate.Initiated {
			// Its attempts already reach a lowered maximum: failed, not dialled.
			if cfg.CRM.Kind != "none" && cfg.CRM.Kind != "" {
				cs.outbox = append(cs.outbox, outboxIntent{callID: c.ID, event: outboxEvent(d)})
			}
			continue
		}
		p.dial(&c, now)
		claimed := cfg
		claimed.CallHandling = l.handling
		out = append(out, Claimed{Call: c, Config: claimed, Caller: caller})
		free--
		l.room--
		l.pass += 1 / l.weight
	}
	setAside(tail, waits)
	saveLanes(tail, integrationID, lanes)
	return out, nil
}

// laneRow is a lane as read, before the integration's config is known.
type laneRow struct {
	id       uuid.UUID
	limit    *int
	priority int
	overlay  json.RawMessage
	pass     *float64
	active   int
	ready    bool
}

// queueLanes queues the read of the webhook lane and one lane per running
// campaign whose start has come, with their stored passes, each lane's
// calls holding slots and whether it has a ready call at all (without
// locking any); the rows go to into. Queued after the integration's row
// lock, it reads the slots of every claim that committed before this one.
// It runs on every claim.
func queueLanes(p *pipeline, integrationID uuid.UUID, now time.Time, into *[]laneRow) {
	p.query("load lanes", func(rows pgx.Rows) error {
		var (
			l       laneRow
			ord     int
			created *time.Time
		)
		if err := rows.Scan(&l.id, &l.limit, &l.priority, &l.overlay, &l.pass, &l.active, &l.ready, &ord, &created); err != nil {
			return err
		}
		*into = append(*into, l)
		return nil
	}, `SELECT $3::uuid, NULL::int, $4::int, '{}'::jsonb, l.pass,
			-- Calls cancelled while live still hold their slot (they have no
			-- hang-up): every call with a slot counts.
			(SELECT count(*) FROM calls k WHERE k.integration_id = $1 AND k.slot_taken_at IS NOT NULL),
			-- In the ready queue's order, so that it is read from its index:
			-- a bare EXISTS may scan the table for the lane's first call.
			(SELECT k.id FROM calls k WHERE k.integration_id = $1 AND k.campaign_id IS NULL
				AND k.status = 'queued' AND k.not_before IS NULL ORDER BY k.priority DESC, k.queued_at, k.id LIMIT 1) IS NOT NULL,
			0 AS ord, NULL::timestamptz AS created_at
		FROM (VALUES (1)) AS one LEFT JOIN dispatch_lanes l ON l.integration_id = $1 AND l.lane = $3
		UNION ALL
		SELECT c.id, c.concurrency_limit, c.priority, c.call_handling, l.pass,
			(SELECT count(*) FROM calls k WHERE k.campaign_id = c.id AND k.slot_taken_at IS NOT NULL),
			(SELECT k.id FROM calls k WHERE k.integration_id = $1 AND k.campaign_id = c.id
				AND k.status = 'queued' AND k.not_before IS NULL ORDER BY k.priority DESC, k.queued_at, k.id LIMIT 1) IS NOT NULL,
			1, c.created_at
		FROM campaigns c LEFT JOIN dispatch_lanes l ON l.integration_id = c.integration_id AND l.lane = c.id
		WHERE c.integration_id = $1 AND c.status = 'running' AND (c.start_at IS NULL OR c.start_at <= $2)
		ORDER BY 8, 9, 1`, integrationID, now, uuid.Nil, WebhookLanePriority)
}

// buildLanes makes the lanes of rows (queueLanes) under the integration's
// config: each lane's room under its campaign's limit, its handling. It
// also returns how many slots of the integration are held.
func buildLanes(rows []laneRow, cfg config.Integration) ([]*lane, int, error) {
	var (
		lanes []*lane
		held  int
	)
	for _, r := range rows {
		l := lane{id: r.id, weight: float64(max(r.priority, 1)), room: math.MaxInt32, done: !r.ready}
		if r.limit != nil {
			l.room = *r.limit - r.active
		}
		if r.pass != nil {
			l.pass, l.known = *r.pass, true
		}
		if l.id == uuid.Nil {
			held, l.handling = r.active, cfg.CallHandling
		} else {
			var err error
			if l.handling, err = cfg.CallHandling.Overlay(r.overlay); err != nil {
				return nil, 0, fmt.Errorf("campaign %s: %w", l.id, err)
			}
		}
		lanes = append(lanes, &l)
	}
	return lanes, held, nil
}

// fill fetches the lane's next n ready calls (oldest first within
// priority), with the reason each is suppressed, if it is. It marks the
// lane done when there are none.
func (l *lane) fill(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, owner string, n int, now time.Time) error {
	if l.done || l.room <= 0 {
		return nil
	}
	query, args := laneQuery(l.id, integrationID, owner, now, n, l.last)
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var lc laneCall
		c := &lc.call
		if err := rows.Scan(append(callDest(c), &lc.suppressed)...); err != nil {
			return err
		}
		l.buf = append(l.buf, lc)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(l.buf) == 0 {
		l.done = true
	} else {
		l.last = &l.buf[len(l.buf)-1].call
	}
	return nil
}

// laneQuery reads a lane's next n ready calls after last (nil: from the
// start), in claim order, locking them. The webhook lane (id uuid.Nil) is
// served by calls_ready_webhooks, a campaign's by calls_ready.
func laneQuery(id, integrationID uuid.UUID, owner string, now time.Time, n int, last *Call) (string, []any) {
	cond := "c.campaign_id = $2"
	if id == uuid.Nil {
		cond = "c.campaign_id IS NULL AND $2::uuid IS NOT NULL"
	}
	args := []any{integrationID, id, owner, now, n}
	if last != nil {
		cond += " AND (c.priority < $6 OR (c.priority = $6 AND (c.queued_at, c.id) > ($7, $8)))"
		args = append(args, last.Priority, last.QueuedAt, last.ID)
	}
	return `SELECT ` + prefixed("c.", callColumns) + `,
			(SELECT s.reason FROM suppressions s WHERE (s.phone_number = c.phone_number OR s.phone_hash = c.phone_hash)
				AND s.owner_id = $3
				AND (s.integration_id IS NULL OR s.integration_id = c.integration_id)
				AND (s.expires_at IS NULL OR s.expires_at > $4) LIMIT 1)
		FROM calls c WHERE c.integration_id = $1 AND c.status = 'queued' AND c.not_before IS NULL AND ` + cond + `
		ORDER BY c.priority DESC, c.queued_at, c.id LIMIT $5 FOR UPDATE OF c SKIP LOCKED`, args
}

// evenUp brings lanes that had no stored pass, or fell far behind while
// they had nothing to dial, up to the others, so a lane that returns does
// not take a burst of slots to catch up.
func evenUp(lanes []*lane) {
	lo, hi, seen := 0.0, 0.0, false
	for _, l := range lanes {
		if l.done || !l.known {
			continue
		}
		if !seen || l.pass < lo {
			lo = l.pass
		}
		if !seen || l.pass > hi {
			hi = l.pass
		}
		seen = true
	}
	for _, l := range lanes {
		switch {
		case l.done:
		case !l.known:
			l.pass = lo
		case l.pass < hi-1:
			l.pass = hi - 1
		}
	}
}

// nextLane is the lane with the lowest pass that may still take a slot.
func nextLane(lanes []*lane) *lane {
	var best *lane
	for _, l := range lanes {
		if l.done || l.room <= 0 {
			continue
		}
		if best == nil || l.pass < best.pass {
			best = l
		}
	}
	return best
}

// setAside parks queued calls until their calling window opens: claims
// skip them, and the scheduler puts them back (ReleaseWindows).
func setAside(p *pipeline, waits map[uuid.UUID]time.Time) {
	if len(waits) == 0 {
		return
	}
	ids, at := make([]uuid.UUID, 0, len(waits)), make([]time.Time, 0, len(waits))
	for id, t := range waits {
		ids, at = append(ids, id), append(at, t)
	}
	p.exec("set aside", `UPDATE calls c SET not_before = v.at FROM unnest($1::uuid[], $2::timestamptz[]) AS v (id, at)
		WHERE c.id = v.id`, ids, at)
}

// saveLanes stores the passes relative to the lowest, and forgets lanes
// that are gone. An integration with only its webhook lane keeps none.
func saveLanes(p *pipeline, integrationID uuid.UUID, lanes []*lane) {
	if len(lanes) < 2 {
		return
	}
	lo := lanes[0].pass
	for _, l := range lanes {
		lo = min(lo, l.pass)
	}
	ids, passes := make([]uuid.UUID, len(lanes)), make([]float64, len(lanes))
	for i, l := range lanes {
		ids[i], passes[i] = l.id, l.pass-lo
	}
	p.exec("save lanes", `WITH gone AS (DELETE FROM dispatch_lanes WHERE integration_id = $1 AND NOT lane = ANY($2))
		INSERT INTO dispatch_lanes (integration_id, lane, pass)
		SELECT $1, lane, pass FROM unnest($2::uuid[], $3::float8[]) AS v (lane, pass)
		ON CONFLICT (integration_id, lane) DO UPDATE SET pass = EXCLUDED.pass`, integrationID, ids, passes)
}
