package service_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
)

// The integration's pacing rules in the soak (docs/pacing.md), in the
// service's clock, which runs soakSpeed times faster than the wall clock.
const (
	// soakDialRate and soakDialBurst are call_handling.dial_rate: a
	// token every 4 s of the service's clock, 2 at once.
	soakDialRate  = 0.25
	soakDialBurst = 2
	// soakCapDials in soakCapDays is the contact cap: a call's third
	// attempt waits a day, so the operator lifts the cap when the faults
	// stop.
	soakCapDials = 2
	soakCapDays  = 1
	// soakZone is where the campaigns' calling windows are read.
	soakZone = "Europe/Kyiv"
	// soakCallers numbers make the caller pool, each with one live call
	// and one dial in soakCallerEvery of the service's clock (per_second
	// 0.1): together as many calls as the integration's limit, and more
	// dials a second than its dial rate, so that they bind now and then.
	soakCallers     = soakLimit
	soakCallerEvery = 10 * time.Second
)

// How long after pacing is turned on again a dial is still not judged by
// it. The dial rate is read afresh by each confirmation, so only dials in
// flight are spared; a caller number's per_second is the one its claim
// took, and a pre-dial check or a Postgres outage can hold a claim that
// long before its confirmation.
const (
	soakRepacedRateMargin   = time.Second
	soakRepacedNumberMargin = 30 * time.Second
)

// soakVoice is the integration's voice config: the VA, dialling from a
// pool of caller numbers, each with a per_second unless paced is false.
func soakVoice(vaURL string, paced bool) map[string]any {
	pool := make([]any, soakCallers)
	for i := range pool {
		number := map[string]any{"number": soakCallerNumber(i), "sip_id": fmt.Sprintf("sip-%d", i+1), "concurrency_limit": 1}
		if paced {
			number["per_second"] = 1 / soakCallerEvery.Seconds()
		}
		pool[i] = number
	}
	return map[string]any{"provider": "va", "base_url": vaURL, "sip_id": "sip-1", "assistant_id": "asst-1",
		"caller_ids": pool, "caller_id_strategy": "round_robin"}
}

func soakCallerNumber(i int) string { return fmt.Sprintf("+38044100000%d", i+1) }

// soakPacing is the integration's pacing rules as call_handling sets them.
func soakPacing() map[string]any {
	return map[string]any{"dial_rate": map[string]any{"per_second": soakDialRate, "burst": soakDialBurst},
		"contact_caps": []any{map[string]any{"max_dials": soakCapDials, "days": soakCapDays}}}
}

// soakDial is one originate as the VA received it: when, by the VA's own
// clocks (the world's, which the service's runs on, and the wall's).
type soakDial struct {
	callID, phone, caller string
	at, wall              time.Time
}

func (d soakDial) String() string {
	return fmt.Sprintf("%s to %s from %s at %s", d.callID, d.phone, d.caller, d.at.Format("15:04:05.000"))
}

// soakExclusion is a campaign's calling window that excluded date from
// when its PATCH was answered until another window change was sent.
type soakExclusion struct {
	date        string
	from, until time.Time // wall clock; until zero while in force
}

