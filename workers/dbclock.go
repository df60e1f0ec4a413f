package workers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DatabaseClock is a replica's clock set by the database's. Leases,
// deadlines and due times are judged on the database's clock; the times a
// replica writes (an event's, a retry's due time that follows from it, the
// start of a post-call wait) are read from its own. On a host whose clock is
// off by a minute, a retry was then due a minute early and a post-call
// given up on a minute before its time: read through a DatabaseClock, the
// replica writes the times every other replica would.
type DatabaseClock struct {
	local  Clock
	offset atomic.Int64 // the database's clock minus the local one, in ns
	warned atomic.Bool
}

// NewDatabaseClock is local, until the first Sync, unchanged.
func NewDatabaseClock(local Clock) *DatabaseClock { return &DatabaseClock{local: local} }

// Now implements Clock.
func (c *DatabaseClock) Now() time.Time { return c.local.Now().Add(c.Offset()) }

// Offset is what is added to the local clock.
func (c *DatabaseClock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// DatabaseTimer reads the database's clock.
type DatabaseTimer interface {
	DatabaseNow(ctx context.Context) (time.Time, error)
}

const (
	// clockSamples: the offset is taken from the shortest of this many
	// round trips, which errs least.
	clockSamples = 3
	// clockDeadBand: a change of the offset smaller than this is left out,
	// so that the measurement's own noise does not move a correct clock.
	clockDeadBand = 2 * time.Millisecond
	// clockWarnAbove: a host clock this far off is logged (once).
	clockWarnAbove = time.Second
	// ClockSyncEvery is how often a running replica measures the offset again.
	ClockSyncEvery = 15 * time.Second
)

// Sync measures the offset: the database's clock against the local clock
// read half way through the round trip.
func (c *DatabaseClock) Sync(ctx context.Context, db DatabaseTimer, log zerolog.Logger) error {
	best, bestTrip := time.Duration(0), time.Duration(-1)
	var err error
	for range clockSamples {
		sent := c.local.Now()
		var remote time.Time
		if remote, err = db.DatabaseNow(ctx); err != nil {
			break
		}
		back := c.local.Now()
		// The local clock's own reading of the trip: a test's clock that
		// stands still sees none.
		trip := back.Sub(sent)
		if bestTrip < 0 || trip < bestTrip {
			best, bestTrip = remote.Sub(sent.Add(trip/2)), trip
		}
	}
	if bestTrip < 0 {
		return err
	}
	if d := best - c.Offset(); d > clockDeadBand || d < -clockDeadBand {
		c.offset.Store(int64(best))
	}
	if off := c.Offset(); (off > clockWarnAbove || off < -clockWarnAbove) && !c.warned.Swap(true) {
		log.Warn().Dur("offset_ms", off).Msg("this host's clock is off the database's; the times this process writes follow the database's")
	}
	return nil
}

// Keep syncs every ClockSyncEvery until ctx ends; a failed read keeps the
// last offset.
func (c *DatabaseClock) Keep(ctx context.Context, db DatabaseTimer, log zerolog.Logger) {
	t := time.NewTicker(ClockSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			syncCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := c.Sync(syncCtx, db, log); err != nil && ctx.Err() == nil {
				log.Debug().Err(err).Msg("reading the database's clock")
			}
			cancel()
		}
	}
}
