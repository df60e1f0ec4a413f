package store_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
	"github.com/callqueue/callqueue/store"
)

// pooledIntegration is an active integration whose voice config has the
// given caller number pool and strategy.
func pooledIntegration(t *testing.T, s *store.Store, callHandling map[string]any, pool []map[string]any, voice map[string]any) store.Integration {
	t.Helper()
	in := activeIntegration(t, s, callHandling)
	v := maps.Clone(vaVoice)
	maps.Copy(v, voice)
	v["caller_ids"] = pool
	putConfig(t, s, in.ID, config.KeyVoice, v)
	return in
}

// queueCallTo queues one call to phone at at.
func queueCallTo(t *testing.T, s *store.Store, integ uuid.UUID, phone string, at time.Time) uuid.UUID {
	t.Helper()
	c := store.NewCall{ID: uuid.New(), IntegrationID: integ, PhoneNumber: phone, ReceivedAt: at}
	insert(t, s, at, c)
	return c.ID
}

// claimOne claims at now and returns the caller number of each call claimed.
func claimCallers(t *testing.T, s *store.Store, integ uuid.UUID, now time.Time) map[uuid.UUID]string {
	t.Helper()
	res, err := dbClockAt(s, now).Claim(t.Context(), integ, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uuid.UUID]string{}
	for _, c := range res.Calls {
		if c.Caller == nil || deref(c.Call.CallerID) != c.Caller.Number {
			t.Fatalf("claimed call %s: caller %+v, call's callerId %v", c.Call.ID, c.Caller, deref(c.Call.CallerID))
		}
		out[c.Call.ID] = c.Caller.Number
	}
	return out
}

const (
	sfNumber     = "+14155550100"
	nyNumber     = "+12125550100"
	londonNumber = "+442079460000"
)

