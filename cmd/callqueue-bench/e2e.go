package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/queue"
)

// e2e measures how many call events per second the workers apply to
// Postgres, sustained: a backlog of call_start + call_end events for calls
// in progress is stored in JetStream first, then the workers drain it.
func (b *bench) e2e(ctx context.Context) error {
	const calls = 20000
	w, err := b.newWorld(ctx, "e2e")
	if err != nil {
		return err
	}
	defer w.close()
	// A process with the API role only: it migrates and sets up, no workers yet.
	setup, in, _, err := w.startIdle(ctx, "api", `{"concurrency_limit": 1000}`)
	if err != nil {
		return err
	}
	// Ids as call-originate gives them (version 7, time-ordered): their
	// index entries land together, as in production.
	ids := make([]uuid.UUID, calls)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	now := time.Now()
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts,
			queued_at, slot_taken_at, dial_state, created_at, updated_at)
		SELECT id, $2, '+380990000000', 'initiated', 1, 3, $3, $3, 'accepted', $3, $3 FROM unnest($1::uuid[]) AS id`,
		ids, in.ID, now); err != nil {
		return err
	}
	// Store the backlog as the webhooks do (group commit), 64 at a time.
	batcher := queue.NewBatcher(setup.Queue)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for p := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < calls; i += 64 {
				for _, ev := range []queue.EventBody{
					{EventType: "call_start", CallRef: ids[i].String(), ReceivedAt: now, DedupeKey: "start:" + ids[i].String()},
					{EventType: "call_end", CallRef: ids[i].String(), DurationSecs: ptr(30.0), ReceivedAt: now, DedupeKey: "end:" + ids[i].String()},
				} {
					if err := batcher.PublishEvent(ctx, in.ID, ev); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	start := time.Now()
	if _, err := w.start(ctx, "workers", false, nil); err != nil {
		return err
	}
	// The integration's calls only: the scale scenario's database holds
	// millions of others.
	if err := w.waitCount(ctx, `SELECT count(*) FROM calls WHERE integration_id = '`+in.ID.String()+`' AND status = 'waiting_postcall'`,
		calls, 5*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	var history int
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM call_events e JOIN calls c ON c.id = e.call_id
		WHERE c.integration_id = $1`, in.ID).Scan(&history); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: e2e: %d events for %d calls applied in %s (%d history rows)\n", 2*calls, calls, elapsed.Round(time.Millisecond), history)
	metric("e2e_events_per_s", float64(2*calls)/elapsed.Seconds(), "events/s")
	// Whether autovacuum keeps up: the calls table's dead row versions
	// after the run (each event rewrote a row), and as a share of its rows
	// (the planner's count: a database copied from a template starts its
	// statistics afresh).
	var dead int64
	var rows float64
	if err := w.st.Pool().QueryRow(ctx, `SELECT s.n_dead_tup, greatest(c.reltuples, s.n_live_tup)
		FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'calls'`).Scan(&dead, &rows); err != nil {
		return err
	}
	metric("e2e_calls_dead_tuples", float64(dead), "rows")
	metric("e2e_calls_dead_tuples_pct", 100*float64(dead)/max(rows, 1), "%")
	return nil
}

func ptr[T any](v T) *T { return &v }
