package ratelimit_test

import (
	"net/netip"
	"testing"

	"github.com/callqueue/callqueue/ratelimit"
)

func TestBudgetBoundsTotalAndEachClient(t *testing.T) {
	t.Parallel()
	b := ratelimit.NewBudget(100, 60)
	one, other, third := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8::1")
	if !b.Take(one, 60) {
		t.Fatal("a client's first 60 bytes were refused")
	}
	if b.Take(one, 1) {
		t.Error("a client passed its share")
	}
	if !b.Take(other, 40) || b.Take(third, 1) {
		t.Errorf("the total of 100 was not enforced (held %d)", b.Held())
	}
	b.Give(one, 60)
	if !b.Take(netip.MustParseAddr("2001:db8::2"), 30) || b.Take(netip.MustParseAddr("2001:db8::3"), 31) {
		t.Error("an IPv6 /64 is not one client")
	}
	b.Give(other, 40)
	b.Give(netip.MustParseAddr("2001:db8::2"), 30)
	if b.Held() != 0 {
		t.Errorf("held %d after everything was given back", b.Held())
	}
	if !ratelimit.NewBudget(0, 0).Take(one, 1<<40) {
		t.Error("a zero budget refused")
	}
}

// BenchmarkBudgetTakeGive is the body budget's cost on a signed post-call:
// one reservation for its declared length and its return.
func BenchmarkBudgetTakeGive(b *testing.B) {
	budget := ratelimit.NewBudget(ratelimit.UnverifiedBodyBytesDefault, 26<<20)
	client := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !budget.Take(client, 2048) {
				b.Fatal("refused under the default budget")
			}
			budget.Give(client, 2048)
		}
	})
}
