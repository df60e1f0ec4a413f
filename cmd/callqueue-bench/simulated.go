package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// simulated measures the whole loop — calls taken from queued to completed
// per second — with the simulated dialler: dial under the limit, call_start
// and call_end through the webhook receivers and JetStream, the post-call,
// each applied by the workers in Postgres. A backlog is queued through
// call-originate while the integration has no dialler, then the simulator
// (every call answered, speed 1000: a 20–120 s call takes 20–120 ms) is
// configured with a limit of 200 and the backlog drains.
func (b *bench) simulated(ctx context.Context) error {
	const calls, limit = 3000, 200
	w, err := b.newWorld(ctx, "simulated")
	if err != nil {
		return err
	}
	defer w.close()
	callHandling := fmt.Sprintf(`{"concurrency_limit": %d, "max_attempts": 1, "max_call_duration_secs": 600}`, limit)
	svc, in, err := w.startUndialled(ctx, "simulated", callHandling)
	if err != nil {
		return err
	}

	// The backlog, through the webhook as a CRM would send it; nothing is
	// dialled yet (no voice config: not_configured).
	client := load.NewClient(32)
	url := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/call-originate"
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	posting := time.Now()
	for p := range 32 {
		wg.Go(func() {
			for i := p; i < calls; i += 32 {
				if err := postJSON(client, url, in.WebhookToken, map[string]any{"phone_number": fmt.Sprintf("+38050%07d", i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	originateRate := float64(calls) / time.Since(posting).Seconds()
	if err := w.waitCount(ctx, `SELECT count(*) FROM calls WHERE status = 'queued'`, calls, 5*time.Minute); err != nil {
		return err
	}
	// The intake lag (contract §3: a call id of a 202 is readable within a
	// second): from the webhook's receipt (the call's created_at) to the
	// intake worker's insert (its queued history entry), per call.
	_, visibleP99, _, err := w.intakeLag(ctx, in.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: simulated: %d originates at %.0f/s, intake visible p99 %.1f ms\n", calls, originateRate, visibleP99)
	metric("intake_visible_p99_ms", visibleP99, "ms")

	start := time.Now()
	voice := `{"provider": "simulator", "answer": 1, "short": 0, "no_answer": 0, "busy": 0, "talk_secs": [20, 120], "ring_secs": [2, 8], "speed": 1000}`
	if err := w.st.PutConfig(ctx, store.ActorCLI, in.ID, config.KeyVoice, []byte(voice)); err != nil {
		return err
	}
	svc.Workers.Dispatcher.Kick(in.ID)
	if err := w.waitCount(ctx, `SELECT count(*) FROM calls WHERE status = 'completed'`, calls, 10*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "callqueue-bench: simulated: %d calls queued → completed in %s (limit %d, speed 1000)\n",
		calls, elapsed.Round(time.Millisecond), limit)
	metric("simulated_calls_per_s", float64(calls)/elapsed.Seconds(), "calls/s")
	return nil
}
