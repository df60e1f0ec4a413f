package config

import (
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
// spring-forward gap opens when the gap ends). A nil window is always open.
func (w *CallingWindow) NextOpen(t time.Time, loc *time.Location) time.Time {
	if w == nil {
		return t
	}
	startH, startM := clockOf(w.Start)
	endH, endM := clockOf(w.End)
	local := t.In(loc)
	// Start the day before: yesterday's window may run past midnight.
	for day := -1; day <= 8; day++ {
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
		switch {
		case !t.Before(opens) && t.Before(closes):
			return t
		case opens.After(t):
			return opens
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
	horizon := t.Add(8 * 24 * time.Hour)
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
