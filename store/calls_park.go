package store

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// parkedEvent is a parked CallEvent, without the keys it already claimed.
type parkedEvent struct {
	Kind           callstate.Kind `json:"kind"`
	DurationSecs   float64        `json:"durationSecs,omitempty"`
	Reason         string         `json:"reason,omitempty"`
	ConversationID string         `json:"conversationId,omitempty"`
	Detail         map[string]any `json:"detail,omitempty"`
	TraceID        string         `json:"traceId,omitempty"`
}

// ParkedTTL is how long an event waits for the dialler's id it names.
const ParkedTTL = time.Hour

func park(ctx context.Context, tx pgx.Tx, events []CallEvent) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	for i, ev := range events {
		raw, err := json.Marshal(parkedEvent{Kind: ev.Event.Kind, DurationSecs: ev.Event.DurationSecs, Reason: ev.Event.Reason,
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
		r.ev.Event = callstate.Event{Kind: p.Kind, DurationSecs: p.DurationSecs, Reason: p.Reason}
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
