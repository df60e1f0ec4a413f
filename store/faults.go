package store

import (
	"context"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// A COMMIT can succeed on the server while its answer is lost on the way
// back: the caller sees a transient error and, as it should, retries. Every
// write path must survive that, so tests can make it happen on any
// transaction, chosen by the name of the Store method that runs it
// ("ApplyEvents", "ClaimCalls", "FinishOutbox", ...). Production stores
// have no faults set; looking up the path costs nothing then.

// CommitFault decides how a transaction of write path ends: it commits or
// rolls tx back itself and returns what the caller is told.
type CommitFault func(ctx context.Context, path string, tx pgx.Tx) error

// faults is shared by the copies of a Store (WithApplyHooks).
type faults struct {
	mu     sync.Mutex
	commit CommitFault
}

// SetCommitFault makes every transaction of s end through fn (nil: a plain
// COMMIT again). For tests that lose COMMIT answers.
func (s *Store) SetCommitFault(fn CommitFault) {
	s.faults.mu.Lock()
	s.faults.commit = fn
	s.faults.mu.Unlock()
}

// LoseCommitAnswers is a CommitFault that commits the transactions of the
// named write paths and reports their COMMIT as failed with no answer, as
// a connection lost at that moment does, n times in all. Other paths
// commit normally.
func LoseCommitAnswers(n int, paths ...string) CommitFault {
	var mu sync.Mutex
	return func(ctx context.Context, path string, tx pgx.Tx) error {
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if n <= 0 || (len(paths) > 0 && !slices.Contains(paths, path)) {
			return nil
		}
		n--
		return io.ErrUnexpectedEOF
	}
}

// commit ends tx: through the fault set, if any, or with a COMMIT.
func (s *Store) commit(ctx context.Context, tx pgx.Tx) error {
	s.faults.mu.Lock()
	fault := s.faults.commit
	s.faults.mu.Unlock()
	if fault == nil {
		return tx.Commit(ctx)
	}
	return fault(ctx, writePath(), tx)
}

// writePath is the name of the Store method that runs the transaction
// being committed: the outermost (*Store) method on the stack.
func writePath() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	path := ""
	for {
		f, more := frames.Next()
		if i := strings.Index(f.Function, "/store.(*Store)."); i >= 0 {
			name := f.Function[i+len("/store.(*Store)."):]
			if !strings.Contains(name, ".") && !slices.Contains([]string{"inTx", "inClaimTx", "commit"}, name) {
				path = name
			}
		}
		if !more {
			return path
		}
	}
}
