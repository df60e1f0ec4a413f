package workers

import (
	"context"
	"time"
)

// claimRound is one look for work by a claiming loop: it starts what it
// claimed and tells how many, and whether the claim filled all the room
// it had (only then may more be claimable at once).
type claimRound func(ctx context.Context) (started int, full bool, err error)

// claimLoop runs round until ctx ends: again at once after a round that
// filled its room, otherwise when woken (work came due, a job ended and
// freed room) or every poll. A round that took less than it had room for
// took everything claimable, so claiming again at once would find nothing.
func claimLoop(ctx context.Context, poll time.Duration, wake <-chan struct{}, round claimRound, onError func(error)) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		n, full, err := round(ctx)
		if err != nil && ctx.Err() == nil {
			onError(err)
		}
		if n > 0 && full {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}
