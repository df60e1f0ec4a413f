// Package callerctx gives the voice agent the caller's CRM context at the
// start of a conversation, fast: lookups are cached in a JetStream
// key-value bucket shared by every replica, warmed when a call is dialled,
// and skipped when the CRM is slow, failing or its breaker is open. Each
// process keeps a copy of the bucket, kept up to date by a watch, so that
// a cached answer costs no request to the NATS server.
package callerctx

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/tracing"
)

// Bucket is the key-value bucket's name.
const Bucket = "callqueue_caller_context"

// TTLDefault is how long a looked-up context is served from the cache.
const TTLDefault = 15 * time.Minute

// Looker finds a caller's variables in the CRM.
type Looker interface {
	Lookup(ctx context.Context, integrationID uuid.UUID, phone string) (map[string]any, error)
	Allows(integrationID uuid.UUID) bool
}

// Options configure the cache.
type Options struct {
	// Replicas is the bucket's replica count on a NATS cluster.
	Replicas int
	// LocalEntries caps the process-local copy of the bucket: 0 is
	// config.CallerCacheEntriesDefault, negative keeps no copy (every read
	// asks the bucket).
	LocalEntries int
	// TTL is how long the bucket keeps a value (0: TTLDefault).
	TTL time.Duration
	// Now is the process's clock (nil: the host's), which the local copy
	// reads a value's age on against the NATS server's time of writing it:
	// a clock set by the database's is off from that by less than a host's
	// may be.
	Now func() time.Time
}

// Cache is the shared caller-context cache.
type Cache struct {
	kv      jetstream.KeyValue
	crm     Looker
	log     zerolog.Logger
	Lookups func() // test hook: called on each CRM lookup

	local      *localCopy // nil: none
	watchRetry time.Duration

	// inflight holds this process's CRM lookups under way, by key: an
	// agent-init that comes while the dial's warm-up is still waiting for
	// the CRM waits for that answer instead of asking the CRM again.
	mu       sync.Mutex
	inflight map[string]*flight
}

// flight is one CRM lookup under way; done is closed once caller and ok
// are set and the caller is cached.
type flight struct {
	done   chan struct{}
	caller Caller
	ok     bool
}

// wait waits for the flight within ctx.
func (f *flight) wait(ctx context.Context) (Caller, bool) {
	select {
	case <-f.done:
		return f.caller, f.ok
	case <-ctx.Done():
		return Caller{}, false
	}
}

// begin registers a flight for k and returns it with leader true, or the
// one already under way with leader false.
func (c *Cache) begin(k string) (f *flight, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.inflight[k]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	c.inflight[k] = f
	return f, true
}

// end releases f's waiters.
func (c *Cache) end(k string, f *flight) {
	c.mu.Lock()
	if c.inflight[k] == f {
		delete(c.inflight, k)
	}
	c.mu.Unlock()
	close(f.done)
}

// New creates (or opens) the bucket. The process-local copy is served
// once Watch runs.
func New(ctx context.Context, js jetstream.JetStream, opt Options, crmLooker Looker, log zerolog.Logger) (*Cache, error) {
	ttl := cmp.Or(opt.TTL, TTLDefault)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, Description: "caller context for agent-init",
		TTL: ttl, Storage: jetstream.FileStorage, Replicas: max(opt.Replicas, 1), History: 1})
	if err != nil {
		return nil, err
	}
	c := &Cache{kv: kv, crm: crmLooker, log: log, inflight: map[string]*flight{}, watchRetry: watchRetryFirst}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if entries := cmp.Or(opt.LocalEntries, config.CallerCacheEntriesDefault); entries > 0 {
		c.local = newLocalCopy(ttl, entries, opt.Now)
	}
	return c, nil
}

func key(integrationID uuid.UUID, phone string) string {
	h := sha256.Sum256([]byte(phone))
	return integrationID.String() + "." + hex.EncodeToString(h[:16])
}

// Caller is what agent-init needs about a caller: their CRM variables and,
// for an outbound call that was warmed when dialled, the call itself.
type Caller struct {
	Vars     map[string]any  `json:"vars"`
	CallID   string          `json:"callId,omitempty"`
	CallVars json.RawMessage `json:"callVars,omitempty"`
}

