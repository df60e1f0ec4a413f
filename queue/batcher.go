package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
)

// EventBatch is the stored form of call events: several webhooks' events
// for one integration in one JetStream message.
type EventBatch struct {
	Events []EventBody `json:"events"`
}

// Batcher is group commit for call events. With a file store that fsyncs
// every write, one stored message per webhook caps intake at the disk's
// fsync rate; the Batcher stores the events that arrive while a write is
// in flight together, in one message and one fsync, and answers each
// caller once its batch is acknowledged. Alone, an event is written at
// once: batching costs no latency when there is no queue.
type Batcher struct {
	q           *Queue
	maxBatch    int
	maxBytes    int
	maxInFlight int

	mu       sync.Mutex
	inFlight int
	pending  map[uuid.UUID]*eventBatch
	order    []uuid.UUID
}

type eventBatch struct {
	integrationID uuid.UUID
	events        []json.RawMessage
	bytes         int
	done          chan struct{}
	err           error
}

// ErrTooLarge is an event that cannot be stored even alone.
var ErrTooLarge = errors.New("event too large to store")

// batchEnvelope is the bytes EventBatch adds around its events.
const batchEnvelope = len(`{"events":[]}`)

// Defaults for a Batcher.
const (
	MaxBatchDefault    = 512
	MaxInFlightDefault = 2
)

// NewBatcher returns a Batcher publishing through q.
func NewBatcher(q *Queue) *Batcher {
	return &Batcher{q: q, maxBatch: MaxBatchDefault, maxBytes: int(specs[KindEvents].MaxMsgSize), maxInFlight: MaxInFlightDefault,
		pending: map[uuid.UUID]*eventBatch{}}
}

// PublishEvent stores ev durably and returns once it is acknowledged (or
// ctx ends, in which case it may still be stored). Batches are bounded in
// bytes as well as in count, so they always fit the stream's largest
// message: an event too large to be stored even alone fails on its own
// (ErrTooLarge) and never takes its neighbours with it.
func (b *Batcher) PublishEvent(ctx context.Context, integrationID uuid.UUID, ev EventBody) error {
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if batchEnvelope+len(raw) > b.maxBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(raw), b.maxBytes-batchEnvelope)
	}
	b.mu.Lock()
	bt := b.pending[integrationID]
	if bt != nil && batchEnvelope+bt.bytes+1+len(raw) > b.maxBytes {
		b.startLocked(integrationID) // full in bytes: it goes now, ev starts the next
		bt = nil
	}
	if bt == nil {
		bt = &eventBatch{integrationID: integrationID, done: make(chan struct{})}
		b.pending[integrationID] = bt
		b.order = append(b.order, integrationID)
	}
	if len(bt.events) > 0 {
		bt.bytes++ // the comma
	}
	bt.events = append(bt.events, raw)
	bt.bytes += len(raw)
	if b.inFlight < b.maxInFlight || len(bt.events) >= b.maxBatch {
		b.startLocked(integrationID)
	}
	b.mu.Unlock()
	select {
	case <-bt.done:
		return bt.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// startLocked detaches an integration's pending batch and writes it.
func (b *Batcher) startLocked(integrationID uuid.UUID) {
	bt := b.pending[integrationID]
	delete(b.pending, integrationID)
	for i, id := range b.order {
		if id == integrationID {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
	b.inFlight++
	go b.write(bt)
}

func (b *Batcher) write(bt *eventBatch) {
	data := make([]byte, 0, batchEnvelope+bt.bytes)
	data = append(data, `{"events":[`...)
	for i, ev := range bt.events {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, ev...)
	}
	data = append(data, "]}"...)
	// A batch is not retried under the same id: each caller retries its
	// own webhook, and the workers drop duplicate events.
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	_, err := b.q.Publish(ctx, Message{Kind: KindEvents, IntegrationID: bt.integrationID, Data: data})
	cancel()
	bt.err = err
	close(bt.done)

	b.mu.Lock()
	b.inFlight--
	// Whatever gathered meanwhile goes next, oldest integration first.
	if len(b.order) > 0 {
		b.startLocked(b.order[0])
	}
	b.mu.Unlock()
}
