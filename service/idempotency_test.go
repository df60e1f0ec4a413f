package service_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// idem is one idempotency test's world: a process, an integration dialling
// a fake VA, and a JetStream client to see when the workers are idle.
type idem struct {
	env   *servicetest.Env
	va    *servicetest.FakeVA
	in    *servicetest.Instance
	admin *servicetest.Admin
	integ servicetest.Integration
	js    jetstream.JetStream
}

func setupIdem(t *testing.T) *idem {
	t.Helper()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-"+uuid.NewString())
	// A high limit: every distinct call is dialled at once, so a duplicate
	// call would show as a second dial.
	integ := admin.CreateIntegration("Idempotency "+uuid.NewString()[:8], va, map[string]any{"concurrency_limit": 50})
	nc, err := nats.Connect(env.NATSURL(), queue.ConnectOptions("idempotency-test-probe")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &idem{env: env, va: va, in: in, admin: admin, integ: integ, js: js}
}

type acceptedCall struct {
	Success bool      `json:"success"`
	CallID  uuid.UUID `json:"callId"`
}

// originate posts a call-originate with an optional Idempotency-Key and
// returns the call id it answered with.
func (w *idem) originate(t testing.TB, integ servicetest.Integration, key string, body map[string]any) uuid.UUID {
	t.Helper()
	hdr := map[string]string{"X-Webhook-Token": integ.WebhookToken}
	if key != "" {
		hdr["Idempotency-Key"] = key
	}
	var got acceptedCall
	if code := servicetest.Request(t, "POST", w.in.URL+"/"+integ.Slug+"/webhook/call-originate", hdr, body, &got); code != http.StatusAccepted ||
		!got.Success || got.CallID == uuid.Nil {
		t.Fatalf("call-originate %v (key %q): %d %+v", body, key, code, got)
	}
	return got.CallID
}

// event posts a raw call-events body.
func (w *idem) event(t testing.TB, body string) {
	t.Helper()
	if code := servicetest.Webhook(t, w.in, w.integ, "call-events", body, nil); code != http.StatusAccepted {
		t.Fatalf("call-events %s: %d", body, code)
	}
}

type idemCall struct {
	store.Call
	Events []store.CallEventRow `json:"events"`
}

// call reads a call and its history; ok is false when it does not exist.
func (w *idem) call(t testing.TB, id uuid.UUID) (idemCall, bool) {
	t.Helper()
	var c idemCall
	code := servicetest.Request(t, "GET", w.in.URL+"/api/calls/"+id.String(), map[string]string{"Authorization": "Bearer " + w.admin.Token}, nil, &c)
	return c, code == http.StatusOK
}

func (w *idem) waitStatus(t testing.TB, id uuid.UUID, status string) idemCall {
	t.Helper()
	var c idemCall
	servicetest.Eventually(t, 10*time.Second, "call "+id.String()+" to be "+status, func() bool {
		c, _ = w.call(t, id)
		return string(c.Status) == status
	})
	return c
}

func (w *idem) calls(t testing.TB, integ servicetest.Integration) []store.Call {
	t.Helper()
	var calls []store.Call
	if code := servicetest.Request(t, "GET", w.in.URL+"/api/calls?integrationId="+integ.ID.String(),
		map[string]string{"Authorization": "Bearer " + w.admin.Token}, nil, &calls); code != http.StatusOK {
		t.Fatalf("list calls: %d", code)
	}
	return calls
}

// waitIdle waits until every consumer has nothing pending or unacked: all
// that the webhooks stored has been applied.
func (w *idem) waitIdle(t testing.TB) {
	t.Helper()
	servicetest.Eventually(t, 15*time.Second, "the workers to be idle", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, kind := range queue.Kinds {
			name, err := w.js.StreamNameBySubject(ctx, queue.Subject(kind, w.integ.ID))
			if err != nil {
				return false
			}
			s, err := w.js.Stream(ctx, name)
			if err != nil {
				return false
			}
			consumers := s.ListConsumers(ctx)
			n := 0
			for ci := range consumers.Info() {
				n++
				if ci.NumPending != 0 || ci.NumAckPending != 0 {
					return false
				}
			}
			if consumers.Err() != nil || n == 0 {
				return false
			}
		}
		return true
	})
	// A call just stored is dialled by the dispatcher's next tick.
	time.Sleep(300 * time.Millisecond)
}