// Context returns what is known about the caller within ctx's deadline:
// from the shared cache (no database, no CRM), else from the lookup of this
// caller already under way (a dial's warm-up), else from the CRM through its
// breaker. ok is false when nothing could be had in time. The Caller's maps
// may be shared with other readers and are not to be changed.
func (c *Cache) Context(ctx context.Context, integrationID uuid.UUID, phone string) (Caller, bool) {
	k := key(integrationID, phone)
	if cached, ok := c.cached(ctx, k); ok {
		return cached, true
	}
	if !c.crm.Allows(integrationID) || ctx.Err() != nil {
		return Caller{}, false
	}
	f, leader := c.begin(k)
	if !leader {
		return f.wait(ctx)
	}
	defer c.end(k, f)
	// A lookup that ended between the read above and begin cached its answer.
	if cached, ok := c.cached(ctx, k); ok {
		f.caller, f.ok = cached, true
		return cached, true
	}
	vars, err := c.lookup(ctx, integrationID, phone)
	if err != nil {
		c.log.Debug().Err(err).Str("integration_id", integrationID.String()).Msg("caller context unavailable")
		return Caller{}, false
	}
	caller := Caller{Vars: vars}
	c.put(ctx, k, caller)
	f.caller, f.ok = caller, true
	return caller, true
}

// Cached returns what the shared cache alone knows about the caller: no
// CRM, no waiting. The Caller's maps are not to be changed.
func (c *Cache) Cached(ctx context.Context, integrationID uuid.UUID, phone string) (Caller, bool) {
	return c.cached(ctx, key(integrationID, phone))
}

// cached reads the local copy, else the bucket: the copy has what the
// watch delivered, and a value written by another replica a moment ago
// may not be there yet.
func (c *Cache) cached(ctx context.Context, k string) (Caller, bool) {
	if c.local != nil {
		if cached, ok := c.local.get(k); ok {
			return cached, true
		}
	}
	e, err := c.kv.Get(ctx, k)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("caller context cache read failed")
		}
		return Caller{}, false
	}
	var cached Caller
	if json.Unmarshal(e.Value(), &cached) != nil {
		return Caller{}, false
	}
	if c.local != nil {
		c.local.wrote(k, e.Value(), e.Revision(), e.Created())
	}
	return cached, true
}

// lookup asks the CRM (no CRM: no variables).
func (c *Cache) lookup(ctx context.Context, integrationID uuid.UUID, phone string) (map[string]any, error) {
	if c.Lookups != nil {
		c.Lookups()
	}
	ctx, span := tracing.Start(ctx, "crm lookup", trace.SpanKindClient)
	defer span.End()
	tracing.Call(span, integrationID, uuid.Nil, 0)
	vars, err := c.crm.Lookup(ctx, integrationID, phone)
	switch {
	case errors.Is(err, crm.ErrNoCRM):
		tracing.Outcome(span, "no_crm")
		return map[string]any{}, nil
	case err != nil:
		tracing.Fail(span, egress.Describe(err))
	case len(vars) == 0:
		tracing.Outcome(span, "no_record")
	default:
		tracing.Outcome(span, "found")
	}
	return vars, err
}

// put caches a caller (an empty one too, so a caller the CRM does not
// know is not looked up again and again).
func (c *Cache) put(ctx context.Context, k string, caller Caller) {
	raw, err := json.Marshal(caller)
	if err != nil {
		c.log.Warn().Err(err).Msg("caller context cache write failed")
		return
	}
	// Taken before the write: the copy's value expires no later than the
	// bucket's.
	var created time.Time
	if c.local != nil {
		created = c.local.now()
	}
	revision, err := c.kv.Put(context.WithoutCancel(ctx), k, raw)
	if err != nil {
		c.log.Warn().Err(err).Msg("caller context cache write failed")
		return
	}
	if c.local != nil {
		c.local.wrote(k, raw, revision, created)
	}
}

// Warm prepares the agent's context when a call is dialled: the call's
// own variables and the CRM's, cached as soon as the CRM answers (at once
// when its breaker is open), so the agent-init of an outbound call needs
// neither the database nor the CRM. An agent-init that comes while the CRM
// has not answered yet waits for this lookup, within its own deadline,
// rather than asking again.
func (c *Cache) Warm(ctx context.Context, integrationID uuid.UUID, phone string, callID uuid.UUID, callVars json.RawMessage) {
	k := key(integrationID, phone)
	caller := Caller{CallID: callID.String(), CallVars: callVars, Vars: map[string]any{}}
	f, leader := c.begin(k)
	for !leader {
		// A lookup of this caller got there first (the dial's own,
		// ForDial): its answer is this warm-up's too, so the CRM is asked
		// once. If it gave up at its deadline, the warm-up asks anew.
		known, ok := f.wait(ctx)
		if ok {
			if known.Vars != nil {
				caller.Vars = known.Vars
			}
			c.put(ctx, k, caller)
			return
		}
		if ctx.Err() != nil {
			return
		}
		f, leader = c.begin(k)
	}
	defer c.end(k, f)
	if c.crm.Allows(integrationID) {
		vars, err := c.lookup(ctx, integrationID, phone)
		if err != nil {
			c.log.Debug().Err(err).Str("integration_id", integrationID.String()).Msg("warming caller context: CRM lookup failed")
		} else {
			caller.Vars = vars
		}
	}
	c.put(ctx, k, caller)
	f.caller, f.ok = caller, true
}
