package api

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

// Read-your-write for calls (contract §3): a call-originate answers 202
// with the call's id once the request is stored in the intake stream; the
// call reaches Postgres a moment later, when the intake worker writes it.
// A read or cancel of an id minted moments ago that is not stored yet waits
// for it, up to IntakeVisibleWait, instead of answering 404.
const (
	// IntakeVisibleWait bounds the wait for a just-accepted call.
	IntakeVisibleWait = 2 * time.Second
	// intakeRecent is how old an id may be and still be waited for.
	intakeRecent = 10 * time.Second
	// intakePollFirst is the first wait between reads; each next one
	// doubles, so a made-up id costs a handful of queries, not a hundred.
	intakePollFirst = 20 * time.Millisecond
)

// afterIntake runs fn, and again while it answers store.ErrNotFound for an
// id that may be a call just accepted: a UUIDv7 minted in the last
// intakeRecent (it carries the time it was made; an older one is a 404 at
// once), or one derived from an Idempotency-Key (a UUIDv8 keyed by the
// server's secret, which carries no time). Any other id is a 404 at once.
func afterIntake(ctx context.Context, id uuid.UUID, fn func() error) error {
	err := fn()
	if !errors.Is(err, store.ErrNotFound) || !(mintedRecently(id) || id.Version() == 8) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, IntakeVisibleWait)
	defer cancel()
	wait := time.NewTimer(intakePollFirst)
	defer wait.Stop()
	for pause := intakePollFirst; ; pause *= 2 {
		select {
		case <-ctx.Done():
			return err
		case <-wait.C:
		}
		wait.Reset(pause * 2)
		if err = fn(); !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
}

// mintedRecently reports whether id is a UUIDv7 made in the last
// intakeRecent by the wall clock (the one ids are minted with).
func mintedRecently(id uuid.UUID) bool {
	if id.Version() != 7 {
		return false
	}
	sec, nsec := id.Time().UnixTime()
	age := time.Since(time.Unix(sec, nsec))
	return age > -time.Second && age < intakeRecent
}
