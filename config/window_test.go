package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNextOpen(t *testing.T) {
	kyiv, ny := mustLoc(t, "Europe/Kyiv"), mustLoc(t, "America/New_York")
	weekdays := []int{1, 2, 3, 4, 5}
	day := &CallingWindow{Start: "09:00", End: "20:00", Days: weekdays}
	night := &CallingWindow{Start: "22:00", End: "06:00", Days: []int{5}} // Friday night into Saturday
	for _, tc := range []struct {
		name string
		w    *CallingWindow
		loc  *time.Location
		at   time.Time
		want time.Time
	}{
		{"open now", day, kyiv, time.Date(2026, 3, 4, 12, 0, 0, 0, kyiv), time.Date(2026, 3, 4, 12, 0, 0, 0, kyiv)},
		{"before opening", day, kyiv, time.Date(2026, 3, 4, 7, 30, 0, 0, kyiv), time.Date(2026, 3, 4, 9, 0, 0, 0, kyiv)},
		{"at closing: next day", day, kyiv, time.Date(2026, 3, 4, 20, 0, 0, 0, kyiv), time.Date(2026, 3, 5, 9, 0, 0, 0, kyiv)},
		{"friday evening: monday", day, kyiv, time.Date(2026, 3, 6, 21, 0, 0, 0, kyiv), time.Date(2026, 3, 9, 9, 0, 0, 0, kyiv)},
		// Kyiv moves to summer time on Sunday 29 March 2026 (03:00 → 04:00).
		{"DST spring forward: monday 09:00 summer time", day, kyiv, time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 30, 6, 0, 0, 0, time.UTC)},
		{"before DST: 09:00 winter time", day, kyiv, time.Date(2026, 3, 27, 5, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 27, 7, 0, 0, 0, time.UTC)},
		// New York returns to standard time on Sunday 1 November 2026.
		{"DST fall back", &CallingWindow{Start: "09:00", End: "20:00"}, ny, time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC)},
		{"start inside the spring gap", &CallingWindow{Start: "03:30", End: "05:00"}, kyiv,
			time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		{"across midnight: friday late", night, kyiv, time.Date(2026, 3, 6, 23, 0, 0, 0, kyiv), time.Date(2026, 3, 6, 23, 0, 0, 0, kyiv)},
		{"across midnight: saturday early", night, kyiv, time.Date(2026, 3, 7, 5, 59, 0, 0, kyiv), time.Date(2026, 3, 7, 5, 59, 0, 0, kyiv)},
		{"across midnight: saturday after close", night, kyiv, time.Date(2026, 3, 7, 6, 0, 0, 0, kyiv), time.Date(2026, 3, 13, 22, 0, 0, 0, kyiv)},
		{"across midnight: friday early is thursday's", night, kyiv, time.Date(2026, 3, 6, 3, 0, 0, 0, kyiv), time.Date(2026, 3, 6, 22, 0, 0, 0, kyiv)},
		{"nil window", nil, kyiv, time.Date(2026, 3, 6, 3, 0, 0, 0, kyiv), time.Date(2026, 3, 6, 3, 0, 0, 0, kyiv)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.NextOpen(tc.at, tc.loc); !got.Equal(tc.want) {
				t.Fatalf("NextOpen(%s) = %s, want %s", tc.at, got, tc.want.In(tc.loc))
			}
		})
	}
}

