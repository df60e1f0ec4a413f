package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callqueue/callqueue/bench/load"
)

// intakeVisible measures read-your-write (contract §3) at a fixed offered
// load, open loop: call-originates are sent on a schedule of
// intakeVisibleRate a second, whatever the answers' pace, and the p99 is
// the lag from each call's receipt (its created_at) to the intake
// worker's insert (its queued history entry). The simulated scenario
// measures the same lag at saturation, where it is the backlog's age.
func (b *bench) intakeVisible(ctx context.Context) error {
	const rate, seconds = 1000, 5
	w, err := b.newWorld(ctx, "intake_visible")
	if err != nil {
		return err
	}
	defer w.close()
	svc, in, err := w.startUndialled(ctx, "intake visible", `{"concurrency_limit": 10}`)
	if err != nil {
		return err
	}
	client := load.NewClient(256)
	url := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/call-originate"
	total := rate * seconds
	var wg sync.WaitGroup
	var failed atomic.Int64
	inFlight := make(chan struct{}, 256)
	start := time.Now()
	for i := range total {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
		inFlight <- struct{}{}
		wg.Go(func() {
			defer func() { <-inFlight }()
			if err := postJSON(client, url, in.WebhookToken, map[string]any{"phone_number": fmt.Sprintf("+38067%07d", i)}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	offered := float64(total) / time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d originates failed", n, total)
	}
	if err := w.waitCount(ctx, `SELECT count(*) FROM calls WHERE status = 'queued'`, total, 2*time.Minute); err != nil {
		return err
	}
	p50, p99, worst, err := w.intakeLag(ctx, in.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: intake_visible: %d originates offered at %.0f/s, lag p50 %.1f ms p99 %.1f ms max %.1f ms\n",
		total, offered, p50, p99, worst)
	metric("intake_visible_open_p99_ms", p99, "ms")
	return nil
}
