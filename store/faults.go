package store

import (
	"context"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// A COMMIT can succeed on the server while its answer is lost on the way
// back: the caller sees a transient error and, as it should, retries. Every
// write path must survive that, so tests can make it happen on any
// transaction, chosen by the name of the Store method that runs it (the
// Path constants below). The single-statement writes that leases and
// fences rely on (ClaimOutbox, FinishOutbox, ReleaseWindows, ...) lose
// their answer the same way, after the statement was applied. Production
// stores have no faults set; looking up the path costs nothing then.

// The write paths a CommitFault is told, by the Store method that runs
// them. Tests name them by these constants, so that a method renamed
// breaks them instead of leaving a fault that never fires.
const (
	PathApplyEvents          = "ApplyEvents"
	PathNoteEvent            = "NoteEvent"
	PathClaim                = "Claim"
	PathConfirmDial          = "ConfirmDial"
	PathInsertCalls          = "InsertCalls"
	PathFinishAnalysis       = "FinishAnalysis"
	PathClaimAnalyses        = "ClaimAnalyses"
	PathReleaseAnalysis      = "ReleaseAnalysis"
	PathClaimOutbox          = "ClaimOutbox"
	PathFinishOutbox         = "FinishOutbox"
	PathReleaseWindows       = "ReleaseWindows"
	PathRemoveExpired        = "RemoveExpired"
	PathCancelCall           = "CancelCall"
	PathAddSuppressions      = "AddSuppressions"
	PathCreateCampaign       = "CreateCampaign"
	PathUpdateCampaign       = "UpdateCampaign"
	PathChangeCampaignStatus = "ChangeCampaignStatus"
	PathAddRecipients        = "AddRecipients"
)

// A path followed by "/" and an event kind names only the transactions of
// that path that recorded a call event of that kind: the dial results
// among everything ApplyEvents and ConfirmDial write.
const (
	PathDialAccepted = PathApplyEvents + "/" + string(callstate.DialAccepted)
	PathDialFailed   = PathApplyEvents + "/" + string(callstate.DialFailed)
	PathDialAborted  = PathApplyEvents + "/" + string(callstate.DialAborted)
	PathDialDeferred = PathApplyEvents + "/" + string(callstate.DialDeferred)
	PathConfirmAbort = PathConfirmDial + "/" + string(callstate.DialAborted)
	PathConfirmDefer = PathConfirmDial + "/" + string(callstate.DialDeferred)
)

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

// LostAnswers is a CommitFault armed path by path: each armed path loses
// the answers of its next n transactions (committed, reported failed with
// no answer), and lost is told of each, with the path as armed. Arm may be
// called while transactions run.
type LostAnswers struct {
	mu    sync.Mutex
	armed map[string]int // path as armed ("" any) -> answers still to lose
	lost  func(armed string)
}

// NewLostAnswers is a LostAnswers with nothing armed; lost may be nil.
func NewLostAnswers(lost func(armed string)) *LostAnswers {
	return &LostAnswers{armed: map[string]int{}, lost: lost}
}

// Arm makes the next n transactions of path ("" any; "Method/kind" those of
// Method that recorded a call event of kind) lose their answer.
func (l *LostAnswers) Arm(path string, n int) {
	l.mu.Lock()
	l.armed[path] += n
	l.mu.Unlock()
}

// Armed reports whether path has answers still to lose.
func (l *LostAnswers) Armed(path string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.armed[path] > 0
}

// Fault is l as a CommitFault, for SetCommitFault.
func (l *LostAnswers) Fault(ctx context.Context, path string, tx pgx.Tx) error {
	l.mu.Lock()
	var kinded bool // an armed path names event kinds of this one
	for p, n := range l.armed {
		kinded = kinded || n > 0 && strings.HasPrefix(p, path+"/")
	}
	l.mu.Unlock()
	var kinds []string
	if kinded {
		// Read before the COMMIT: the rows this transaction wrote.
		kinds, _ = recordedKinds(ctx, tx)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	hit, ok := "", false
	for _, p := range append(kindPaths(path, kinds), path, "") {
		if l.armed[p] > 0 {
			hit, ok = p, true
			break
		}
	}
	if !ok {
		l.mu.Unlock()
		return nil
	}
	l.armed[hit]--
	l.mu.Unlock()
	if l.lost != nil {
		l.lost(hit)
	}
	return io.ErrUnexpectedEOF
}

func kindPaths(path string, kinds []string) []string {
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, path+"/"+k)
	}
	return out
}

// recordedKinds lists the kinds of the call events tx has written.
func recordedKinds(ctx context.Context, tx pgx.Tx) ([]string, error) {
	if _, ok := tx.(committedTx); ok {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT kind FROM call_events WHERE xmin = pg_current_xact_id()::xid`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// committedTx stands for a single statement already applied (autocommit):
// a CommitFault given it can only report its answer lost or not.
type committedTx struct{ pgx.Tx }

func (committedTx) Commit(context.Context) error   { return nil }
func (committedTx) Rollback(context.Context) error { return nil }

func (s *Store) fault() CommitFault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.commit
}

// commit ends tx: through the fault set, if any, or with a COMMIT.
func (s *Store) commit(ctx context.Context, tx pgx.Tx) error {
	fault := s.fault()
	if fault == nil {
		return tx.Commit(ctx)
	}
	return fault(ctx, writePath(), tx)
}

// answered is what a single-statement write that ended with err tells its
// caller: err, or, once the statement was applied, what the fault set (if
// any) makes of its answer.
func (s *Store) answered(ctx context.Context, err error) error {
	fault := s.fault()
	if fault == nil || err != nil {
		return err
	}
	return fault(ctx, writePath(), committedTx{})
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
			if !strings.Contains(name, ".") && !slices.Contains([]string{"inTx", "inClaimTx", "commit", "answered"}, name) {
				path = name
			}
		}
		if !more {
			return path
		}
	}
}
