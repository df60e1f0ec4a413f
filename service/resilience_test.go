package service_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// TestResilienceKillMidDial: a worker process dies while its originate
// request hangs at the VA. Nobody knows whether the VA placed the call, so
// it is never sent again: the call keeps its slot until DialLostAfter has
// passed on the clock, then the watchdog releases it as dial_lost and the
// retry dials attempt 2 exactly once.
func TestResilienceKillMidDial(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{
		"concurrency_limit": 1, "max_attempts": 3, "retry_delays_secs": []int{60}}})
	c.va.Hang()
	doomed := c.startWorkers(t, "doomed", workers.Config{})

	a := c.mustOriginate(t, "+380990000001")
	if o := c.va.Next(t, 10*time.Second); o.Call() != a.String() {
		t.Fatalf("first originate for %s, want %s", o.CallID, a)
	}
	b := c.mustOriginate(t, "+380990000002")
	c.waitCall(t, b, "B queued", func(r callRow) bool { return r.Status == "queued" })
	doomed.Kill()
	c.va.Release()

	c.startWorkers(t, "survivor", workers.Config{DialLostAfter: 2 * time.Second})
	// The dial's outcome is unknown: A keeps the only slot, B waits, and
	// nothing is dialled while the clock stands still (the watchdog and the
	// sweep run every 100ms).
	consistently(t, 600*time.Millisecond, "A initiated, B queued, no redial", func() bool {
		rows := c.calls(t)
		return rows[a].Status == "initiated" && rows[a].DialState == "dialing" && rows[b].Status == "queued" &&
			len(c.va.Requests()) == 1
	})

	c.env.Clock.Advance(3 * time.Second)
	ra := c.waitCall(t, a, "A released as dial_lost", func(r callRow) bool { return r.Status == "retry_scheduled" })
	if ra.Outcome != "dial_lost" || ra.Attempt != 1 {
		t.Fatalf("A after the watchdog: %+v", ra)
	}
	// The freed slot goes to B.
	if o := c.va.Next(t, 10*time.Second); o.Call() != b.String() {
		t.Fatalf("second originate for %s, want B %s", o.CallID, b)
	}
	c.waitCall(t, b, "B accepted", func(r callRow) bool { return r.DialState == "accepted" })
	if err := c.callEnd(b, 30); err != nil {
		t.Fatal(err)
	}
	c.waitCall(t, b, "B waiting_postcall", func(r callRow) bool { return r.Status == "waiting_postcall" })

	// Not before the retry is due.
	c.env.Clock.Advance(59 * time.Second)
	consistently(t, 300*time.Millisecond, "A not redialled before nextRetryAt", func() bool { return c.va.CountFor(a.String()) == 1 })
	c.env.Clock.Advance(time.Second)
	if o := c.va.Next(t, 10*time.Second); o.Call() != a.String() {
		t.Fatalf("third originate for %s, want A %s", o.CallID, a)
	}
	c.waitCall(t, a, "A attempt 2 accepted", func(r callRow) bool { return r.Attempt == 2 && r.DialState == "accepted" })
	if err := c.callEnd(a, 30); err != nil {
		t.Fatal(err)
	}
	c.waitCall(t, a, "A waiting_postcall", func(r callRow) bool { return r.Status == "waiting_postcall" })

	for id, r := range c.calls(t) {
		if n := c.va.CountFor(id.String()); n != r.Attempt {
			t.Errorf("call %s: %d originates for %d attempts", id, n, r.Attempt)
		}
	}
	if want := []string{"queued", "dial", "timeout", "retry_due", "dial", "dial_accepted", "call_end"}; !equal(c.kinds(t, a), want) {
		t.Errorf("A history = %v, want %v", c.kinds(t, a), want)
	}
	if want := []string{"queued", "dial", "dial_accepted", "call_end"}; !equal(c.kinds(t, b), want) {
		t.Errorf("B history = %v, want %v", c.kinds(t, b), want)
	}
	if st := c.stats(t); st.Active != 0 {
		t.Errorf("stats = %+v: a slot leaked", st)
	}
}

// TestResilienceKillMidEvent: three worker processes share 200 call events;
// one dies while it holds some of them in flight (its database work cut
// off, its acks never sent). The others get them after AckWait and the end
// state is exactly what it would have been without the crash.
func TestResilienceKillMidEvent(t *testing.T) {
	t.Parallel()
	killMidEvents(t, 100, 2, 0)
}

