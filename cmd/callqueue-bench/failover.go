package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/queue/queuetest"
)

// failoverNodes is the size of the JetStream cluster the failover runs on.
const failoverNodes = 3

// failover measures intake on a three-node JetStream cluster (every stream
// replicated three times) while the server leading the events stream goes
// away, twice: stopped in order (failover_*), which hands its Raft
// leaderships over first, and killed with SIGKILL like a crashing machine
// (failover_crash_*), after which the others elect only once the leader's
// silence exceeds their election timeout. Each reports how long webhooks
// are not taken (election_ms: from the stop to the first request sent
// after it that is answered 2xx) and the throughput in the 2×duration
// after the stop against the duration before it.
func (b *bench) failover(ctx context.Context) error {
	if err := b.failoverBy(ctx, "failover", false); err != nil {
		return err
	}
	return b.failoverBy(ctx, "failover_crash", true)
}

func (b *bench) failoverBy(ctx context.Context, name string, crash bool) error {
	w, err := b.newClusterWorld(ctx, name, failoverNodes, crash)
	if err != nil {
		return err
	}
	defer w.close()
	svc, in, _, err := w.startIdle(ctx, "webhooks", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	clients := min(b.clients, 16) // a steady load, not a saturating one
	client := load.NewClient(clients)
	url := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/call-events"
	header := http.Header{"Content-Type": {"application/json"}, "X-Webhook-Token": {in.WebhookToken}}

	traffic := startTimedLoad(ctx, client, clients, url, header, func(n int64) []byte {
		return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42}`, n)
	})
	time.Sleep(time.Second + b.duration) // warm-up, then the window before
	victim, err := w.cluster.StreamLeader(ctx, svc.Queue.JetStream(), queue.KindEvents.Stream())
	if err != nil {
		traffic.stop()
		return err
	}
	stopped := time.Now()
	if crash {
		err = w.cluster.(*queuetest.ProcessCluster).Kill(victim)
	} else {
		w.cluster.(*queuetest.Cluster).Stop(victim)
	}
	stopTook := time.Since(stopped)
	if err != nil {
		traffic.stop()
		return err
	}
	// The window after is twice as long, so that it holds an election
	// after a crash (seconds) and some of the recovery.
	after := 2 * b.duration
	time.Sleep(max(0, after-time.Since(stopped)))
	rec := traffic.stop()

	before, refusedBefore := rec.between(stopped.Add(-b.duration), stopped)
	during, refusedDuring := rec.between(stopped, stopped.Add(after))
	back, ok := rec.firstTakenSentAfter(stopped)
	if !ok {
		return fmt.Errorf("no webhook taken in the %s after the leader went", after)
	}
	leader, err := w.cluster.StreamLeader(ctx, svc.Queue.JetStream(), queue.KindEvents.Stream())
	if err != nil {
		return fmt.Errorf("after the failover: %w", err)
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: %s: leader n%d gone (took %s), new leader n%d; %d clients; before: %d taken, %d refused; after: %d taken, %d refused\n",
		name, victim+1, stopTook.Round(time.Millisecond), leader+1, clients, before, refusedBefore, during, refusedDuring)
	metric(name+"_election_ms", load.MS(back.Sub(stopped)), "ms")
	metric(name+"_rps_before", float64(before)/b.duration.Seconds(), "req/s")
	metric(name+"_rps_during", float64(during)/after.Seconds(), "req/s")
	metric(name+"_refused", float64(refusedDuring), "requests")
	return nil
}

// timedLoad is a closed-loop load that keeps every request's times, so a
// run can be cut into windows around an event. Beside the clients, a probe
// is sent every probeEvery whatever became of the previous ones: when the
// clients all wait on requests that will time out, a probe still finds out
// when intake is back.
type timedLoad struct {
	halt chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	rec  timedRecord
}

type timedRequest struct {
	sent, answered time.Time
	taken, probe   bool
}

type timedRecord []timedRequest

const probeEvery = 20 * time.Millisecond

func startTimedLoad(ctx context.Context, client *http.Client, clients int, url string, header http.Header, body func(n int64) []byte) *timedLoad {
	l := &timedLoad{halt: make(chan struct{})}
	var seq atomic.Int64
	send := func(probe bool) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body(seq.Add(1))))
		req.Header = header.Clone()
		sent := time.Now()
		resp, err := client.Do(req)
		taken := err == nil && resp.StatusCode/100 == 2
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		} else if !probe {
			time.Sleep(10 * time.Millisecond) // a refused connection fails at once
		}
		l.mu.Lock()
		l.rec = append(l.rec, timedRequest{sent: sent, answered: time.Now(), taken: taken, probe: probe})
		l.mu.Unlock()
	}
	for range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.halt:
					return
				default:
				}
				send(false)
			}
		})
	}
	l.wg.Go(func() {
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for {
			select {
			case <-l.halt:
				return
			case <-tick.C:
				l.wg.Go(func() { send(true) })
			}
		}
	})
	return l
}

func (l *timedLoad) stop() timedRecord {
	close(l.halt)
	l.wg.Wait()
	return l.rec
}

// between counts the clients' requests answered in [from, to): taken and
// not (probes aside).
func (r timedRecord) between(from, to time.Time) (taken, refused int) {
	for _, q := range r {
		if q.probe || q.answered.Before(from) || !q.answered.Before(to) {
			continue
		}
		if q.taken {
			taken++
		} else {
			refused++
		}
	}
	return taken, refused
}

// firstTakenSentAfter is when the first request (probe or not) sent at or
// after t was answered 2xx.
func (r timedRecord) firstTakenSentAfter(t time.Time) (time.Time, bool) {
	var first time.Time
	for _, q := range r {
		if q.taken && !q.sent.Before(t) && (first.IsZero() || q.answered.Before(first)) {
			first = q.answered
		}
	}
	return first, !first.IsZero()
}