// TestNextOpenSkipsExcludedDates: an excluded date is read in the
// window's zone (the same instant is a holiday in one zone and not in the
// other), closes every part of a window on it (also the part after
// midnight of a window that opened the day before), and days with a clock
// change open at their local start.
func TestNextOpenSkipsExcludedDates(t *testing.T) {
	kyiv, ny, la := mustLoc(t, "Europe/Kyiv"), mustLoc(t, "America/New_York"), mustLoc(t, "America/Los_Angeles")
	xmas := &CallingWindow{Start: "09:00", End: "20:00", ExcludeDates: []string{"2026-12-25"}}
	newYear := &CallingWindow{Start: "09:00", End: "20:00", ExcludeDates: []string{"2026-12-31", "2027-01-01"}}
	night := &CallingWindow{Start: "22:00", End: "06:00", ExcludeDates: []string{"2026-03-07"}}
	// Sunday 1 November 2026 New York falls back; Monday 2 is a holiday.
	fallBack := &CallingWindow{Start: "09:00", End: "20:00", ExcludeDates: []string{"2026-11-01", "2026-11-02"}}
	// Kyiv springs forward on Sunday 29 March 2026; Friday 27 to Sunday are excluded.
	springGap := &CallingWindow{Start: "09:00", End: "20:00", Days: []int{1, 2, 3, 4, 5}, ExcludeDates: []string{"2026-03-27", "2026-03-30"}}
	for _, tc := range []struct {
		name string
		w    *CallingWindow
		loc  *time.Location
		at   time.Time
		want time.Time
	}{
		{"on the date: the next day", xmas, kyiv, time.Date(2026, 12, 25, 12, 0, 0, 0, kyiv), time.Date(2026, 12, 26, 9, 0, 0, 0, kyiv)},
		{"the evening before: the day after", xmas, kyiv, time.Date(2026, 12, 24, 20, 30, 0, 0, kyiv), time.Date(2026, 12, 26, 9, 0, 0, 0, kyiv)},
		{"the day before: open", xmas, kyiv, time.Date(2026, 12, 24, 12, 0, 0, 0, kyiv), time.Date(2026, 12, 24, 12, 0, 0, 0, kyiv)},
		// 25 December 06:00 UTC is 08:00 in Kyiv (Christmas) but 22:00 on
		// the 24th in Los Angeles: there it is not a holiday yet.
		{"same instant, other zone: not yet the date", &CallingWindow{Start: "09:00", End: "23:00", ExcludeDates: []string{"2026-12-25"}}, la,
			time.Date(2026, 12, 25, 6, 0, 0, 0, time.UTC), time.Date(2026, 12, 25, 6, 0, 0, 0, time.UTC)},
		{"same instant, Kyiv: the date", &CallingWindow{Start: "07:00", End: "23:00", ExcludeDates: []string{"2026-12-25"}}, kyiv,
			time.Date(2026, 12, 25, 6, 0, 0, 0, time.UTC), time.Date(2026, 12, 26, 7, 0, 0, 0, kyiv)},
		{"two dates in a row", newYear, ny, time.Date(2026, 12, 30, 21, 0, 0, 0, ny), time.Date(2027, 1, 2, 9, 0, 0, 0, ny)},
		{"across midnight: the part on the date is closed", night, kyiv, time.Date(2026, 3, 6, 23, 30, 0, 0, kyiv), time.Date(2026, 3, 6, 23, 30, 0, 0, kyiv)},
		{"across midnight: after midnight on the date", night, kyiv, time.Date(2026, 3, 7, 1, 0, 0, 0, kyiv), time.Date(2026, 3, 8, 0, 0, 0, 0, kyiv)},
		{"DST fall back then a holiday: tuesday 09:00 standard time", fallBack, ny, time.Date(2026, 10, 31, 23, 0, 0, 0, ny),
			time.Date(2026, 11, 3, 14, 0, 0, 0, time.UTC)},
		{"DST spring forward over excluded days: tuesday 09:00 summer time", springGap, kyiv, time.Date(2026, 3, 26, 21, 0, 0, 0, kyiv),
			time.Date(2026, 3, 31, 6, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.NextOpen(tc.at, tc.loc); !got.Equal(tc.want) {
				t.Fatalf("NextOpen(%s) = %s, want %s", tc.at.In(tc.loc), got.In(tc.loc), tc.want.In(tc.loc))
			}
			if open := tc.w.NextOpen(tc.at, tc.loc).Equal(tc.at); open != (&CallingWindow{Timezone: tc.loc.String(), Start: tc.w.Start,
				End: tc.w.End, Days: tc.w.Days, ExcludeDates: tc.w.ExcludeDates}).Open(tc.at) {
				t.Fatalf("Open(%s) disagrees with NextOpen", tc.at)
			}
		})
	}
}

