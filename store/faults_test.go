package store_test

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestWritePathsAreMethods: every write path a fault can be armed on is a
// Store method, so that renaming one breaks this test rather than leaving
// tests' faults that never fire.
func TestWritePathsAreMethods(t *testing.T) {
	t.Parallel()
	paths := []string{store.PathApplyEvents, store.PathNoteEvent, store.PathClaim, store.PathConfirmDial,
		store.PathInsertCalls, store.PathFinishAnalysis, store.PathClaimAnalyses, store.PathReleaseAnalysis,
		store.PathClaimOutbox, store.PathFinishOutbox, store.PathReleaseWindows, store.PathRemoveExpired,
		store.PathCancelCall, store.PathAddSuppressions, store.PathCreateCampaign, store.PathUpdateCampaign,
		store.PathChangeCampaignStatus, store.PathAddRecipients, store.PathDialAccepted, store.PathDialFailed,
		store.PathDialAborted, store.PathDialDeferred, store.PathConfirmAbort, store.PathConfirmDefer}
	for _, p := range paths {
		method, _, _ := strings.Cut(p, "/")
		if _, ok := reflect.TypeFor[*store.Store]().MethodByName(method); !ok {
			t.Errorf("write path %q: *store.Store has no method %s", p, method)
		}
	}
}

// TestLostAnswersByKind: a path armed with an event kind loses the answer
// of the transaction that recorded that kind, not of the others of its
// method; a single-statement write loses its answer once applied.
func TestLostAnswersByKind(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 2})
	insert(t, s, t0, newCall(in.ID, t0), newCall(in.ID, t0))
	claimed, err := s.ClaimCalls(t.Context(), in.ID, t0, nil)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d calls: %v", len(claimed), err)
	}
	var mu sync.Mutex
	var lost []string
	faults := store.NewLostAnswers(func(p string) { mu.Lock(); lost = append(lost, p); mu.Unlock() })
	faults.Arm(store.PathDialAccepted, 1)
	faults.Arm(store.PathFinishOutbox, 1)
	s.SetCommitFault(faults.Fault)

	apply := func(c store.Claimed, kind callstate.Kind) error {
		_, err := s.ApplyEvents(t.Context(), []store.CallEvent{{IntegrationID: in.ID, CallID: c.Call.ID, Attempt: c.Call.Attempt,
			Claim: c.Claim, Event: callstate.Event{Kind: kind}, At: t0}})
		return err
	}
	if err := apply(claimed[0], callstate.DialFailed); err != nil {
		t.Errorf("dial_failed with dial_accepted armed: %v", err)
	}
	if err := apply(claimed[1], callstate.DialAccepted); !store.IsTransient(err) {
		t.Errorf("dial_accepted with its answer armed to be lost: %v, want a transient error", err)
	}
	if err := apply(claimed[1], callstate.DialAccepted); err != nil {
		t.Errorf("dial_accepted again, disarmed: %v", err)
	}
	if err := s.FinishOutbox(t.Context(), t0, []store.OutboxResult{{}}); !store.IsTransient(err) {
		t.Errorf("FinishOutbox armed: %v, want a transient error", err)
	}
	if want := []string{store.PathDialAccepted, store.PathFinishOutbox}; !reflect.DeepEqual(lost, want) {
		t.Errorf("lost %v, want %v", lost, want)
	}
}

// TestConfirmDialPath: the dispatcher's confirmation of a claimed dial
// that takes a limit (here a dial rate's token) commits as
// PathConfirmDial, so that a fault armed on it fires. One no limit applies
// to writes nothing when it lets the dial go: it has no commit to lose.
func TestConfirmDialPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		handling map[string]any
		commits  bool
	}{
		{"dial rate", map[string]any{"concurrency_limit": 1, "dial_rate": map[string]any{"per_second": 10, "burst": 1}}, true},
		{"no limit", map[string]any{"concurrency_limit": 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.NewStore(t)
			in := activeIntegration(t, s, tc.handling)
			insert(t, s, t0, newCall(in.ID, t0))
			s.SetDatabaseClock(func() time.Time { return t0 })
			claimed, err := s.ClaimCalls(t.Context(), in.ID, t0, nil)
			if err != nil || len(claimed) != 1 {
				t.Fatalf("claimed %d calls: %v", len(claimed), err)
			}
			var lost []string
			faults := store.NewLostAnswers(func(p string) { lost = append(lost, p) })
			faults.Arm(store.PathConfirmDial, 1)
			s.SetCommitFault(faults.Fault)
			verdict, _, _, err := s.ConfirmDial(t.Context(), claimed[0], t0, 0)
			if !tc.commits {
				if err != nil || verdict != store.DialGo || len(lost) != 0 {
					t.Errorf("confirmation without limits: %s, %v, lost %v; want go, nothing committed", verdict, err, lost)
				}
				return
			}
			if !store.IsTransient(err) {
				t.Errorf("confirmation with its answer armed to be lost: %v, want a transient error", err)
			}
			if len(lost) != 1 || lost[0] != store.PathConfirmDial {
				t.Errorf("lost %v, want [%s]", lost, store.PathConfirmDial)
			}
		})
	}
}
