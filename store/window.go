package store

import (
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/phone"
)

// windowOpensAt is when a call to number may be dialled at the earliest,
// from now, under calling window w: now when the window is open (or there
// is none). A "recipient" window is read in the call's own zone (tz), else
// in the zones the number implies — the latest opening of them, so nobody
// is called early — else in the integration's agent timezone.
func windowOpensAt(w *config.CallingWindow, number, tz, agentTZ string, now time.Time) time.Time {
	if w == nil {
		return now
	}
	return w.NextOpenIn(now, windowZones(w, number, tz, agentTZ))
}

func windowZones(w *config.CallingWindow, number, tz, agentTZ string) []*time.Location {
	load := func(names ...string) []*time.Location {
		var out []*time.Location
		for _, name := range names {
			if loc, err := config.Location(name); err == nil && name != "" {
				out = append(out, loc)
			}
		}
		return out
	}
	if !w.ForRecipient() {
		return load(w.Timezone)
	}
	if zones := load(tz); len(zones) > 0 {
		return zones
	}
	if zones := load(phone.Timezones(number)...); len(zones) > 0 {
		return zones
	}
	return load(agentTZ)
}
