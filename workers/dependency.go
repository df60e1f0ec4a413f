package workers

import (
	"context"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/store"
)

// database is the consumers' dependency on Postgres: while it is down (or
// only a read-only standby answers), failing messages are held and retried
// in place instead of spending their delivery budget (queue.Dependency).
type database struct{ store *store.Store }

// Transient implements queue.Dependency.
func (d database) Transient(err error) bool {
	if store.IsFailover(err) {
		d.store.ForgetConnections()
	}
	return store.IsTransient(err)
}

// Ping implements queue.Dependency.
func (d database) Ping(ctx context.Context) error { return d.store.PingPrimary(ctx) }

// dataErrorsPermanent marks a failure over values Postgres can never store
// as permanent: the message goes to the dead-letter list at its first
// delivery instead of spending its redelivery budget first.
func dataErrorsPermanent[T any](handle func(ctx context.Context, batch []T) error) func(ctx context.Context, batch []T) error {
	return func(ctx context.Context, batch []T) error {
		err := handle(ctx, batch)
		if store.IsDataError(err) {
			return queue.Permanent(err)
		}
		return err
	}
}
