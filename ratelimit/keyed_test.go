package ratelimit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/callqueue/callqueue/ratelimit"
)

func TestKeyedBurstThenRefill(t *testing.T) {
	t.Parallel()
	k := ratelimit.NewKeyed[string](ratelimit.Rule{PerSecond: 0.5, Burst: 3}, 0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := k.Allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := k.Allow("a", now)
	if ok || wait != 2*time.Second {
		t.Fatalf("past the burst: ok %v, retry after %v; want refused, 2s (one token at 0.5/s)", ok, wait)
	}
	if ok, _ := k.Allow("b", now); !ok {
		t.Error("another key was refused by a's burst")
	}
	if ok, _ := k.Allow("a", now.Add(2*time.Second)); !ok {
		t.Error("a was still refused once its Retry-After had passed")
	}
}

func TestKeyedRetryAfterIsAtLeastASecond(t *testing.T) {
	t.Parallel()
	k := ratelimit.NewKeyed[string](ratelimit.Rule{PerSecond: 1000, Burst: 1}, 0)
	now := time.Now()
	k.Allow("a", now)
	if ok, wait := k.Allow("a", now); ok || wait != time.Second {
		t.Errorf("ok %v, retry after %v; want refused, 1s (Retry-After counts whole seconds)", ok, wait)
	}
}

func TestKeyedOffAllowsEverything(t *testing.T) {
	t.Parallel()
	k := ratelimit.NewKeyed[string](ratelimit.Rule{PerSecond: 0, Burst: 1}, 0)
	now := time.Now()
	for range 1000 {
		if ok, _ := k.Allow("a", now); !ok {
			t.Fatal("a rule with PerSecond 0 refused a request")
		}
	}
	if k.Len() != 0 {
		t.Errorf("a disabled rule remembers %d keys", k.Len())
	}
}

// A flood of distinct client addresses cannot grow memory: the set keeps
// at most its capacity and forgets the least recently used, while a
// client that keeps sending stays remembered (and limited).
func TestKeyedIsBounded(t *testing.T) {
	t.Parallel()
	const capacity = 1000
	k := ratelimit.NewKeyed[netip.Addr](ratelimit.Rule{PerSecond: 1, Burst: 1}, capacity)
	now := time.Now()
	busy := netip.MustParseAddr("192.0.2.1")
	k.Allow(busy, now)
	for i := range 20 * capacity {
		k.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		if i%100 == 0 {
			if ok, _ := k.Allow(busy, now); ok {
				t.Fatalf("the busy client got a fresh bucket after %d other addresses", i)
			}
		}
		if n := k.Len(); n > capacity {
			t.Fatalf("%d keys remembered, capacity %d", n, capacity)
		}
	}
	if n := k.Len(); n != capacity {
		t.Errorf("%d keys remembered after the flood, want %d", n, capacity)
	}
}
