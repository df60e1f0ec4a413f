package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/queue"
)

// DeadLetters lists and replays the messages workers could not process
// (queue.Queue).
type DeadLetters interface {
	ListDeadLetters(ctx context.Context, f queue.DeadLetterFilter) ([]queue.DeadLetter, uint64, error)
	GetDeadLetter(ctx context.Context, seq uint64) (queue.DeadLetter, error)
	ReplayDeadLetter(ctx context.Context, seq uint64) (queue.DeadLetter, error)
}

// deadLetterFilter reads the filters both dead-letter routes share and
// scopes them to the owner's integrations.
func (a *API) deadLetterFilter(r *http.Request, stream string, integrationID *uuid.UUID, field string) (queue.DeadLetterFilter, error) {
	f := queue.DeadLetterFilter{Stream: stream}
	if stream != "" {
		if _, ok := queue.StreamOfKind(stream); !ok {
			return f, jsonhttp.Invalid(field+"stream", "stream must be originate, events or postcall (or the stream's name)")
		}
	}
	owned, err := a.store.OwnedIntegrations(r.Context(), owner(r.Context()))
	if err != nil {
		return f, err
	}
	f.Integrations = owned
	if integrationID != nil {
		if !owned[*integrationID] {
			return f, jsonhttp.ErrNotFound
		}
		f.Integrations = map[uuid.UUID]bool{*integrationID: true}
	}
	return f, nil
}

// listDeadLetters is GET /api/dead-letters: the owner's dead letters,
// oldest first; X-Next-After names the cursor of the next page.
func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, _, err := page(r)
	if err != nil {
		return err
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return jsonhttp.BadRequest("after", "after must be a dead-letter sequence number")
		}
	}
	var integ *uuid.UUID
	if v := q.Get("integrationId"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return jsonhttp.BadRequest("integrationId", "integrationId must be a uuid")
		}
		integ = &id
	}
	f, err := a.deadLetterFilter(r, q.Get("stream"), integ, "")
	if errors.Is(err, jsonhttp.ErrNotFound) {
		jsonhttp.WriteJSON(w, http.StatusOK, []queue.DeadLetter{})
		return nil
	}
	if err != nil {
		return err
	}
	if a.deadLetters == nil {
		return jsonhttp.Unavailable("queue")
	}
	f.After, f.Limit = after, limit
	list, next, err := a.deadLetters.ListDeadLetters(r.Context(), f)
	if err != nil {
		return queueError(err)
	}
	if next > 0 {
		w.Header().Set("X-Next-After", strconv.FormatUint(next, 10))
	}
	if list == nil {
		list = []queue.DeadLetter{}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

// replayRequest names what to replay: one dead letter, or all of the
// owner's (optionally of one stream or integration).
type replayRequest struct {
	Seq           *uint64    `json:"seq"`
	All           bool       `json:"all"`
	Stream        string     `json:"stream"`
	IntegrationID *uuid.UUID `json:"integrationId"`
}

// replayAllMax bounds one replay-all request; the answer says whether more
// are left.
const replayAllMax = 1000

// replayDeadLetters is POST /api/dead-letters/replay. Replaying is
// idempotent: a replayed dead letter leaves the list, and its message is
// processed under its original identity, so replaying it again changes
// nothing (404 for a single one, nothing replayed for all).
func (a *API) replayDeadLetters(w http.ResponseWriter, r *http.Request) error {
	var req replayRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Seq == nil && !req.All:
		return jsonhttp.Invalid("seq", "give seq, or all: true")
	case req.Seq != nil && req.All:
		return jsonhttp.Invalid("all", "give seq or all: true, not both")
	case req.Seq != nil && (req.Stream != "" || req.IntegrationID != nil):
		return jsonhttp.Invalid("seq", "seq names one dead letter; stream and integrationId filter all")
	}
	f, err := a.deadLetterFilter(r, req.Stream, req.IntegrationID, "")
	if err != nil {
		return err
	}
	if a.deadLetters == nil {
		return jsonhttp.Unavailable("queue")
	}
	var todo []queue.DeadLetter
	more := false
	if req.Seq != nil {
		dl, err := a.deadLetters.GetDeadLetter(r.Context(), *req.Seq)
		if errors.Is(err, queue.ErrNoDeadLetter) || (err == nil && !f.Integrations[dl.IntegrationID]) {
			return jsonhttp.ErrNotFound
		}
		if err != nil {
			return queueError(err)
		}
		todo = []queue.DeadLetter{dl}
	} else {
		f.Limit = replayAllMax
		var next uint64
		if todo, next, err = a.deadLetters.ListDeadLetters(r.Context(), f); err != nil {
			return queueError(err)
		}
		more = next > 0
	}
	replayed := make([]queue.DeadLetter, 0, len(todo))
	for _, dl := range todo {
		done, err := a.deadLetters.ReplayDeadLetter(r.Context(), dl.Seq)
		if errors.Is(err, queue.ErrNoDeadLetter) {
			continue // replayed meanwhile by someone else
		}
		if err != nil {
			return queueError(err)
		}
		a.log.Info().Str("owner", owner(r.Context())).Uint64("seq", done.Seq).Str("stream", done.OriginStream).
			Uint64("origin_seq", done.OriginSeq).Str("integration_id", done.IntegrationID.String()).Msg("dead letter replayed")
		replayed = append(replayed, done)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]any{"replayed": replayed, "count": len(replayed), "more": more})
	return nil
}

