package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/queue"
)

// fakeObserver counts what a consumer reports.
type fakeObserver struct {
	mu          sync.Mutex
	redelivered int
	dead        []string
	processed   int
}

func (o *fakeObserver) Redelivered(queue.Kind) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.redelivered++
}

func (o *fakeObserver) DeadLettered(_ queue.Kind, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dead = append(o.dead, reason)
}

func (o *fakeObserver) ProcessedBatch(_ queue.Kind, n int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.processed += n
}

func (o *fakeObserver) counts() (redelivered int, dead []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.redelivered, slices.Clone(o.dead)
}

// recorder is a Handler over raw deliveries that remembers every
// delivery it was given and every message it processed successfully.
type recorder struct {
	mu        sync.Mutex
	delivered map[string][]uint64 // data → NumDelivered of each Handle call it was in
	done      map[string]int      // data → successful Handle calls
	batches   [][]string
	// fail decides whether a batch fails.
	fail func(batch []queue.Delivery) error
	// decodeErr decides whether a delivery fails to decode.
	decodeErr func(queue.Delivery) error
	// slow, when set, runs inside Handle before it returns.
	slow func(batch []queue.Delivery)
}

func newRecorder() *recorder {
	return &recorder{delivered: map[string][]uint64{}, done: map[string]int{}}
}

func (r *recorder) handler() queue.Handler[queue.Delivery] {
	return queue.Handler[queue.Delivery]{
		Decode: func(d queue.Delivery) (queue.Delivery, error) {
			if r.decodeErr != nil {
				if err := r.decodeErr(d); err != nil {
					return d, err
				}
			}
			return d, nil
		},
		Handle: func(_ context.Context, batch []queue.Delivery) error {
			names := make([]string, len(batch))
			r.mu.Lock()
			for i, d := range batch {
				names[i] = string(d.Data)
				r.delivered[names[i]] = append(r.delivered[names[i]], d.NumDelivered)
			}
			r.batches = append(r.batches, names)
			r.mu.Unlock()
			if r.slow != nil {
				r.slow(batch)
			}
			if r.fail != nil {
				if err := r.fail(batch); err != nil {
					return err
				}
			}
			r.mu.Lock()
			for _, n := range names {
				r.done[n]++
			}
			r.mu.Unlock()
			return nil
		},
	}
}

func (r *recorder) doneCount(data string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[data]
}

func (r *recorder) deliveries(data string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered[data])
}

