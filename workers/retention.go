package workers

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/store"
)

// Retention (contract §11): once a day, each integration with
// data.retention_days loses its finished calls whose last change is older,
// with everything linked to them.
const (
	// RetentionCheckEvery is how often a replica asks whether the daily
	// run is due (store.RunDaily decides, across replicas).
	RetentionCheckEvery = time.Hour
	// RetentionBatch bounds the calls one retention transaction removes,
	// so that no transaction holds many locks or runs long.
	RetentionBatch = 100
)

// RunRetention runs the retention job if it is due (once a day, one
// replica at a time) and returns what it removed; store.ErrJobNotDue
// is not an error here.
func (s *Scheduler) RunRetention(ctx context.Context) (store.Removed, error) {
	start, now := time.Now(), s.w.clock.Now()
	var total store.Removed
	integrations := 0
	err := s.w.store.RunDaily(ctx, store.JobRetention, now, func(ctx context.Context) error {
		policies, err := s.w.store.RetentionPolicies(ctx)
		if err != nil {
			return err
		}
		for _, p := range policies {
			removed := 0
			err := RemoveExpired(ctx, s.w.store, p.IntegrationID, now.AddDate(0, 0, -p.Days), func(r store.Removed) {
				total.Add(r)
				removed += r.Calls
				s.countRetention(r)
			})
			if err != nil {
				return err
			}
			if removed > 0 {
				integrations++
			}
		}
		return ctx.Err()
	})
	if errors.Is(err, store.ErrJobNotDue) {
		return total, nil
	}
	level := zerolog.InfoLevel
	if err != nil {
		level = zerolog.ErrorLevel
	}
	s.w.log.WithLevel(level).Err(err).Int("integrations", integrations).Int("calls", total.Calls).Int("rows", total.Rows()).
		Dur("took", time.Since(start)).Msg("retention run")
	return total, err
}

// RemoveExpired removes an integration's calls finished before cutoff in
// transactions of RetentionBatch calls, calling each after every one. After
// each batch it rests as long as the batch took: the job has a day, and the
// dispatchers sharing the database keep at least half of its time.
func RemoveExpired(ctx context.Context, st *store.Store, integrationID uuid.UUID, cutoff time.Time, each func(store.Removed)) error {
	for {
		start := time.Now()
		r, err := st.RemoveExpired(ctx, integrationID, cutoff, RetentionBatch)
		if err != nil {
			return err
		}
		each(r)
		if r.Calls < RetentionBatch {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Since(start)):
		}
	}
}

func (s *Scheduler) countRetention(r store.Removed) {
	if s.w.metrics == nil {
		return
	}
	for table, n := range r.ByTable() {
		if n > 0 {
			s.w.metrics.RetentionDeleted.WithLabelValues(table).Add(float64(n))
		}
	}
}
