package store_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
	"github.com/callqueue/callqueue/store"
)

// holds lists the pacing holds in a call's history, oldest first.
func holds(t *testing.T, s *store.Store, id uuid.UUID) []string {
	t.Helper()
	rows, err := s.CallHistory(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		if r.Kind != "deferred" {
			continue
		}
		var d struct {
			Deferred  string `json:"deferred"`
			NotBefore string `json:"notBefore"`
		}
		if err := json.Unmarshal(r.Detail, &d); err != nil || d.NotBefore == "" {
			t.Fatalf("hold %s: want deferred and notBefore", r.Detail)
		}
		out = append(out, d.Deferred)
	}
	return out
}

// TestClaimDialRate: with dial_rate {per_second: 2, burst: 2} and ten
// free slots, a claim takes two calls; the rest stay queued, the first of
// them with one dial_rate hold in its history however often the claim is
// tried, and the claim says when to try again. Originates take the tokens
// (ConfirmDial): once they have, time refills the bucket.
func TestClaimDialRate(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "dial_rate": map[string]any{"per_second": 2, "burst": 2}})
	ids := queueCalls(t, s, in.ID, 5, t0)
	// The buckets are judged on the database's clock, which this test
	// moves with the times it claims and confirms at.
	var dbNow atomic.Pointer[time.Time]
	s.SetDatabaseClock(func() time.Time { return *dbNow.Load() })
	at := func(d time.Duration) time.Time {
		now := t0.Add(d)
		dbNow.Store(&now)
		return now
	}

	first, err := s.Claim(t.Context(), in.ID, at(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Calls) != 2 || first.Holds[pacing.DialRate] != 1 || !first.Wake.After(t0) {
		t.Fatalf("first claim: %d calls, holds %v, wake %s; want 2 calls, one dial_rate hold, a wake after now",
			len(first.Calls), first.Holds, first.Wake)
	}
	// Again and again before the tokens are taken: nothing more, and the
	// held call's history keeps its one entry.
	for i := range 3 {
		again, err := s.Claim(t.Context(), in.ID, at(time.Duration(i)*100*time.Millisecond), nil)
		if err != nil || len(again.Calls) != 0 || again.Holds[pacing.DialRate] != 0 {
			t.Fatalf("claim %d: %d calls, holds %v, %v; want none", i, len(again.Calls), again.Holds, err)
		}
	}
	if h := holds(t, s, ids[2]); len(h) != 1 || h[0] != string(pacing.DialRate) {
		t.Fatalf("held call's holds = %v, want one dial_rate", h)
	}
	for _, c := range first.Calls {
		if v, _, _, err := s.ConfirmDial(t.Context(), c, at(0), 0); err != nil || v != store.DialGo {
			t.Fatalf("confirm: %s %v", v, err)
		}
	}
	// Half a second later one token has come back: the held call goes.
	next, err := s.Claim(t.Context(), in.ID, at(500*time.Millisecond), nil)
	if err != nil || len(next.Calls) != 1 || next.Calls[0].Call.ID != ids[2] {
		t.Fatalf("claim after half a second: %+v %v; want the held call", next.Calls, err)
	}
	if v, _, _, err := s.ConfirmDial(t.Context(), next.Calls[0], t0.Add(500*time.Millisecond), 0); err != nil || v != store.DialGo {
		t.Fatalf("confirm: %s %v", v, err)
	}
	// The bucket is empty again: an originate asking now (a claim on a
	// replica that read the bucket before) waits for the next token.
	if v, due, _, err := s.ConfirmDial(t.Context(), next.Calls[0], t0.Add(500*time.Millisecond), 0); err != nil ||
		v != store.DialRateWait || !due.Equal(t0.Add(time.Second)) {
		t.Fatalf("confirm without a token: %s due %s %v; want a wait until %s", v, due, err, t0.Add(time.Second))
	}
}

