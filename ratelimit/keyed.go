package ratelimit

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rule is a token bucket: PerSecond requests a second on average, up to
// Burst at once. A PerSecond of zero (or less) turns the limit off.
type Rule struct {
	PerSecond float64
	Burst     int
}

// Enabled reports whether the rule limits anything.
func (r Rule) Enabled() bool { return r.PerSecond > 0 }

// Keyed holds one token bucket per key (a client address, an integration,
// a token). Keys come from request data, so the set is bounded: past
// Capacity keys the least recently used bucket is forgotten. A forgotten
// key starts again with a full bucket, which only ever lets more through;
// a flood of distinct keys cannot grow memory.
type Keyed[K comparable] struct {
	rule     Rule
	capacity int

	mu      sync.Mutex
	entries map[K]*list.Element
	order   *list.List // of *entry[K], most recently used first
}

type entry[K comparable] struct {
	key     K
	limiter *rate.Limiter
}

// CapacityDefault is how many keys a Keyed remembers by default.
const CapacityDefault = 50_000

// NewKeyed returns a bounded set of buckets under rule (capacity 0:
// CapacityDefault).
func NewKeyed[K comparable](rule Rule, capacity int) *Keyed[K] {
	if capacity <= 0 {
		capacity = CapacityDefault
	}
	return &Keyed[K]{rule: rule, capacity: capacity, entries: map[K]*list.Element{}, order: list.New()}
}

// Allow takes a token from key's bucket at now. Without one it reports
// how long until the next token (at least a second, as Retry-After counts
// whole seconds).
func (k *Keyed[K]) Allow(key K, now time.Time) (ok bool, retryAfter time.Duration) {
	if !k.rule.Enabled() {
		return true, 0
	}
	lim := k.limiter(key)
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	wait := time.Duration(math.Ceil(missing/k.rule.PerSecond)) * time.Second
	return false, max(wait, time.Second)
}

func (k *Keyed[K]) limiter(key K) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	if el, ok := k.entries[key]; ok {
		k.order.MoveToFront(el)
		return el.Value.(*entry[K]).limiter
	}
	if k.order.Len() >= k.capacity {
		oldest := k.order.Back()
		k.order.Remove(oldest)
		delete(k.entries, oldest.Value.(*entry[K]).key)
	}
	lim := rate.NewLimiter(rate.Limit(k.rule.PerSecond), max(k.rule.Burst, 1))
	k.entries[key] = k.order.PushFront(&entry[K]{key: key, limiter: lim})
	return lim
}

// Len is how many keys are remembered.
func (k *Keyed[K]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.order.Len()
}
