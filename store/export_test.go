package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SetCommitClaim makes s commit claims with fn, for tests that lose the
// answer of a COMMIT.
func (s *Store) SetCommitClaim(fn func(ctx context.Context, tx pgx.Tx) error) { s.commitClaim = fn }
