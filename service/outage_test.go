package service_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// TestPostgresOutageLongerThanTheRedeliveryBudget: the workers lose their
// database for far longer than their consumers' redelivery budget
// (MaxDeliver 2 with 10 ms backoff, AckWait 1 s: a few seconds of failures
// used to dead-letter a message), while webhooks keep acknowledging
// originates and call events. Nothing is lost: no message is redelivered
// or dead-lettered, every call_end acknowledged during the outage frees
// its slot, and every call originated during it is dialled exactly once.
func TestPostgresOutageLongerThanTheRedeliveryBudget(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 10}})
	proxy, viaProxy := servicetest.NewPGProxy(t, c.env.DatabaseURL)
	direct := c.env.DatabaseURL
	c.env.DatabaseURL = viaProxy
	const ackWait = time.Second
	c.startWorkers(t, "workers-outage", workers.Config{Consumer: queue.ConsumerConfig{AckWait: ackWait, MaxDeliver: 2,
		Backoff: []time.Duration{10 * time.Millisecond}, HoldWait: 100 * time.Millisecond}})
	c.env.DatabaseURL = direct

	var before []uuid.UUID
	for i := range 5 {
		before = append(before, c.mustOriginate(t, fmt.Sprintf("+38050000%04d", i)))
	}
	servicetest.Eventually(t, 20*time.Second, "the first calls dialled", func() bool { return len(c.va.Requests()) == len(before) })

	proxy.Cut()
	outage := time.Now()
	for _, id := range before {
		if err := c.callEnd(id, 45); err != nil {
			t.Fatal(err)
		}
	}
	var during []uuid.UUID
	for i := range 5 {
		during = append(during, c.mustOriginate(t, fmt.Sprintf("+38050001%04d", i)))
	}
	// Several AckWaits, and far more than MaxDeliver × backoff: under the
	// old rules every message above was dead-lettered by now.
	servicetest.Eventually(t, 30*time.Second, "an outage of four AckWaits", func() bool { return time.Since(outage) > 4*ackWait })
	if n := c.deadLetters(t); n != 0 {
		t.Fatalf("%d messages dead-lettered during the outage", n)
	}
	proxy.Restore()

	waitFor(t, 30*time.Second, "the calls ended during the outage to free their slots", func() bool {
		rows, err := c.callsErr()
		if err != nil {
			return false
		}
		for _, id := range before {
			if s := rows[id].Status; s == "initiated" || s == "in_progress" {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprint(c.statusCounts(t)) })
	servicetest.Eventually(t, 30*time.Second, "the calls originated during the outage dialled", func() bool {
		for _, id := range during {
			if c.va.CountFor(id.String()) == 0 {
				return false
			}
		}
		return true
	})
	for _, id := range append(before, during...) {
		if n := c.va.CountFor(id.String()); n != 1 {
			t.Errorf("call %s dialled %d times", id, n)
		}
	}
	if n := c.deadLetters(t); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
	for _, kind := range []queue.Kind{queue.KindOriginate, queue.KindEvents} {
		info, err := c.jetStream(t).Consumer(t.Context(), map[queue.Kind]string{queue.KindOriginate: "CALLQUEUE_ORIGINATE",
			queue.KindEvents: "CALLQUEUE_EVENTS"}[kind], string(kind))
		if err != nil {
			t.Fatal(err)
		}
		ci, err := info.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Each message delivered once: as many deliveries as messages.
		if ci.Delivered.Consumer != ci.Delivered.Stream {
			t.Errorf("%s: %d deliveries of %d messages: the outage caused redeliveries", kind, ci.Delivered.Consumer, ci.Delivered.Stream)
		}
	}
}

// TestWatchdogAfterAnOutageLongerThanDialLostAfter: a dial is in flight
// when the workers lose their database; its 2xx waits in the dispatcher,
// the call's start and end wait in JetStream, and the outage outlasts
// DialLostAfter. When the database returns, the watchdog must not take
// that silence for a lost dial: the held answer and events are applied
// first, the call ends as reported and is not dialled again.
func TestWatchdogAfterAnOutageLongerThanDialLostAfter(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 2, "max_attempts": 3,
		"retry_delays_secs": []int{0}}})
	proxy, viaProxy := servicetest.NewPGProxy(t, c.env.DatabaseURL)
	direct := c.env.DatabaseURL
	c.env.DatabaseURL = viaProxy
	// Held messages are retried every HoldWait, the dial's answer every
	// 2 s at most: both later than the watchdog's first run.
	c.startWorkers(t, "workers-outage", workers.Config{DialLostAfter: 2 * time.Minute, OutageGrace: 6 * time.Second,
		Consumer: queue.ConsumerConfig{HoldWait: 3 * time.Second}})
	c.env.DatabaseURL = direct

	answered, dialled := make(chan struct{}), make(chan servicetest.Originate, 1)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(answered) }) })
	c.va.Decide(func(o servicetest.Originate) (int, time.Duration) {
		dialled <- o
		<-answered // the VA answers once the database is gone
		return 200, 0
	})
	id := c.mustOriginate(t, "+380500020001")
	var dial servicetest.Originate
	select {
	case dial = <-dialled:
	case <-time.After(20 * time.Second):
		t.Fatal("the call was not dialled")
	}
	proxy.Cut()
	outage := time.Now()
	once.Do(func() { close(answered) })
	if err := c.sendEvent(map[string]any{"eventType": "call_start", "callId": dial.CallID}); err != nil {
		t.Fatal(err)
	}
	if err := c.callEnd(id, 45); err != nil {
		t.Fatal(err)
	}
	c.env.Clock.Advance(3 * time.Minute) // the outage outlasts DialLostAfter
	servicetest.Eventually(t, 30*time.Second, "the watchdog to have met the outage", func() bool { return time.Since(outage) > 3*time.Second })
	proxy.Restore()

	call := awaitCall(t, c.admin, id, "the held events applied", func(p peerCall) bool {
		return p.Status != "initiated" && p.Status != "in_progress"
	})
	for _, e := range call.Events {
		if e.Kind == "timeout" {
			t.Fatalf("the watchdog released the call after the outage: %s; history %v", e.Detail, kindsOf(call))
		}
	}
	if call.Status != "waiting_postcall" && call.Status != "completed" {
		t.Errorf("call is %s after its reported end, want waiting_postcall or completed; history %v", call.Status, kindsOf(call))
	}
	holdsFor(t, time.Second, "no second dial", func() bool { return c.va.CountFor(id.String()) == 1 })
}

