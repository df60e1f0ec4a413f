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

type entry struct {
	Vars map[string]any `json:"vars"`
}

// Enrich adds the caller's CRM variables to vars within ctx's deadline,
// from the cache or the CRM; whatever cannot be had in time is left out.
func (c *Cache) Enrich(ctx context.Context, integrationID uuid.UUID, phone string, vars map[string]any) {
	got, err := c.get(ctx, integrationID, phone)
	if err != nil {
		c.log.Debug().Err(err).Str("integration_id", integrationID.String()).Msg("caller context unavailable")
		return
	}
	for k, v := range got {
		if _, taken := vars[k]; !taken {
			vars[k] = v
		}
	}
}

func (c *Cache) get(ctx context.Context, integrationID uuid.UUID, phone string) (map[string]any, error) {
	k := key(integrationID, phone)
	if e, err := c.kv.Get(ctx, k); err == nil {
		var cached entry
		if json.Unmarshal(e.Value(), &cached) == nil {
			return cached.Vars, nil
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		c.log.Warn().Err(err).Msg("caller context cache read failed")
	}
	if !c.crm.Allows(integrationID) {
		return nil, errors.New("CRM breaker is open")
	}
	return c.lookup(ctx, integrationID, phone)
}

// lookup asks the CRM and caches the answer (an empty one too, so a caller
// the CRM does not know is not looked up again and again).
func (c *Cache) lookup(ctx context.Context, integrationID uuid.UUID, phone string) (map[string]any, error) {
	if c.Lookups != nil {
		c.Lookups()
	}
	vars, err := c.crm.Lookup(ctx, integrationID, phone)
	if errors.Is(err, crm.ErrNoCRM) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(entry{Vars: vars})
	if err == nil {
		_, err = c.kv.Put(context.WithoutCancel(ctx), key(integrationID, phone), raw)
	}
	if err != nil {
		c.log.Warn().Err(err).Msg("caller context cache write failed")
	}
	return vars, nil
}

// Warm looks the caller up ahead of the call (at dial time), so the
// agent-init of an outbound call is a cache hit.
func (c *Cache) Warm(ctx context.Context, integrationID uuid.UUID, phone string) {
	if !c.crm.Allows(integrationID) {
		return
	}
	if _, err := c.lookup(ctx, integrationID, phone); err != nil {
		c.log.Debug().Err(err).Str("integration_id", integrationID.String()).Msg("warming caller context failed")
	}
}
