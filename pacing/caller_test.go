package pacing

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/phone"
)

func TestPickCaller(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	sf, ny, london, kyiv := "+14155550100", "+12125550100", "+442079460000", "+380441234567"
	pool := []config.CallerID{{Number: ny}, {Number: london}, {Number: sf}, {Number: kyiv}}
	idle := func() []CallerUsage { return make([]CallerUsage, len(pool)) }
	to := func(number string) Recipient { return Recipient{Locality: phone.LocalityOf(number)} }
	for _, tt := range []struct {
		name     string
		pool     []config.CallerID
		usage    func() []CallerUsage
		strategy string
		rotate   bool
		r        Recipient
		want     int
		busy     bool
	}{
		{name: "local: same area code", strategy: config.CallerLocal, r: to("+14155559999"), want: 2},
		{name: "local: same country", strategy: config.CallerLocal, r: to("+13125550100"), want: 0},
		{name: "local: UK", strategy: config.CallerLocal, r: to("+441612345678"), want: 1},
		{name: "local: no match takes the least recently used", strategy: config.CallerLocal, r: to("+81312345678"),
			usage: func() []CallerUsage { u := idle(); u[0].Seq, u[1].Seq, u[2].Seq, u[3].Seq = 4, 2, 3, 5; return u }, want: 1},
		{name: "local: the area's number at its limit gives way to the country's", strategy: config.CallerLocal,
			pool:  []config.CallerID{{Number: ny}, {Number: london}, {Number: sf, ConcurrencyLimit: 1}, {Number: kyiv}},
			usage: func() []CallerUsage { u := idle(); u[2].Live = 1; return u }, r: to("+14155559999"), want: 0},
		{name: "round robin: least recently used", strategy: config.CallerRoundRobin,
			usage: func() []CallerUsage { u := idle(); u[0].Seq, u[1].Seq, u[2].Seq, u[3].Seq = 1, 2, 0, 3; return u }, want: 2},
		{name: "least used: fewest dials this hour", strategy: config.CallerLeastUsed,
			usage: func() []CallerUsage {
				u := idle()
				u[0].Hour, u[1].Hour, u[2].Hour, u[3].Hour = 3, 1, 2, 1
				u[1].Seq = 9
				return u
			}, want: 3},
		{name: "sticky: the number dialled before", strategy: config.CallerSticky,
			r: Recipient{DialledFrom: map[string]time.Time{london: now.Add(-time.Hour), kyiv: now.Add(-time.Minute)}}, want: 3},
		{name: "sticky: waits for its number", strategy: config.CallerSticky,
			pool:  []config.CallerID{{Number: ny}, {Number: london}, {Number: sf}, {Number: kyiv, MaxPerHour: 1}},
			usage: func() []CallerUsage { u := idle(); u[3].Hour, u[3].HourOldest = 1, now.Add(-10*time.Minute); return u },
			r:     Recipient{DialledFrom: map[string]time.Time{kyiv: now.Add(-10 * time.Minute)}}, want: -1},
		{name: "sticky: a new recipient takes any", strategy: config.CallerSticky,
			usage: func() []CallerUsage { u := idle(); u[0].Seq, u[1].Seq, u[2].Seq, u[3].Seq = 1, 0, 3, 4; return u }, want: 1},
		{name: "rotate: a retry prefers a number not used for the recipient", strategy: config.CallerLocal, rotate: true,
			r: Recipient{Locality: phone.LocalityOf("+14155559999"), Retry: true, DialledFrom: map[string]time.Time{sf: now.Add(-time.Hour)}}, want: 0},
		{name: "rotate: not on a first attempt", strategy: config.CallerLocal, rotate: true,
			r: Recipient{Locality: phone.LocalityOf("+14155559999"), DialledFrom: map[string]time.Time{sf: now.Add(-time.Hour)}}, want: 2},
		{name: "every number at a limit", strategy: config.CallerRoundRobin,
			pool: []config.CallerID{{Number: ny, ConcurrencyLimit: 1}, {Number: london, MaxPerDay: 2}, {Number: sf, PerSecond: 1}, {Number: kyiv, MaxPerHour: 1}},
			usage: func() []CallerUsage {
				u := idle()
				u[0].Live = 1
				u[1].Day = 2
				u[2].Recent = []time.Time{now.Add(-300 * time.Millisecond)}
				u[3].Hour = 1
				return u
			}, want: -1, busy: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pool
			if tt.pool != nil {
				p = tt.pool
			}
			u := idle()
			if tt.usage != nil {
				u = tt.usage()
			}
			got := PickCaller(p, u, tt.strategy, tt.rotate, tt.r, now)
			if got.Index != tt.want || got.PoolBusy != tt.busy {
				t.Fatalf("PickCaller = %+v, want index %d (pool busy %v)", got, tt.want, tt.busy)
			}
		})
	}
}

// TestCallerFreeAt: a number at a limit is due back when its oldest
// counted dial leaves the window; one at its concurrency limit when a call
// ends (zero).
func TestCallerFreeAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	c := config.CallerID{Number: "+14155550100", MaxPerHour: 2, MaxPerDay: 10, PerSecond: 0.5}
	u := CallerUsage{Hour: 2, HourOldest: now.Add(-40 * time.Minute), Day: 3, DayOldest: now.Add(-20 * time.Hour)}
	if Free(c, u, now) || !FreeAt(c, u, now).Equal(now.Add(20*time.Minute)) {
		t.Fatalf("hourly cap: free %v at %s", Free(c, u, now), FreeAt(c, u, now))
	}
	u = CallerUsage{Recent: []time.Time{now.Add(-500 * time.Millisecond)}}
	if Free(c, u, now) || !FreeAt(c, u, now).Equal(now.Add(1500*time.Millisecond)) {
		t.Fatalf("per_second 0.5: free %v at %s", Free(c, u, now), FreeAt(c, u, now))
	}
	if !Free(c, u, now.Add(1500*time.Millisecond)) {
		t.Fatal("per_second 0.5: not free two seconds after its dial")
	}
	c.ConcurrencyLimit = 1
	if u := (CallerUsage{Live: 1}); Free(c, u, now) || !FreeAt(c, u, now).IsZero() {
		t.Fatalf("concurrency: free %v at %s", Free(c, u, now), FreeAt(c, u, now))
	}
}
