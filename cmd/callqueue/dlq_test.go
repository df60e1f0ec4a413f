package main

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
)

// TestDLQCommands: list shows a dead letter with its origin and reason;
// replay --seq puts it back on its stream under its original identity and
// removes it; a second replay does nothing.
func TestDLQCommands(t *testing.T) {
	env := servicetest.New(t)
	t.Setenv("NATS_URL", env.NATSURL())
	nc, err := nats.Connect(env.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	q, err := queue.New(t.Context(), nc, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	integ := uuid.New()
	m := nats.NewMsg("callqueue.dlq.events")
	m.Data = []byte(`{"events":[{"eventType":"call_end","callRef":"x","receivedAt":"2026-01-21T12:00:00Z"}]}`)
	m.Header.Set(queue.HeaderReason, "apply events: connection refused")
	m.Header.Set(queue.HeaderOriginSubject, queue.Subject(queue.KindEvents, integ))
	m.Header.Set(queue.HeaderOriginStream, "CALLQUEUE_EVENTS")
	m.Header.Set(queue.HeaderOriginSeq, "41")
	if _, err := q.JetStream().PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}

	out, _, err := callqueue(t, "dlq", "list", "--stream", "events")
	if err != nil || !strings.Contains(out, "CALLQUEUE_EVENTS #41") || !strings.Contains(out, integ.String()) ||
		!strings.Contains(out, "connection refused") {
		t.Fatalf("dlq list = %q, %v", out, err)
	}
	seq := strings.Fields(out)[0]
	if out, _, err := callqueue(t, "dlq", "list", "--stream", "postcall"); err != nil || out != "" {
		t.Errorf("dlq list --stream postcall = %q, %v", out, err)
	}
	if out, _, err = callqueue(t, "dlq", "replay", "--seq", seq); err != nil || !strings.Contains(out, "replayed "+seq) {
		t.Fatalf("dlq replay = %q, %v", out, err)
	}
	s, err := q.JetStream().Stream(t.Context(), "CALLQUEUE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(t.Context(), queue.Subject(queue.KindEvents, integ))
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get(queue.HeaderOriginKey); got != "CALLQUEUE_EVENTS:41" || string(raw.Data) != string(m.Data) {
		t.Errorf("replayed message: key %q, data %s", got, raw.Data)
	}
	if out, _, err = callqueue(t, "dlq", "replay", "--seq", seq); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("second dlq replay = %q, %v", out, err)
	}
	if out, _, err = callqueue(t, "dlq", "replay", "--all"); err != nil || !strings.Contains(out, "replayed 0 dead letter(s)") {
		t.Errorf("dlq replay --all with nothing left = %q, %v", out, err)
	}
	info, err := s.Info(t.Context())
	if err != nil || info.State.Msgs != 1 {
		t.Errorf("the events stream holds %d messages after two replays, want 1 (%v)", info.State.Msgs, err)
	}
}

func TestDLQArguments(t *testing.T) {
	t.Setenv("NATS_URL", "")
	t.Setenv("CALLQUEUE_NATS_LISTEN", "")
	if out, _, err := callqueue(t, "dlq", "--help"); err != nil || !strings.Contains(out, "dlq replay (--seq N | --all)") {
		t.Errorf("dlq --help = %q, %v", out, err)
	}
	for _, args := range [][]string{
		{"dlq", "replay"}, {"dlq", "replay", "--seq", "1", "--all"}, {"dlq", "list", "--stream", "kafka"},
		{"dlq", "list", "--limit", "0"}, {"dlq", "purge"}, {"dlq", "list"},
	} {
		if _, _, err := callqueue(t, args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}
