package config

import (
	"iter"
	"slices"
	"strconv"
	"time"
)

// RecipientTimezone as a calling window's timezone evaluates the window in
// each recipient's own zone (contract §3).
const RecipientTimezone = "recipient"

// ValidTimezone reports whether name is an IANA zone name the service can
// load ("Local" and the empty name, which mean this machine's zone, are not).
func ValidTimezone(name string) bool {
	if name == "" || name == "Local" || len(name) > 64 {
		return false
	}
	_, err := Location(name)
	return err == nil
}

// ForRecipient reports whether the window is evaluated in each recipient's
// own time zone.
func (w *CallingWindow) ForRecipient() bool { return w != nil && w.Timezone == RecipientTimezone }

// NextOpen is the earliest moment at or after t when the window is open in
// loc: t itself when it is open now. The window's days are the ISO weekdays
// on which it opens, so a 22:00–06:00 window on Friday runs into Saturday
// morning. Times are built on the local calendar, so a day on which the
// clocks change still opens at its local start (a start inside a
// spring-forward gap opens when the gap ends). No moment of an excluded
// date (read in loc) is open. A nil window is always open.
func (w *CallingWindow) NextOpen(t time.Time, loc *time.Location) time.Time {
	if w == nil {
		return t
	}
	startH, startM := clockOf(w.Start)
	endH, endM := clockOf(w.End)
	local := t.In(loc)
	// Start the day before: yesterday's window may run past midnight. Each
	// excluded date can push the opening a day further.
	for day := -1; day <= 8+len(w.ExcludeDates); day++ {
		date := time.Date(local.Year(), local.Month(), local.Day()+day, 0, 0, 0, 0, loc)
		weekday := int(date.Weekday())
		if weekday == 0 {
			weekday = 7
		}
		if len(w.Days) > 0 && !slices.Contains(w.Days, weekday) {
			continue
		}
		opens := time.Date(date.Year(), date.Month(), date.Day(), startH, startM, 0, 0, loc)
		endDay := date.Day()
		if w.End <= w.Start {
			endDay++ // across midnight
		}
		closes := time.Date(date.Year(), date.Month(), endDay, endH, endM, 0, 0, loc)
		for from, to := range w.openParts(opens, closes, loc) {
			switch {
			case !t.Before(from) && t.Before(to):
				return t
			case from.After(t):
				return from
			}
		}
	}
	return t.Add(7 * 24 * time.Hour) // no day allowed: unreachable for a validated window
}

// NextOpenIn is NextOpen over several zones that may all be the
// recipient's: the latest of their openings, so that nobody is called
// before their window opens.
func (w *CallingWindow) NextOpenIn(t time.Time, zones []*time.Location) time.Time {
	next := t
	for _, loc := range zones {
		if at := w.NextOpen(t, loc); at.After(next) {
			next = at
		}
	}
	return next
}

// NextOpenInAll is the earliest moment at or after t when the window is
// open in every one of zones at once, and false when there is none within
// a week and a day (zones whose windows never overlap, such as the dozens
// of zones of a toll-free number).
func (w *CallingWindow) NextOpenInAll(t time.Time, zones []*time.Location) (time.Time, bool) {
	horizon := t.Add(time.Duration(8+len(w.ExcludeDates)) * 24 * time.Hour)
	for at := t; !at.After(horizon); {
		// Every moment before the latest next opening has some zone closed.
		next := at
		for _, loc := range zones {
			if o := w.NextOpen(at, loc); o.After(next) {
				next = o
			}
		}
		if next.Equal(at) {
			return at, true
		}
		at = next
	}
	return time.Time{}, false
}

func clockOf(hhmm string) (int, int) {
	if len(hhmm) != 5 {
		return 0, 0
	}
	h, _ := strconv.Atoi(hhmm[:2])
	m, _ := strconv.Atoi(hhmm[3:])
	return h, m
}

// openParts yields the parts of one opening [opens, closes) that fall on
// dates that are not excluded: the whole opening, or up to two parts when
// it runs past midnight.
func (w *CallingWindow) openParts(opens, closes time.Time, loc *time.Location) iter.Seq2[time.Time, time.Time] {
	return func(yield func(time.Time, time.Time) bool) {
		if len(w.ExcludeDates) == 0 {
			yield(opens, closes)
			return
		}
		for from := opens; from.Before(closes); {
			local := from.In(loc)
			midnight := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, loc)
			to := closes
			if midnight.Before(closes) {
				to = midnight
			}
			if !w.excluded(local) && !yield(from, to) {
				return
			}
			from = to
		}
	}
}