// TestClaimExcludedDate: on an excluded date the call is set aside until
// the window's next opening on another date, with one deferred:
// excluded_date entry; an ordinary closed window stays a window_wait.
func TestClaimExcludedDate(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	// t0 is Wednesday 21 January 2026, 14:00 in Kyiv.
	in := activeIntegration(t, s, map[string]any{"calling_window": map[string]any{"timezone": "Europe/Kyiv", "start": "09:00",
		"end": "20:00", "exclude_dates": []string{"2026-01-21", "2026-01-22"}}})
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	res, err := s.Claim(t.Context(), in.ID, t0, nil)
	if err != nil || len(res.Calls) != 0 || res.Holds[pacing.ExcludedDate] != 1 {
		t.Fatalf("claim on a holiday: %d calls, holds %v, %v", len(res.Calls), res.Holds, err)
	}
	kyiv, _ := time.LoadLocation("Europe/Kyiv")
	var notBefore *time.Time
	if err := s.Pool().QueryRow(t.Context(), `SELECT not_before FROM calls WHERE id = $1`, id).Scan(&notBefore); err != nil {
		t.Fatal(err)
	}
	if notBefore == nil || !notBefore.Equal(time.Date(2026, 1, 23, 9, 0, 0, 0, kyiv)) {
		t.Fatalf("call waits until %v, want Friday 09:00 in Kyiv", notBefore)
	}
	if h := holds(t, s, id); len(h) != 1 || h[0] != string(pacing.ExcludedDate) {
		t.Fatalf("holds = %v, want one excluded_date", h)
	}
}

// pacedIntegration is an active integration of owner with callHandling.
func pacedIntegration(t *testing.T, s *store.Store, owner string, callHandling map[string]any) store.Integration {
	t.Helper()
	in := createIntegration(t, s, owner, "Paced "+uuid.NewString()[:8])
	putConfig(t, s, in.ID, config.KeyCallHandling, callHandling)
	activate(t, s, in.ID)
	return in
}

// TestContactCapWaitsForTheOldestDial: with a cap of 2 dials in 7 days, a
// number's third call waits, set aside with one contact_cap hold, until
// the oldest of the two dials leaves the window; another number is not
// held.
func TestContactCapWaitsForTheOldestDial(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := pacedIntegration(t, s, "owner-caps", map[string]any{"concurrency_limit": 10,
		"contact_caps": []map[string]any{{"max_dials": 2, "days": 7}}})
	call := func(phone string, at time.Time) uuid.UUID {
		c := store.NewCall{ID: uuid.New(), IntegrationID: in.ID, PhoneNumber: phone, ReceivedAt: at}
		insert(t, s, at, c)
		return c.ID
	}
	call("+380501110001", t0)
	if got := claim(t, s, in.ID, t0); len(got) != 1 {
		t.Fatalf("first claim: %v", got)
	}
	second := t0.Add(24 * time.Hour)
	call("+380501110001", second)
	if got := claim(t, s, in.ID, second); len(got) != 1 {
		t.Fatalf("second claim: %v", got)
	}
	third := t0.Add(48 * time.Hour)
	held := call("+380501110001", third)
	other := call("+380501110002", third)
	res, err := s.Claim(t.Context(), in.ID, third, nil)
	if err != nil || len(res.Calls) != 1 || res.Calls[0].Call.ID != other || res.Holds[pacing.ContactCap] != 1 {
		t.Fatalf("third claim: %+v holds %v %v; want only the other number's call", res.Calls, res.Holds, err)
	}
	var notBefore *time.Time
	if err := s.Pool().QueryRow(t.Context(), `SELECT not_before FROM calls WHERE id = $1`, held).Scan(&notBefore); err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(7 * 24 * time.Hour); notBefore == nil || !notBefore.Equal(want) {
		t.Fatalf("held call waits until %v, want %s (the first dial leaves the window)", notBefore, want)
	}
	if h := holds(t, s, held); len(h) != 1 || h[0] != string(pacing.ContactCap) {
		t.Fatalf("holds = %v, want one contact_cap", h)
	}
}