// killMidEvents runs a victim and survivors worker processes over calls
// calls' events, on one NATS server or a cluster of natsNodes, and kills
// the victim while it holds events in flight.
func killMidEvents(t *testing.T, calls, survivors, natsNodes int) {
	t.Helper()
	c := startCluster(t, 0, clusterOptions{NATSNodes: natsNodes, CallHandling: map[string]any{"concurrency_limit": calls}})
	victim := c.startWorkers(t, "victim", workers.Config{})
	for i := range survivors {
		c.startWorkers(t, fmt.Sprintf("survivor-%d", i+1), workers.Config{})
	}

	ids := c.originateMany(t, calls, 4)
	servicetest.Eventually(t, 30*time.Second, "every call dialled and accepted", func() bool {
		return c.countWhere(t, func(r callRow) bool { return r.Status == "initiated" && r.DialState == "accepted" }) == calls
	})
	// Even calls last 30s; odd ones are shorter than min_call_duration_secs
	// and are retried later.
	expect := map[uuid.UUID]string{}
	for i, id := range ids {
		expect[id] = "waiting_postcall"
		if i%2 == 1 {
			expect[id] = "retry_scheduled"
		}
	}

	// Hold the calls' rows so every process ends up with events in flight.
	unlock := c.lockCalls(t)
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < calls; i += 4 {
				dur := 30.0
				if i%2 == 1 {
					dur = 2
				}
				if err := c.sendEvent(map[string]any{"eventType": "call_start", "callId": ids[i].String()}); err != nil {
					errs <- err
					return
				}
				if err := c.callEnd(ids[i], dur); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		unlock()
		t.Fatal(err)
	}
	servicetest.Eventually(t, 20*time.Second, "the victim to be applying events", func() bool {
		return c.lockWaiters(t, "victim") > 0
	})

	killed := make(chan struct{})
	go func() { victim.Kill(); close(killed) }()
	// Its database sessions die with it: whatever it was applying rolls
	// back, and nothing it retries on the way down gets through.
	deadline := time.After(30 * time.Second)
	for dead := false; !dead; {
		c.terminateBackends(t, "victim")
		select {
		case <-killed:
			dead = true
		case <-deadline:
			t.Fatal("Kill did not return")
		case <-time.After(20 * time.Millisecond):
		}
	}
	unlock()

	waitFor(t, 30*time.Second, "every event applied", func() bool {
		return c.processedEventKeys(t) == 2*calls && c.countWhere(t, func(r callRow) bool { return r.Status == expect[r.ID] }) == calls
	}, func() string {
		return fmt.Sprintf("%d of %d events recorded, statuses %v", c.processedEventKeys(t), 2*calls, c.statusCounts(t))
	})
	c.waitConsumerIdle(t, queue.KindEvents)
	for id, want := range expect {
		counts := map[string]int{}
		for _, k := range c.kinds(t, id) {
			counts[k]++
		}
		if counts["queued"] != 1 || counts["dial"] != 1 || counts["dial_accepted"] != 1 || counts["call_end"] != 1 ||
			counts["call_start"] > 1 || len(counts) > 5 {
			t.Errorf("call %s (%s): history %v", id, want, c.kinds(t, id))
		}
	}
	redelivered := 0.0
	for _, w := range c.workers[1:] {
		redelivered += metricValue(t, w.URL, "callqueue_consumer_redeliveries_total", `kind="events"`)
	}
	if redelivered == 0 {
		t.Error("no event was redelivered: the victim died holding nothing, the test proved nothing")
	}
	if n := c.deadLetters(t); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
}

