package callerctx

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Key is the bucket key of a caller.
var Key = key

// WrapBucket puts wrap's bucket between the cache and its bucket (before
// Watch runs).
func (c *Cache) WrapBucket(wrap func(jetstream.KeyValue) jetstream.KeyValue) { c.kv = wrap(c.kv) }

// SetWatchRetry sets the first wait before a failed watch is restarted.
func (c *Cache) SetWatchRetry(d time.Duration) { c.watchRetry = d }

// Live reports whether the local copy is served.
func (c *Cache) Live() bool {
	c.local.mu.RLock()
	defer c.local.mu.RUnlock()
	return c.local.live
}

// LocalTTL is how long the local copy serves a value.
func (c *Cache) LocalTTL() time.Duration { return c.local.ttl }
