package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is one message kept in the dead-letter stream.
type DeadLetter struct {
	// Seq is its position in the dead-letter stream: what replay names.
	Seq           uint64    `json:"seq"`
	Kind          Kind      `json:"kind"`
	IntegrationID uuid.UUID `json:"integrationId"`
	// OriginStream and OriginSeq are where it was first stored.
	OriginStream string    `json:"originStream"`
	OriginSeq    uint64    `json:"originSeq"`
	Reason       string    `json:"reason"`
	TraceID      string    `json:"traceId,omitempty"`
	DeadAt       time.Time `json:"deadAt"`
	Bytes        int       `json:"bytes"`

	subject string
	data    []byte
	header  nats.Header
}

// DeadLetterFilter selects dead letters.
type DeadLetterFilter struct {
	// Stream is an origin stream (CALLQUEUE_EVENTS) or kind (events); empty
	// means every stream.
	Stream string
	// Integrations, when not nil, keeps only dead letters of these.
	Integrations map[uuid.UUID]bool
	// After is a dead-letter sequence: only later ones are listed.
	After uint64
	// Limit bounds the answer (default and maximum DeadLetterLimitMax).
	Limit int
}

// DeadLetterLimitMax bounds one listing; deadLetterScanMax bounds how many
// messages one listing reads to fill it.
const (
	DeadLetterLimitMax = 1000
	deadLetterScanMax  = 20000
)

// ErrNoDeadLetter means there is no dead letter at that sequence: it never
// existed or was replayed already.
var ErrNoDeadLetter = errors.New("no such dead letter (never dead-lettered, or replayed already)")

// StreamOfKind resolves an origin stream given by name or kind; ok is false
// for anything else.
func StreamOfKind(s string) (stream string, ok bool) {
	for kind, spec := range specs {
		if strings.EqualFold(s, spec.Stream) || strings.EqualFold(s, string(kind)) {
			return spec.Stream, true
		}
	}
	return "", false
}

// ListDeadLetters returns the dead letters f selects, oldest first, and the
// sequence to pass as After for the next page (0 when there is none).
func (q *Queue) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, uint64, error) {
	if f.Limit <= 0 || f.Limit > DeadLetterLimitMax {
		f.Limit = DeadLetterLimitMax
	}
	stream := ""
	if f.Stream != "" {
		var ok bool
		if stream, ok = StreamOfKind(f.Stream); !ok {
			return nil, 0, fmt.Errorf("unknown stream %q", f.Stream)
		}
	}
	s, err := q.js.Stream(ctx, dlqStream)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var out []DeadLetter
	seq := f.After + 1
	for scanned := 0; scanned < deadLetterScanMax; scanned++ {
		// Next message at or after seq: deleted (replayed) ones are skipped.
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subjectPrefix+".dlq.>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: read dead letter after %d: %w", ErrUnavailable, seq, err)
		}
		seq = raw.Sequence + 1
		dl := deadLetterOf(raw)
		if (stream != "" && dl.OriginStream != stream) || (f.Integrations != nil && !f.Integrations[dl.IntegrationID]) {
			continue
		}
		// A page keeps no payloads (up to 25 MiB each): replay reads the
		// one it replays again by its sequence.
		dl.data, dl.header = nil, nil
		out = append(out, dl)
		if len(out) == f.Limit {
			return out, raw.Sequence, nil
		}
	}
	return out, seq - 1, nil
}

// GetDeadLetter returns the dead letter at seq.
func (q *Queue) GetDeadLetter(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, err := q.js.Stream(ctx, dlqStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, ErrNoDeadLetter
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("%w: read dead letter %d: %w", ErrUnavailable, seq, err)
	}
	return deadLetterOf(raw), nil
}

func deadLetterOf(raw *jetstream.RawStreamMsg) DeadLetter {
	dl := DeadLetter{Seq: raw.Sequence, Reason: raw.Header.Get(HeaderReason), TraceID: raw.Header.Get(HeaderTraceID),
		DeadAt: raw.Time, Bytes: len(raw.Data), subject: raw.Header.Get(HeaderOriginSubject), data: raw.Data, header: raw.Header,
		OriginStream: raw.Header.Get(HeaderOriginStream)}
	dl.OriginSeq, _ = strconv.ParseUint(raw.Header.Get(HeaderOriginSeq), 10, 64)
	dl.Kind = Kind(strings.TrimPrefix(raw.Subject, subjectPrefix+".dlq."))
	if dl.OriginStream == "" { // dead-lettered before the header existed
		dl.OriginStream = specs[dl.Kind].Stream
	}
	dl.IntegrationID, _ = IntegrationFromSubject(dl.subject)
	return dl
}

// ReplayDeadLetter puts the dead letter at seq back on its original subject
// for the workers, then removes it from the dead-letter stream.
//
// It is idempotent. The replay is published under a message id derived
// from the dead letter, so a repeated replay within the stream's duplicate
// window is stored once; it carries the original's identity
// (HeaderOriginKey), under which the workers record what they processed, so
// one that arrives later still changes nothing; and once removed, the dead
// letter cannot be replayed again (ErrNoDeadLetter).
func (q *Queue) ReplayDeadLetter(ctx context.Context, seq uint64) (DeadLetter, error) {
	dl, err := q.GetDeadLetter(ctx, seq)
	if err != nil {
		return DeadLetter{}, err
	}
	if dl.IntegrationID == uuid.Nil || specs[dl.Kind].Stream == "" {
		return dl, fmt.Errorf("dead letter %d has no origin subject to replay to", seq)
	}
	msg := nats.NewMsg(dl.subject)
	msg.Data = dl.data
	for k, v := range dl.header {
		switch k {
		case HeaderReason, HeaderOriginSubject, HeaderOriginSeq, HeaderOriginStream:
			continue
		}
		msg.Header[k] = v
	}
	if msg.Header.Get(HeaderOriginKey) == "" && dl.OriginSeq > 0 {
		msg.Header.Set(HeaderOriginKey, fmt.Sprintf("%s:%d", dl.OriginStream, dl.OriginSeq))
	}
	if !q.nc.IsConnected() {
		return dl, fmt.Errorf("%w: %w", ErrUnavailable, nats.ErrDisconnected)
	}
	if _, err := q.js.PublishMsg(ctx, msg, jetstream.WithMsgID(fmt.Sprintf("replay:%s:%d", dl.OriginStream, dl.OriginSeq)),
		jetstream.WithExpectStream(specs[dl.Kind].Stream)); err != nil {
		return dl, fmt.Errorf("%w: replay dead letter %d: %w", ErrUnavailable, seq, err)
	}
	s, err := q.js.Stream(ctx, dlqStream)
	if err == nil {
		err = s.DeleteMsg(ctx, seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		// Replayed but still listed: replaying it again is harmless.
		return dl, fmt.Errorf("%w: remove replayed dead letter %d: %w", ErrUnavailable, seq, err)
	}
	return dl, nil
}