// TestCallerLocal: with the local strategy a +1 415 recipient is dialled
// from the +1 415 number, a +44 one from the UK number, another +1 one
// from a US number and an unmatched one from any; the attempt, the dial's
// history entry and the call record the number, with its sip_id.
func TestCallerLocal(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := pooledIntegration(t, s, map[string]any{"concurrency_limit": 10}, []map[string]any{
		{"number": nyNumber, "sip_id": "ny"}, {"number": londonNumber, "sip_id": "uk"}, {"number": sfNumber, "sip_id": "sf"}}, nil)
	sf := queueCallTo(t, s, in.ID, "+14155559876", t0)
	uk := queueCallTo(t, s, in.ID, "+441612345678", t0)
	chicago := queueCallTo(t, s, in.ID, "+13125550199", t0)
	japan := queueCallTo(t, s, in.ID, "+81312345678", t0)

	res, err := dbClockAt(s, t0).Claim(t.Context(), in.ID, t0, nil)
	if err != nil || len(res.Calls) != 4 {
		t.Fatalf("claim: %d calls, %v", len(res.Calls), err)
	}
	got := map[uuid.UUID]*config.CallerID{}
	for _, c := range res.Calls {
		got[c.Call.ID] = c.Caller
	}
	for id, want := range map[uuid.UUID]string{sf: sfNumber, uk: londonNumber} {
		if got[id] == nil || got[id].Number != want {
			t.Errorf("call %s dialled from %+v, want %s", id, got[id], want)
		}
	}
	// Chicago has no number of its own: one of the country's (which one
	// depends on the round-robin of the calls before it).
	if got[chicago] == nil || got[chicago].Number != nyNumber && got[chicago].Number != sfNumber {
		t.Errorf("the Chicago call dialled from %+v, want a US number", got[chicago])
	}
	if got[sf] != nil && got[sf].SipID != "sf" {
		t.Errorf("the 415 number's sip_id = %q", got[sf].SipID)
	}
	if got[japan] == nil {
		t.Fatal("the unmatched recipient got no number")
	}
	// What the claim recorded.
	for id, c := range got {
		if n := deref(getCall(t, s, id).CallerID); n != c.Number {
			t.Errorf("call %s callerId %q, want %s", id, n, c.Number)
		}
		attempts, err := s.CallAttempts(t.Context(), id)
		if err != nil || len(attempts) != 1 || deref(attempts[0].CallerID) != c.Number {
			t.Errorf("call %s attempts %+v, %v", id, attempts, err)
		}
		rows, err := s.CallHistory(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(rows, func(r store.CallEventRow) bool { return r.Kind == string(callstate.Dial) }); i < 0 ||
			!jsonHas(rows[i].Detail, "callerId", c.Number) {
			t.Errorf("call %s history has no dial entry naming %s: %+v", id, c.Number, rows)
		}
		if n := countRows(t, s, `SELECT count(*) FROM contact_dials WHERE call_id = $1 AND caller_id = $2`, id, c.Number); n != 1 {
			t.Errorf("call %s: %d contact_dials rows with its caller id", id, n)
		}
	}
}

// TestCallerStrategies: round_robin takes each number in turn;
// least_used the one with the fewest dials in the last hour; sticky the
// number a recipient was dialled from before; rotate_on_retry a number the
// recipient has not been dialled from on a retry.
func TestCallerStrategies(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	pool := []map[string]any{{"number": nyNumber}, {"number": londonNumber}, {"number": sfNumber}}
	numbers := []string{nyNumber, londonNumber, sfNumber}
	one := map[string]any{"concurrency_limit": 100, "retry_delays_secs": []int{60}}

	t.Run("round_robin", func(t *testing.T) {
		in := pooledIntegration(t, s, one, pool, map[string]any{"caller_id_strategy": "round_robin"})
		var got []string
		for i := range 7 {
			at := t0.Add(time.Duration(i) * time.Minute)
			queueCallTo(t, s, in.ID, fmt.Sprintf("+1415555%04d", i), at)
			for _, n := range claimCallers(t, s, in.ID, at) {
				got = append(got, n)
			}
		}
		want := append(append(slices.Clone(numbers), numbers...), numbers[0])
		if !slices.Equal(got, want) {
			t.Fatalf("round robin dialled from %v, want %v", got, want)
		}
	})

	t.Run("least_used", func(t *testing.T) {
		in := pooledIntegration(t, s, one, pool, map[string]any{"caller_id_strategy": "least_used"})
		// The hour before: the New York number 3 dials, London 1, SF 2 (and
		// SF 5 more dials two hours ago, outside the hour).
		for n, k := range map[string]int{nyNumber: 3, londonNumber: 1, sfNumber: 2} {
			for i := range k {
				seedDial(t, s, in, n, t0.Add(-time.Duration(10+i)*time.Minute))
			}
		}
		for i := range 5 {
			seedDial(t, s, in, sfNumber, t0.Add(-2*time.Hour-time.Duration(i)*time.Minute))
		}
		var got []string
		for i := range 3 {
			at := t0.Add(time.Duration(i) * time.Second)
			queueCallTo(t, s, in.ID, fmt.Sprintf("+1415555%04d", i), at)
			for _, n := range claimCallers(t, s, in.ID, at) {
				got = append(got, n)
			}
		}
		// London (1), then London and SF tie at 2: SF was used longer ago.
		if want := []string{londonNumber, sfNumber, londonNumber}; !slices.Equal(got, want) {
			t.Fatalf("least used dialled from %v, want %v", got, want)
		}
	})

	t.Run("sticky", func(t *testing.T) {
		in := pooledIntegration(t, s, one, pool, map[string]any{"caller_id_strategy": "sticky"})
		first := queueCallTo(t, s, in.ID, "+14155551111", t0)
		firstFrom := claimCallers(t, s, in.ID, t0)[first]
		// Other recipients move the round-robin on.
		for i := range 2 {
			queueCallTo(t, s, in.ID, fmt.Sprintf("+1415555%04d", 2000+i), t0.Add(time.Second))
		}
		claimCallers(t, s, in.ID, t0.Add(time.Second))
		again := queueCallTo(t, s, in.ID, "+14155551111", t0.Add(time.Hour))
		if got := claimCallers(t, s, in.ID, t0.Add(time.Hour))[again]; got != firstFrom {
			t.Fatalf("the recipient's second call dialled from %s, the first from %s", got, firstFrom)
		}
	})

	t.Run("rotate_on_retry", func(t *testing.T) {
		in := pooledIntegration(t, s, one, pool, map[string]any{"caller_id_strategy": "local", "rotate_on_retry": true})
		id := queueCallTo(t, s, in.ID, "+14155553333", t0)
		var seen []string
		for attempt := range 3 {
			at := t0.Add(time.Duration(attempt) * 10 * time.Minute)
			if attempt > 0 {
				if _, err := dbClockAt(s, at).RequeueDue(t.Context(), in.ID, 10); err != nil {
					t.Fatal(err)
				}
			}
			from, ok := claimCallers(t, s, in.ID, at)[id]
			if !ok {
				t.Fatalf("attempt %d not claimed", attempt+1)
			}
			seen = append(seen, from)
			apply(t, s, store.CallEvent{IntegrationID: in.ID, CallID: id, At: at,
				Event: callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeNoAnswer}})
		}
		// The first is local (SF); each retry takes a number not used yet.
		if seen[0] != sfNumber || len(slices.Compact(slices.Sorted(slices.Values(seen)))) != 3 {
			t.Fatalf("attempts dialled from %v, want SF first, then each number once", seen)
		}
	})
}

