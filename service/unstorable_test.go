package service_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// A message Postgres can never store (here a call-originate taken before
// the webhooks refused U+0000) goes to the dead-letter list at its first
// delivery: its redeliveries are an hour apart here, so only a failure
// judged permanent is dead-lettered within the test.
func TestUnstorableMessageDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{Workers: workers.Config{Consumer: queue.ConsumerConfig{Backoff: []time.Duration{time.Hour}}}})
	admin := env.Admin(in, "owner-unstorable")
	integ := admin.CreateIntegration("Unstorable", nil, nil)

	callID := uuid.New()
	env.PublishOriginate(t, integ.ID, queue.OriginateBody{CallID: callID, PhoneNumber: "+380991234567", ReceivedAt: time.Now(),
		DynamicVariables: json.RawMessage(`{"client_name":"A\u0000B"}`)})

	var letters []queue.DeadLetter
	servicetest.Eventually(t, 20*time.Second, "the message to be dead-lettered", func() bool {
		return admin.Do("GET", "/api/dead-letters?integrationId="+integ.ID.String(), nil, &letters) == http.StatusOK && len(letters) == 1
	})
	if !strings.Contains(letters[0].Reason, "permanent") || letters[0].Kind != queue.KindOriginate {
		t.Fatalf("dead letter %+v, want a permanent failure of the originate", letters[0])
	}
	if code := admin.Do("GET", "/api/calls/"+callID.String(), nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET the call = %d, want 404: no call was stored", code)
	}
}
