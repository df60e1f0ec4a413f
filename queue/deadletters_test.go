package queue_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
)

// TestDeadLetterReplay: a message dead-lettered by a failure that has since
// been fixed is listed with its origin, replayed under its original
// identity (Delivery.Key), processed, and gone from the list; replaying it
// again finds nothing and processes nothing.
func TestDeadLetterReplay(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integA, integB := uuid.New(), uuid.New()
	var fixed atomic.Bool
	var mu sync.Mutex
	keys := map[string][]string{} // data → keys it was processed under
	h := queue.Handler[queue.Delivery]{
		Decode: func(d queue.Delivery) (queue.Delivery, error) { return d, nil },
		Handle: func(_ context.Context, batch []queue.Delivery) error {
			for _, d := range batch {
				if string(d.Data) == "needs-fix" && !fixed.Load() {
					return queue.Permanent(errors.New("no handler for this yet"))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range batch {
				keys[string(d.Data)] = append(keys[string(d.Data)], d.Key)
			}
			return nil
		},
	}
	c, err := queue.NewConsumer(t.Context(), q, queue.KindEvents, h, queue.ConsumerConfig{Workers: 1, BatchSize: 1}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	publishEvents(t, q, integA, "ok", "needs-fix")
	publishEvents(t, q, integB, "needs-fix-b")
	eventually(t, 10*time.Second, "one dead letter", func() bool { return len(deadLetters(t, q)) == 1 })

	list, next, err := q.ListDeadLetters(t.Context(), queue.DeadLetterFilter{})
	if err != nil || len(list) != 1 || next != 0 {
		t.Fatalf("ListDeadLetters = %+v, %d, %v", list, next, err)
	}
	dl := list[0]
	if dl.IntegrationID != integA || dl.OriginStream != "CALLQUEUE_EVENTS" || dl.OriginSeq != 2 || dl.Kind != queue.KindEvents {
		t.Errorf("dead letter = %+v", dl)
	}
	for _, f := range []queue.DeadLetterFilter{
		{Integrations: map[uuid.UUID]bool{integB: true}}, {Stream: "originate"}, {After: dl.Seq},
	} {
		if got, _, err := q.ListDeadLetters(t.Context(), f); err != nil || len(got) != 0 {
			t.Errorf("ListDeadLetters(%+v) = %v, %v; want nothing", f, got, err)
		}
	}

	fixed.Store(true)
	if _, err := q.ReplayDeadLetter(t.Context(), dl.Seq); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the replayed message processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(keys["needs-fix"]) == 1
	})
	mu.Lock()
	if got := keys["needs-fix"][0]; got != "CALLQUEUE_EVENTS:2" {
		t.Errorf("replay processed under key %q, want the original's CALLQUEUE_EVENTS:2", got)
	}
	mu.Unlock()
	if got, _, _ := q.ListDeadLetters(t.Context(), queue.DeadLetterFilter{}); len(got) != 0 {
		t.Errorf("a replayed dead letter is still listed: %+v", got)
	}
	if _, err := q.ReplayDeadLetter(t.Context(), dl.Seq); !errors.Is(err, queue.ErrNoDeadLetter) {
		t.Errorf("second replay: %v, want ErrNoDeadLetter", err)
	}
	eventually(t, 10*time.Second, "every message settled", func() bool { return settled(t, q) })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(keys["needs-fix"], []string{"CALLQUEUE_EVENTS:2"}) || len(keys["ok"]) != 1 || len(keys["needs-fix-b"]) != 1 {
		t.Errorf("processed: %v", keys)
	}
}
