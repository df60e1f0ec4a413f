package servicetest

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callqueue/callqueue/queue"
)

// DeadLetterOriginate stores in the dead-letter stream, as a consumer that
// gave up on it would, a call-originate message of integrationID for
// phone, with reason, and returns the call id the message carries: the
// call exists only once the dead letter is replayed.
func (e *Env) DeadLetterOriginate(t testing.TB, integrationID uuid.UUID, phone, reason string, originSeq int) uuid.UUID {
	t.Helper()
	callID := uuid.New()
	data, _ := json.Marshal(queue.OriginateBody{CallID: callID, PhoneNumber: phone, ReceivedAt: time.Now()})
	m := nats.NewMsg("callqueue.dlq.originate")
	m.Data = data
	m.Header.Set(queue.HeaderReason, reason)
	m.Header.Set(queue.HeaderOriginSubject, queue.Subject(queue.KindOriginate, integrationID))
	m.Header.Set(queue.HeaderOriginStream, "CALLQUEUE_ORIGINATE")
	m.Header.Set(queue.HeaderOriginSeq, strconv.Itoa(originSeq))
	e.publish(t, m)
	return callID
}

// PublishOriginate stores a call-originate message of integrationID in
// its stream as the webhook would, without the webhook's checks: what an
// older release may have left there.
func (e *Env) PublishOriginate(t testing.TB, integrationID uuid.UUID, body queue.OriginateBody) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(queue.Subject(queue.KindOriginate, integrationID))
	m.Data = data
	e.publish(t, m)
}

// publish stores m in JetStream through a connection of its own.
func (e *Env) publish(t testing.TB, m *nats.Msg) {
	t.Helper()
	nc, err := nats.Connect(e.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}
