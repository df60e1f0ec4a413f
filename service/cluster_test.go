package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
)

// replicatedStreams are what callqueue creates with CALLQUEUE_NATS_REPLICAS.
var replicatedStreams = []string{queue.KindOriginate.Stream(), queue.KindEvents.Stream(), queue.KindPostcall.Stream(),
	"CALLQUEUE_DLQ", "KV_" + callerctx.Bucket}

// checkReplicated fails the test unless every stream and bucket is
// replicated on every node of the env's cluster.
func (c *cluster) checkReplicated(t *testing.T, nodes int) {
	t.Helper()
	js := c.jetStream(t)
	for _, name := range replicatedStreams {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if info.Config.Replicas != nodes || info.Cluster == nil || len(info.Cluster.Replicas) != nodes-1 {
			t.Fatalf("stream %s: %d replicas configured, cluster %+v; want %d", name, info.Config.Replicas, info.Cluster, nodes)
		}
	}
}

// TestClusterStreamLeaderFailover runs callqueue on a three-node JetStream
// cluster with every stream and bucket replicated three times. While
// webhooks arrive (call-originate under Idempotency-Keys, and the events
// of each call once it is dialled), the server that leads both intake
// streams is stopped. Webhook senders retry whatever is not answered 2xx,
// as real ones do. Intake comes back once the remaining two elect new
// leaders; every webhook that was taken is applied exactly once (one call
// per key, one dial per call, one call_start and one call_end in each
// history) and nothing is dead-lettered.
func TestClusterStreamLeaderFailover(t *testing.T) {
	t.Parallel()
	leaderFailover(t, false)
}

// TestClusterStreamLeaderCrash is TestClusterStreamLeaderFailover with the
// leader's process killed (SIGKILL) instead of stopped: it hands nothing
// over, publishes to it time out, webhooks answer 503 and are retried
// until the others elect a leader after their election timeout.
func TestClusterStreamLeaderCrash(t *testing.T) {
	t.Parallel()
	leaderFailover(t, true)
}

// streamLeaders is what leaderFailover needs of either kind of cluster.
type streamLeaders interface {
	StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (int, error)
	MoveStreamLeader(ctx context.Context, js jetstream.JetStream, stream string, i int) error
}

