package ratelimit

import (
	"net/netip"
	"sync"
)

// Budget bounds the bytes the process holds for requests that have not yet
// proved who sent them (a signed post-call is read whole before its HMAC
// can be checked): all such requests together, and those of one client
// address. A request that would pass either bound is refused instead of
// read, so an anonymous client can never make the process hold more.
type Budget struct {
	total, perClient int64

	mu       sync.Mutex
	held     int64
	byClient map[netip.Addr]int64 // only addresses holding bytes now
}

// UnverifiedBodyBytesDefault is CALLQUEUE_UNVERIFIED_BODY_BYTES' default.
const UnverifiedBodyBytesDefault = 64 << 20

// NewBudget returns a budget of total bytes, at most perClient of them
// held for one client address (IPv6 by /64). A total of zero or less
// bounds nothing.
func NewBudget(total, perClient int64) *Budget {
	return &Budget{total: total, perClient: min(perClient, total), byClient: map[netip.Addr]int64{}}
}

// Take reserves n bytes for client, or reports false (taking nothing) when
// that would pass the total or the client's share.
func (b *Budget) Take(client netip.Addr, n int64) bool {
	if b == nil || b.total <= 0 {
		return true
	}
	key := addressKey(client)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > b.total || b.byClient[key]+n > b.perClient {
		return false
	}
	b.held += n
	b.byClient[key] += n
	return true
}

// Give returns n bytes taken for client.
func (b *Budget) Give(client netip.Addr, n int64) {
	if b == nil || b.total <= 0 || n == 0 {
		return
	}
	key := addressKey(client)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.byClient[key] -= n; b.byClient[key] <= 0 {
		delete(b.byClient, key)
	}
}

// Held is how many bytes are reserved now.
func (b *Budget) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
