package callerctx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/internal/syncbuf"
)

// startJetStream runs an in-process JetStream server for t; each replica
// connects to it on its own connection.
func startJetStream(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// crmAnswers is a CRM that knows every caller.
type crmAnswers struct{ lookups atomic.Int64 }

func (c *crmAnswers) Lookup(context.Context, uuid.UUID, string) (map[string]any, error) {
	c.lookups.Add(1)
	return map[string]any{"client_name": "Олена"}, nil
}

func (c *crmAnswers) Allows(uuid.UUID) bool { return true }

// replica is one process's cache, its reads of the bucket counted.
type replica struct {
	*callerctx.Cache
	bucket *watchedBucket
	crm    *crmAnswers
	log    *syncbuf.Buffer
}

// newReplica opens the bucket on its own connection; watch starts the
// cache's watch (for t), before which configure may adjust the cache.
func newReplica(t *testing.T, ns *server.Server, opt callerctx.Options, watch bool, configure ...func(*callerctx.Cache)) *replica {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{crm: &crmAnswers{}, log: &syncbuf.Buffer{}}
	r.Cache, err = callerctx.New(t.Context(), js, opt, r.crm, zerolog.New(r.log).Level(zerolog.TraceLevel))
	if err != nil {
		t.Fatal(err)
	}
	r.WrapBucket(func(kv jetstream.KeyValue) jetstream.KeyValue {
		r.bucket = &watchedBucket{KeyValue: kv}
		return r.bucket
	})
	for _, f := range configure {
		f(r.Cache)
	}
	if watch {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Watch(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		eventually(t, "the local copy served", r.Live)
	}
	return r
}

// cachedLocally reads a caller and reports whether the bucket was asked.
func (r *replica) cachedLocally(t *testing.T, id uuid.UUID, phone string) (callerctx.Caller, bool, bool) {
	t.Helper()
	gets := r.bucket.gets.Load()
	c, ok := r.Cached(t.Context(), id, phone)
	return c, ok, r.bucket.gets.Load() == gets
}

// servedLocally waits until the replica serves the caller with callID
// from its copy, without asking the bucket.
func (r *replica) servedLocally(t *testing.T, id uuid.UUID, phone string, callID uuid.UUID) {
	t.Helper()
	eventually(t, "served from the local copy", func() bool {
		c, ok, local := r.cachedLocally(t, id, phone)
		return ok && local && c.CallID == callID.String()
	})
}

// TestWatchServesAnotherReplicasWrite: a caller warmed by another replica
// is served from this replica's copy once the watch delivers it — by
// Cached and Context alike, with no read of the bucket and no CRM lookup
// — and a later warm-up of the same number (a new call) replaces it.
func TestWatchServesAnotherReplicasWrite(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	dialler := newReplica(t, ns, callerctx.Options{}, false)
	agentInit := newReplica(t, ns, callerctx.Options{}, true)
	id, phone := uuid.New(), "+380931112233"

	first := uuid.New()
	dialler.Warm(t.Context(), id, phone, first, json.RawMessage(`{"campaign":"winter"}`))
	agentInit.servedLocally(t, id, phone, first)
	gets := agentInit.bucket.gets.Load()
	c, ok := agentInit.Context(t.Context(), id, phone)
	if !ok || c.CallID != first.String() || c.Vars["client_name"] != "Олена" || string(c.CallVars) != `{"campaign":"winter"}` {
		t.Fatalf("Context = %+v, %v; want the warmed call with the CRM's variables", c, ok)
	}
	if n := agentInit.bucket.gets.Load() - gets; n != 0 {
		t.Errorf("Context read the bucket %d times for a caller in the local copy", n)
	}
	if n := agentInit.crm.lookups.Load(); n != 0 {
		t.Errorf("%d CRM lookups by the replica that did not dial", n)
	}

	second := uuid.New()
	dialler.Warm(t.Context(), id, phone, second, nil)
	agentInit.servedLocally(t, id, phone, second)
}

// TestOwnWriteServedAtOnce: a replica serves what it warmed itself from
// its copy without waiting for the watch to bring it back.
func TestOwnWriteServedAtOnce(t *testing.T) {
	t.Parallel()
	r := newReplica(t, startJetStream(t), callerctx.Options{}, true)
	id, phone, call := uuid.New(), "+380931112234", uuid.New()
	r.Warm(t.Context(), id, phone, call, nil)
	if c, ok, local := r.cachedLocally(t, id, phone); !ok || !local || c.CallID != call.String() {
		t.Errorf("after its own warm-up: %+v, ok %v, from the local copy %v", c, ok, local)
	}
}

// TestWatchRemovesDeletedValues: a value deleted or purged from the bucket
// is no longer served once the watch has delivered that.
func TestWatchRemovesDeletedValues(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	dialler := newReplica(t, ns, callerctx.Options{}, false)
	agentInit := newReplica(t, ns, callerctx.Options{}, true)
	id := uuid.New()
	for i, remove := range []func(context.Context, string, ...jetstream.KVDeleteOpt) error{dialler.bucket.Delete, dialler.bucket.Purge} {
		phone, call := fmt.Sprintf("+38093111220%d", i), uuid.New()
		dialler.Warm(t.Context(), id, phone, call, nil)
		agentInit.servedLocally(t, id, phone, call)
		if err := remove(t.Context(), callerctx.Key(id, phone)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the removed value no longer served", func() bool {
			_, ok, local := agentInit.cachedLocally(t, id, phone)
			return !ok && !local
		})
	}
}

// TestLocalCopyExpiresOnItsOwn: the copy stops serving a value at its TTL
// by its own clock, whatever the watch says (the bucket's expiry leaves no
// marker for the watch to deliver); the bucket is asked instead.
func TestLocalCopyExpiresOnItsOwn(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	var ahead atomic.Int64
	dialler := newReplica(t, ns, callerctx.Options{}, false)
	agentInit := newReplica(t, ns, callerctx.Options{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }}, true)
	if ttl := agentInit.LocalTTL(); ttl <= 0 || ttl > callerctx.TTLDefault {
		t.Fatalf("local TTL %s, want at most the bucket's %s", ttl, callerctx.TTLDefault)
	}
	id, phone, call := uuid.New(), "+380931112235", uuid.New()
	dialler.Warm(t.Context(), id, phone, call, nil)
	agentInit.servedLocally(t, id, phone, call)

	ahead.Store(int64(agentInit.LocalTTL()))
	for range 2 { // the bucket's answer is not kept either: it is as old
		if _, ok, local := agentInit.cachedLocally(t, id, phone); !ok || local {
			t.Fatalf("past its TTL: ok %v, from the local copy %v; want it asked of the bucket (which still has it)", ok, local)
		}
	}
}

