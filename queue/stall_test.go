package queue_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
)

// TestStuckProcessHoldsOneRound: a process whose handlers hang (a query
// that never returns) holds at most what its workers take in one round
// (2 × 5), not the whole backlog; the rest goes to another process at
// once, and what the stuck one holds, no longer kept alive after
// StallAfter, follows after AckWait.
func TestStuckProcessHoldsOneRound(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	names := make([]string, 200)
	for i := range names {
		names[i] = fmt.Sprintf("m%03d", i)
	}
	publishEvents(t, q, integ, names...)

	stuck := newRecorder()
	release := make(chan struct{})
	var entered atomic.Int32
	stuck.slow = func([]queue.Delivery) {
		entered.Add(1)
		<-release
	}
	cfg := queue.ConsumerConfig{AckWait: 2 * time.Second, StallAfter: time.Second, BatchSize: 5, Workers: 2}
	startConsumer(t, q, stuck, cfg, nil)
	t.Cleanup(func() { close(release) }) // before the consumer's Stop, which waits for its workers
	const round = 2 * 5
	eventually(t, 10*time.Second, "both of the stuck process's workers to hang", func() bool { return entered.Load() == 2 })
	eventually(t, 10*time.Second, "the stuck process to fill its round", func() bool {
		return consumerInfo(t, q).NumAckPending >= round
	})
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if held := consumerInfo(t, q).NumAckPending; held > round {
			t.Fatalf("the stuck process holds %d messages, want at most %d (workers × batch)", held, round)
		}
	}

	healthy := newRecorder()
	start := time.Now()
	startConsumer(t, q, healthy, cfg, nil)
	others := 0
	eventually(t, 15*time.Second, "the other process to apply what the stuck one does not hold", func() bool {
		others = 0
		for _, n := range names {
			others += healthy.doneCount(n)
		}
		return others >= len(names)-round
	})
	rest := time.Since(start)
	eventually(t, 15*time.Second, "the stuck process's messages redelivered to the other", func() bool {
		for _, n := range names {
			if healthy.doneCount(n) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("the other process applied the %d not held in %v, all %d in %v", len(names)-round, rest.Round(time.Millisecond),
		len(names), time.Since(start).Round(time.Millisecond))
}

// TestConsumerGivesBackWhatItsDependencyCannotReach: a process whose
// database does not answer it holds a batch for StallAfter, then gives it
// back (a nak) and pulls nothing more until the database answers it, so
// another process applies everything long before AckWait (30 s) would
// have redelivered it.
func TestConsumerGivesBackWhatItsDependencyCannotReach(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("e%02d", i)
	}
	publishEvents(t, q, integ, names...)

	cut := newRecorder()
	var failed atomic.Int32
	cut.fail = func([]queue.Delivery) error {
		failed.Add(1)
		return fmt.Errorf("apply events: %w", errDatabaseDown)
	}
	dep := &switchableDependency{}
	dep.down.Store(true)
	h := cut.handler()
	h.Dependency = dep
	c, err := queue.NewConsumer(t.Context(), q, queue.KindEvents, h, queue.ConsumerConfig{AckWait: 30 * time.Second,
		StallAfter: 500 * time.Millisecond, HoldWait: 50 * time.Millisecond, BatchSize: 5, Workers: 1}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	eventually(t, 10*time.Second, "the cut-off process to try a batch", func() bool { return failed.Load() > 0 })

	reaches := newRecorder()
	start := time.Now()
	startConsumer(t, q, reaches, queue.ConsumerConfig{AckWait: 30 * time.Second, BatchSize: 5, Workers: 1}, nil)
	eventually(t, 15*time.Second, "the process that reaches its database to apply every message", func() bool {
		for _, n := range names {
			if reaches.doneCount(n) != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("all %d applied by the other process in %v", len(names), time.Since(start).Round(time.Millisecond))
	for _, n := range names {
		if cut.doneCount(n) != 0 {
			t.Errorf("%s applied by the process its database does not answer", n)
		}
	}
	eventually(t, 10*time.Second, "every message acked", func() bool { return settled(t, q) })
}
