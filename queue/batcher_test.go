package queue_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
)

// TestBatcherBoundsBatchesInBytes: events that together exceed the
// stream's largest message are stored in several messages, all of them
// acknowledged; an event too large to store even alone fails by itself and
// its neighbours are stored.
func TestBatcherBoundsBatchesInBytes(t *testing.T) {
	t.Parallel()
	q := setup(t)
	b := queue.NewBatcher(q)
	integ := uuid.New()
	big := json.RawMessage(`{"note":"` + strings.Repeat("x", 400<<10) + `"}`)
	huge := json.RawMessage(`{"note":"` + strings.Repeat("x", 1<<20) + `"}`)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		meta := big
		if i == 3 {
			meta = huge
		}
		wg.Go(func() {
			errs[i] = b.PublishEvent(t.Context(), integ, queue.EventBody{EventType: "call_end", CallRef: uuid.NewString(),
				Metadata: meta, ReceivedAt: time.Now()})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, queue.ErrTooLarge) {
				t.Errorf("the oversized event: %v, want ErrTooLarge", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("event %d failed with its oversized neighbour: %v", i, err)
		}
	}
	s, err := q.JetStream().Stream(t.Context(), "CALLQUEUE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		var batch queue.EventBatch
		if err := json.Unmarshal(m.Data, &batch); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		stored += len(batch.Events)
	}
	if stored != 7 || info.State.Msgs < 3 {
		t.Errorf("%d events stored in %d messages; want 7 in at least 3 (two 400 KiB events per MiB)", stored, info.State.Msgs)
	}
}