// TestExpiredValueNotServed: once the bucket's TTL has passed, a value is
// served by no replica, the one holding a copy included.
func TestExpiredValueNotServed(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	opt := callerctx.Options{TTL: time.Second}
	dialler := newReplica(t, ns, opt, false)
	agentInit := newReplica(t, ns, opt, true)
	id, phone, call := uuid.New(), "+380931112236", uuid.New()
	dialler.Warm(t.Context(), id, phone, call, nil)
	agentInit.servedLocally(t, id, phone, call)
	eventually(t, "the expired value no longer served", func() bool {
		_, ok := agentInit.Cached(t.Context(), id, phone)
		return !ok
	})
}

// TestMissFallsBackToGet: what the copy does not hold — no watch running,
// or a caller the watch has not delivered — is read from the bucket.
func TestMissFallsBackToGet(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	dialler := newReplica(t, ns, callerctx.Options{}, false)
	unwatched := newReplica(t, ns, callerctx.Options{}, false)
	watched := newReplica(t, ns, callerctx.Options{}, true)
	id, phone, call := uuid.New(), "+380931112237", uuid.New()
	dialler.Warm(t.Context(), id, phone, call, nil)
	for range 2 {
		if c, ok, local := unwatched.cachedLocally(t, id, phone); !ok || local || c.CallID != call.String() {
			t.Errorf("without a watch: %+v, ok %v, from the local copy %v; want it read from the bucket", c, ok, local)
		}
	}
	if _, ok, local := watched.cachedLocally(t, id, "+380931112299"); ok || local {
		t.Errorf("a caller nobody warmed: ok %v, from the local copy %v; want the bucket asked", ok, local)
	}
	off := newReplica(t, ns, callerctx.Options{LocalEntries: -1}, false)
	off.Watch(t.Context()) // returns at once: nothing to keep
	if c, ok, local := off.cachedLocally(t, id, phone); !ok || local || c.CallID != call.String() {
		t.Errorf("with no local copy: %+v, ok %v, from the local copy %v", c, ok, local)
	}
}

