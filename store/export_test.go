package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// WithApplyHooks returns a copy of s whose ApplyEvents runs hooks.
func WithApplyHooks(s *Store, hooks *ApplyHooks) *Store {
	c := *s
	c.hooks = hooks
	return &c
}

// SetCommitClaim makes s commit claims with fn, for tests that lose the
// answer of a COMMIT.
func (s *Store) SetCommitClaim(fn func(ctx context.Context, tx pgx.Tx) error) { s.commitClaim = fn }

// SetClock makes s read the time of config changes from now.
func (s *Store) SetClock(now func() time.Time) { s.now = now }
