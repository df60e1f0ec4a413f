package workers

import (
	"context"
)

// windowBatch bounds the calls one tick puts back when their window opens;
// the next tick takes the rest.
const windowBatch = 5000

// ReleaseWindows puts back in the ready queue the calls whose calling
// window has opened and kicks their integrations. Calls waiting for a
// window are not looked at until then: each carries the time its window
// opens, and this is a range scan of the index on it.
func (s *Scheduler) ReleaseWindows(ctx context.Context) (int, error) {
	ids, err := s.w.store.ReleaseWindows(ctx, s.w.clock.Now(), windowBatch)
	for _, id := range ids {
		s.w.Dispatcher.Kick(id)
	}
	return len(ids), err
}

// advanceCampaigns starts campaigns whose startAt has come (and kicks their
// integrations) and completes those whose every call is over.
func (s *Scheduler) advanceCampaigns(ctx context.Context) error {
	started, err := s.w.store.AdvanceCampaigns(ctx, s.w.clock.Now())
	for _, id := range started {
		s.w.Dispatcher.Kick(id)
	}
	return err
}