// TestLocalCopyEvictsBeyondItsCap: the copy holds at most LocalEntries
// callers, the oldest written leaving first; an evicted one is read from
// the bucket.
func TestLocalCopyEvictsBeyondItsCap(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	dialler := newReplica(t, ns, callerctx.Options{}, false)
	agentInit := newReplica(t, ns, callerctx.Options{LocalEntries: 2}, true)
	id := uuid.New()
	phones, calls := []string{"+380931112240", "+380931112241", "+380931112242"}, []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	for i := range phones {
		dialler.Warm(t.Context(), id, phones[i], calls[i], nil)
	}
	agentInit.servedLocally(t, id, phones[2], calls[2])
	if _, ok, local := agentInit.cachedLocally(t, id, phones[1]); !ok || !local {
		t.Errorf("the second caller: ok %v, from the local copy %v; want it held", ok, local)
	}
	if c, ok, local := agentInit.cachedLocally(t, id, phones[0]); !ok || local || c.CallID != calls[0].String() {
		t.Errorf("the evicted caller: %+v, ok %v, from the local copy %v; want it read from the bucket", c, ok, local)
	}
}

// TestWatchRestartsAfterFailure: when the watch ends, the copy is no
// longer served (reads ask the bucket) and the watch is started again,
// with a wait after each failure, until it is back; the failures are
// logged without the caller's number.
func TestWatchRestartsAfterFailure(t *testing.T) {
	t.Parallel()
	ns := startJetStream(t)
	dialler := newReplica(t, ns, callerctx.Options{}, false)
	agentInit := newReplica(t, ns, callerctx.Options{}, true, func(c *callerctx.Cache) { c.SetWatchRetry(20 * time.Millisecond) })
	id, phone, call := uuid.New(), "+380931112250", uuid.New()
	dialler.Warm(t.Context(), id, phone, call, nil)
	agentInit.servedLocally(t, id, phone, call)

	agentInit.bucket.refuseWatches(true)
	agentInit.bucket.cutWatch()
	eventually(t, "the copy set aside", func() bool { return !agentInit.Live() })
	if _, ok, local := agentInit.cachedLocally(t, id, phone); !ok || local {
		t.Errorf("with the watch down: ok %v, from the local copy %v; want it read from the bucket", ok, local)
	}
	eventually(t, "a refused restart", func() bool { return agentInit.bucket.refused.Load() >= 2 })
	agentInit.bucket.refuseWatches(false)
	eventually(t, "the watch restarted", agentInit.Live)
	later := uuid.New()
	dialler.Warm(t.Context(), id, phone, later, nil)
	agentInit.servedLocally(t, id, phone, later)

	logged := agentInit.log.String()
	if !strings.Contains(logged, "caller context watch stopped") {
		t.Errorf("the watch's failure was not logged: %q", logged)
	}
	if strings.Contains(logged, strings.TrimPrefix(phone, "+")) {
		t.Errorf("the log names the caller's number: %q", logged)
	}
}

// watchedBucket counts the cache's reads of the bucket and can end its
// watches and refuse new ones, as failures would.
type watchedBucket struct {
	jetstream.KeyValue
	gets    atomic.Int64
	refuse  atomic.Bool
	refused atomic.Int64

	mu      sync.Mutex
	watches []*cuttableWatcher
}

func (b *watchedBucket) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	b.gets.Add(1)
	return b.KeyValue.Get(ctx, key)
}

func (b *watchedBucket) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if b.refuse.Load() {
		b.refused.Add(1)
		return nil, nats.ErrConnectionClosed
	}
	w, err := b.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	cw := &cuttableWatcher{KeyWatcher: w, updates: make(chan jetstream.KeyValueEntry), cut: make(chan struct{})}
	go cw.forward()
	b.mu.Lock()
	b.watches = append(b.watches, cw)
	b.mu.Unlock()
	return cw, nil
}

func (b *watchedBucket) refuseWatches(refuse bool) { b.refuse.Store(refuse) }

// cutWatch ends the current watch's updates as a closed subscription does.
func (b *watchedBucket) cutWatch() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.watches[len(b.watches)-1].cut)
}

type cuttableWatcher struct {
	jetstream.KeyWatcher
	updates chan jetstream.KeyValueEntry
	cut     chan struct{}
}

func (w *cuttableWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.updates }

// forward passes the real watch's entries on until cut, then closes
// Updates and takes the rest until the watcher is stopped.
func (w *cuttableWatcher) forward() {
	defer func() {
		close(w.updates)
		for range w.KeyWatcher.Updates() {
		}
	}()
	for {
		select {
		case e, open := <-w.KeyWatcher.Updates():
			if !open {
				return
			}
			select {
			case w.updates <- e:
			case <-w.cut:
				return
			}
		case <-w.cut:
			return
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
