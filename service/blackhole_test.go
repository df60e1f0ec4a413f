package service_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/internal/faultnet"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// TestBlackHoledReplicaDoesNotStopTheOthers: a workers process's database
// host goes silent (a failover left it talking to a black hole: packets
// dropped, no reset) after it has taken the call_end events of every live
// call. Another workers process, whose database answers, must still apply
// them: the slots are freed and the calls waiting for them dialled. Before,
// the silent process kept every message it had pulled alive with progress
// reports, its queries hanging, and nothing was freed anywhere.
func TestBlackHoledReplicaDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	const limit = 5
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{"concurrency_limit": limit}})
	proxy, viaProxy, err := faultnet.ListenURL(t.Context(), c.env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	consumer := queue.ConsumerConfig{AckWait: 2 * time.Second, StallAfter: 3 * time.Second, HoldWait: 500 * time.Millisecond}
	bounds := config.DatabaseBounds{ConnectTimeout: time.Second, StatementTimeout: 2 * time.Second, TCPUserTimeout: 2 * time.Second}
	c.startWorkersOn(t, viaProxy, "workers-silent", workers.Config{Consumer: consumer}, bounds)
	t.Cleanup(func() { _ = proxy.Close() }) // before the process's shutdown: its connections then fail at once

	var live []uuid.UUID
	for i := range limit {
		live = append(live, c.mustOriginate(t, fmt.Sprintf("+38050200%04d", i)))
	}
	for _, id := range live {
		c.waitCall(t, id, "its dial answered", func(r callRow) bool { return r.DialState == "accepted" })
	}

	proxy.BlackHole()
	for _, id := range live {
		if err := c.callEnd(id, 30); err != nil {
			t.Fatal(err)
		}
	}
	// The silent process, alone so far, takes every call_end.
	servicetest.Eventually(t, 10*time.Second, "the silent process to take the call_ends", func() bool {
		pending, out := c.events(t)
		return pending == 0 && out > 0
	})
	blackHoled := time.Now()

	c.startWorkers(t, "workers-answered", workers.Config{Consumer: consumer})
	var waiting []uuid.UUID
	for i := range limit {
		waiting = append(waiting, c.mustOriginate(t, fmt.Sprintf("+38050201%04d", i)))
	}
	waitFor(t, 60*time.Second, "the live calls' slots freed by the process that reaches the database", func() bool {
		rows, err := c.callsErr()
		if err != nil {
			return false
		}
		for _, id := range live {
			if s := rows[id].Status; s == "initiated" || s == "in_progress" {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprint(c.statusCounts(t)) })
	freed := time.Since(blackHoled)
	servicetest.Eventually(t, 30*time.Second, "the waiting calls dialled", func() bool {
		for _, id := range waiting {
			if c.va.CountFor(id.String()) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("black hole to slots freed: %v; to the waiting calls dialled: %v", freed.Round(time.Millisecond),
		time.Since(blackHoled).Round(time.Millisecond))
	for _, id := range append(live, waiting...) {
		if n := c.va.CountFor(id.String()); n != 1 {
			t.Errorf("call %s dialled %d times", id, n)
		}
	}
}

// startWorkersOn is startWorkers with the process's database reached at
// databaseURL and its connection bounds.
func (c *cluster) startWorkersOn(t *testing.T, databaseURL, name string, cfg workers.Config, bounds config.DatabaseBounds) *servicetest.Instance {
	t.Helper()
	saved := c.env.DatabaseURL
	sep := "?"
	if strings.Contains(databaseURL, "?") {
		sep = "&"
	}
	c.env.DatabaseURL = databaseURL + sep + "application_name=" + name
	defer func() { c.env.DatabaseURL = saved }()
	in := c.env.Start(servicetest.Options{Role: "workers", Workers: cfg, DB: bounds})
	c.workers = append(c.workers, in)
	return in
}

// events is how many call-event messages wait for a worker, and how many
// are out with one.
func (c *cluster) events(t *testing.T) (pending uint64, out int) {
	t.Helper()
	cons, err := c.jetStream(t).Consumer(t.Context(), "CALLQUEUE_EVENTS", string(queue.KindEvents))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending, info.NumAckPending
}

// TestShutdownOfABlackHoledReplicaKeepsItsDeadline: SIGTERM reaches a
// workers process whose database has gone silent. Its statements were cut
// off at their deadline, and pgx cleans such a connection up for up to
// 15 s (its cancel request waits for an answer). Shutdown must still
// return by its context's deadline; it waited for that cleanup.
func TestShutdownOfABlackHoledReplicaKeepsItsDeadline(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 2}})
	proxy, viaProxy, err := faultnet.ListenURL(t.Context(), c.env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	bounds := config.DatabaseBounds{ConnectTimeout: time.Second, StatementTimeout: time.Second, TCPUserTimeout: 2 * time.Second}
	in := c.startWorkersOn(t, viaProxy, "workers-silent", workers.Config{}, bounds)
	t.Cleanup(func() { _ = proxy.Close() })
	id := c.mustOriginate(t, "+380502020000")
	c.waitCall(t, id, "its dial answered", func(r callRow) bool { return r.DialState == "accepted" })

	proxy.BlackHole()
	time.Sleep(4 * time.Second) // the process's statements reach their deadline
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = in.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("shutdown with a 3 s deadline took %v: %v", took.Round(time.Millisecond), err)
	if took > 4*time.Second {
		t.Errorf("shutdown took %v past a 3 s deadline", took.Round(time.Millisecond))
	}
}
