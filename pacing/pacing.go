// Package pacing decides whether a queued call may be dialled now under the
// pacing and contact rules carriers and regulators impose (contract §9):
// the integration's dial rate, contact caps per phone number, and excluded
// dates. It is plain Go with no I/O, like callstate: the store reads the
// counters, asks here, and writes the counters back in the claim's
// transaction, under the integration's row lock, so that the rules hold
// across every replica.
package pacing

import (
	"math"
	"slices"
	"time"

	"github.com/callqueue/callqueue/config"
)

// Hold is why a queued call waits although a slot is free: one vocabulary
// for the call's history (`deferred: <hold>`), the
// callqueue_dispatch_deferred_total{reason} metric and the console.
type Hold string

// Holds.
const (
	// DialRate: the integration has sent its dial_rate's worth of
	// originates; the next token is due soon.
	DialRate Hold = "dial_rate"
	// CallerID: every caller number is at one of its own limits.
	CallerID Hold = "caller_id"
	// ContactCap: the number was dialled as often as a contact cap allows
	// within its window.
	ContactCap Hold = "contact_cap"
	// ExcludedDate: today is one of the calling window's exclude_dates in
	// the zone it is read in.
	ExcludedDate Hold = "excluded_date"
)

// Holds lists every hold, in the order the console shows them.
var Holds = []Hold{DialRate, CallerID, ContactCap, ExcludedDate}

// Bucket is a token bucket: Tokens were left At. The zero Bucket is full.
type Bucket struct {
	Tokens float64
	At     time.Time
}

// refill is b as of now under rate r. A clock behind At (another replica's)
// adds nothing rather than taking tokens away.
func (b Bucket) refill(r config.DialRate, now time.Time) Bucket {
	capacity := r.Capacity()
	if b.At.IsZero() {
		return Bucket{Tokens: capacity, At: now}
	}
	if elapsed := now.Sub(b.At); elapsed > 0 {
		b.Tokens = min(capacity, b.Tokens+elapsed.Seconds()*r.PerSecond)
		b.At = now
	}
	return b
}

// Take takes one token for a dial at now. Without one, it reports when the
// next is due and leaves the bucket as it was.
func (b *Bucket) Take(r config.DialRate, now time.Time) (ok bool, due time.Time) {
	nb := b.refill(r, now)
	if nb.Tokens >= 1-TokenEpsilon {
		nb.Tokens = max(nb.Tokens-1, 0)
		*b = nb
		return true, time.Time{}
	}
	wait := time.Duration(math.Ceil((1 - nb.Tokens) / r.PerSecond * float64(time.Second)))
	return false, nb.At.Add(max(wait, time.Millisecond))
}

// TokenEpsilon absorbs float rounding, so that a dial at its due time
// finds its token.
const TokenEpsilon = 1e-9

// CapUntil judges contact caps: dials are the times the number was dialled
// (in the caps' scope, any order). It reports whether a dial at now stays
// within every cap, and if not, when the oldest dial that holds it back
// leaves its window.
func CapUntil(caps []config.ContactCap, dials []time.Time, now time.Time) (ok bool, until time.Time) {
	if len(caps) == 0 || len(dials) == 0 {
		return true, time.Time{}
	}
	recent := slices.Clone(dials)
	slices.SortFunc(recent, func(a, b time.Time) int { return b.Compare(a) }) // newest first
	for _, c := range caps {
		from := now.Add(-c.Window())
		in := 0
		for _, d := range recent {
			if d.After(from) {
				in++
			}
		}
		if in < c.MaxDials {
			continue
		}
		// The MaxDials-th newest dial in the window is the one whose
		// leaving makes room for one more.
		if free := recent[c.MaxDials-1].Add(c.Window()); free.After(until) {
			until = free
		}
	}
	return until.IsZero(), until
}