// assertDials fails unless the VA was asked to dial each call id exactly
// once, and nothing else.
func (w *idem) assertDials(t testing.TB, ids ...uuid.UUID) {
	t.Helper()
	want := map[string]int{}
	for _, id := range ids {
		want[id.String()] = 1
	}
	got := map[string]int{}
	for _, o := range w.va.Requests() {
		got[o.Call()]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dials per call = %v, want %v", got, want)
	}
}

// concurrently runs fn n times at once and returns the call ids.
func concurrently(n int, fn func() uuid.UUID) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i] = fn()
		})
	}
	close(start)
	wg.Wait()
	return ids
}

func allEqual(t testing.TB, what string, ids []uuid.UUID) uuid.UUID {
	t.Helper()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("%s answered different call ids: %v", what, ids)
		}
	}
	return ids[0]
}

// TestIdempotencyKey: the same Idempotency-Key, sent again or by ten
// clients at once, is one call, dialled once; other keys are other calls.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	w := setupIdem(t)
	body := map[string]any{"phone_number": "+380991000001", "dynamic_variables": map[string]any{"n": 1}}

	first := w.originate(t, w.integ, "key-seq", body)
	if again := w.originate(t, w.integ, "key-seq", body); again != first {
		t.Fatalf("same key: %s then %s", first, again)
	}
	w.waitStatus(t, first, "initiated")
	// Once the call exists, and with another body: still the same call.
	if again := w.originate(t, w.integ, "key-seq", map[string]any{"phone_number": "+380991000009"}); again != first {
		t.Fatalf("same key after the call was made: %s, want %s", again, first)
	}

	parallel := allEqual(t, "10 concurrent requests with one key", concurrently(10, func() uuid.UUID {
		return w.originate(t, w.integ, "key-par", map[string]any{"phone_number": "+380991000002"})
	}))
	other := w.originate(t, w.integ, "key-other", map[string]any{"phone_number": "+380991000002"})
	if parallel == first || other == parallel || other == first {
		t.Fatalf("different keys share a call: %s %s %s", first, parallel, other)
	}

	// The key belongs to the integration: another's same key is its own call.
	second := w.admin.CreateIntegration("Idempotency other "+uuid.NewString()[:8], w.va, map[string]any{"concurrency_limit": 50})
	foreign := w.originate(t, second, "key-seq", body)
	if foreign == first {
		t.Fatalf("two integrations' calls share the id %s", first)
	}

	w.waitIdle(t)
	servicetest.Eventually(t, 10*time.Second, "4 dials", func() bool { return len(w.va.Requests()) >= 4 })
	w.assertDials(t, first, parallel, other, foreign)
	if calls := w.calls(t, w.integ); len(calls) != 3 {
		t.Fatalf("%d calls for 3 keys", len(calls))
	}
	if c, _ := w.call(t, first); c.PhoneNumber != "+380991000001" {
		t.Fatalf("call %s has phone %s: the first request's body must win", first, c.PhoneNumber)
	}
}

