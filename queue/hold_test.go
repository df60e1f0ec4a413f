package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/queue"
)

// errDatabaseDown is what the test handler returns during an outage.
var errDatabaseDown = errors.New("dial tcp 127.0.0.1:5432: connection refused")

// switchableDependency is a dependency the test takes down and brings back.
type switchableDependency struct {
	down  atomic.Bool
	pings atomic.Int32
}

func (d *switchableDependency) Transient(err error) bool { return errors.Is(err, errDatabaseDown) }

func (d *switchableDependency) Ping(context.Context) error {
	d.pings.Add(1)
	if d.down.Load() {
		return errDatabaseDown
	}
	return nil
}

// TestConsumerHoldsMessagesThroughAnOutage: an outage of the handler's
// dependency far longer than the redelivery budget (MaxDeliver 2, AckWait
// 1 s, backoff 10 ms) spends none of it: the messages are held and
// retried in place, never redelivered, and all processed once it is back.
func TestConsumerHoldsMessagesThroughAnOutage(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	dep := &switchableDependency{}
	dep.down.Store(true)
	r := newRecorder()
	var failures atomic.Int32
	r.fail = func([]queue.Delivery) error {
		if dep.down.Load() {
			failures.Add(1)
			return fmt.Errorf("apply events: %w", errDatabaseDown)
		}
		return nil
	}
	h := r.handler()
	h.Dependency = dep
	obs := &fakeObserver{}
	const ackWait = time.Second
	c, err := queue.NewConsumer(t.Context(), q, queue.KindEvents, h, queue.ConsumerConfig{AckWait: ackWait, MaxDeliver: 2,
		BatchSize: 2, Workers: 1, Backoff: []time.Duration{10 * time.Millisecond}, HoldWait: 50 * time.Millisecond}, testLogger(t), obs)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	names := []string{"e1", "e2", "e3", "e4", "e5"}
	publishEvents(t, q, integ, names...)

	// The outage lasts well past AckWait (a redelivery would have happened
	// by then) and many checks of the dependency (each retry would have
	// been a delivery).
	outageStart := time.Now()
	eventually(t, 20*time.Second, "the outage to outlast three AckWaits and twenty checks", func() bool {
		return time.Since(outageStart) > 3*ackWait && failures.Load() >= 1 && dep.pings.Load() >= 20
	})
	// The process holds one round of its workers (1 × 2) and, its
	// dependency down, takes nothing more: the rest wait in the stream.
	if info := consumerInfo(t, q); info.NumRedelivered != 0 || info.Delivered.Consumer != 2 {
		t.Fatalf("during the outage: %d deliveries, %d redelivered; want 2 and 0", info.Delivered.Consumer, info.NumRedelivered)
	}
	dep.down.Store(false)

	eventually(t, 20*time.Second, "every message processed", func() bool {
		for _, n := range names {
			if r.doneCount(n) != 1 {
				return false
			}
		}
		return true
	})
	eventually(t, 10*time.Second, "every message acked", func() bool { return settled(t, q) })
	for _, n := range names {
		if got := slices.Compact(r.deliveries(n)); !slices.Equal(got, []uint64{1}) {
			t.Errorf("%s handled at deliveries %v, want only the first", n, got)
		}
	}
	if dl := deadLetters(t, q); len(dl) != 0 {
		t.Errorf("%d messages dead-lettered by an outage", len(dl))
	}
	if redelivered, dead := obs.counts(); redelivered != 0 || len(dead) != 0 {
		t.Errorf("observer: %d redelivered, dead letters %v", redelivered, dead)
	}
}

// TestConsumerCountsFailuresWhileTheDependencyAnswers: an error that looks
// like an outage while the dependency answers its pings is the message's
// own after a few in-place retries: it is redelivered and dead-lettered at
// MaxDeliver like any failure, and does not hold the others.
func TestConsumerCountsFailuresWhileTheDependencyAnswers(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	dep := &switchableDependency{}
	r := newRecorder()
	r.fail = func(batch []queue.Delivery) error {
		if containing(batch, "bad") {
			return errDatabaseDown
		}
		return nil
	}
	h := r.handler()
	h.Dependency = dep
	c, err := queue.NewConsumer(t.Context(), q, queue.KindEvents, h, queue.ConsumerConfig{AckWait: 5 * time.Second, MaxDeliver: 2,
		Workers: 1, Backoff: []time.Duration{10 * time.Millisecond}, HoldWait: 20 * time.Millisecond}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	publishEvents(t, q, integ, "ok1", "bad", "ok2")

	eventually(t, 20*time.Second, "the failing message dead-lettered", func() bool { return len(deadLetters(t, q)) == 1 })
	eventually(t, 10*time.Second, "every message settled", func() bool { return settled(t, q) })
	if got := slices.Compact(r.deliveries("bad")); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("bad handled at deliveries %v, want 1 and 2", got)
	}
	for _, n := range []string{"ok1", "ok2"} {
		if r.doneCount(n) != 1 {
			t.Errorf("%s processed %d times, want 1", n, r.doneCount(n))
		}
	}
}

// testLogger writes the consumer's log to the test's.
func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}