func TestNextOpenInTakesTheLatestZone(t *testing.T) {
	adelaide, perth := mustLoc(t, "Australia/Adelaide"), mustLoc(t, "Australia/Perth")
	w := &CallingWindow{Start: "09:00", End: "20:00"}
	// 09:00 in Adelaide is 06:30 in Perth: Perth's window opens last.
	at := time.Date(2026, 6, 10, 9, 0, 0, 0, adelaide)
	want := time.Date(2026, 6, 10, 9, 0, 0, 0, perth)
	if got := w.NextOpenIn(at, []*time.Location{adelaide, perth}); !got.Equal(want) {
		t.Fatalf("NextOpenIn = %s, want %s", got, want)
	}
}

func TestOverlayLeavesTheBaseAlone(t *testing.T) {
	base := Defaults()[KeyCallHandling].(CallHandling)
	got, err := base.Overlay(json.RawMessage(`{"max_attempts": 5, "retry_delays_secs": [60],
		"calling_window": {"timezone": "recipient", "start": "09:00", "end": "20:00"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxAttempts != 5 || got.RetryDelaysSecs[0] != 60 || !got.CallingWindow.ForRecipient() || got.ConcurrencyLimit != base.ConcurrencyLimit {
		t.Fatalf("overlay = %+v", got)
	}
	if base.RetryDelaysSecs[0] != 300 || base.MaxAttempts != 3 || base.CallingWindow != nil {
		t.Fatalf("base changed: %+v", base)
	}
	if err := ValidateCallHandling(got); err != nil {
		t.Fatalf("recipient window refused: %v", err)
	}
	bad, _ := base.Overlay(json.RawMessage(`{"calling_window": {"timezone": "Mars/Base", "start": "09:00", "end": "20:00"}}`))
	var fe *FieldError
	if err := ValidateCallHandling(bad); !errors.As(err, &fe) || fe.Field != "calling_window.timezone" {
		t.Fatalf("bad zone: %v", err)
	}
}

// TestOverlayReplacesWhole: a campaign's calling window or retry policy
// replaces the integration's as a whole (contract §6): a window without
// days is every day, a retry rule without delays uses retry_delays_secs,
// and an outcome the campaign's policy leaves out has no rule of its own.
func TestOverlayReplacesWhole(t *testing.T) {
	var base CallHandling
	if err := json.Unmarshal([]byte(`{"max_attempts": 5, "retry_delays_secs": [300],
		"calling_window": {"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": [1,2,3,4,5]},
		"retry_policy": {"no_answer": {"max_attempts": 4, "delays_secs": [1800]}, "busy": {"max_attempts": 2, "delays_secs": [60]}}}`),
		&base); err != nil {
		t.Fatal(err)
	}
	got, err := base.Overlay(json.RawMessage(`{"calling_window": {"timezone": "Europe/Kyiv", "start": "10:00", "end": "18:00"},
		"retry_policy": {"no_answer": {"max_attempts": 3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := got.CallingWindow; w.Start != "10:00" || len(w.Days) != 0 {
		t.Errorf("campaign window = %+v, want 10:00–18:00 on every day", w)
	}
	if r := got.RetryPolicy.Rule(OutcomeNoAnswer); r == nil || r.MaxAttempts != 3 || len(r.DelaysSecs) != 0 {
		t.Errorf("campaign no_answer rule = %+v, want max 3 without delays of its own", r)
	}
	if r := got.RetryPolicy.Rule(OutcomeBusy); r != nil {
		t.Errorf("the integration's busy rule %+v applies to the campaign", r)
	}
	if got.MaxAttempts != 5 || got.RetryDelaysSecs[0] != 300 {
		t.Errorf("fields the campaign leaves out: %+v", got)
	}
	if len(base.CallingWindow.Days) != 5 || base.RetryPolicy.Rule(OutcomeBusy) == nil {
		t.Errorf("base changed: %+v", base)
	}
}

// TestLocalTimezoneRefused: "Local" (this machine's zone) is not a zone a
// window or an agent may name: it would depend on each server.
func TestLocalTimezoneRefused(t *testing.T) {
	var fe *FieldError
	for key, raw := range map[string]string{
		KeyCallHandling: `{"calling_window": {"timezone": "Local", "start": "09:00", "end": "20:00"}}`,
		KeyAgent:        `{"timezone": "Local"}`,
	} {
		if _, err := Normalize(key, json.RawMessage(raw)); !errors.As(err, &fe) || !strings.Contains(fe.Field, "timezone") {
			t.Errorf("%s with Local: %v, want a timezone field error", key, err)
		}
	}
}
