package callerctx

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch restarts: at first after watchRetryFirst, doubling up to
// watchRetryLongest; a watch that ran watchHealthy starts the count again.
const (
	watchRetryFirst   = 100 * time.Millisecond
	watchRetryLongest = 30 * time.Second
	watchHealthy      = time.Minute
	// watchDrainLimit bounds the wait for a stopped watch's last entries.
	watchDrainLimit = 5 * time.Second
)

// localCopy is this process's copy of the bucket, so that agent-init does
// not pay a request to the NATS server for each answer. It is fed by a
// watch of the whole bucket and by this process's own writes, and it is
// served only while that watch runs: a replica's warm-up of a number this
// copy already holds (a new call to it) reaches it only through the watch.
// It may lag the bucket by the watch's delivery (milliseconds, against the
// seconds between a dial and its agent-init).
type localCopy struct {
	ttl      time.Duration
	capacity int
	now      func() time.Time

	mu      sync.RWMutex
	entries map[string]*list.Element // of *localEntry
	order   *list.List               // oldest write first: the first to expire and to be evicted
	// watched is the last bucket revision the watch delivered: a write of
	// this process at or below it has already reached the copy through
	// the watch, or been replaced or deleted since.
	watched uint64
	live    bool // the watch has delivered the bucket's values and runs
}

// localEntry is one caller's context as the bucket holds it.
type localEntry struct {
	key      string
	raw      []byte
	revision uint64
	created  time.Time
	decoded  atomic.Pointer[Caller] // at its first read
}

func newLocalCopy(bucketTTL time.Duration, capacity int, now func() time.Time) *localCopy {
	return &localCopy{
		// Short of the bucket's TTL by a fifteenth (a minute at the
		// default): the value's creation time is the NATS server's clock,
		// and this process's may run behind it.
		ttl:      bucketTTL - bucketTTL/15,
		capacity: capacity,
		now:      now,
		entries:  map[string]*list.Element{},
		order:    list.New(),
	}
}

// get returns k's context while the watch runs and the value has not
// expired. The Caller is shared by every reader: its maps are not to be
// changed.
func (l *localCopy) get(k string) (Caller, bool) {
	l.mu.RLock()
	var e *localEntry
	if el, ok := l.entries[k]; ok && l.live {
		e = el.Value.(*localEntry)
	}
	l.mu.RUnlock()
	if e == nil || l.expired(e.created) {
		return Caller{}, false
	}
	if c := e.decoded.Load(); c != nil {
		return *c, true
	}
	var c Caller
	if json.Unmarshal(e.raw, &c) != nil {
		return Caller{}, false
	}
	e.decoded.Store(&c)
	return c, true
}

func (l *localCopy) expired(created time.Time) bool {
	return l.now().Sub(created) >= l.ttl
}

// wrote keeps a value this process put (or read) at revision, unless the
// watch has already gone past it.
func (l *localCopy) wrote(k string, raw []byte, revision uint64, created time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if revision > l.watched {
		l.keep(k, raw, revision, created)
	}
}

// delivered applies what the watch delivered: a value, or a delete or
// purge (a marker the server left when the value's age ran out included).
func (l *localCopy) delivered(e jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watched = max(l.watched, e.Revision())
	if e.Operation() == jetstream.KeyValuePut {
		l.keep(e.Key(), e.Value(), e.Revision(), e.Created())
		return
	}
	if el, ok := l.entries[e.Key()]; ok && el.Value.(*localEntry).revision < e.Revision() {
		l.remove(el)
	}
}

// keep stores a value newer than the one held, then drops what expired
// and, beyond the capacity, the oldest. Lock held.
func (l *localCopy) keep(k string, raw []byte, revision uint64, created time.Time) {
	if l.expired(created) {
		return
	}
	e := &localEntry{key: k, raw: raw, revision: revision, created: created}
	if el, ok := l.entries[k]; ok {
		if el.Value.(*localEntry).revision >= revision {
			return
		}
		el.Value = e // readers holding the old entry keep it whole
		l.order.MoveToBack(el)
	} else {
		l.entries[k] = l.order.PushBack(e)
	}
	for el := l.order.Front(); el != nil && (l.order.Len() > l.capacity || l.expired(el.Value.(*localEntry).created)); el = l.order.Front() {
		l.remove(el)
	}
}

func (l *localCopy) remove(el *list.Element) {
	delete(l.entries, el.Value.(*localEntry).key)
	l.order.Remove(el)
}

func (l *localCopy) setLive() {
	l.mu.Lock()
	l.live = true
	l.mu.Unlock()
}

// forget empties the copy when its watch ends: what changed in the bucket
// meanwhile would not reach it, so nothing in it is served until a new
// watch has delivered the bucket again.
func (l *localCopy) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live, l.watched = false, 0
	l.entries = map[string]*list.Element{}
	l.order.Init()
}

// Watch keeps the process-local copy up to date until ctx ends, restarting
// the bucket's watch when it fails. Without it (or with no local copy)
// every read asks the bucket.
func (c *Cache) Watch(ctx context.Context) {
	if c.local == nil {
		return
	}
	retry := c.watchRetry
	for {
		started := time.Now()
		err := c.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= watchHealthy {
			retry = c.watchRetry
		}
		c.log.Warn().Err(err).Dur("retry_in", retry).Msg("caller context watch stopped; agent-init reads the bucket until it is back")
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, watchRetryLongest)
	}
}

var errWatchClosed = errors.New("the watch's subscription was closed")

// watchOnce runs one watch of the bucket until it fails or ctx ends. The
// watch starts with the values the bucket holds (not UpdatesOnly): a
// process that starts, or restarts its watch, serves its callers from the
// copy at once rather than from a request each until they are written
// again; the nil entry that ends those values is what makes the copy live.
func (c *Cache) watchOnce(ctx context.Context) error {
	w, err := c.kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() {
		c.local.forget()
		_ = w.Stop()
		// The watch delivers from the subscription's goroutine, which blocks
		// on a full channel: take what is left until it is closed.
		drained := time.NewTimer(watchDrainLimit)
		defer drained.Stop()
		for {
			select {
			case _, open := <-w.Updates():
				if !open {
					return
				}
			case <-drained.C:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, open := <-w.Updates():
			switch {
			case !open:
				return errWatchClosed
			case e == nil:
				c.local.setLive()
			default:
				c.local.delivered(e)
			}
		}
	}
}
