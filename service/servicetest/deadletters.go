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
	nc, err := nats.Connect(e.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	callID := uuid.New()
	data, _ := json.Marshal(queue.OriginateBody{CallID: callID, PhoneNumber: phone, ReceivedAt: time.Now()})
	m := nats.NewMsg("callqueue.dlq.originate")
	m.Data = data
	m.Header.Set(queue.HeaderReason, reason)
	m.Header.Set(queue.HeaderOriginSubject, queue.Subject(queue.KindOriginate, integrationID))
	m.Header.Set(queue.HeaderOriginStream, "CALLQUEUE_ORIGINATE")
	m.Header.Set(queue.HeaderOriginSeq, strconv.Itoa(originSeq))
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	return callID
}
