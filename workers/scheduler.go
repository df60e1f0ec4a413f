package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// Scheduler runs the periodic work: due retries back to the queue (within
// a Tick of their time, each exactly once across replicas), the watchdog
// for calls that held their slot too long, the sweep that dispatches
// integrations with queued calls, and pruning of expired keys.
type Scheduler struct {
	w      *Workers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// The watchdog's view of the database: down since its last failed
	// run, and releasing nothing until graceUntil once it is back.
	outageMu   sync.Mutex
	down       bool
	graceUntil time.Time
	// sharedGrace: the grace kept in the database is running.
	sharedGrace bool
}

func newScheduler(w *Workers) *Scheduler { return &Scheduler{w: w} }

// Start begins the periodic loops.
func (s *Scheduler) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	// The first heartbeat at once, not a sweep later: an outage in this
	// process's first second must find it, and a replica started after one
	// starts the grace before its first release.
	if _, err := s.w.store.WatchdogHeartbeat(ctx, s.w.cfg.OutageGap, s.w.cfg.OutageGrace); err != nil {
		s.w.log.Warn().Err(err).Msg("watchdog heartbeat")
	}
	s.every(ctx, s.w.cfg.Tick, func(ctx context.Context) error { _, err := s.RunRetries(ctx); return err })
	s.every(ctx, s.w.cfg.Tick, func(ctx context.Context) error { _, err := s.ReleaseWindows(ctx); return err })
	s.every(ctx, s.w.cfg.SweepEvery, s.advanceCampaigns)
	s.every(ctx, s.w.cfg.SweepEvery, s.watchdog)
	s.every(ctx, s.w.cfg.SweepEvery, s.sweep)
	s.every(ctx, time.Hour, func(ctx context.Context) error {
		_, err := s.w.store.PruneKeys(ctx)
		return err
	})
	s.every(ctx, RetentionCheckEvery, func(ctx context.Context) error { _, err := s.RunRetention(ctx); return err })
}

// Stop stops the loops.
func (s *Scheduler) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

func (s *Scheduler) every(ctx context.Context, period time.Duration, fn func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := fn(ctx); err != nil && ctx.Err() == nil {
					s.w.log.Warn().Err(err).Msg("scheduled work failed")
				}
			}
		}
	}()
}

// RunRetries puts every due retry back in the queue now and returns how
// many it moved.
func (s *Scheduler) RunRetries(ctx context.Context) (int, error) {
	return Requeuer{Store: s.w.store, Kicker: s.w.Dispatcher}.RunRetries(ctx, uuid.Nil)
}

// Requeuer moves due retries back to the queue and kicks their dispatch.
// The webhooks role uses it for POST /{slug}/cron/trigger.
type Requeuer struct {
	Store  *store.Store
	Kicker Kicker
}

// RunRetries puts the due retries of one integration (uuid.Nil: of all)
// back in the queue now and returns how many it moved. Each call moves
// once however many run at the same time. All integrations are swept one
// at a time, so that a failure on one tenant's rows stops only its own.
func (r Requeuer) RunRetries(ctx context.Context, integrationID uuid.UUID) (int, error) {
	if integrationID != uuid.Nil {
		return r.runRetriesOf(ctx, integrationID)
	}
	ids, err := r.Store.IntegrationsWithDueRetries(ctx)
	if err != nil {
		return 0, err
	}
	total, errs := 0, []error(nil)
	for _, id := range ids {
		n, err := r.runRetriesOf(ctx, id)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("integration %s: %w", id, err))
		}
	}
	return total, errors.Join(errs...)
}

func (r Requeuer) runRetriesOf(ctx context.Context, integrationID uuid.UUID) (int, error) {
	total := 0
	for {
		due, err := r.Store.RequeueDue(ctx, integrationID, 500)
		if err != nil {
			return total, err
		}
		if len(due) > 0 {
			r.Kicker.Kick(integrationID)
		}
		total += len(due)
		if len(due) < 500 {
			return total, nil
		}
	}
}

