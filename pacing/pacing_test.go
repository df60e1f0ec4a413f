package pacing

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
)

// TestBucketNeverExceedsRate tries to dial at random moments and checks
// that no one-second window holds more than burst + per_second dials, and
// that a refused dial is told a due time at which it succeeds.
func TestBucketNeverExceedsRate(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 20))
		r := config.DialRate{PerSecond: 0.5 + rng.Float64()*10, Burst: 1 + rng.IntN(10)}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		now := start
		var b Bucket
		var taken []time.Time
		for range 2000 {
			now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
			ok, due := b.Take(r, now)
			if ok {
				taken = append(taken, now)
				continue
			}
			if !due.After(now) {
				t.Fatalf("seed %d: refused at %s with due %s", seed, now, due)
			}
			if ok, _ := b.Take(r, due); !ok {
				t.Fatalf("seed %d: no token at the due time %s", seed, due)
			}
			taken = append(taken, due)
			now = due
		}
		limit := float64(r.Burst) + r.PerSecond
		for i := range taken {
			n := 0
			for j := i; j < len(taken) && taken[j].Sub(taken[i]) < time.Second; j++ {
				n++
			}
			if float64(n) > limit {
				t.Fatalf("seed %d (%+v): %d dials in the second from %s, at most %.2f allowed", seed, r, n, taken[i], limit)
			}
		}
	}
}

func TestBucketBurstThenRate(t *testing.T) {
	t.Parallel()
	r := config.DialRate{PerSecond: 2, Burst: 3}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b Bucket
	for i := range 3 {
		if ok, _ := b.Take(r, now); !ok {
			t.Fatalf("burst dial %d refused", i)
		}
	}
	ok, due := b.Take(r, now)
	if ok || !due.Equal(now.Add(500*time.Millisecond)) {
		t.Fatalf("fourth dial: ok %v, due %s; want refused until +500ms", ok, due)
	}
	// A clock behind the bucket's (another replica's) adds no tokens.
	if ok, _ := b.Take(r, now.Add(-time.Hour)); ok {
		t.Fatal("a dial from a clock an hour behind took a token")
	}
}

func TestCapUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	regF := []config.ContactCap{{MaxDials: 7, Days: 7}}
	for _, tc := range []struct {
		name  string
		caps  []config.ContactCap
		dials []time.Time
		ok    bool
		until time.Time
	}{
		{"no caps", nil, []time.Time{now}, true, time.Time{}},
		{"no dials", regF, nil, true, time.Time{}},
		{"six in seven days", regF, []time.Time{ago(1 * day), ago(2 * day), ago(3 * day), ago(4 * day), ago(5 * day), ago(6 * day)}, true, time.Time{}},
		{"seven in seven days: until the oldest leaves", regF,
			[]time.Time{ago(time.Hour), ago(1 * day), ago(2 * day), ago(6 * day), ago(3 * day), ago(4 * day), ago(5 * day)},
			false, ago(6 * day).Add(7 * day)},
		{"older dials do not count", regF, []time.Time{ago(8 * day), ago(9 * day), ago(10 * day), ago(11 * day), ago(12 * day), ago(13 * day), ago(14 * day)}, true, time.Time{}},
		{"one a day, dialled an hour ago", []config.ContactCap{{MaxDials: 1, Days: 1}}, []time.Time{ago(time.Hour)}, false, ago(time.Hour).Add(day)},
		{"the later of two caps", []config.ContactCap{{MaxDials: 1, Days: 1}, {MaxDials: 2, Days: 30}},
			[]time.Time{ago(2 * time.Hour), ago(20 * day)}, false, ago(20 * day).Add(30 * day)},
		{"more dials than the cap (the cap was lowered)", []config.ContactCap{{MaxDials: 2, Days: 7}},
			[]time.Time{ago(1 * day), ago(2 * day), ago(3 * day)}, false, ago(2 * day).Add(7 * day)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, until := CapUntil(tc.caps, tc.dials, now)
			if ok != tc.ok || !until.Equal(tc.until) {
				t.Fatalf("CapUntil = %v, %s; want %v, %s", ok, until, tc.ok, tc.until)
			}
		})
	}
}