// TestContactCapsUnderConcurrentClaims is a property test: random
// schedules of calls to a few numbers, on two integrations of one owner
// with owner-wide caps, claimed by eight concurrent claimers (as many
// replicas), never dial a number more often than its caps allow — not
// even two claims at the same instant on two replicas.
func TestContactCapsUnderConcurrentClaims(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 9))
		caps := []map[string]any{{"max_dials": 1, "days": 1}, {"max_dials": 2, "days": 7}}
		rules := map[string]any{"concurrency_limit": 1000, "contact_caps": caps, "contact_caps_scope": "owner"}
		owner := fmt.Sprintf("owner-prop-%d", seed)
		ins := []store.Integration{pacedIntegration(t, s, owner, rules), pacedIntegration(t, s, owner, rules)}
		phones := make([]string, 2+rng.IntN(3))
		for i := range phones {
			phones[i] = fmt.Sprintf("+38067%03d%04d", seed, i)
		}
		// Four rounds a day apart; each queues random calls, then the
		// claimers race for them at the same instant.
		var dials [][2]any // phone, at
		for round := range 4 {
			at := t0.Add(time.Duration(round) * 25 * time.Hour)
			var calls []store.NewCall
			for range 5 + rng.IntN(10) {
				calls = append(calls, store.NewCall{ID: uuid.New(), IntegrationID: ins[rng.IntN(2)].ID,
					PhoneNumber: phones[rng.IntN(len(phones))], ReceivedAt: at})
			}
			insert(t, s, at, calls...)
			var (
				mu sync.Mutex
				wg sync.WaitGroup
			)
			for w := range 8 {
				wg.Go(func() {
					for range 3 {
						got, err := s.ClaimCalls(t.Context(), ins[w%2].ID, at, nil)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						for _, c := range got {
							dials = append(dials, [2]any{c.Call.PhoneNumber, at})
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
		}
		// Judge every dial against the caps over every dial before it.
		for i, d := range dials {
			phone, at := d[0].(string), d[1].(time.Time)
			day, week := 0, 0
			for _, e := range dials[:i] {
				if e[0] != phone {
					continue
				}
				if ago := at.Sub(e[1].(time.Time)); ago < 24*time.Hour {
					day++
				} else if ago < 7*24*time.Hour {
					week++
				}
			}
			if day >= 1 || day+week >= 2 {
				t.Fatalf("seed %d: %s dialled at %s after %d dials that day and %d more that week: caps 1/1 and 2/7",
					seed, phone, at, day, week)
			}
		}
		if len(dials) < len(phones) {
			t.Fatalf("seed %d: %d dials for %d numbers: the caps held back calls they allow", seed, len(dials), len(phones))
		}
	}
}

// TestDialRateOnTheDatabaseClock: a replica whose clock runs 40 s ahead
// claims and originates from the same buckets as the others: judged on
// its own clock they looked 40 s fuller, and it dialled a burst the rate
// did not allow.
func TestDialRateOnTheDatabaseClock(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "dial_rate": map[string]any{"per_second": 0.25, "burst": 2}})
	queueCalls(t, s, in.ID, 5, t0)
	s.SetDatabaseClock(func() time.Time { return t0 })

	first, err := s.Claim(t.Context(), in.ID, t0, nil)
	if err != nil || len(first.Calls) != 2 {
		t.Fatalf("first claim: %d calls, %v; want the burst of 2", len(first.Calls), err)
	}
	for _, c := range first.Calls {
		if v, _, _, err := s.ConfirmDial(t.Context(), c, t0, 0); err != nil || v != store.DialGo {
			t.Fatalf("confirm: %s %v", v, err)
		}
	}
	ahead := t0.Add(40 * time.Second)
	if again, err := s.Claim(t.Context(), in.ID, ahead, nil); err != nil || len(again.Calls) != 0 {
		t.Fatalf("a replica 40 s ahead claimed %d calls (%v) in the second the burst was spent", len(again.Calls), err)
	}
	v, due, _, err := s.ConfirmDial(t.Context(), first.Calls[0], ahead, 0)
	if err != nil || v != store.DialRateWait {
		t.Fatalf("a replica 40 s ahead confirmed an originate: %s %v; want a wait", v, err)
	}
	// The wait is told on the replica's own clock: 4 s (one token at
	// 0.25/s) from its now.
	if want := ahead.Add(4 * time.Second); !due.Equal(want) {
		t.Fatalf("wait until %s, want %s on the replica's clock", due, want)
	}
}

// TestDialNotSentDoesNotCount: a claimed dial that is not sent (the
// database failed before the originate, or the call was cancelled or its
// window closed under the confirmation) is no dial: it counts neither
// toward the number's contact cap nor toward its caller number's limits.
func TestDialNotSentDoesNotCount(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := pacedIntegration(t, s, "owner-unsent", map[string]any{"concurrency_limit": 10,
		"contact_caps": []map[string]any{{"max_dials": 1, "days": 1}}})
	c := store.NewCall{ID: uuid.New(), IntegrationID: in.ID, PhoneNumber: "+380501110009", ReceivedAt: t0}
	insert(t, s, t0, c)
	got, err := s.ClaimCalls(t.Context(), in.ID, t0, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("first claim: %v, %v", got, err)
	}
	abort := store.CallEvent{IntegrationID: in.ID, CallID: c.ID, Attempt: got[0].Call.Attempt, Claim: got[0].Claim,
		Event: callstate.Event{Kind: callstate.DialAborted}, Detail: map[string]any{"error": "database unavailable"}, At: t0}
	if _, err := s.ApplyEvents(t.Context(), []store.CallEvent{abort}); err != nil {
		t.Fatal(err)
	}
	if again := claim(t, s, in.ID, t0.Add(time.Second)); len(again) != 1 {
		t.Errorf("the call whose dial was not sent is held by a cap of one dial a day: %v; holds %v", again, holds(t, s, c.ID))
	}
	var counted int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM contact_dials WHERE call_id = $1`, c.ID).Scan(&counted); err != nil {
		t.Fatal(err)
	}
	if counted != 1 {
		t.Errorf("%d dials of the call counted, want 1 (the one claimed again)", counted)
	}
}

// TestDialCancelledBeforeItsOriginateDoesNotCount: a claimed call
// cancelled before its originate is confirmed is not dialled, and the
// number's next call is not held by a cap of one dial a day.
func TestDialCancelledBeforeItsOriginateDoesNotCount(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const owner = "owner-cancelled-unsent"
	in := pacedIntegration(t, s, owner, map[string]any{"concurrency_limit": 10,
		"contact_caps": []map[string]any{{"max_dials": 1, "days": 1}}})
	first := store.NewCall{ID: uuid.New(), IntegrationID: in.ID, PhoneNumber: "+380501110010", ReceivedAt: t0}
	insert(t, s, t0, first)
	got, err := s.ClaimCalls(t.Context(), in.ID, t0, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("first claim: %v, %v", got, err)
	}
	if _, _, err := s.CancelCall(t.Context(), owner, first.ID, "", t0); err != nil {
		t.Fatal(err)
	}
	if verdict, _, _, err := s.ConfirmDial(t.Context(), got[0], t0, 0); err != nil || verdict != store.DialCancelled {
		t.Fatalf("confirmation of the cancelled call's dial: %s, %v", verdict, err)
	}
	next := store.NewCall{ID: uuid.New(), IntegrationID: in.ID, PhoneNumber: first.PhoneNumber, ReceivedAt: t0.Add(time.Second)}
	insert(t, s, t0.Add(time.Second), next)
	if again := claim(t, s, in.ID, t0.Add(2*time.Second)); len(again) != 1 {
		t.Errorf("the number's next call is held by a cap of one dial a day after a dial never sent: %v; holds %v", again, holds(t, s, next.ID))
	}
}
