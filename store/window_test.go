package store

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
)

// TestWindowOpensAtInTheRecipientsZone: with a 09:00–20:00 "recipient"
// window, a Kyiv, a New York and a Tokyo number are each dialled from 09:00
// of their own morning; a number that maps to two zones waits for the
// later one; the call's own zone wins over its number's; a number the
// library places nowhere falls back to the integration's zone.
func TestWindowOpensAtInTheRecipientsZone(t *testing.T) {
	w := &config.CallingWindow{Timezone: config.RecipientTimezone, Start: "09:00", End: "20:00", Days: []int{1, 2, 3, 4, 5}}
	now := time.Date(2026, 3, 4, 3, 0, 0, 0, time.UTC) // Wednesday 03:00 UTC
	for _, tc := range []struct {
		name, number, tz string
		want             time.Time
		at               time.Time // when not now
		fallback         bool      // the agent's zone stands in
	}{
		{"Kyiv", "+380991234567", "", time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC), time.Time{}, false},
		{"New York", "+12125550123", "", time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC), time.Time{}, false},
		{"Tokyo: already open", "+81312345678", "", now, time.Time{}, false},
		// Tuesday 23:00 UTC: 09:30 in Adelaide, 07:00 in Perth.
		{"Adelaide or Perth: Perth opens last", "+61891234567", "", time.Date(2026, 3, 4, 1, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 3, 23, 0, 0, 0, time.UTC), false},
		{"the call's own zone wins", "+380991234567", "America/New_York", time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC), time.Time{}, false},
		{"unplaceable number: agent zone", "+80012345678", "", time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC), time.Time{}, true},
		// A toll-free number maps to 42 zones from UTC−11 to UTC+10; a
		// 09:00–20:00 window is open in all of them for half an hour.
		{"toll-free: open in every zone at once", "+18005550123", "", time.Date(2026, 3, 4, 23, 0, 0, 0, time.UTC), time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := now
			if !tc.at.IsZero() {
				at = tc.at
			}
			got, fallback := windowOpensAt(w, tc.number, tc.tz, "Europe/Kyiv", at)
			if !got.Equal(tc.want) || (fallback != "") != tc.fallback {
				t.Fatalf("opens at %s (fallback %q), want %s (fallback %v)", got.UTC(), fallback, tc.want.UTC(), tc.fallback)
			}
		})
	}
	// A 09:00–18:00 window is never open in all of them: the agent's zone.
	short := &config.CallingWindow{Timezone: config.RecipientTimezone, Start: "09:00", End: "18:00", Days: []int{1, 2, 3, 4, 5}}
	if got, fallback := windowOpensAt(short, "+18005550123", "", "Europe/Kyiv", now); fallback != "Europe/Kyiv" ||
		!got.Equal(time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC)) {
		t.Fatalf("toll-free under a window never open in all its zones: %s (fallback %q), want Kyiv's 09:00", got.UTC(), fallback)
	}
	fixed := &config.CallingWindow{Timezone: "Asia/Tokyo", Start: "09:00", End: "20:00"}
	if got, _ := windowOpensAt(fixed, "+380991234567", "Europe/Kyiv", "Europe/Kyiv", now); !got.Equal(now) {
		t.Fatalf("a fixed-zone window ignores the recipient: %s", got)
	}
	if got, _ := windowOpensAt(nil, "+380991234567", "", "Europe/Kyiv", now); !got.Equal(now) {
		t.Fatalf("no window: %s", got)
	}
}