// TestWatchdogOfAReplicaStartedAfterAnOutage: the only worker process
// loses its database with a dial answered and the call's start and end
// waiting in JetStream, and dies during the outage; a new replica starts
// once the database is back. It never saw the outage, yet its watchdog
// must not take the silence for a call that overstayed its slot: no
// replica reached the database for a while, so the held events are
// applied before anything is released.
func TestWatchdogOfAReplicaStartedAfterAnOutage(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 2, "max_attempts": 3,
		"retry_delays_secs": []int{0}}})
	proxy, viaProxy := servicetest.NewPGProxy(t, c.env.DatabaseURL)
	direct := c.env.DatabaseURL
	// The held events come back to the new replica only after AckWait,
	// later than its watchdog's first run.
	cfg := workers.Config{DialLostAfter: 2 * time.Minute, OutageGrace: 10 * time.Second, OutageGap: 2 * time.Second,
		Consumer: queue.ConsumerConfig{AckWait: 4 * time.Second}}
	c.env.DatabaseURL = viaProxy
	before := c.startWorkers(t, "workers-before", cfg)
	c.env.DatabaseURL = direct

	id := c.mustOriginate(t, "+380500020002")
	dial := c.va.Next(t, 20*time.Second)
	awaitCall(t, c.admin, id, "the dial answered", func(p peerCall) bool { return slices.Contains(kindsOf(p), "dial_accepted") })
	proxy.Cut()
	outage := time.Now()
	if err := c.sendEvent(map[string]any{"eventType": "call_start", "callId": dial.CallID}); err != nil {
		t.Fatal(err)
	}
	if err := c.callEnd(id, 45); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 20*time.Second, "the held events out with the dying replica", func() bool {
		pending, out := c.events(t)
		return pending == 0 && out >= 1
	})
	before.Kill()
	c.env.Clock.Advance(30 * time.Minute) // past any call's longest duration
	servicetest.Eventually(t, 30*time.Second, "no heartbeat for longer than the gap", func() bool { return time.Since(outage) > 3*time.Second })
	c.startWorkers(t, "workers-after", cfg)

	call := awaitCall(t, c.admin, id, "the held events applied", func(p peerCall) bool {
		return p.Status != "initiated" && p.Status != "in_progress"
	})
	if slices.Contains(kindsOf(call), "timeout") {
		t.Fatalf("the new replica's watchdog released the call before the held events: history %v", kindsOf(call))
	}
	if call.Status != "waiting_postcall" && call.Status != "completed" {
		t.Errorf("call is %s after its reported end, want waiting_postcall or completed; history %v", call.Status, kindsOf(call))
	}
	holdsFor(t, time.Second, "no second dial", func() bool { return c.va.CountFor(id.String()) == 1 })
}