func queueError(err error) error {
	if errors.Is(err, queue.ErrUnavailable) {
		return jsonhttp.Unavailable("queue")
	}
	return err
}

func init() {
	dl := obj{"type": "object", "properties": obj{
		"seq": obj{"type": "integer"}, "kind": obj{"type": "string", "enum": []string{"originate", "events", "postcall"}},
		"integrationId": obj{"type": "string", "format": "uuid"}, "originStream": obj{"type": "string"},
		"originSeq": obj{"type": "integer"}, "reason": obj{"type": "string"}, "traceId": obj{"type": "string"},
		"deadAt": obj{"type": "string", "format": "date-time"}, "bytes": obj{"type": "integer"}}}
	ex := obj{"seq": 7, "kind": "events", "integrationId": exIntegrationID, "originStream": "CALLQUEUE_EVENTS", "originSeq": 1042,
		"reason": "decode: unknown eventType call_transfer", "traceId": "4bf92f3577b34da6", "deadAt": "2026-01-21T12:39:12Z", "bytes": 164}
	streamParam := obj{"name": "stream", "in": "query", "schema": obj{"type": "string", "enum": []string{"originate", "events", "postcall"}}}
	adminDocs["GET /api/dead-letters"] = opDoc{summary: "List dead letters", tag: "Dead letters",
		description: "Messages the workers could not process, of the owner's integrations, oldest first. " +
			"X-Next-After, when present, is the `after` of the next page.",
		query: []obj{streamParam, {"name": "integrationId", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
			{"name": "after", "in": "query", "schema": obj{"type": "integer", "minimum": 0}},
			{"name": "limit", "in": "query", "schema": obj{"type": "integer", "minimum": 1, "maximum": 1000}}},
		response: obj{"type": "array", "items": dl}, example: []any{ex}, errors: []int{400, 422}}
	adminDocs["POST /api/dead-letters/replay"] = opDoc{summary: "Replay dead letters", tag: "Dead letters",
		description: "Puts dead letters back to their workers under their original identity and removes them from the list. " +
			"Idempotent: a replayed dead letter is gone (404), and its message is not processed twice.",
		body: obj{"type": "object", "additionalProperties": false, "properties": obj{
			"seq": obj{"type": "integer", "minimum": 0}, "all": obj{"type": "boolean"},
			"stream":        obj{"type": "string", "enum": []string{"originate", "events", "postcall"}},
			"integrationId": obj{"type": "string", "format": "uuid"}}},
		bodyExample: obj{"seq": 7},
		response: obj{"type": "object", "properties": obj{"replayed": obj{"type": "array", "items": dl},
			"count": obj{"type": "integer"}, "more": obj{"type": "boolean"}}},
		example: obj{"replayed": []any{ex}, "count": 1, "more": false}, errors: []int{400, 404, 413, 422}}
}
