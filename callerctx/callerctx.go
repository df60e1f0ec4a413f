// Package callerctx gives the voice agent the caller's CRM context at the
// start of a conversation, fast: lookups are cached in a JetStream
// key-value bucket shared by every replica, warmed when a call is dialled,
// and skipped when the CRM is slow, failing or its breaker is open.
package callerctx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/crm"
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

// Cache is the shared caller-context cache.
type Cache struct {
	kv      jetstream.KeyValue
	crm     Looker
	log     zerolog.Logger
	Lookups func() // test hook: called on each CRM lookup
}

// New creates (or opens) the bucket.
func New(ctx context.Context, js jetstream.JetStream, replicas int, crmLooker Looker, log zerolog.Logger) (*Cache, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, Description: "caller context for agent-init",
		TTL: TTLDefault, Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 1})
	if err != nil {
		return nil, err
	}
	return &Cache{kv: kv, crm: crmLooker, log: log}, nil
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
// from the shared cache (no database, no CRM), else from the CRM through
// its breaker. ok is false when nothing could be had in time.
func (c *Cache) Context(ctx context.Context, integrationID uuid.UUID, phone string) (Caller, bool) {
	if e, err := c.kv.Get(ctx, key(integrationID, phone)); err == nil {
		var cached Caller
		if json.Unmarshal(e.Value(), &cached) == nil {
			return cached, true
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		c.log.Warn().Err(err).Msg("caller context cache read failed")
	}
	if !c.crm.Allows(integrationID) {
		return Caller{}, false
	}
	vars, err := c.lookup(ctx, integrationID, phone)
	if err != nil {
		c.log.Debug().Err(err).Str("integration_id", integrationID.String()).Msg("caller context unavailable")
		return Caller{}, false
	}
	caller := Caller{Vars: vars}
	c.put(ctx, integrationID, phone, caller)
	return caller, true
}

// lookup asks the CRM (no CRM: no variables).
func (c *Cache) lookup(ctx context.Context, integrationID uuid.UUID, phone string) (map[string]any, error) {
	if c.Lookups != nil {
		c.Lookups()
	}
	vars, err := c.crm.Lookup(ctx, integrationID, phone)
	if errors.Is(err, crm.ErrNoCRM) {
		return map[string]any{}, nil
	}
	return vars, err
}

// put caches a caller (an empty one too, so a caller the CRM does not
// know is not looked up again and again).
func (c *Cache) put(ctx context.Context, integrationID uuid.UUID, phone string, caller Caller) {
	raw, err := json.Marshal(caller)
	if err == nil {
		_, err = c.kv.Put(context.WithoutCancel(ctx), key(integrationID, phone), raw)
	}
	if err != nil {
		c.log.Warn().Err(err).Msg("caller context cache write failed")
	}
}

// Warm prepares the agent's context when a call is dialled: the call's
// own variables at once, and the CRM's as soon as the CRM answers, so the
// agent-init of an outbound call needs neither the database nor the CRM.
func (c *Cache) Warm(ctx context.Context, integrationID uuid.UUID, phone string, callID uuid.UUID, callVars json.RawMessage) {
	caller := Caller{CallID: callID.String(), CallVars: callVars, Vars: map[string]any{}}
	if c.crm.Allows(integrationID) {
		vars, err := c.lookup(ctx, integrationID, phone)
		if err != nil {
			c.log.Debug().Err(err).Str("integration_id", integrationID.String()).Msg("warming caller context: CRM lookup failed")
		} else {
			caller.Vars = vars
		}
	}
	c.put(ctx, integrationID, phone, caller)
}
