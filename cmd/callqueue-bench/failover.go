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

	"github.com/callqueue/callqueue/queue"
)

// failoverNodes is the size of the JetStream cluster the failover runs on.
const failoverNodes = 3

// failover measures intake on a three-node JetStream cluster (every stream
// replicated three times) while the server leading the events stream is
// stopped: how long webhooks are not taken (election_ms: from the stop to
// the first request sent after it that is answered 2xx) and the throughput
// in the window after the stop against the same window before it.
func (b *bench) failover(ctx context.Context) error {
	w, err := b.newClusterWorld(ctx, "failover", failoverNodes)
	if err != nil {
		return err
	}
	defer w.close()
	svc, err := w.start(ctx, "webhooks", true, nil)
	if err != nil {
		return err
	}
	in, _, err := w.setupIntegration(ctx, "", "http://127.0.0.1:1", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	clients := min(b.clients, 16) // a steady load, not a saturating one
	client := newHTTPClient(clients)
	url := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/call-events"
	header := http.Header{"Content-Type": {"application/json"}, "X-Webhook-Token": {in.WebhookToken}}

	load := startTimedLoad(ctx, client, clients, url, header, func(n int64) []byte {
		return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42}`, n)
	})
	time.Sleep(time.Second + b.duration) // warm-up, then the window before
	victim, err := w.cluster.StreamLeader(ctx, svc.Queue.JetStream(), queue.KindEvents.Stream())
	if err != nil {
		load.stop()
		return err
	}
	stopped := time.Now()
	w.cluster.Stop(victim)
	stopTook := time.Since(stopped)
	time.Sleep(max(0, b.duration-time.Since(stopped)))
	rec := load.stop()

	before, refusedBefore := rec.between(stopped.Add(-b.duration), stopped)
	during, refusedDuring := rec.between(stopped, stopped.Add(b.duration))
	back, ok := rec.firstTakenSentAfter(stopped)
	if !ok {
		return fmt.Errorf("no webhook taken in the %s after stopping the leader", b.duration)
	}
	leader, err := w.cluster.StreamLeader(ctx, svc.Queue.JetStream(), queue.KindEvents.Stream())
	if err != nil {
		return fmt.Errorf("after the failover: %w", err)
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: failover: leader n%d stopped (took %s), new leader n%d; %d clients; before: %d taken, %d refused; after the stop: %d taken, %d refused\n",
		victim+1, stopTook.Round(time.Millisecond), leader+1, clients, before, refusedBefore, during, refusedDuring)
	window := b.duration.Seconds()
	metric("failover_election_ms", ms(back.Sub(stopped)), "ms")
	metric("failover_rps_before", float64(before)/window, "req/s")
	metric("failover_rps_during", float64(during)/window, "req/s")
	metric("failover_refused", float64(refusedDuring), "requests")
	return nil
}

// timedLoad is a closed-loop load that keeps every request's times, so a
// run can be cut into windows around an event.
type timedLoad struct {
	halt chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	rec  timedRecord
}

type timedRequest struct {
	sent, answered time.Time
	taken          bool
}

type timedRecord []timedRequest

func startTimedLoad(ctx context.Context, client *http.Client, clients int, url string, header http.Header, body func(n int64) []byte) *timedLoad {
	l := &timedLoad{halt: make(chan struct{})}
	var seq atomic.Int64
	for range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.halt:
					return
				default:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body(seq.Add(1))))
				req.Header = header.Clone()
				sent := time.Now()
				resp, err := client.Do(req)
				taken := err == nil && resp.StatusCode/100 == 2
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else {
					time.Sleep(10 * time.Millisecond) // a refused connection fails at once
				}
				l.mu.Lock()
				l.rec = append(l.rec, timedRequest{sent: sent, answered: time.Now(), taken: taken})
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *timedLoad) stop() timedRecord {
	close(l.halt)
	l.wg.Wait()
	return l.rec
}

// between counts the requests answered in [from, to): taken and not.
func (r timedRecord) between(from, to time.Time) (taken, refused int) {
	for _, q := range r {
		if q.answered.Before(from) || !q.answered.Before(to) {
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

// firstTakenSentAfter is when the first request sent at or after t was
// answered 2xx.
func (r timedRecord) firstTakenSentAfter(t time.Time) (time.Time, bool) {
	var first time.Time
	for _, q := range r {
		if q.taken && !q.sent.Before(t) && (first.IsZero() || q.answered.Before(first)) {
			first = q.answered
		}
	}
	return first, !first.IsZero()
}
