package service_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callqueue/callqueue/store"
)

// The write paths whose answers the schedule loses, named by the store's
// own constants: the workers' (events applied, dial results, claims,
// intake, the CRM outbox's claim and acknowledgement) and the admin API's
// (cancels, suppressions, campaign writes). "" is any transaction of a
// worker.
var (
	soakWorkerPaths = []string{store.PathApplyEvents, store.PathDialAccepted, store.PathDialFailed, store.PathDialDeferred, store.PathConfirmDial, store.PathConfirmAbort, store.PathClaim, store.PathInsertCalls,
		store.PathClaimOutbox, store.PathFinishOutbox, ""}
	soakAPIPaths = []string{store.PathCancelCall, store.PathAddSuppressions, store.PathChangeCampaignStatus,
		store.PathUpdateCampaign, store.PathAddRecipients, store.PathCreateCampaign}
)

// soakFiredCheckSteps: a run this long fails when a fault kind was
// scheduled soakFiredCheckTimes times or more and never took effect.
const (
	soakFiredCheckSteps = 200
	soakFiredCheckTimes = 3
)

// loseCommitAnswers arms a few write paths, each to lose the answer of its
// next one to three COMMITs: the transaction is applied, the process sees a
// transient error and retries, or gives up and lets the lease, the
// watchdog or the operator take over. The workers' paths are armed on
// every worker process, those started later included, the admin API's on
// the API process and its successors, so that an armed path stays armed
// until it fires.
func (w *soakWorld) loseCommitAnswers() {
	for range 3 {
		paths, lost := soakWorkerPaths, w.lostWorkers
		if w.rng.IntN(3) == 0 {
			paths, lost = soakAPIPaths, w.lostAPI
		}
		path := paths[w.rng.IntN(len(paths))]
		kind := soakLostKind(path)
		w.schedule(kind)
		lost.Arm(path, 1+w.rng.IntN(3))
		w.note("armed " + kind)
	}
}

func soakLostKind(path string) string { return "lose_commit " + cmp.Or(path, "any") }

// newLostAnswers is a role's commit fault, which counts the answers it
// loses.
func (w *soakWorld) newLostAnswers() *store.LostAnswers {
	return store.NewLostAnswers(func(path string) { w.took(soakLostKind(path)) })
}

// schedule counts a fault kind the schedule played; took counts one that
// took effect.
func (w *soakWorld) schedule(kind string) {
	w.mu.Lock()
	w.scheduled[kind]++
	w.mu.Unlock()
}

func (w *soakWorld) took(kind string) {
	w.mu.Lock()
	w.faults[kind]++
	w.effects[kind]++
	w.mu.Unlock()
	w.note(kind)
}

// checkFired fails a long run in which a fault kind was scheduled often
// and never took effect: a renamed write path, a step that can no longer
// reach what it aims at. Shorter runs log them.
func (w *soakWorld) checkFired(steps int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var never, seen []string
	for kind, n := range w.scheduled {
		seen = append(seen, fmt.Sprintf("%s %d/%d %s", kind, w.effects[kind], n, w.spent[kind].Round(100*time.Millisecond)))
		if n >= soakFiredCheckTimes && w.effects[kind] == 0 {
			never = append(never, fmt.Sprintf("%s (scheduled %d times)", kind, n))
		}
	}
	slices.Sort(seen)
	slices.Sort(never)
	w.t.Logf("fault kinds, took effect/scheduled, time spent: %s", strings.Join(seen, ", "))
	switch {
	case len(never) == 0:
	case steps >= soakFiredCheckSteps:
		w.t.Errorf("fault kinds scheduled but never taking effect: %s", strings.Join(never, ", "))
	default:
		w.t.Logf("fault kinds scheduled but never taking effect (a run of %d steps or more fails on them): %s",
			soakFiredCheckSteps, strings.Join(never, ", "))
	}
}
