package workers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/workers"
)

type fixedClock struct{ at time.Time }

func (c *fixedClock) Now() time.Time { return c.at }

type databaseAt struct {
	at  func() time.Time
	err error
}

func (d databaseAt) DatabaseNow(context.Context) (time.Time, error) { return d.at(), d.err }

// TestDatabaseClock: a host clock off the database's reads the database's
// once synced; a measurement within the dead band leaves a correct clock
// alone; a failed read keeps the last offset.
func TestDatabaseClock(t *testing.T) {
	t.Parallel()
	db := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	local := &fixedClock{at: db.Add(-110 * time.Second)}
	c := workers.NewDatabaseClock(local)
	if got := c.Now(); !got.Equal(local.at) {
		t.Fatalf("before a sync the clock reads %v, want the host's %v", got, local.at)
	}
	if err := c.Sync(t.Context(), databaseAt{at: func() time.Time { return db }}, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); !got.Equal(db) {
		t.Errorf("synced, the clock reads %v, want the database's %v", got, db)
	}
	// Noise smaller than the dead band does not move it.
	noisy := databaseAt{at: func() time.Time { return db.Add(time.Millisecond) }}
	if err := c.Sync(t.Context(), noisy, zerolog.Nop()); err != nil || c.Offset() != 110*time.Second {
		t.Errorf("a 1 ms measurement noise moved the offset to %v (%v)", c.Offset(), err)
	}
	down := databaseAt{at: time.Time{}.UTC, err: errors.New("connection refused")}
	if err := c.Sync(t.Context(), down, zerolog.Nop()); err == nil || c.Offset() != 110*time.Second {
		t.Errorf("a failed read: %v, offset %v, want the error and the last offset kept", err, c.Offset())
	}
}
