package queue_test

import (
	"bytes"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
)

// TestStreamsHaveAByteBudget: every stream keeps at most Options.MaxBytes,
// each message fits it, and a flood keeps the newest within the budget.
func TestStreamsHaveAByteBudget(t *testing.T) {
	t.Parallel()
	_, nc := startServer(t)
	const budget = 16 << 20
	q, err := queue.New(t.Context(), nc, queue.Options{MaxBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	js := q.JetStream()
	for name, cfg := range streams(t, js) {
		if cfg.MaxBytes != budget {
			t.Errorf("stream %s MaxBytes = %d, want %d", name, cfg.MaxBytes, budget)
		}
		if cfg.MaxMsgSize <= 0 || int64(cfg.MaxMsgSize) > budget || cfg.MaxMsgSize > queue.MaxPayload {
			t.Errorf("stream %s MaxMsgSize = %d: want a cap within the budget and the server's payload", name, cfg.MaxMsgSize)
		}
	}

	// Forty messages of nearly a MiB, of one integration, into a 16 MiB stream.
	subject := queue.Subject(queue.KindEvents, uuid.New())
	body := bytes.Repeat([]byte("x"), 1000<<10)
	for i := range 40 {
		if _, err := js.Publish(t.Context(), subject, body); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	s, err := js.Stream(t.Context(), queue.KindEvents.Stream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > budget || info.State.LastSeq != 40 || info.State.FirstSeq <= 1 {
		t.Fatalf("stream state %+v: want at most %d bytes holding the newest of 40", info.State, budget)
	}

	// Zero options take the default.
	_, nc2 := startServer(t)
	q2, err := queue.New(t.Context(), nc2, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range streams(t, q2.JetStream()) {
		if cfg.MaxBytes != queue.StreamMaxBytesDefault {
			t.Errorf("default: stream %s MaxBytes = %d, want %d", name, cfg.MaxBytes, int64(queue.StreamMaxBytesDefault))
		}
	}
}
