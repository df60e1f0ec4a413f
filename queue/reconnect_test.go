package queue_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callqueue/callqueue/queue"
)

// TestFailedPublishIsNeverStoredLater: a publish made while the client is
// reconnecting fails (the webhook answers 503), and once the server is
// back nothing of it is stored: a connection made with ConnectOptions
// keeps no reconnect buffer that would deliver it after its failure.
func TestFailedPublishIsNeverStoredLater(t *testing.T) {
	t.Parallel()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		MaxPayload: queue.MaxPayload}
	ns := startNATS(t, opts)
	opts.Port = ns.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(ns.ClientURL(), queue.ConnectOptions("reconnect-test")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := queue.New(t.Context(), nc, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for nc.Status() != nats.RECONNECTING {
		if time.Now().After(deadline) {
			t.Fatalf("client status %s, want reconnecting", nc.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := js.Publish(ctx, queue.Subject(queue.KindOriginate, uuid.New()), []byte(`{}`)); err == nil {
		t.Fatal("a publish while reconnecting succeeded")
	}

	startNATS(t, opts)
	for !nc.IsConnected() {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("the client did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), "CALLQUEUE_ORIGINATE")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("the stream holds %d messages after the publish failed, want 0", info.State.Msgs)
	}
}

// startNATS runs a server with opts (copied) until t ends.
func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	o := *opts
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}