func leaderFailover(t *testing.T, crash bool) {
	t.Helper()
	const nodes = 3
	c := startCluster(t, 2, clusterOptions{NATSNodes: nodes, NATSProcesses: crash, CallHandling: map[string]any{"concurrency_limit": 1000}})
	c.checkReplicated(t, nodes)
	js := c.jetStream(t)
	var cl streamLeaders = c.env.NATSCluster
	stopServer := func(i int) {
		c.env.NATSCluster.Stop(i)
	}
	if crash {
		cl = c.env.NATSProcesses
		stopServer = func(i int) {
			if err := c.env.NATSProcesses.Kill(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Both intake streams will lose their leader at once.
	victim, err := cl.StreamLeader(t.Context(), js, queue.KindEvents.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.MoveStreamLeader(t.Context(), js, queue.KindOriginate.Stream(), victim); err != nil {
		t.Fatal(err)
	}

	var (
		sender   = newWebhookSender(c)
		mu       sync.Mutex
		byKey    = map[string]uuid.UUID{}
		phoneOf  = map[uuid.UUID]string{}
		progress = map[uuid.UUID]int{} // events taken: 0, 1 (call_start), 2 (call_end)
		busy     = map[uuid.UUID]bool{}
		failures []error
		stop     = make(chan struct{})
		stopOnce sync.Once
		wg       sync.WaitGroup
		taken    atomic.Int64
	)
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	var abandon atomic.Bool // the test failed: stop chasing events too
	t.Cleanup(func() { abandon.Store(true); halt(); wg.Wait() })
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
		abandon.Store(true)
		halt()
	}
	// Originates at a steady rate, each sent without waiting for the
	// previous ones (a campaign's CRM does not stop because one request
	// hangs), until the test has seen intake come back.
	var originating atomic.Int64
	originate := func(i int) {
		defer originating.Add(-1)
		phone, key := fmt.Sprintf("+38090%07d", i), fmt.Sprintf("failover-%d", i)
		raw, err := sender.deliver("call-originate", map[string]any{"phone_number": phone}, map[string]string{"Idempotency-Key": key})
		if err != nil {
			fail(err)
			return
		}
		var resp struct {
			CallID uuid.UUID `json:"callId"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			fail(fmt.Errorf("originate %s: %w", key, err))
			return
		}
		mu.Lock()
		byKey[key], phoneOf[resp.CallID] = resp.CallID, phone
		if _, ok := progress[resp.CallID]; !ok {
			progress[resp.CallID] = 0
		}
		mu.Unlock()
		taken.Add(1)
	}
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			originating.Add(1)
			wg.Go(func() { originate(i) })
		}
	})
	// The VA's events: call_start once a call is dialled, call_end once
	// call_start is applied, so that each must show in the history.
	events := func(id uuid.UUID, body map[string]any) {
		defer func() {
			mu.Lock()
			busy[id] = false
			mu.Unlock()
		}()
		if _, err := sender.deliver("call-events", body, nil); err != nil {
			fail(err)
			return
		}
		mu.Lock()
		progress[id]++
		mu.Unlock()
		taken.Add(1)
	}
	chased := make(chan struct{})
	wg.Go(func() {
		defer close(chased)
		var failingSince time.Time // a read of the calls may time out on a loaded machine; only a lasting failure counts
		for !abandon.Load() {
			rows, err := c.callsErr()
			switch {
			case err != nil && failingSince.IsZero():
				failingSince = time.Now()
				fallthrough
			case err != nil && time.Since(failingSince) < 30*time.Second:
				time.Sleep(100 * time.Millisecond)
				continue
			case err != nil:
				fail(fmt.Errorf("reading the calls has failed for 30s: %w", err))
				return
			}
			failingSince = time.Time{}
			mu.Lock()
			pending := 0
			for id, p := range progress {
				if p < 2 {
					pending++
				}
				r, ok := rows[id]
				if busy[id] || !ok {
					continue
				}
				switch {
				case p == 0 && r.DialState == "accepted":
					busy[id] = true
					wg.Go(func() { events(id, map[string]any{"eventType": "call_start", "callId": id.String()}) })
				case p == 1 && r.Status == "in_progress":
					busy[id] = true
					wg.Go(func() { events(id, map[string]any{"eventType": "call_end", "callId": id.String(), "duration": 30}) })
				}
			}
			mu.Unlock()
			select {
			case <-stop:
				if pending == 0 && originating.Load() == 0 {
					return
				}
			default:
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	servicetest.Eventually(t, 20*time.Second, "webhooks taken before the failover", func() bool { return taken.Load() >= 20 })
	for _, name := range []string{queue.KindOriginate.Stream(), queue.KindEvents.Stream()} {
		if leader, err := cl.StreamLeader(t.Context(), js, name); err != nil || leader != victim {
			t.Fatalf("stream %s: leader %d (%v), want %d", name, leader, err, victim)
		}
	}
	killed := time.Now()
	stopServer(victim)
	stopped := time.Since(killed)
	servicetest.Eventually(t, 30*time.Second, "intake back after the failover", func() bool {
		_, ok := sender.firstTakenAfter(killed)
		return ok
	})
	back, _ := sender.firstTakenAfter(killed)
	resumed := taken.Load()
	servicetest.Eventually(t, 30*time.Second, "webhooks taken after the failover", func() bool { return taken.Load() >= resumed+10 })
	halt()
	select {
	case <-chased:
	case <-time.After(45 * time.Second):
		t.Fatal("the events of every call were not taken in 45s")
	}
	wg.Wait()
	for _, err := range failures {
		t.Fatal(err)
	}
	t.Logf("leader of both intake streams (node %d) gone (crash: %t) in %s; intake unavailable for %s (stop to the first webhook sent after it and taken); %d webhooks taken, %d attempts refused and retried",
		victim+1, crash, stopped.Round(time.Millisecond), back.Sub(killed).Round(time.Millisecond), taken.Load(), sender.refusals())

	for _, name := range []string{queue.KindOriginate.Stream(), queue.KindEvents.Stream()} {
		leader, err := cl.StreamLeader(t.Context(), js, name)
		if err != nil || leader == victim {
			t.Fatalf("stream %s: leader %d (%v) after stopping %d", name, leader, err, victim)
		}
	}
	waitFor(t, 45*time.Second, "every call ended", func() bool {
		return c.countStatus(t, "waiting_postcall") == len(phoneOf)
	}, func() string { return c.describeStragglers(t, "waiting_postcall") })
	c.waitConsumerIdle(t, queue.KindEvents)
	c.waitConsumerIdle(t, queue.KindOriginate)

	rows := c.calls(t)
	if len(rows) != len(byKey) || len(phoneOf) != len(byKey) {
		t.Errorf("%d calls stored, %d keys taken, %d call ids answered", len(rows), len(byKey), len(phoneOf))
	}
	for id, r := range rows {
		if phoneOf[id] != r.Phone {
			t.Errorf("call %s (%s) was never answered to its sender", id, r.Phone)
		}
		if n := c.va.CountFor(id.String()); n != 1 {
			t.Errorf("call %s dialled %d times", id, n)
		}
		counts := map[string]int{}
		for _, k := range c.kinds(t, id) {
			counts[k]++
		}
		if counts["queued"] != 1 || counts["dial"] != 1 || counts["dial_accepted"] != 1 || counts["call_start"] != 1 ||
			counts["call_end"] != 1 || len(counts) != 5 {
			t.Errorf("call %s: history %v", id, c.kinds(t, id))
		}
	}
	if n := c.deadLetters(t); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
}

// TestClusterWorkerKilledMidBatch: on a three-node cluster, a worker
// process dies (its NATS connection closed without draining, its database
// sessions cut) while it holds a batch of call events unacknowledged. The
// other replica of the same durable consumers gets them redelivered and
// applies each exactly once; nothing is dead-lettered.
func TestClusterWorkerKilledMidBatch(t *testing.T) {
	t.Parallel()
	killMidEvents(t, 30, 1, 3)
}
