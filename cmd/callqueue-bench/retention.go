package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/workers"
)

// retentionPhase is how many freed slots each phase of the retention
// scenario samples.
const retentionPhase = 40

// retention measures what the daily retention job costs the dispatcher:
// the time from a freed slot to the next dial (as in dispatch) while the
// job's loop (workers.RemoveExpired) removes retentionCalls expired calls
// of another integration, with their history, against the same measurement
// while it rests, in alternating phases of one run on one database.
// Contract §11: the job must not hold locks a dispatcher needs.
func (b *bench) retention(ctx context.Context) error {
	originated := 0
	w, va, svc, in, err := b.oneSlotWorld(ctx, "retention")
	if err != nil {
		return err
	}
	defer w.close()
	defer va.Close()
	old, _, err := w.setupIntegration(ctx, "", va.URL, `{"concurrency_limit": 1}`)
	if err != nil {
		return err
	}
	seeded := time.Now()
	expiredAt := time.Now().AddDate(0, 0, -400)
	// In chunks: one statement per million rows would outlast the
	// store's statement timeout.
	const chunk = 20_000
	for first := 1; first <= b.retentionCalls; first += chunk {
		last := min(first+chunk-1, b.retentionCalls)
		if _, err := w.st.Pool().Exec(ctx, `WITH c AS (
				INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts, queued_at, outcome, created_at, updated_at)
				SELECT gen_random_uuid(), $1, '+38067' || lpad(g::text, 7, '0'), 'completed', 1, 1, $2, 'completed', $2, $2
				FROM generate_series($3::int, $4::int) g
				RETURNING id)
			INSERT INTO call_events (call_id, attempt, kind, to_status, occurred_at)
			SELECT id, 1, k, k, $2 FROM c, unnest(ARRAY['queued', 'completed']) k`, old.ID, expiredAt, first, last); err != nil {
			return fmt.Errorf("seed expired calls: %w", err)
		}
	}
	if _, err := w.st.Pool().Exec(ctx, `ANALYZE calls; ANALYZE call_events`); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: retention: %d expired calls seeded in %s\n", b.retentionCalls, time.Since(seeded).Round(time.Millisecond))

	client := load.NewClient(4)
	base := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/"
	// Queued calls for the freed slots to dial, topped up between phases.
	queued := 0
	topUp := func(need int) error {
		for ; queued < need; queued++ {
			if err := postJSON(client, base+"call-originate", in.WebhookToken, map[string]any{"phone_number": fmt.Sprintf("+38099%07d", originated)}); err != nil {
				return err
			}
			originated++
		}
		return nil
	}
	if err := topUp(2 * retentionPhase); err != nil {
		return err
	}
	live := []vaCall{<-va.arrived}
	queued--

	// Phases of retentionPhase samples alternate: the job resting, then the
	// job's own loop (workers.RemoveExpired) running, until it has removed
	// everything. Whatever else loads the machine weighs on both alike.
	var (
		alone, during []time.Duration
		removed       atomic.Int64
		took          time.Duration
		drained       bool // the job ended by itself: nothing left to remove
	)
	for !drained {
		if err := topUp(2*retentionPhase + 1); err != nil {
			return err
		}
		lat, rest, err := freedSlots(client, base, in.WebhookToken, va, live, func(n int) bool { return n < retentionPhase })
		if err != nil {
			return err
		}
		alone, live, queued = append(alone, lat...), rest, queued-len(lat)

		job, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		started := time.Now()
		go func() {
			done <- workers.RemoveExpired(job, w.st, old.ID, time.Now().AddDate(0, 0, -30), func(r store.Removed) { removed.Add(int64(r.Calls)) })
		}()
		var jobErr error
		finished := false
		lat, rest, err = freedSlots(client, base, in.WebhookToken, va, live, func(n int) bool {
			if !finished {
				select {
				case jobErr = <-done:
					finished = true
				default:
				}
			}
			return !finished && n < retentionPhase
		})
		stop()
		if !finished {
			jobErr = <-done
		}
		took += time.Since(started)
		if err != nil {
			return err
		}
		during, live, queued = append(during, lat...), rest, queued-len(lat)
		if jobErr != nil && job.Err() == nil {
			return fmt.Errorf("retention job: %w", jobErr)
		}
		drained = finished && jobErr == nil
	}
	// A batch cancelled while it committed may have counted nothing: the
	// table says what is left.
	var left int
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM calls WHERE integration_id = $1`, old.ID).Scan(&left); err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("retention left %d of %d calls (%d counted removed)", left, b.retentionCalls, removed.Load())
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: retention: %d samples alone, %d during the job (%s of work)\n", len(alone), len(during), took.Round(time.Millisecond))
	slices.Sort(alone)
	slices.Sort(during)
	metric("retention_calls_per_s", float64(b.retentionCalls)/took.Seconds(), "calls/s")
	metric("retention_dispatch_alone_p99_ms", load.MS(load.Percentile(alone, 0.99)), "ms")
	metric("retention_dispatch_during_p99_ms", load.MS(load.Percentile(during, 0.99)), "ms")
	metric("retention_dispatch_p99_ratio", float64(load.Percentile(during, 0.99))/float64(load.Percentile(alone, 0.99)), "x")
	if v := va.violations.Load(); v != 0 {
		return fmt.Errorf("retention run saw %d limit violations", v)
	}
	return nil
}
