package store

import (
	"context"
	"errors"
)

// errStandby is PingPrimary's answer from a server in recovery.
var errStandby = errors.New("postgres is a standby (read-only)")

// PingPrimary checks that the database answers and accepts writes. After a
// failover, connections kept in the pool may lead to the old primary, now
// a standby that answers a plain ping but refuses every write (25006): the
// pool is then reset, so new connections find the new primary.
func (s *Store) PingPrimary(ctx context.Context) error {
	var standby bool
	if err := s.pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err != nil {
		if IsFailover(err) {
			s.pool.Reset()
		}
		return err
	}
	if standby {
		s.pool.Reset()
		return errStandby
	}
	return nil
}

// ForgetConnections closes the pool's connections (those in use once
// released), so that the next queries connect afresh: after an error that
// says the server they lead to is going away or read-only.
func (s *Store) ForgetConnections() { s.pool.Reset() }