// TestRecordIDDedupe: without a key, the same record_id and phone number is
// one call; a different phone or record is another call.
func TestRecordIDDedupe(t *testing.T) {
	t.Parallel()
	w := setupIdem(t)
	rec := func(record any, phone string) map[string]any {
		return map[string]any{"record_id": record, "phone_number": phone}
	}

	first := w.originate(t, w.integ, "", rec("crm-1", "+380992000001"))
	for _, body := range []map[string]any{
		rec("crm-1", "+380992000001"),
		rec("crm-1", "+38 (099) 200-00-01"), // the same number, typed differently
		rec(" crm-1 ", "+380992000001"),     // the same record, padded
	} {
		if again := w.originate(t, w.integ, "", body); again != first {
			t.Fatalf("record_id+phone %v: %s, want %s", body, again, first)
		}
	}
	parallel := allEqual(t, "10 concurrent requests for one record", concurrently(10, func() uuid.UUID {
		return w.originate(t, w.integ, "", rec(42, "+380992000002"))
	}))
	if again := w.originate(t, w.integ, "", rec("42", "+380992000002")); again != parallel {
		t.Fatalf("record_id 42 as a string: %s, want %s as for the number", again, parallel)
	}

	otherPhone := w.originate(t, w.integ, "", rec("crm-1", "+380992000003"))
	otherRecord := w.originate(t, w.integ, "", rec("crm-2", "+380992000001"))
	noRecord := w.originate(t, w.integ, "", map[string]any{"phone_number": "+380992000001"})
	noRecordAgain := w.originate(t, w.integ, "", map[string]any{"phone_number": "+380992000001"})
	distinct := map[uuid.UUID]bool{first: true, parallel: true, otherPhone: true, otherRecord: true, noRecord: true, noRecordAgain: true}
	if len(distinct) != 6 {
		t.Fatalf("distinct requests share calls: %v %v %v %v %v %v", first, parallel, otherPhone, otherRecord, noRecord, noRecordAgain)
	}

	w.waitIdle(t)
	servicetest.Eventually(t, 10*time.Second, "6 dials", func() bool { return len(w.va.Requests()) >= 6 })
	w.assertDials(t, first, parallel, otherPhone, otherRecord, noRecord, noRecordAgain)
	if calls := w.calls(t, w.integ); len(calls) != 6 {
		t.Fatalf("%d calls, want 6", len(calls))
	}
}

// TestKeyAndRecordTogether: a request keyed both ways is the same call as
// a later request matching either way, and every call id answered exists.
func TestKeyAndRecordTogether(t *testing.T) {
	t.Parallel()
	w := setupIdem(t)
	body := map[string]any{"record_id": "crm-7", "phone_number": "+380993000001"}
	first := w.originate(t, w.integ, "key-7", body)
	w.waitStatus(t, first, "initiated")
	for _, tc := range []struct {
		name string
		key  string
	}{
		{"same key and record", "key-7"},
		{"same record, no key", ""},
		{"same record, another key", "key-8"},
	} {
		id := w.originate(t, w.integ, tc.key, body)
		if _, ok := w.call(t, id); !ok {
			t.Fatalf("%s: answered call id %s, which does not exist (first call %s)", tc.name, id, first)
		}
		if id != first {
			t.Fatalf("%s: call id %s, want %s", tc.name, id, first)
		}
	}
	w.waitIdle(t)
	w.assertDials(t, first)
}

// TestDuplicateCallEvents: a call-events webhook delivered twice, in turn
// or at once, is applied once.
func TestDuplicateCallEvents(t *testing.T) {
	t.Parallel()
	w := setupIdem(t)
	id := w.originate(t, w.integ, "", map[string]any{"phone_number": "+380994000001"})
	o := w.va.Next(t, 10*time.Second)
	// Address call_start by the VA's id only once its answer is recorded:
	// an event for a VA id not yet known is dropped (reported separately).
	servicetest.Eventually(t, 10*time.Second, "the VA's call id to be recorded", func() bool {
		c, _ := w.call(t, id)
		return c.ExternalCallID != nil && *c.ExternalCallID == "va-"+o.CallID
	})

	start := fmt.Sprintf(`{"eventType":"call_start","callId":"va-%s","conversation_id":"conv-dup"}`, o.CallID)
	for range 2 {
		w.event(t, start)
	}
	w.waitStatus(t, id, "in_progress")
	end := fmt.Sprintf(`{"eventType":"call_end","callId":%q,"duration":45}`, o.CallID)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { w.event(t, end) })
	}
	wg.Wait()
	c := w.waitStatus(t, id, "waiting_postcall")
	w.event(t, end) // and once more, after it was applied
	w.waitIdle(t)

	after, _ := w.call(t, id)
	count := map[string]int{}
	for _, e := range after.Events {
		count[e.Kind]++
	}
	if count["call_start"] != 1 || count["call_end"] != 1 {
		t.Fatalf("history %v, want one call_start and one call_end", count)
	}
	if after.Status != c.Status || after.Attempt != c.Attempt || after.DurationSecs == nil || *after.DurationSecs != 45 ||
		after.ConversationID == nil || *after.ConversationID != "conv-dup" {
		t.Fatalf("call changed by duplicates: %+v, was %+v", after.Call, c.Call)
	}
	w.assertDials(t, id)
}