func containing(batch []queue.Delivery, data string) bool {
	return slices.ContainsFunc(batch, func(d queue.Delivery) bool { return string(d.Data) == data })
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publishEvents(t *testing.T, q *queue.Queue, integ uuid.UUID, data ...string) {
	t.Helper()
	for _, d := range data {
		if _, err := q.Publish(t.Context(), queue.Message{Kind: queue.KindEvents, IntegrationID: integ, Data: []byte(d),
			TraceID: "trace-" + d}); err != nil {
			t.Fatal(err)
		}
	}
}

func startConsumer(t *testing.T, q *queue.Queue, r *recorder, cfg queue.ConsumerConfig, obs queue.Observer) *queue.Consumer[queue.Delivery] {
	t.Helper()
	c, err := queue.NewConsumer(t.Context(), q, queue.KindEvents, r.handler(), cfg, zerolog.Nop(), obs)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func consumerInfo(t *testing.T, q *queue.Queue) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := q.JetStream().Consumer(t.Context(), "CALLQUEUE_EVENTS", string(queue.KindEvents))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// settled reports whether the consumer has nothing left to deliver or ack.
func settled(t *testing.T, q *queue.Queue) bool {
	info := consumerInfo(t, q)
	return info.NumPending == 0 && info.NumAckPending == 0
}

func deadLetters(t *testing.T, q *queue.Queue) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := q.JetStream().Stream(t.Context(), "CALLQUEUE_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestConsumerAcksBatches(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	publishEvents(t, q, integ, names...)
	r := newRecorder()
	obs := &fakeObserver{}
	startConsumer(t, q, r, queue.ConsumerConfig{BatchSize: 8, Workers: 2}, obs)

	eventually(t, 10*time.Second, "every message acked", func() bool { return settled(t, q) })
	for _, n := range names {
		if got := r.deliveries(n); !slices.Equal(got, []uint64{1}) {
			t.Errorf("%s handled at deliveries %v, want once at the first", n, got)
		}
	}
	r.mu.Lock()
	for _, b := range r.batches {
		if len(b) > 8 {
			t.Errorf("batch of %d exceeds BatchSize 8", len(b))
		}
	}
	r.mu.Unlock()
	if info := consumerInfo(t, q); info.Delivered.Consumer != 20 || info.AckFloor.Stream != 20 {
		t.Errorf("consumer delivered %d, ack floor %d; want 20 and 20", info.Delivered.Consumer, info.AckFloor.Stream)
	}
	if redelivered, dead := obs.counts(); redelivered != 0 || len(dead) != 0 {
		t.Errorf("observer: %d redelivered, dead letters %v", redelivered, dead)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.processed != 20 {
		t.Errorf("observer saw %d processed, want 20", obs.processed)
	}
}

func TestConsumerDecodeErrorDeadLetters(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	publishEvents(t, q, integ, "ok1", "bad", "ok2")
	r := newRecorder()
	var badDecodes atomic.Int32
	r.decodeErr = func(d queue.Delivery) error {
		if string(d.Data) == "bad" {
			badDecodes.Add(1)
			return errors.New("not json")
		}
		return nil
	}
	obs := &fakeObserver{}
	startConsumer(t, q, r, queue.ConsumerConfig{AckWait: time.Second, MaxDeliver: 5, Backoff: []time.Duration{10 * time.Millisecond}}, obs)

	eventually(t, 10*time.Second, "a dead letter", func() bool { return len(deadLetters(t, q)) == 1 })
	// The bad message was terminated, not left to time out: nothing is
	// pending, and the server delivered each message exactly once.
	eventually(t, 10*time.Second, "every message settled", func() bool { return settled(t, q) })
	if info := consumerInfo(t, q); info.Delivered.Consumer != 3 {
		t.Errorf("consumer made %d deliveries of 3 messages", info.Delivered.Consumer)
	}
	if n := badDecodes.Load(); n != 1 {
		t.Errorf("bad message decoded %d times, want 1", n)
	}
	for _, n := range []string{"ok1", "ok2"} {
		if got := r.doneCount(n); got != 1 {
			t.Errorf("%s processed %d times, want 1", n, got)
		}
	}
	if got := r.deliveries("bad"); len(got) != 0 {
		t.Errorf("an undecodable message reached Handle: %v", got)
	}
	dl := deadLetters(t, q)[0]
	if string(dl.Data) != "bad" || dl.Subject != "callqueue.dlq.events" {
		t.Errorf("dead letter = %s %q", dl.Subject, dl.Data)
	}
	if reason := dl.Header.Get(queue.HeaderReason); !strings.HasPrefix(reason, "decode: ") || !strings.Contains(reason, "not json") {
		t.Errorf("dead letter %s = %q", queue.HeaderReason, reason)
	}
	if got := dl.Header.Get(queue.HeaderOriginSubject); got != queue.Subject(queue.KindEvents, integ) {
		t.Errorf("dead letter %s = %q", queue.HeaderOriginSubject, got)
	}
	if got := dl.Header.Get(queue.HeaderOriginSeq); got != "2" {
		t.Errorf("dead letter %s = %q, want 2", queue.HeaderOriginSeq, got)
	}
	if got := dl.Header.Get(queue.HeaderTraceID); got != "trace-bad" {
		t.Errorf("dead letter keeps trace id %q, want trace-bad", got)
	}
	if redelivered, dead := obs.counts(); redelivered != 0 || len(dead) != 1 {
		t.Errorf("observer: %d redelivered, dead letters %v; want 0 and 1", redelivered, dead)
	}
	if n, err := q.DeadLetters(t.Context()); err != nil || n != 1 {
		t.Errorf("DeadLetters = %d, %v; want 1", n, err)
	}
}

func TestConsumerPoisonMessageInBatch(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	// Published before the consumer starts, so they can arrive as one batch.
	publishEvents(t, q, integ, "a", "poison", "b", "c")
	r := newRecorder()
	r.fail = func(batch []queue.Delivery) error {
		if containing(batch, "poison") {
			return errors.New("cannot apply poison")
		}
		return nil
	}
	obs := &fakeObserver{}
	const maxDeliver = 3
	startConsumer(t, q, r, queue.ConsumerConfig{AckWait: 5 * time.Second, MaxDeliver: maxDeliver, BatchSize: 10, Workers: 1,
		Backoff: []time.Duration{20 * time.Millisecond}}, obs)

	eventually(t, 10*time.Second, "the poison message dead-lettered", func() bool { return len(deadLetters(t, q)) == 1 })
	eventually(t, 10*time.Second, "every message settled", func() bool { return settled(t, q) })
	for _, n := range []string{"a", "b", "c"} {
		if got := r.doneCount(n); got != 1 {
			t.Errorf("%s processed %d times, want exactly 1", n, got)
		}
		// Retried one by one at once, not held back to a redelivery.
		if got := r.deliveries(n); slices.ContainsFunc(got, func(d uint64) bool { return d != 1 }) {
			t.Errorf("%s handled at deliveries %v: the poison message's batch failure redelivered it", n, got)
		}
	}
	// The poison message was tried at every delivery up to MaxDeliver (more
	// than once at the first, when it failed its batch).
	got := r.deliveries("poison")
	seen := slices.Compact(slices.Clone(got))
	if !slices.Equal(seen, []uint64{1, 2, 3}) {
		t.Errorf("poison handled at deliveries %v, want 1..%d", got, maxDeliver)
	}
	dl := deadLetters(t, q)[0]
	if string(dl.Data) != "poison" || !strings.Contains(dl.Header.Get(queue.HeaderReason), "cannot apply poison") {
		t.Errorf("dead letter = %q, reason %q", dl.Data, dl.Header.Get(queue.HeaderReason))
	}
	if redelivered, dead := obs.counts(); redelivered != maxDeliver-1 || len(dead) != 1 {
		t.Errorf("observer: %d redelivered, dead letters %v; want %d and 1", redelivered, dead, maxDeliver-1)
	}
}

func TestConsumerPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	publishEvents(t, q, integ, "x", "perm", "y")
	r := newRecorder()
	r.fail = func(batch []queue.Delivery) error {
		if containing(batch, "perm") {
			return queue.Permanent(errors.New("integration deleted"))
		}
		return nil
	}
	obs := &fakeObserver{}
	startConsumer(t, q, r, queue.ConsumerConfig{MaxDeliver: 10, Backoff: []time.Duration{10 * time.Millisecond}}, obs)

	eventually(t, 10*time.Second, "the message dead-lettered", func() bool { return len(deadLetters(t, q)) == 1 })
	eventually(t, 10*time.Second, "every message settled", func() bool { return settled(t, q) })
	if got := r.deliveries("perm"); slices.ContainsFunc(got, func(n uint64) bool { return n != 1 }) {
		t.Errorf("permanent failure redelivered: deliveries %v", got)
	}
	if info := consumerInfo(t, q); info.Delivered.Consumer != 3 {
		t.Errorf("consumer made %d deliveries of 3 messages", info.Delivered.Consumer)
	}
	for _, n := range []string{"x", "y"} {
		if got := r.doneCount(n); got != 1 {
			t.Errorf("%s processed %d times, want 1", n, got)
		}
	}
	reason := deadLetters(t, q)[0].Header.Get(queue.HeaderReason)
	if !strings.Contains(reason, "integration deleted") {
		t.Errorf("dead letter reason %q", reason)
	}
	if redelivered, dead := obs.counts(); redelivered != 0 || len(dead) != 1 {
		t.Errorf("observer: %d redelivered, dead letters %v; want 0 and 1", redelivered, dead)
	}
}

func TestConsumerSlowHandlerIsNotRedelivered(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	r := newRecorder()
	const ackWait = time.Second
	// The handler's slowness is what is under test: it outlives AckWait
	// more than twice, so only progress reports keep the message ours.
	r.slow = func([]queue.Delivery) { time.Sleep(ackWait*5/2 + 100*time.Millisecond) }
	obs := &fakeObserver{}
	startConsumer(t, q, r, queue.ConsumerConfig{AckWait: ackWait, MaxDeliver: 5, Workers: 2, BatchSize: 1}, obs)
	publishEvents(t, q, integ, "slow")

	eventually(t, 10*time.Second, "the slow message processed", func() bool { return r.doneCount("slow") == 1 })
	eventually(t, 10*time.Second, "the slow message acked", func() bool { return settled(t, q) })
	// A redelivery would have been made at about AckWait and counted here.
	if info := consumerInfo(t, q); info.Delivered.Consumer != 1 {
		t.Errorf("the server delivered the slow message %d times, want 1", info.Delivered.Consumer)
	}
	if got := r.deliveries("slow"); !slices.Equal(got, []uint64{1}) {
		t.Errorf("slow message handled at deliveries %v, want [1]", got)
	}
	if redelivered, _ := obs.counts(); redelivered != 0 {
		t.Errorf("observer saw %d redeliveries", redelivered)
	}
}

func TestConsumerStopNaksBufferedMessages(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	var names []string
	for i := range 300 {
		names = append(names, fmt.Sprintf("m%02d", i))
	}

	// The first consumer blocks in its first batch, of the first message
	// alone, so what it pulls next piles up in its buffer.
	first := newRecorder()
	entered, release := make(chan int), make(chan struct{})
	var once sync.Once
	first.slow = func(batch []queue.Delivery) {
		once.Do(func() {
			entered <- len(batch)
			<-release
		})
	}
	// AckWait is far longer than the test may take: only naks can hand the
	// buffered messages over in time.
	const batchSize = 50
	cfg := queue.ConsumerConfig{AckWait: time.Minute, BatchSize: batchSize, Workers: 1}
	c1, err := queue.NewConsumer(t.Context(), q, queue.KindEvents, first.handler(), cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var releaseOnce, stopOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	stop := func() { stopOnce.Do(c1.Stop) }
	t.Cleanup(func() { unblock(); stop() }) // should the test fail half-way
	publishEvents(t, q, integ, names[0])
	if inHand := <-entered; inHand != 1 {
		t.Fatalf("first batch of %d, want 1", inHand)
	}
	publishEvents(t, q, integ, names[1:]...)
	// The process pulls up to one round of its workers (1 × 50): the 49
	// behind the batch in hand wait in its buffer, which Stop must not drop.
	eventually(t, 10*time.Second, "the first consumer's buffer to fill", func() bool {
		return consumerInfo(t, q).NumAckPending >= batchSize
	})

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stop()
	}()
	// The batch in hand finishes only once Stop has begun; otherwise the
	// worker could work through the buffers before Stop is called.
	<-c1.Stopping()
	unblock()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the batch in hand finished")
	}

	second := newRecorder()
	startConsumer(t, q, second, cfg, nil)
	eventually(t, 15*time.Second, "every message processed by one of the consumers", func() bool {
		for _, n := range names {
			if first.doneCount(n)+second.doneCount(n) != 1 {
				return false
			}
		}
		return true
	})
	handedOver := 0
	for _, n := range names {
		if d := second.deliveries(n); len(d) > 0 && d[0] > 1 {
			handedOver++
		}
	}
	if handedOver == 0 {
		t.Fatal("the second consumer got no message the first had held: the test did not exercise Stop")
	}
	eventually(t, 10*time.Second, "every message acked", func() bool { return settled(t, q) })
}
