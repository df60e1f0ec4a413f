// Package store is callqueue's Postgres persistence: integrations and their
// tokens, secrets and configuration, and the calls with their attempts and
// history. It knows nothing of HTTP or NATS; invariants the database can hold
// (statuses, uniqueness, the slot rule) live in the schema.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sentinel errors callers test for.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// ConflictError names what clashed (a slug, a key).
type ConflictError struct{ Field, Message string }

func (e *ConflictError) Error() string { return e.Message }

// Is makes a ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Store is the Postgres-backed repository.
type Store struct {
	pool   *pgxpool.Pool
	sealer *Sealer
	// phoneKey is the phone-hash key once loaded (phoneHasher); shared
	// by a store's copies.
	phoneKey *atomic.Pointer[[]byte]
	hooks    *ApplyHooks
	// faults are the failures tests inject (faults.go).
	faults *faults
	// now is the clock of changes whose callers pass no time (a config
	// change recomputing calling-window waits); tests set it.
	now func() time.Time
	// testClock, when set (SetClock), stands in for the database's clock,
	// which decides leases and deadlines.
	testClock func() time.Time
}

// SetClock makes s read the time from now: for the changes whose callers
// pass no time, and, in place of the database's now(), for leases and
// deadlines. For tests whose clock is not the wall clock.
func (s *Store) SetClock(now func() time.Time) { s.now, s.testClock = now, now }

// SetDatabaseClock replaces only the database's clock (SetClock's second
// half): for tests of a replica whose own clock is off while the database,
// which decides leases and deadlines, keeps the one time of all replicas.
func (s *Store) SetDatabaseClock(now func() time.Time) { s.testClock = now }

// dbNow is the database's clock in SQL: now(), unless the statement's
// parameter number param (s.dbClock()) carries a test clock's time.
// Leases and deadlines are decided by it, so that the replicas of a
// deployment, whatever their own clocks say, agree on them; and the
// deadlines' start times (a slot's slot_taken_at) are stamped with it.
func dbNow(param int) string {
	return fmt.Sprintf("COALESCE($%d::timestamptz, now())", param)
}

// dbClock is the parameter of dbNow: nil (the database's own clock) unless
// a test set a clock.
func (s *Store) dbClock() *time.Time {
	if s.testClock == nil {
		return nil
	}
	at := s.testClock()
	return &at
}

// New returns a Store over pool. sealer encrypts secrets and webhook tokens.
func New(pool *pgxpool.Pool, sealer *Sealer) *Store {
	return &Store{pool: pool, sealer: sealer, now: time.Now, faults: &faults{}, phoneKey: &atomic.Pointer[[]byte]{}}
}

// Pool exposes the pool for health checks and migrations.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

// IsTransient reports errors worth retrying: lost connections, timeouts,
// serialization failures and deadlocks, and what a failover looks like from
// a client (the server shutting down or starting, a standby that refuses
// writes, exhausted resources). Any error that is not the server's answer
// (a refused or reset connection, a timeout) counts too; an answer about
// the data (a constraint, a syntax error) does not.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01", // serialization failure, deadlock: the retry runs alone
			"55P03",                            // lock not available
			"57014",                            // query cancelled (statement timeout)
			"25006",                            // read-only transaction: connected to a standby after a failover
			"57P01", "57P02", "57P03", "57P05", // admin/crash shutdown, cannot connect now, idle session timeout
			"53000", "53100", "53200", "53300", "53400", // insufficient resources (connections, memory, disk)
			"58000", "58030": // system and I/O errors
			return true
		}
		return pgErr.Code[:2] == "08" // connection exceptions
	}
	return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict)
}

// IsFailover reports errors that mean the pool's connections lead to a
// server that is no longer the writable primary: they should be replaced.
func IsFailover(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "25006", "57P01", "57P02", "57P03":
		return true
	}
	return false
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// inTx runs fn in a transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return s.commit(ctx, tx)
}

// DatabaseNow is the database's clock (a test's, when set): the time every
// replica's lease, deadline and due time is judged on.
func (s *Store) DatabaseNow(ctx context.Context) (time.Time, error) {
	return databaseNow(ctx, s.pool, s.dbClock())
}