// watchdog releases calls that overstayed their slot, one integration at a
// time (one tenant's rows cannot stop the watchdog for the others), and
// completes calls whose post-call report did not come within PostcallWait.
// What it read is decided again under each call's row lock (the attempt,
// and for a lost dial that the dial is still unanswered), so a stale read
// changes nothing.
func (s *Scheduler) watchdog(ctx context.Context) error {
	wait, err := s.w.store.WatchdogHeartbeat(ctx, s.w.cfg.OutageGap, s.w.cfg.OutageGrace)
	if !s.mayRelease(err) || !s.graceOver(wait) {
		return err
	}
	ids, err := s.w.store.IntegrationsHoldingSlots(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := s.watchdogOf(ctx, id); err != nil && ctx.Err() == nil {
			errs = append(errs, fmt.Errorf("integration %s: %w", id, err))
		}
	}
	awaiting, err := s.w.store.AwaitingPostcall(ctx, s.w.cfg.PostcallWait, 500)
	if err == nil {
		err = s.release(ctx, s.w.clock.Now(), awaiting)
	}
	return errors.Join(append(errs, err)...)
}

// mayRelease tells the watchdog whether it may release calls, given how
// its first query went. After an outage, silence is not what it seems:
// dial answers wait in retryStore, call events and post-calls in JetStream,
// and they are applied only some time after the database is back. Releasing
// then would call back a customer whose conversation ended, or lose its
// transcript; so for OutageGrace after the database returns (wall time,
// since the held work drains in real time) the watchdog releases nothing.
func (s *Scheduler) mayRelease(err error) bool {
	s.outageMu.Lock()
	defer s.outageMu.Unlock()
	if err != nil {
		if store.IsTransient(err) {
			s.down = true
		}
		return false
	}
	if s.down {
		s.down = false
		s.graceUntil = time.Now().Add(s.w.cfg.OutageGrace)
		s.w.log.Info().Dur("grace", s.w.cfg.OutageGrace).Msg("database is back; the watchdog waits for held work to be applied")
	}
	return !time.Now().Before(s.graceUntil)
}

// graceOver tells whether the grace every replica keeps after a long
// outage (store.WatchdogHeartbeat) is over, saying once when one starts.
func (s *Scheduler) graceOver(wait time.Duration) bool {
	s.outageMu.Lock()
	defer s.outageMu.Unlock()
	if wait <= 0 {
		s.sharedGrace = false
		return true
	}
	if !s.sharedGrace {
		s.sharedGrace = true
		s.w.log.Info().Dur("grace", wait).Msg("no watchdog reached the database for a while; releases wait for held work to be applied")
	}
	return false
}

func (s *Scheduler) watchdogOf(ctx context.Context, integrationID uuid.UUID) error {
	overdue, err := s.w.store.OverdueCalls(ctx, integrationID, s.w.cfg.DialLostAfter, 500)
	if err != nil {
		return err
	}
	return s.release(ctx, s.w.clock.Now(), overdue)
}

// release applies the watchdog's verdicts: a timeout, a lost dial, or a
// post-call that never came.
func (s *Scheduler) release(ctx context.Context, now time.Time, overdue []store.Overdue) error {
	if len(overdue) == 0 {
		return nil
	}
	events := make([]store.CallEvent, len(overdue))
	for i, o := range overdue {
		ev := callstate.Event{Kind: callstate.Timeout, Reason: callstate.OutcomeTimeout}
		switch o.Reason {
		case "dial_lost":
			ev.Reason = callstate.OutcomeDialLost
		case "postcall_timeout":
			ev = callstate.Event{Kind: callstate.PostcallTimeout}
		}
		events[i] = store.CallEvent{IntegrationID: o.IntegrationID, CallID: o.CallID, Attempt: o.Attempt,
			Event: ev, Detail: map[string]any{"by": "watchdog"}, At: now}
	}
	applied, err := s.w.store.ApplyEvents(ctx, events)
	if err != nil {
		return err
	}
	s.w.applied(applied)
	return nil
}

// sweep dispatches every integration with queued calls, covering calling
// windows that opened, breakers that closed and kicks that were lost.
func (s *Scheduler) sweep(ctx context.Context) error {
	ids, err := s.w.store.IntegrationsWithQueued(ctx)
	for _, id := range ids {
		s.w.Dispatcher.Kick(id)
	}
	return err
}