// seedDial records a dial from caller at at, as an earlier claim would have.
func seedDial(t *testing.T, s *store.Store, in store.Integration, caller string, at time.Time) {
	t.Helper()
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO contact_dials (phone_key, dialled_at, integration_id, owner_id, call_id, attempt, caller_id)
		VALUES ('\x00', $1, $2, $3, $4, 1, $5)`, at, in.ID, in.OwnerID, uuid.New(), caller); err != nil {
		t.Fatal(err)
	}
}

// TestCallerLimitsUnderConcurrentClaims is a property test: random
// schedules of calls and hang-ups on an integration with a pool of three
// numbers with their own limits, claimed by eight concurrent claimers (as
// many replicas). No number ever has more live calls than its
// concurrency_limit, nor more dials in an hour or a day than its caps, nor
// more in a second than per_second; a call that finds every number at a
// limit stays queued with one caller_id hold.
func TestCallerLimitsUnderConcurrentClaims(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 21))
		pool := []config.CallerID{
			{Number: nyNumber, ConcurrencyLimit: 2},
			{Number: londonNumber, ConcurrencyLimit: 3, MaxPerHour: 4, MaxPerDay: 6},
			{Number: sfNumber, MaxPerHour: 3, PerSecond: 1},
		}
		var entries []map[string]any
		for _, c := range pool {
			entries = append(entries, map[string]any{"number": c.Number, "concurrency_limit": c.ConcurrencyLimit,
				"max_per_hour": c.MaxPerHour, "max_per_day": c.MaxPerDay, "per_second": c.PerSecond})
		}
		strategy := config.CallerIDStrategies[seed%uint64(len(config.CallerIDStrategies))]
		in := pooledIntegration(t, s, map[string]any{"concurrency_limit": 1000}, entries, map[string]any{"caller_id_strategy": strategy})
		limits := map[string]config.CallerID{}
		for _, c := range pool {
			limits[c.Number] = c
		}

		type dial struct {
			caller string
			at     time.Time
		}
		var (
			dials []dial
			live  = map[uuid.UUID]string{}
			held  = 0
		)
		// Rounds at random steps of seconds to hours; each queues calls,
		// hangs up some live ones, then the claimers race at one instant.
		at := t0
		for round := range 14 {
			at = at.Add([]time.Duration{500 * time.Millisecond, time.Second, 7 * time.Minute, 40 * time.Minute, 5 * time.Hour}[rng.IntN(5)])
			for range 1 + rng.IntN(6) {
				queueCallTo(t, s, in.ID, fmt.Sprintf("+1%03d555%04d", 200+rng.IntN(700), rng.IntN(10000)), at)
			}
			for id := range live {
				if rng.IntN(2) == 0 {
					apply(t, s, callEnd(in.ID, id, 60, at))
					delete(live, id)
				}
			}
			var (
				mu sync.Mutex
				wg sync.WaitGroup
			)
			dbClockAt(s, at)
			for range 8 {
				wg.Go(func() {
					res, err := s.Claim(t.Context(), in.ID, at, nil)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					held += res.Holds[pacing.CallerID]
					for _, c := range res.Calls {
						if c.Caller == nil {
							t.Errorf("call %s claimed without a caller number", c.Call.ID)
							continue
						}
						dials = append(dials, dial{c.Caller.Number, at})
						live[c.Call.ID] = c.Caller.Number
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			perNumber := map[string]int{}
			for _, n := range live {
				perNumber[n]++
			}
			for n, k := range perNumber {
				if c := limits[n]; c.ConcurrencyLimit > 0 && k > c.ConcurrencyLimit {
					t.Fatalf("seed %d round %d: %s has %d live calls, its concurrency_limit is %d", seed, round, n, k, c.ConcurrencyLimit)
				}
			}
		}
		for i, d := range dials {
			c := limits[d.caller]
			var second, hour, day int
			for _, e := range dials[:i+1] {
				if e.caller != d.caller {
					continue
				}
				ago := d.at.Sub(e.at)
				if ago < time.Second {
					second++
				}
				if ago < time.Hour {
					hour++
				}
				if ago < 24*time.Hour {
					day++
				}
			}
			if c.MaxPerHour > 0 && hour > c.MaxPerHour || c.MaxPerDay > 0 && day > c.MaxPerDay || c.PerSecond > 0 && second > int(c.PerSecond) {
				t.Fatalf("seed %d: %s dialled at %s with %d dials that second, %d that hour, %d that day: limits %+v",
					seed, d.caller, d.at, second, hour, day, c)
			}
		}
		if len(dials) < 10 || held == 0 {
			t.Fatalf("seed %d (%s): %d dials, %d caller_id holds; the schedule tests nothing", seed, strategy, len(dials), held)
		}
	}
}

// jsonHas reports whether the JSON object raw has key as the string want.
func jsonHas(raw []byte, key, want string) bool {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return false
	}
	v, ok := obj[key].(string)
	return ok && v == want
}

// TestCallerPerSecondAtTheOriginate: a number allowed one dial a second.
// Two calls are claimed 1.5 s apart; the second's originate goes at once,
// the first's is held up (a slow pre-dial check) until 0.1 s after it. The
// first must wait until a second after the second's originate, not go
// 0.1 s after it; once that second has passed it goes.
func TestCallerPerSecondAtTheOriginate(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	pool := []map[string]any{{"number": sfNumber, "per_second": 1}}
	in := pooledIntegration(t, s, map[string]any{"concurrency_limit": 10}, pool, nil)
	queueCallTo(t, s, in.ID, "+14155551001", t0)
	queueCallTo(t, s, in.ID, "+14155551002", t0)
	var claimed []store.Claimed // in the order of their claims
	for _, at := range []time.Time{t0, t0.Add(1500 * time.Millisecond)} {
		res, err := dbClockAt(s, at).Claim(t.Context(), in.ID, at, nil)
		if err != nil || len(res.Calls) != 1 {
			t.Fatalf("claim at %v: %d calls, %v", at.Sub(t0), len(res.Calls), err)
		}
		claimed = append(claimed, res.Calls[0])
	}
	confirm := func(c store.Claimed, at time.Time) (store.DialVerdict, time.Time) {
		t.Helper()
		verdict, due, _, err := dbClockAt(s, at).ConfirmDial(t.Context(), c, at, 0)
		if err != nil {
			t.Fatal(err)
		}
		return verdict, due
	}
	slow, prompt := claimed[0], claimed[1]
	sent := t0.Add(1600 * time.Millisecond)
	if v, _ := confirm(prompt, sent); v != store.DialGo {
		t.Fatalf("the second call's originate, the number's last dial 1.6 s before: %s", v)
	}
	v, due := confirm(slow, sent.Add(100*time.Millisecond))
	if want := sent.Add(time.Second); v != store.DialRateWait || !due.Equal(want) {
		t.Errorf("the first call's originate 0.1 s after the second's: %s until %v, want %s until %v", v, due, store.DialRateWait, want)
	}
	if v, _ := confirm(slow, sent.Add(time.Second+time.Millisecond)); v != store.DialGo {
		t.Errorf("the first call's originate a second after the second's: %s, want %s", v, store.DialGo)
	}
}