// TestDuplicateCallEndAfterRetry: a dialler's late retry of attempt 1's
// call_end, arriving while attempt 2 is live, is a duplicate: applied
// again, it would end attempt 2.
func TestDuplicateCallEndAfterRetry(t *testing.T) {
	t.Parallel()
	w := setupIdem(t)
	integ := w.admin.CreateIntegration("Late duplicate "+uuid.NewString()[:8], w.va,
		map[string]any{"max_attempts": 3, "retry_delays_secs": []int{60}})
	w.integ = integ
	id := w.originate(t, integ, "", map[string]any{"phone_number": "+380996000001"})
	w.va.Next(t, 10*time.Second)
	w.waitStatus(t, id, "initiated")

	end := fmt.Sprintf(`{"eventType":"call_end","callId":%q,"duration":2}`, id)
	w.event(t, end)
	w.waitStatus(t, id, "retry_scheduled")
	w.env.Clock.Advance(60 * time.Second)
	w.va.Next(t, 10*time.Second)
	servicetest.Eventually(t, 10*time.Second, "attempt 2 to be dialled", func() bool {
		c, _ := w.call(t, id)
		return c.Status == "initiated" && c.Attempt == 2
	})

	w.event(t, end) // the same body again, 60 s later
	w.waitIdle(t)
	c, _ := w.call(t, id)
	if c.Status != "initiated" || c.Attempt != 2 {
		t.Fatalf("a duplicate call_end changed attempt 2: status %s, attempt %d", c.Status, c.Attempt)
	}
	ends := 0
	for _, e := range c.Events {
		if e.Kind == "call_end" {
			ends++
		}
	}
	if ends != 1 {
		t.Fatalf("history has %d call_end, want 1", ends)
	}
}

// TestIdempotencyAcrossNATSRestart: JetStream restarting between two
// identical requests does not make a second call.
func TestIdempotencyAcrossNATSRestart(t *testing.T) {
	t.Parallel()
	w := setupIdem(t)
	keyed := map[string]any{"phone_number": "+380995000001"}
	recorded := map[string]any{"phone_number": "+380995000002", "record_id": "crm-restart"}
	byKey := w.originate(t, w.integ, "key-restart", keyed)
	byRecord := w.originate(t, w.integ, "", recorded)
	w.waitStatus(t, byKey, "initiated")
	w.waitStatus(t, byRecord, "initiated")

	w.env.StopNATS()
	w.env.StartNATS()
	servicetest.Eventually(t, 15*time.Second, "the instance to reconnect", func() bool {
		return servicetest.Request(t, "GET", w.in.URL+"/readyz", nil, nil, nil) == http.StatusOK
	})

	if again := w.originate(t, w.integ, "key-restart", keyed); again != byKey {
		t.Fatalf("same key after a NATS restart: %s, want %s", again, byKey)
	}
	if again := w.originate(t, w.integ, "", recorded); again != byRecord {
		t.Fatalf("same record after a NATS restart: %s, want %s", again, byRecord)
	}
	w.waitIdle(t)
	w.assertDials(t, byKey, byRecord)
	if calls := w.calls(t, w.integ); len(calls) != 2 {
		t.Fatalf("%d calls after a restart, want 2", len(calls))
	}
}
