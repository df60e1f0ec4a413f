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
	}{
		{"Kyiv", "+380991234567", "", time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC), time.Time{}},
		{"New York", "+12125550123", "", time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC), time.Time{}},
		{"Tokyo: already open", "+81312345678", "", now, time.Time{}},
		// Tuesday 23:00 UTC: 09:30 in Adelaide, 07:00 in Perth.
		{"Adelaide or Perth: Perth opens last", "+61891234567", "", time.Date(2026, 3, 4, 1, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 3, 23, 0, 0, 0, time.UTC)},
		{"the call's own zone wins", "+380991234567", "America/New_York", time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC), time.Time{}},
		{"unplaceable number: agent zone", "+80012345678", "", time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := now
			if !tc.at.IsZero() {
				at = tc.at
			}
			if got := windowOpensAt(w, tc.number, tc.tz, "Europe/Kyiv", at); !got.Equal(tc.want) {
				t.Fatalf("opens at %s, want %s", got.UTC(), tc.want.UTC())
			}
		})
	}
	fixed := &config.CallingWindow{Timezone: "Asia/Tokyo", Start: "09:00", End: "20:00"}
	if got := windowOpensAt(fixed, "+380991234567", "Europe/Kyiv", "Europe/Kyiv", now); !got.Equal(now) {
		t.Fatalf("a fixed-zone window ignores the recipient: %s", got)
	}
	if got := windowOpensAt(nil, "+380991234567", "", "Europe/Kyiv", now); !got.Equal(now) {
		t.Fatalf("no window: %s", got)
	}
}
