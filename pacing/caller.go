package pacing

import (
	"slices"
	"sync"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/phone"
)

// Caller number pools (contract §9): each dial takes one number of
// voice.caller_ids by the integration's strategy, never one at any of its
// own limits.

// CallerUsage is what one caller number has done, as the claim counted it
// (its own dials of this claim included).
type CallerUsage struct {
	// Live is how many calls dialled from it hold a slot.
	Live int
	// Hour and Day count its dials in the last hour and 24 hours;
	// HourOldest and DayOldest are the oldest of them.
	Hour, Day             int
	HourOldest, DayOldest time.Time
	// Recent are its dials within its per_second window.
	Recent []time.Time
	// Seq orders the numbers by their last dial (0: never dialled): the
	// lowest goes next among equals, so ties go round-robin.
	Seq int64
}

// Recipient is what the choice knows of the number dialled.
type Recipient struct {
	Locality phone.Locality
	// DialledFrom are the pool numbers it was dialled from before, with
	// the time of the last dial from each.
	DialledFrom map[string]time.Time
	// Retry: the call was dialled before (attempt > 1).
	Retry bool
}

// CallerChoice is the number a dial takes, or why it waits.
type CallerChoice struct {
	// Index is the number's place in the pool; -1 when none may be taken.
	Index int
	// Until is when a number the call may take is due to come free of a
	// rolling window; zero when only a live call ending frees one (the slot's
	// release kicks the dispatcher).
	Until time.Time
	// PoolBusy: every number of the pool is at a limit, so no call of the
	// integration can be dialled now (not only this one).
	PoolBusy bool
}

// PickCaller chooses the number of pool for a dial to r at now, by
// strategy (config.CallerLocal and the others). usage is each number's,
// in pool order. Among the numbers not at a limit it prefers, in turn: a
// number r has not been dialled from (rotate, on a retry); the best
// locality (local); the fewest dials in the last hour (least_used); the
// least recently used (every strategy's tie-break, hence round_robin).
// Sticky takes the number r was last dialled from while it is in the pool
// (waiting for it when it is at a limit), unless a rotating retry asks for
// another.
func PickCaller(pool []config.CallerID, usage []CallerUsage, strategy string, rotate bool, r Recipient, now time.Time) CallerChoice {
	sticky := -1
	if strategy == config.CallerSticky && !(rotate && r.Retry) {
		var last time.Time
		for i, c := range pool {
			if at, ok := r.DialledFrom[c.Number]; ok && at.After(last) {
				sticky, last = i, at
			}
		}
	}
	best, anyFree := -1, false
	var bestKey [4]int64
	for i, c := range pool {
		if !Free(c, usage[i], now) {
			continue
		}
		anyFree = true
		if sticky >= 0 && i != sticky {
			continue
		}
		key := [4]int64{0, 0, 0, usage[i].Seq}
		if _, used := r.DialledFrom[c.Number]; rotate && r.Retry && used {
			key[0] = 1
		}
		if strategy == config.CallerLocal {
			key[1] = int64(localityTier(r.Locality, Locality(c.Number)))
		}
		if strategy == config.CallerLeastUsed {
			key[2] = int64(usage[i].Hour)
		}
		if best < 0 || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey = i, key
		}
	}
	if best >= 0 {
		return CallerChoice{Index: best}
	}
	choice := CallerChoice{Index: -1, PoolBusy: !anyFree}
	for i, c := range pool {
		if sticky >= 0 && i != sticky {
			continue
		}
		if at := FreeAt(c, usage[i], now); !at.IsZero() && (choice.Until.IsZero() || at.Before(choice.Until)) {
			choice.Until = at
		}
	}
	return choice
}

// Free reports whether a dial from c at now stays within every one of its
// limits.
func Free(c config.CallerID, u CallerUsage, now time.Time) bool {
	if c.ConcurrencyLimit > 0 && u.Live >= c.ConcurrencyLimit ||
		c.MaxPerHour > 0 && u.Hour >= c.MaxPerHour ||
		c.MaxPerDay > 0 && u.Day >= c.MaxPerDay {
		return false
	}
	window, dials := c.PerSecondWindow()
	return dials == 0 || recentWithin(u.Recent, now, window) < dials
}

// FreeAt is when c, at a limit, comes free of its rolling windows (the
// oldest counted dial leaving it); zero when a live call must end first.
func FreeAt(c config.CallerID, u CallerUsage, now time.Time) time.Time {
	if c.ConcurrencyLimit > 0 && u.Live >= c.ConcurrencyLimit {
		return time.Time{}
	}
	var at time.Time
	later := func(t time.Time) {
		if t.After(at) {
			at = t
		}
	}
	if c.MaxPerHour > 0 && u.Hour >= c.MaxPerHour {
		later(u.HourOldest.Add(time.Hour))
	}
	if c.MaxPerDay > 0 && u.Day >= c.MaxPerDay {
		later(u.DayOldest.Add(24 * time.Hour))
	}
	if window, dials := c.PerSecondWindow(); dials > 0 && recentWithin(u.Recent, now, window) >= dials {
		since := now.Add(-secs(window))
		var oldest time.Time
		for _, t := range u.Recent {
			if t.After(since) && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
		later(oldest.Add(secs(window)))
	}
	if !at.After(now) {
		return now
	}
	return at
}

// Use counts a dial from the number at now in u; seq is its place in the
// round-robin.
func (u *CallerUsage) Use(now time.Time, seq int64) {
	u.Live++
	u.Hour++
	u.Day++
	if u.HourOldest.IsZero() {
		u.HourOldest = now
	}
	if u.DayOldest.IsZero() {
		u.DayOldest = now
	}
	u.Recent = append(u.Recent, now)
	u.Seq = seq
}

func recentWithin(recent []time.Time, now time.Time, window float64) int {
	since, n := now.Add(-secs(window)), 0
	for _, t := range recent {
		if t.After(since) {
			n++
		}
	}
	return n
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// localityTier ranks a caller number for a recipient: 0 the same country
// and area code, 1 the same country, 2 any other.
func localityTier(recipient, caller phone.Locality) int {
	switch {
	case recipient.Country == "" || recipient.Country != caller.Country:
		return 2
	case recipient.AreaCode != "" && recipient.AreaCode == caller.AreaCode:
		return 0
	}
	return 1
}

// localities caches the pools' numbers' localities: a pool is read on
// every claim, and libphonenumber's parser is not cheap.
var localities = struct {
	sync.Mutex
	m map[string]phone.Locality
}{m: map[string]phone.Locality{}}

// localitiesMax bounds the cache (a few thousand pools' worth).
const localitiesMax = 100_000

// Locality is a caller number's locality, cached.
func Locality(number string) phone.Locality {
	localities.Lock()
	l, ok := localities.m[number]
	localities.Unlock()
	if ok {
		return l
	}
	l = phone.LocalityOf(number)
	localities.Lock()
	if len(localities.m) >= localitiesMax {
		clear(localities.m)
	}
	localities.m[number] = l
	localities.Unlock()
	return l
}
