package queue_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/queue/queuetest"
)

func TestMain(m *testing.M) {
	queuetest.RunNodeIfChild() // a ProcessCluster's server runs this binary
	// Every test shuts its NATS server and connection down in t.Cleanup, so
	// nothing of the server or the client may outlive the tests.
	goleak.VerifyTestMain(m)
}

// Names of the streams the queue creates; part of the operators' view.
var streamNames = []string{"CALLQUEUE_DLQ", "CALLQUEUE_EVENTS", "CALLQUEUE_ORIGINATE", "CALLQUEUE_POSTCALL"}

// startServer runs a JetStream server on a random port for t and returns a
// connection to it. Both are closed when t ends.
func startServer(t *testing.T) (*server.Server, *nats.Conn) {
	t.Helper()
	ns := startNATS(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true, MaxPayload: queue.MaxPayload})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ns, nc
}

// setup returns a Queue over a fresh server.
func setup(t *testing.T) *queue.Queue {
	t.Helper()
	_, nc := startServer(t)
	q, err := queue.New(t.Context(), nc, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func streams(t *testing.T, js jetstream.JetStream) map[string]jetstream.StreamConfig {
	t.Helper()
	out := map[string]jetstream.StreamConfig{}
	lister := js.ListStreams(t.Context())
	for info := range lister.Info() {
		out[info.Config.Name] = info.Config
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSubjectRoundTrip(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	for _, kind := range queue.Kinds {
		subject := queue.Subject(kind, id)
		got, err := queue.IntegrationFromSubject(subject)
		if err != nil || got != id {
			t.Errorf("IntegrationFromSubject(%q) = %v, %v; want %v", subject, got, err, id)
		}
	}
	if _, err := queue.IntegrationFromSubject("callqueue.events.not-a-uuid"); err == nil {
		t.Error("IntegrationFromSubject accepted a subject without an integration id")
	}
}

func TestNewCreatesStreamsIdempotently(t *testing.T) {
	t.Parallel()
	_, nc := startServer(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A stream left behind by an older version with other settings is
	// brought up to date, not rejected.
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "CALLQUEUE_EVENTS",
		Subjects: []string{"callqueue.events.*"}, Duplicates: time.Second, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := queue.New(t.Context(), nc, queue.Options{}); err != nil {
			t.Fatalf("New #%d: %v", i+1, err)
		}
	}
	got := streams(t, js)
	names := make([]string, 0, len(got))
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, streamNames) {
		t.Fatalf("streams = %v, want %v", names, streamNames)
	}
	tests := []struct {
		stream     string
		subject    string
		duplicates time.Duration
	}{
		{"CALLQUEUE_ORIGINATE", "callqueue.originate.*", 24 * time.Hour},
		{"CALLQUEUE_EVENTS", "callqueue.events.*", 2 * time.Minute},
		{"CALLQUEUE_POSTCALL", "callqueue.postcall.*", 24 * time.Hour},
	}
	for _, tt := range tests {
		cfg := got[tt.stream]
		if !slices.Equal(cfg.Subjects, []string{tt.subject}) || cfg.Duplicates != tt.duplicates || cfg.Storage != jetstream.FileStorage {
			t.Errorf("%s: subjects %v, duplicates %v, storage %v; want [%s], %v, file",
				tt.stream, cfg.Subjects, cfg.Duplicates, cfg.Storage, tt.subject, tt.duplicates)
		}
	}
}

func TestPublishDuplicateMsgID(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	first, second := uuid.NewString(), uuid.NewString()
	publish := func(callID string) queue.Ack {
		t.Helper()
		ack, err := q.Publish(t.Context(), queue.Message{Kind: queue.KindOriginate, IntegrationID: integ, MsgID: "originate:idem:k1",
			Data: []byte(`{}`), TraceID: "trace-" + callID, Header: nats.Header{queue.HeaderCallID: {callID}}})
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	a1 := publish(first)
	a2 := publish(second)
	if a1.Duplicate || a1.Sequence == 0 {
		t.Fatalf("first publish ack = %+v", a1)
	}
	if !a2.Duplicate || a2.Sequence != a1.Sequence {
		t.Fatalf("second publish ack = %+v, want duplicate of sequence %d", a2, a1.Sequence)
	}
	hdr, err := q.Stored(t.Context(), queue.KindOriginate, a2.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(queue.HeaderCallID); got != first {
		t.Errorf("stored %s = %q, want the first publish's %q", queue.HeaderCallID, got, first)
	}
	if got := hdr.Get(queue.HeaderTraceID); got != "trace-"+first {
		t.Errorf("stored %s = %q, want %q", queue.HeaderTraceID, got, "trace-"+first)
	}

	// Another MsgID is another message; no MsgID is never a duplicate.
	a3, err := q.Publish(t.Context(), queue.Message{Kind: queue.KindOriginate, IntegrationID: integ, MsgID: "originate:idem:k2"})
	if err != nil || a3.Duplicate || a3.Sequence != a1.Sequence+1 {
		t.Fatalf("publish with another MsgID = %+v, %v", a3, err)
	}
	for i := range 2 {
		a, err := q.Publish(t.Context(), queue.Message{Kind: queue.KindOriginate, IntegrationID: integ})
		if err != nil || a.Duplicate {
			t.Fatalf("publish #%d without MsgID = %+v, %v", i, a, err)
		}
	}
}

func TestPublishGoesToItsKindsStream(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	for _, kind := range queue.Kinds {
		if _, err := q.Publish(t.Context(), queue.Message{Kind: kind, IntegrationID: integ, Data: []byte(kind)}); err != nil {
			t.Fatalf("publish %s: %v", kind, err)
		}
	}
	want := map[string]string{"CALLQUEUE_ORIGINATE": "originate", "CALLQUEUE_EVENTS": "events", "CALLQUEUE_POSTCALL": "postcall"}
	for stream, data := range want {
		s, err := q.JetStream().Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetMsg(t.Context(), 1)
		if err != nil {
			t.Fatalf("%s #1: %v", stream, err)
		}
		if string(m.Data) != data || m.Subject != "callqueue."+data+"."+integ.String() {
			t.Errorf("%s #1 = %s %q, want %q", stream, m.Subject, m.Data, data)
		}
	}
}

func TestStoredUnknownSequence(t *testing.T) {
	t.Parallel()
	q := setup(t)
	if _, err := q.Stored(t.Context(), queue.KindOriginate, 42); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Stored(missing) = %v, want ErrUnavailable", err)
	}
}

func TestPublishWhenUnavailable(t *testing.T) {
	t.Parallel()
	q := setup(t)
	q.Conn().Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := q.Publish(ctx, queue.Message{Kind: queue.KindEvents, IntegrationID: uuid.New(), Data: []byte("x")})
	if !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Publish on a closed connection = %v, want ErrUnavailable", err)
	}
	if err := q.Ping(ctx); err == nil {
		t.Fatal("Ping on a closed connection succeeded")
	}
}

func TestKicksReachOneSubscriberOfTheGroup(t *testing.T) {
	t.Parallel()
	q := setup(t)
	integ := uuid.New()
	got := make(chan uuid.UUID, 10)
	for range 2 {
		sub, err := q.SubscribeKicks(func(id uuid.UUID) { got <- id })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := q.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	q.Kick(integ)
	if err := q.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != integ {
			t.Fatalf("kick for %v, want %v", id, integ)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no kick received")
	}
	// A round trip through the server: any second delivery would be here by now.
	if err := q.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(got); n != 0 {
		t.Fatalf("the kick reached %d more subscribers of the group", n)
	}
}