// originateSameNumber queues a new call for a number called before: the
// contact cap counts every dial to it.
func (w *soakWorld) originateSameNumber() {
	var keys []string
	for k := range w.originated {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	var n int
	if _, err := fmt.Sscanf(keys[w.rng.IntN(len(keys))], "soak-%d", &n); err != nil {
		return // not a numbered originate
	}
	key := fmt.Sprintf("soak-same-%d", w.sameNumber)
	w.sameNumber++
	id, err := w.c.originateRetrying(fmt.Sprintf("+38063%07d", n), key)
	if err != nil {
		w.mu.Lock()
		w.unacked++
		w.mu.Unlock()
		return
	}
	w.originated[key] = id
	w.fault("originate_same_number")
}

// excludedToday is a calling window open all day but for today's date in
// soakZone, by the service's clock.
func (w *soakWorld) excludedToday() (map[string]any, string) {
	zone, err := time.LoadLocation(soakZone)
	if err != nil {
		w.t.Fatal(err)
	}
	today := w.c.env.Clock.Now().In(zone).Format(time.DateOnly)
	return map[string]any{"timezone": soakZone, "start": "00:00", "end": "23:59", "exclude_dates": []string{today}}, today
}

// callHandling is the integration's call_handling as the operator has
// left it: without the contact cap once lifted, without the dial rate
// while pacing is off.
func (w *soakWorld) callHandling() map[string]any {
	handling := map[string]any{}
	for k, v := range w.c.opt.CallHandling {
		if k == "contact_caps" && !w.capsLifted.IsZero() || k == "dial_rate" && w.unpaced != nil {
			continue
		}
		handling[k] = v
	}
	return handling
}

// liftCaps is what the operator does when the faults stop: the contact cap
// is lifted so that the calls it holds for a day can finish.
func (w *soakWorld) liftCaps() {
	w.capsLifted = time.Now()
	if code := w.retryAdmin("PUT", "/api/integrations/"+w.c.integ.ID.String()+"/config/call_handling", w.callHandling(), nil); code != http.StatusOK {
		w.t.Fatalf("lift the contact cap: %d", code)
	}
}

// soakSpan is a stretch of the wall clock; until is zero while it lasts.
type soakSpan struct{ from, until time.Time }

// togglePacing is the operator turning the dial rate and the caller
// numbers' per_second off, or back on. While they are off an originate is
// confirmed in one round trip outside a transaction (store's
// confirmUnlimited), beside every other fault; around each change, claims
// taken under one setting are confirmed under the other. An answer that
// never came leaves pacing off in the model (its checks judge less).
func (w *soakWorld) togglePacing() {
	integ := "/api/integrations/" + w.c.integ.ID.String()
	if w.unpaced == nil {
		w.unpaced = &soakSpan{from: time.Now()}
		w.unpacedSpans = append(w.unpacedSpans, w.unpaced)
		if w.retryAdmin("PUT", integ+"/config/call_handling", w.callHandling(), nil) == http.StatusOK &&
			w.retryAdmin("PUT", integ+"/config/voice", soakVoice(w.c.va.URL, false), nil) == http.StatusOK {
			w.fault("pacing_off")
		}
		return
	}
	span := w.unpaced
	w.unpaced = nil
	if w.retryAdmin("PUT", integ+"/config/voice", soakVoice(w.c.va.URL, true), nil) != http.StatusOK ||
		w.retryAdmin("PUT", integ+"/config/call_handling", w.callHandling(), nil) != http.StatusOK {
		w.unpaced = span // unsure: judged as still off
		return
	}
	span.until = time.Now()
	w.fault("pacing_on")
}

// unpacedDial reports whether d may have been judged by pacing that was off:
// it reached the VA after pacing was turned off and before margin had
// passed since it was on again.
func (w *soakWorld) unpacedDial(d soakDial, margin time.Duration) bool {
	for _, s := range w.unpacedSpans {
		if !d.wall.Before(s.from) && (s.until.IsZero() || d.wall.Before(s.until.Add(margin))) {
			return true
		}
	}
	return false
}

// checkPacing judges the VA's ledger against the pacing rules: no more
// originates in any second than burst + per_second, no number dialled
// more often than the cap allows within its window while the cap held,
// and no call of a campaign dialled on a date its window excluded.
func (w *soakWorld) checkPacing() {
	t := w.t
	all := w.va.dials()
	slices.SortFunc(all, func(a, b soakDial) int { return a.at.Compare(b.at) })
	// The dial rate and the numbers' per_second judge the dials made while
	// they were on; the contact cap, the pool and the windows judge all.
	dials := slices.DeleteFunc(slices.Clone(all), func(d soakDial) bool { return w.unpacedDial(d, soakRepacedRateMargin) })
	most := int(math.Floor(soakDialBurst + soakDialRate))
	worst := 0
	for i := range dials {
		j := i
		for j < len(dials) && dials[j].at.Sub(dials[i].at) < time.Second {
			j++
		}
		worst = max(worst, j-i)
		if j-i > most {
			t.Errorf("the VA received %d originates within a second from %s (service clock; at most %d with dial_rate %v/s, burst %d): %v",
				j-i, dials[i].at.Format(time.RFC3339Nano), most, soakDialRate, soakDialBurst, dials[i:j])
		}
	}

	capped := map[string][]soakDial{}
	for _, d := range all {
		if d.wall.Before(w.capsLifted) {
			capped[d.phone] = append(capped[d.phone], d)
		}
	}
	window := soakCapDays * 24 * time.Hour
	over := 0
	for phone, ds := range capped {
		for i := range ds {
			in := 0
			for _, d := range ds[:i+1] {
				if ds[i].at.Sub(d.at) < window {
					in++
				}
			}
			if in > soakCapDials {
				over++
				t.Errorf("%s dialled %d times within %d day(s) while the cap of %d held: %v", phone, in, soakCapDays, soakCapDials, ds[:i+1])
			}
		}
	}

	// Each caller number: no two originates closer than its per_second
	// allows. Judged at half the window: an originate reaches the VA a
	// few milliseconds of the wall clock after its confirmation, which
	// the service's clock runs through soakSpeed times faster.
	for _, d := range all {
		if d.caller == "" {
			t.Errorf("%s was dialled from no number of the pool", d)
		}
	}
	byCaller := map[string][]soakDial{}
	for _, d := range dials {
		if !w.unpacedDial(d, soakRepacedNumberMargin) {
			byCaller[d.caller] = append(byCaller[d.caller], d)
		}
	}
	closest := time.Duration(math.MaxInt64)
	for caller, ds := range byCaller {
		for i := 1; i < len(ds); i++ {
			gap := ds[i].at.Sub(ds[i-1].at)
			closest = min(closest, gap)
			if gap < soakCallerEvery/2 {
				t.Errorf("caller number %s dialled twice %v apart (service clock; one dial in %v allowed): %v, %v",
					caller, gap, soakCallerEvery, ds[i-1], ds[i])
			}
		}
	}

	zone, err := time.LoadLocation(soakZone)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uuid.UUID]*soakCampaign{}
	for _, cp := range w.campaigns {
		byID[cp.id] = cp
	}
	campaignOf := map[uuid.UUID]*soakCampaign{}
	rows, err := w.c.env.Store.Pool().Query(context.Background(), `SELECT id, campaign_id FROM calls
		WHERE integration_id = $1 AND campaign_id IS NOT NULL`, w.c.integ.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, campaign uuid.UUID
		if err := rows.Scan(&id, &campaign); err != nil {
			t.Fatal(err)
		}
		campaignOf[id] = byID[campaign]
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	judged := 0
	for _, d := range all {
		id, _, ok := callstate.ParseAttemptCallID(d.callID)
		cp := campaignOf[id]
		if !ok || cp == nil {
			continue
		}
		local := d.at.In(zone)
		for _, ex := range cp.excludes {
			// A dial let go just before the window changed may arrive just
			// after; a skewed replica's day starts 40 s off.
			if !d.wall.After(ex.from.Add(time.Second)) || !ex.until.IsZero() && !d.wall.Before(ex.until) {
				continue
			}
			judged++
			midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, zone)
			nearMidnight := local.Sub(midnight) < time.Minute || midnight.Add(24*time.Hour).Sub(local) < time.Minute
			if local.Format(time.DateOnly) == ex.date && !nearMidnight {
				t.Errorf("campaign %s: %s dialled at %s, a date its calling window excluded", cp.id, d.callID, local.Format(time.RFC3339))
			}
		}
	}
	t.Logf("pacing: %d originates, %d of them while pacing was off (%d spans), at most %d within a second (%d allowed); %d numbers dialled while the cap held; %d dials of campaigns with an excluded date judged; %d caller numbers, their closest two dials %v apart",
		len(all), len(all)-len(dials), len(w.unpacedSpans), worst, most, len(capped), judged, len(byCaller), closest)
}