// TestResilienceNATSRestart restarts the NATS server (same store, same
// port) while clients keep posting call-originate, for longer than a
// webhook waits for JetStream. Requests may fail meanwhile: some clients
// retry them under the same Idempotency-Key, others give up. Every 202 is
// a call in Postgres and none is stored twice; a request made while NATS
// was down and answered 503 left nothing behind (contract §4: "503 and
// nothing half-done"); after the restart every process reconnects and
// keeps working.
func TestResilienceNATSRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 1000}})

	type refusal struct {
		phone string
		at    time.Time
	}
	var (
		mu       sync.Mutex
		byKey    = map[string]uuid.UUID{} // keyed clients: key -> call
		accepted = map[uuid.UUID]string{} // every 202: call -> phone
		refused  []refusal                // unkeyed requests that failed, and when they were sent
		retries  atomic.Int64
		total    atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		failures []error
	)
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}
	accept := func(phone, key string, raw []byte) error {
		var resp struct {
			CallID uuid.UUID `json:"callId"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := byKey[key]; key != "" && ok && prev != resp.CallID {
			return fmt.Errorf("key %s answered %s, then %s", key, prev, resp.CallID)
		}
		if key != "" {
			byKey[key] = resp.CallID
		}
		accepted[resp.CallID] = phone
		total.Add(1)
		return nil
	}
	// Keyed clients send one request at a time and retry it until it is
	// taken.
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				phone, key := fmt.Sprintf("+3809%d%07d", g, i), fmt.Sprintf("g%d-%d", g, i)
				deadline := time.Now().Add(30 * time.Second)
				for {
					code, raw, err := c.post("call-originate", map[string]any{"phone_number": phone}, map[string]string{"Idempotency-Key": key})
					if err == nil && code == http.StatusAccepted {
						if err := accept(phone, key, raw); err != nil {
							fail(err)
							return
						}
						break
					}
					if err == nil && code != http.StatusServiceUnavailable {
						fail(fmt.Errorf("originate %s: %d %s", phone, code, raw))
						return
					}
					if time.Now().After(deadline) {
						fail(fmt.Errorf("originate %s still failing after the restart: %d %w", key, code, err))
						return
					}
					retries.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	// Unkeyed clients fire a request every 10ms whatever happened to the
	// previous ones, and never retry.
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			phone := fmt.Sprintf("+38093%07d", i)
			wg.Go(func() {
				sent := time.Now()
				code, raw, err := c.post("call-originate", map[string]any{"phone_number": phone}, nil)
				switch {
				case err == nil && code == http.StatusAccepted:
					if err := accept(phone, "", raw); err != nil {
						fail(err)
					}
				case err == nil && code != http.StatusServiceUnavailable:
					fail(fmt.Errorf("originate %s: %d %s", phone, code, raw))
				default:
					mu.Lock()
					refused = append(refused, refusal{phone, sent})
					mu.Unlock()
				}
			})
		}
	})
	servicetest.Eventually(t, 20*time.Second, "calls accepted before the outage", func() bool { return total.Load() >= 20 })
	c.env.StopNATS()
	down := time.Now()
	// Longer than a webhook waits for JetStream (5s), so that a request
	// kept for later would be answered 503 before it is stored.
	time.Sleep(6 * time.Second)
	up := time.Now()
	c.env.StartNATS()
	before := total.Load()
	servicetest.Eventually(t, 30*time.Second, "calls accepted after the restart", func() bool { return total.Load() >= before+20 })
	close(stop)
	wg.Wait()
	for _, err := range failures {
		t.Fatal(err)
	}
	t.Logf("%d calls accepted; %d unkeyed requests refused, %d keyed ones retried", len(accepted), len(refused), retries.Load())

	waitFor(t, 30*time.Second, "every accepted call stored and dialled", func() bool {
		rows := c.calls(t)
		for id := range accepted {
			if r, ok := rows[id]; !ok || r.Status != "initiated" || r.DialState != "accepted" {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%d accepted, statuses %v", len(accepted), c.statusCounts(t)) })
	c.waitConsumerIdle(t, queue.KindOriginate)
	rows := c.calls(t)
	phones := map[string]int{}
	for _, r := range rows {
		phones[r.Phone]++
	}
	for phone, n := range phones {
		if n != 1 {
			t.Errorf("%d calls for %s", n, phone)
		}
	}
	// A request in flight when the server went down may have been stored
	// without its answer getting back: neither side can know, which is why
	// clients retry under an Idempotency-Key. One sent while it was down
	// must have left nothing.
	ghosts := 0
	for _, r := range refused {
		if phones[r.phone] == 0 {
			continue
		}
		ghosts++
		if !r.at.Before(down) && r.at.Before(up) {
			t.Errorf("a request for %s sent while NATS was down was answered 503, yet became a call", r.phone)
		}
	}
	if n := len(rows); n != len(accepted)+ghosts {
		t.Errorf("%d calls stored for %d accepted requests (and %d answered 503 mid-crash)", n, len(accepted), ghosts)
	}
	for id := range accepted {
		if n := c.va.CountFor(id.String()); n != 1 {
			t.Errorf("call %s dialled %d times", id, n)
		}
	}
	// The events path works after the restart too.
	for id := range accepted {
		if err := c.callEnd(id, 30); err != nil {
			t.Fatal(err)
		}
	}
	servicetest.Eventually(t, 30*time.Second, "every call ended", func() bool {
		return c.countStatus(t, "waiting_postcall") == len(accepted)
	})
}

// TestResiliencePostgresLoss cuts every database connection several times
// while calls are dialled and their events applied. Every webhook that was
// answered 2xx is applied in the end, no call is dialled twice and no
// attempt is counted without a dial.
func TestResiliencePostgresLoss(t *testing.T) {
	t.Parallel()
	const calls = 40
	c := startCluster(t, 2, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 5}})
	net := c.phoneNetwork(t, 5, 30)

	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(halt)
	cuts := make(chan int, 1)
	go func() {
		n := 0
		defer func() { cuts <- n }()
		for n < 6 {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			if len(c.va.Requests()) == 0 {
				continue
			}
			if err := c.terminateBackendsErr(""); err == nil {
				n++
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < calls; i += 4 {
				if _, err := c.originateRetrying(fmt.Sprintf("+38097%07d", i), fmt.Sprintf("pg-%d", i)); err != nil {
					errs <- err
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 30*time.Second, "the connections cut several times", func() bool {
		select {
		case n := <-cuts:
			cuts <- n
			return true
		default:
			return false
		}
	})
	halt()
	t.Logf("database connections cut %d times", <-cuts)

	waitFor(t, 30*time.Second, "every call to reach waiting_postcall", func() bool {
		n, err := c.countStatusErr("waiting_postcall")
		return err == nil && n == calls
	}, func() string { return c.describeStragglers(t, "waiting_postcall") })
	net.check(t)
	for id, r := range c.calls(t) {
		if n := c.va.CountFor(id.String()); n != 1 || r.Attempt != 1 {
			t.Errorf("call %s: %d originates, attempt %d", id, n, r.Attempt)
		}
	}
	if m := c.va.MaxLive(); m > 5 {
		t.Errorf("the VA had %d calls live at once; the limit is 5", m)
	}
	if st := c.stats(t); st.Active != 0 {
		t.Errorf("stats = %+v: a slot leaked", st)
	}
}

// TestResiliencePoisonMessage: messages no worker can decode go to the
// dead-letter stream with the reason, are counted on /metrics and do not
// hold back the good events behind them.
func TestResiliencePoisonMessage(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, clusterOptions{})
	id := c.mustOriginate(t, "+380990000001")
	c.waitCall(t, id, "the call accepted", func(r callRow) bool { return r.DialState == "accepted" })

	js := c.jetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	poison := []struct{ subject, data string }{
		{queue.Subject(queue.KindEvents, c.integ.ID), "\x00not json at all"},
		{queue.Subject(queue.KindEvents, c.integ.ID), `{"events":[{"eventType":"call_exploded","callRef":"` + id.String() + `"}]}`},
		{"callqueue.events.not-an-integration", `{"events":[{"eventType":"call_start","callRef":"` + id.String() + `"}]}`},
	}
	for _, p := range poison {
		if _, err := js.Publish(ctx, p.subject, []byte(p.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.sendEvent(map[string]any{"eventType": "call_start", "callId": id.String()}); err != nil {
		t.Fatal(err)
	}
	c.waitCall(t, id, "the good event applied", func(r callRow) bool { return r.Status == "in_progress" })

	servicetest.Eventually(t, 10*time.Second, "three dead letters", func() bool { return c.deadLetters(t) == 3 })
	dlq, err := js.Stream(ctx, "CALLQUEUE_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "callqueue.dlq.events" {
			t.Errorf("dead letter %d on %s", seq, m.Subject)
		}
		reasons[m.Header.Get(queue.HeaderOriginSubject)+" "+string(m.Data)] = m.Header.Get(queue.HeaderReason)
	}
	for _, p := range poison {
		reason, ok := reasons[p.subject+" "+p.data]
		if !ok || !strings.HasPrefix(reason, "decode: ") {
			t.Errorf("poison %q on %s: dead letter reason %q (kept: %v)", p.data, p.subject, reason, ok)
		}
	}
	servicetest.Eventually(t, 10*time.Second, "callqueue_dead_letters_total{stream=CALLQUEUE_EVENTS} = 3", func() bool {
		return metricValue(t, c.workers[0].URL, "callqueue_dead_letters_total", `stream="CALLQUEUE_EVENTS"`) == 3
	})
	c.waitConsumerIdle(t, queue.KindEvents)
	if want := []string{"queued", "dial", "dial_accepted", "call_start"}; !equal(c.kinds(t, id), want) {
		t.Errorf("history = %v, want %v", c.kinds(t, id), want)
	}
}

// TestResilienceGracefulShutdown: a worker process shut down with a backlog
// in hand (in flight and in its buffer) gives it back at once, so another
// process has it long before AckWait.
func TestResilienceGracefulShutdown(t *testing.T) {
	t.Parallel()
	const backlog = 1500
	slowAck := workers.Config{Consumer: queue.ConsumerConfig{AckWait: 30 * time.Second}}
	c := startCluster(t, 0, clusterOptions{})
	leaving := c.startWorkers(t, "leaving", slowAck)
	id := c.mustOriginate(t, "+380990000001")
	c.waitCall(t, id, "the call accepted", func(r callRow) bool { return r.DialState == "accepted" })

	// Stall processing on the call's row, then pile up events for it.
	unlock := c.lockCalls(t)
	defer unlock()
	js := c.jetStream(t)
	body, err := json.Marshal(queue.EventBatch{Events: []queue.EventBody{{EventType: "call_start", CallRef: id.String(),
		ReceivedAt: c.env.Clock.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	for range backlog {
		if _, err := js.PublishAsync(queue.Subject(queue.KindEvents, c.integ.ID), body); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("backlog not published")
	}
	cons, err := js.Consumer(context.Background(), "CALLQUEUE_EVENTS", string(queue.KindEvents))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the leaving process holds all it will take: one round of
	// its workers, most of it buffered behind the batches stalled on the row.
	last, steady := -1, 0
	servicetest.Eventually(t, 20*time.Second, "the backlog delivered to the leaving process", func() bool {
		info, err := cons.Info(context.Background())
		if err != nil {
			return false
		}
		if held := info.NumAckPending; held == last {
			steady++
		} else {
			last, steady = held, 0
		}
		time.Sleep(40 * time.Millisecond)
		return steady >= 3 && last >= queue.WorkersDefault*queue.BatchSizeDefault && c.lockWaiters(t, "leaving") > 0
	})
	staying := c.startWorkers(t, "staying", slowAck)

	subs := leaving.Queue.Conn().NumSubscriptions()
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shutdown <- leaving.Shutdown(ctx)
	}()
	// Its events and postcall consumers stop pulling; only then let the
	// batches in flight finish.
	servicetest.Eventually(t, 10*time.Second, "the leaving process to stop consuming", func() bool {
		return leaving.Queue.Conn().NumSubscriptions() <= subs-2
	})
	unlock()
	released := time.Now()
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("shutdown did not return")
	}
	// AckWait is 30s: only naks bring the backlog back this fast.
	servicetest.Eventually(t, 10*time.Second, "the whole backlog processed", func() bool {
		return c.processedEventKeys(t) == backlog
	})
	t.Logf("backlog processed %s after the shutdown began releasing it", time.Since(released).Round(time.Millisecond))
	// The leaving process finishes the batches it had started; what it
	// held beyond them must come back to the staying one. When it finished
	// everything in hand (last, its deliveries pending when it was told to
	// leave) there was nothing to give back: the rest of the backlog went
	// to the staying one first.
	byLeaving := testutil.ToFloat64(leaving.Metrics.Processed.WithLabelValues(string(queue.KindEvents)))
	if n := metricValue(t, staying.URL, "callqueue_consumer_redeliveries_total", `kind="events"`); n == 0 && byLeaving < float64(last) {
		t.Errorf("the leaving process held %d events, processed %v of them, and the staying one got none back", last, byLeaving)
	}
	if counts := c.kinds(t, id); !equal(counts, []string{"queued", "dial", "dial_accepted", "call_start"}) {
		t.Errorf("history = %v", counts)
	}
	if n := c.deadLetters(t); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// TestResilienceBreaker: a VA answering 500 opens the integration's
// breaker. While it is open calls wait in the queue without burning
// attempts, the breaker shows on /metrics and in /{slug}/health; once the
// VA recovers the waiting calls are dialled, each once.
func TestResilienceBreaker(t *testing.T) {
	t.Parallel()
	// Long enough for the checks made while it is open, on a loaded machine.
	const openFor = 5 * time.Second
	c := startCluster(t, 1, clusterOptions{BreakerOpenFor: openFor, CallHandling: map[string]any{
		"concurrency_limit": 10, "max_attempts": 3, "retry_delays_secs": []int{3600}}})
	w := c.workers[0]
	key := c.integ.ID.String()
	c.va.SetStatus(http.StatusInternalServerError)

	var failing []uuid.UUID
	for i := range 5 {
		failing = append(failing, c.mustOriginate(t, fmt.Sprintf("+38099000000%d", i)))
	}
	servicetest.Eventually(t, 10*time.Second, "five failed dials", func() bool {
		return c.countWhere(t, func(r callRow) bool { return r.Status == "retry_scheduled" && r.Outcome == "dial_error" }) == 5
	})
	servicetest.Eventually(t, 5*time.Second, "the breaker open", func() bool {
		return w.Dialer.Breakers().State(key).String() == "open"
	})
	// The VA is healthy again, but the breaker stays open for openFor.
	c.va.SetStatus(http.StatusOK)

	var waiting []uuid.UUID
	for i := range 3 {
		waiting = append(waiting, c.mustOriginate(t, fmt.Sprintf("+38098000000%d", i)))
	}
	servicetest.Eventually(t, 10*time.Second, "the new calls stored", func() bool { return len(c.calls(t)) == 8 })
	if v := metricValue(t, w.URL, "callqueue_breaker_state", `integration_id="`+key+`"`, `peer="va"`); v != 2 {
		t.Errorf("callqueue_breaker_state = %v, want 2 (open)", v)
	}
	// The webhooks process, which dials nothing itself, answers health;
	// the integration shows has_errors.
	var code int
	var h healthAnswer
	waitFor(t, 5*time.Second, "health to report the voice check failing", func() bool {
		code, h = c.health(t)
		return code == http.StatusServiceUnavailable && h.Status == "degraded" && !h.Checks.Voice.OK &&
			h.Checks.Voice.Status == "has_errors" && c.integrationStatus(t) == "has_errors"
	}, func() string { return fmt.Sprintf("%d %+v, integration %s", code, h, c.integrationStatus(t)) })
	// While the breaker is open nothing is dialled and nothing is counted.
	consistently(t, 500*time.Millisecond, "calls waiting while the breaker is open", func() bool {
		open := w.Dialer.Breakers().State(key).String() == "open"
		rows := c.calls(t)
		for _, id := range waiting {
			if rows[id].Status != "queued" || rows[id].Attempt != 0 {
				return !open
			}
		}
		return len(c.va.Requests()) == 5 || !open
	})

	servicetest.Eventually(t, 10*time.Second, "the waiting calls dialled after recovery", func() bool {
		return c.countWhere(t, func(r callRow) bool { return r.Status == "initiated" && r.DialState == "accepted" }) == len(waiting)
	})
	rows := c.calls(t)
	for _, id := range waiting {
		if n := c.va.CountFor(id.String()); n != 1 || rows[id].Attempt != 1 {
			t.Errorf("waiting call %s: %d originates, attempt %d", id, n, rows[id].Attempt)
		}
	}
	for _, id := range failing {
		if n := c.va.CountFor(id.String()); n != 1 || rows[id].Attempt != 1 || rows[id].Status != "retry_scheduled" {
			t.Errorf("failed call %s: %d originates, %+v", id, n, rows[id])
		}
	}
	servicetest.Eventually(t, 5*time.Second, "callqueue_breaker_state back to 0", func() bool {
		return metricValue(t, w.URL, "callqueue_breaker_state", `integration_id="`+key+`"`, `peer="va"`) == 0
	})
	servicetest.Eventually(t, 5*time.Second, "health and status recovered", func() bool {
		code, h := c.health(t)
		return code == http.StatusOK && h.Checks.Voice.OK && c.integrationStatus(t) == "active"
	})
}

type healthAnswer struct {
	Status string `json:"status"`
	Checks struct {
		Voice struct {
			OK      bool   `json:"ok"`
			Breaker string `json:"breaker"`
			Status  string `json:"status"`
		} `json:"voice"`
	} `json:"checks"`
}

// health is GET /{slug}/health from the webhooks process.
func (c *cluster) health(t *testing.T) (int, healthAnswer) {
	t.Helper()
	var h healthAnswer
	code := servicetest.Request(t, "GET", c.hooks.URL+"/"+c.integ.Slug+"/health", map[string]string{"X-Webhook-Token": c.integ.WebhookToken}, nil, &h)
	return code, h
}

// integrationStatus is the integration's status from the admin API.
func (c *cluster) integrationStatus(t *testing.T) string {
	t.Helper()
	var in servicetest.Integration
	if code := c.admin.Do("GET", "/api/integrations/"+c.integ.ID.String(), nil, &in); code != http.StatusOK {
		t.Fatalf("get integration: %d", code)
	}
	return in.Status
}

// --- helpers shared by the limit and resilience tests ---

type clusterOptions struct {
	CallHandling   map[string]any
	Workers        workers.Config
	BreakerOpenFor time.Duration
	DialTimeout    time.Duration
	// NATSNodes > 1 runs a JetStream cluster of that many servers, every
	// stream and bucket replicated on each; NATSProcesses runs each server
	// in a child process, so that it can be killed.
	NATSNodes     int
	NATSProcesses bool
	// RealClock runs every process on the system clock (rates).
	RealClock bool
}

// cluster is a deployment split by role: one webhooks process, one admin
// API process and any number of worker processes, against one database
// and one NATS server, with one integration dialling a fake VA.
type cluster struct {
	env   *servicetest.Env
	va    *servicetest.FakeVA
	hooks *servicetest.Instance
	// hooksURL is hooks' address, which a restart of it changes.
	hooksURL atomic.Pointer[string]
	api      *servicetest.Instance
	workers  []*servicetest.Instance
	admin    *servicetest.Admin
	integ    servicetest.Integration
	opt      clusterOptions
}

func startCluster(t *testing.T, nWorkers int, opt clusterOptions) *cluster {
	t.Helper()
	var env *servicetest.Env
	switch {
	case opt.NATSNodes > 1 && opt.NATSProcesses:
		env = servicetest.NewClusteredProcesses(t, opt.NATSNodes)
	case opt.NATSNodes > 1:
		env = servicetest.NewClustered(t, opt.NATSNodes)
	default:
		env = servicetest.New(t)
	}
	c := &cluster{env: env, va: servicetest.NewFakeVA(t), opt: opt}
	c.hooks = env.Start(servicetest.Options{Role: "webhooks", BreakerOpenFor: opt.BreakerOpenFor, RealClock: opt.RealClock})
	c.hooksURL.Store(&c.hooks.URL)
	c.api = env.Start(servicetest.Options{Role: "api", RealClock: opt.RealClock})
	for i := range nWorkers {
		c.startWorkers(t, fmt.Sprintf("workers-%d", i), opt.Workers)
	}
	c.admin = env.Admin(c.api, "owner-"+t.Name())
	c.integ = c.admin.CreateIntegration("Cluster", c.va, opt.CallHandling)
	if c.integ.Status != "active" {
		t.Fatalf("integration is %s, want active", c.integ.Status)
	}
	return c
}

// startWorkers runs a workers-only process whose database sessions carry
// name as application_name, so the test can find them in pg_stat_activity.
func (c *cluster) startWorkers(t *testing.T, name string, cfg workers.Config) *servicetest.Instance {
	t.Helper()
	return c.startSkewedWorkers(t, name, cfg, 0)
}

// startSkewedWorkers is startWorkers on a host whose clock is skew off.
func (c *cluster) startSkewedWorkers(t *testing.T, name string, cfg workers.Config, skew time.Duration) *servicetest.Instance {
	t.Helper()
	url := c.env.DatabaseURL
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	c.env.DatabaseURL = url + sep + "application_name=" + name
	defer func() { c.env.DatabaseURL = url }()
	in := c.env.Start(servicetest.Options{Role: "workers", Workers: cfg, BreakerOpenFor: c.opt.BreakerOpenFor,
		DialTimeout: c.opt.DialTimeout, ClockSkew: skew, RealClock: c.opt.RealClock})
	c.workers = append(c.workers, in)
	return in
}

// post sends a webhook to the webhooks process. It is safe to call from
// any goroutine (it never fails the test itself).
func (c *cluster) post(name string, body any, headers map[string]string) (int, []byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest("POST", *c.hooksURL.Load()+"/"+c.integ.Slug+"/webhook/"+name, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Token", c.integ.WebhookToken)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// originate posts one call-originate and expects it taken at once.
func (c *cluster) originate(body map[string]any, idempotencyKey string) (uuid.UUID, error) {
	headers := map[string]string{}
	if idempotencyKey != "" {
		headers["Idempotency-Key"] = idempotencyKey
	}
	code, raw, err := c.post("call-originate", body, headers)
	if err != nil {
		return uuid.Nil, err
	}
	var resp struct {
		Success bool      `json:"success"`
		CallID  uuid.UUID `json:"callId"`
	}
	if code != http.StatusAccepted || json.Unmarshal(raw, &resp) != nil || !resp.Success {
		return uuid.Nil, fmt.Errorf("call-originate: %d %s", code, raw)
	}
	return resp.CallID, nil
}

// originateRetrying retries a call-originate under one Idempotency-Key
// until it is taken, as a CRM would.
func (c *cluster) originateRetrying(phone, key string) (uuid.UUID, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		id, err := c.originate(map[string]any{"phone_number": phone}, key)
		if err == nil || time.Now().After(deadline) {
			return id, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) mustOriginate(t *testing.T, phone string) uuid.UUID {
	t.Helper()
	id, err := c.originate(map[string]any{"phone_number": phone}, "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// originateMany queues n calls from several goroutines.
func (c *cluster) originateMany(t *testing.T, n, goroutines int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < n; i += goroutines {
				id, err := c.originate(map[string]any{"phone_number": fmt.Sprintf("+38096%07d", i)}, "")
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// sendEvent posts a call event, retrying until the webhook takes it (a
// 2xx means it is durably queued).
func (c *cluster) sendEvent(body map[string]any) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, raw, err := c.post("call-events", body, nil)
		if err == nil && code == http.StatusAccepted {
			return nil
		}
		if err == nil && code < 500 {
			return fmt.Errorf("call-events %v: %d %s", body, code, raw)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("call-events %v: %d %s %w", body, code, raw, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// callRow is a call as the database has it.
type callRow struct {
	ID        uuid.UUID
	Phone     string
	Status    string
	Attempt   int
	Outcome   string
	DialState string
}

func (c *cluster) callsErr() (map[uuid.UUID]callRow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.env.Store.Pool().Query(ctx, `SELECT id, phone_number, status, attempt, COALESCE(outcome, ''), dial_state
		FROM calls WHERE integration_id = $1`, c.integ.ID)
	if err != nil {
		return nil, err
	}
	out := map[uuid.UUID]callRow{}
	for rows.Next() {
		var r callRow
		if err := rows.Scan(&r.ID, &r.Phone, &r.Status, &r.Attempt, &r.Outcome, &r.DialState); err != nil {
			rows.Close()
			return nil, err
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// calls reads every call of the integration. A connection cut by a test
// is retried.
func (c *cluster) calls(t *testing.T) map[uuid.UUID]callRow {
	t.Helper()
	var err error
	for range 5 {
		var out map[uuid.UUID]callRow
		if out, err = c.callsErr(); err == nil {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("read calls: %v", err)
	return nil
}

func (c *cluster) countWhere(t *testing.T, match func(callRow) bool) int {
	t.Helper()
	n := 0
	for _, r := range c.calls(t) {
		if match(r) {
			n++
		}
	}
	return n
}

func (c *cluster) countStatus(t *testing.T, status string) int {
	t.Helper()
	return c.countWhere(t, func(r callRow) bool { return r.Status == status })
}

func (c *cluster) countStatusErr(status string) (int, error) {
	rows, err := c.callsErr()
	n := 0
	for _, r := range rows {
		if r.Status == status {
			n++
		}
	}
	return n, err
}

// waitCall polls one call until cond holds.
func (c *cluster) waitCall(t *testing.T, id uuid.UUID, what string, cond func(callRow) bool) callRow {
	t.Helper()
	var r callRow
	servicetest.Eventually(t, 45*time.Second, what, func() bool {
		r = c.calls(t)[id]
		return cond(r)
	})
	return r
}

// kinds is a call's history as its event kinds, oldest first.
func (c *cluster) kinds(t *testing.T, id uuid.UUID) []string {
	t.Helper()
	events, err := c.env.Store.CallHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Kind
	}
	return out
}

// processedEventKeys counts the messages of the events stream whose effect
// was recorded: each message's stream position (queue.Delivery.Key) is
// claimed once, in the transaction that applies it.
func (c *cluster) processedEventKeys(t *testing.T) int {
	t.Helper()
	var n int
	if err := c.env.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM processed_keys
		WHERE scope = 'event' AND key LIKE 'CALLQUEUE_EVENTS:%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// lockCalls holds every call row of the integration FOR UPDATE in an open
// transaction, so workers applying events to them wait. The returned func
// releases them (and may be called more than once).
func (c *cluster) lockCalls(t *testing.T) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM calls WHERE integration_id = $1 FOR UPDATE`, c.integ.ID); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// lockWaiters counts the sessions of application waiting for a lock.
func (c *cluster) lockWaiters(t *testing.T, application string) int {
	t.Helper()
	var n int
	if err := c.env.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock'`, application).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// terminateBackendsErr cuts the test database's connections: those of
// application, or every one but its own when application is "".
func (c *cluster) terminateBackendsErr(application string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.env.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND ($1 = '' OR application_name = $1)`, application)
	return err
}

func (c *cluster) terminateBackends(t *testing.T, application string) {
	t.Helper()
	if err := c.terminateBackendsErr(application); err != nil {
		t.Fatal(err)
	}
}

// jetStream is a client of the env's NATS server, for what a test
// publishes or inspects directly.
func (c *cluster) jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(c.env.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// deadLetters counts the messages in the dead-letter stream.
func (c *cluster) deadLetters(t *testing.T) uint64 {
	t.Helper()
	s, err := c.jetStream(t).Stream(context.Background(), "CALLQUEUE_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitConsumerIdle waits until kind's consumer has nothing pending or
// unacknowledged.
func (c *cluster) waitConsumerIdle(t *testing.T, kind queue.Kind) {
	t.Helper()
	js := c.jetStream(t)
	stream := map[queue.Kind]string{queue.KindEvents: "CALLQUEUE_EVENTS", queue.KindOriginate: "CALLQUEUE_ORIGINATE"}[kind]
	cons, err := js.Consumer(context.Background(), stream, string(kind))
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 15*time.Second, string(kind)+" consumer idle", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// waitFor is servicetest.Eventually that says where things stand when it
// gives up.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, describe())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statusCounts counts the integration's calls by status.
func (c *cluster) statusCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range c.calls(t) {
		out[r.Status]++
	}
	return out
}

// describeStragglers lists the calls not in status, with their history.
func (c *cluster) describeStragglers(t *testing.T, status string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "statuses %v", c.statusCounts(t))
	for id, r := range c.calls(t) {
		if r.Status != status {
			fmt.Fprintf(&b, "; %s %+v: %d originates, history %v", id, r, c.va.CountFor(id.String()), c.kinds(t, id))
		}
	}
	return b.String()
}

// consistently fails the test if cond stops holding within d.
func consistently(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s: no longer holds", what)
		}
	}
}

// metricValue scrapes baseURL/metrics and sums the samples of name whose
// labels include every one of labels (each as `key="value"`).
func metricValue(t *testing.T, baseURL, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if i < 0 {
			continue
		}
		labelPart, value := rest[:i], rest[i+1:]
		match := true
		for _, l := range labels {
			match = match && strings.Contains(labelPart, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return sum
}
