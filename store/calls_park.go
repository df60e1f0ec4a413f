package store

import (
	"cmp"
	"context"
	"encoding/json"
	"hash/fnv"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// parkedEvent is a parked CallEvent, without the keys it already claimed.
type parkedEvent struct {
	Kind           callstate.Kind `json:"kind"`
	DurationSecs   float64        `json:"durationSecs,omitempty"`
	NoDuration     bool           `json:"noDuration,omitempty"`
	Reason         string         `json:"reason,omitempty"`
	ConversationID string         `json:"conversationId,omitempty"`
	Detail         map[string]any `json:"detail,omitempty"`
	TraceID        string         `json:"traceId,omitempty"`
}

// ParkedTTL is how long an event waits for the dialler's id it names.
const ParkedTTL = time.Hour

// parkable reports whether an event that found no call may be waiting
// for a dial's answer: it names the call by a dialler id (not by an
// attempt call_id of ours, which needs no answer to be known).
func parkable(ev CallEvent) bool {
	if ev.ExternalCallID == "" {
		return false
	}
	_, _, ours := callstate.ParseAttemptCallID(ev.ExternalCallID)
	return !ours
}

// diallerID is a dialler's id for a call within an integration.
type diallerID struct {
	integration uuid.UUID
	ext         string
}

// diallerIDsToLock lists the dialler ids that events about to be parked
// wait for, and those that dial answers are about to record.
func diallerIDsToLock(events []CallEvent, ids []uuid.UUID, fresh []bool) []diallerID {
	var out []diallerID
	for i, ev := range events {
		switch {
		case !fresh[i]:
		case ids[i] == uuid.Nil && parkable(ev):
			out = append(out, diallerID{ev.IntegrationID, ev.ExternalCallID})
		case ev.Event.Kind == callstate.DialAccepted && ev.ExternalCallID != "":
			out = append(out, diallerID{ev.IntegrationID, ev.ExternalCallID})
		}
	}
	return out
}

// lockDiallerIDs takes a transaction-scoped advisory lock per dialler id,
// in a fixed order so that two transactions cannot deadlock on them. Every
// transaction takes them before any call row.
func lockDiallerIDs(ctx context.Context, tx pgx.Tx, ids []diallerID) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]int64, 0, len(ids))
	for _, id := range ids {
		h := fnv.New64a()
		_, _ = h.Write(id.integration[:])
		_, _ = h.Write([]byte(id.ext))
		keys = append(keys, int64(h.Sum64()))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// A function scan returns the array's elements in order, so the locks
	// are taken in that order.
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`, keys)
	return err
}

func park(ctx context.Context, tx pgx.Tx, events []CallEvent) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	for i, ev := range events {
		raw, err := json.Marshal(parkedEvent{Kind: ev.Event.Kind, DurationSecs: ev.Event.DurationSecs, NoDuration: ev.Event.DurationUnknown, Reason: ev.Event.Reason,
			ConversationID: ev.ConversationID, Detail: ev.Detail, TraceID: ev.TraceID})
		if err != nil {
			return err
		}
		rows[i] = []any{ev.IntegrationID, ev.ExternalCallID, string(raw), ev.At}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"parked_events"}, []string{"integration_id", "external_call_id", "event", "parked_at"},
		pgx.CopyFromRows(rows))
	return err
}

// dropParkedBeyondQuota keeps at most MaxParkedPerIntegration parked
// events per integration of parked, dropping the oldest: events that are
// waiting for a dial's answer wait seconds, so under a flood of events
// naming ids that never come the newest are the ones worth keeping. It
// returns how many it dropped, by integration.
func dropParkedBeyondQuota(ctx context.Context, tx pgx.Tx, parked []CallEvent) (map[uuid.UUID]int, error) {
	if len(parked) == 0 {
		return nil, nil
	}
	var integrations []uuid.UUID
	for _, ev := range parked {
		if !slices.Contains(integrations, ev.IntegrationID) {
			integrations = append(integrations, ev.IntegrationID)
		}
	}
	rows, err := tx.Query(ctx, `WITH ranked AS (
			SELECT integration_id, external_call_id, seq,
				row_number() OVER (PARTITION BY integration_id ORDER BY seq DESC) AS newer
			FROM parked_events WHERE integration_id = ANY($1))
		DELETE FROM parked_events p USING ranked r
		WHERE p.integration_id = r.integration_id AND p.external_call_id = r.external_call_id AND p.seq = r.seq
			AND r.newer > $2
		RETURNING p.integration_id`, integrations, MaxParkedPerIntegration)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	dropped := map[uuid.UUID]int{}
	for _, id := range ids {
		dropped[id]++
	}
	return dropped, err
}

// unpark takes the parked events waiting for the dialler ids in ext
// (rows of call id, attempt, external id) and returns them, oldest first,
// addressed by that id again.
func unpark(ctx context.Context, tx pgx.Tx, ext [][]any, at time.Time) ([]CallEvent, error) {
	ids := column[string](ext, 2)
	rows, err := tx.Query(ctx, `DELETE FROM parked_events p USING call_attempts a
		WHERE a.external_call_id = p.external_call_id AND a.integration_id = p.integration_id
		  AND p.external_call_id = ANY($1) AND p.parked_at > $2
		RETURNING p.integration_id, p.external_call_id, p.seq, p.event`, ids, at.Add(-ParkedTTL))
	if err != nil {
		return nil, err
	}
	type row struct {
		ev  CallEvent
		seq int64
	}
	var got []row
	for rows.Next() {
		var r row
		var raw []byte
		if err := rows.Scan(&r.ev.IntegrationID, &r.ev.ExternalCallID, &r.seq, &raw); err != nil {
			rows.Close()
			return nil, err
		}
		var p parkedEvent
		if err := json.Unmarshal(raw, &p); err != nil {
			rows.Close()
			return nil, err
		}
		r.ev.Event = callstate.Event{Kind: p.Kind, DurationSecs: p.DurationSecs, DurationUnknown: p.NoDuration, Reason: p.Reason}
		r.ev.ConversationID, r.ev.Detail, r.ev.TraceID, r.ev.At = p.ConversationID, p.Detail, p.TraceID, at
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]CallEvent, len(got))
	for i, r := range got {
		out[i] = r.ev
	}
	return out, nil
}
