package webhooks

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// Integration is what a webhook needs to know about its integration.
type Integration struct {
	ID     uuid.UUID
	Slug   string
	Status string
	Token  string
	// SignatureSecret is ELEVENLABS_WEBHOOK_SECRET, when set.
	SignatureSecret string
	// Agent and AgentPrompt render agent-init's answer.
	Agent       config.Agent
	AgentPrompt string
}

// Directory finds integrations by slug, caching them briefly so that
// intake does not query Postgres on every request. A token rotated in
// another process takes effect within the TTL.
type Directory struct {
	store *store.Store
	ttl   time.Duration

	mu      sync.Mutex
	entries map[string]dirEntry
}

type dirEntry struct {
	in      Integration
	missing bool
	expires time.Time
}

// DirectoryTTLDefault bounds how stale a cached integration can be.
const DirectoryTTLDefault = 2 * time.Second

// NewDirectory returns a Directory over st.
func NewDirectory(st *store.Store, ttl time.Duration) *Directory {
	if ttl <= 0 {
		ttl = DirectoryTTLDefault
	}
	return &Directory{store: st, ttl: ttl, entries: map[string]dirEntry{}}
}

// Lookup returns the integration with slug, or store.ErrNotFound.
func (d *Directory) Lookup(ctx context.Context, slug string) (Integration, error) {
	now := time.Now()
	d.mu.Lock()
	e, ok := d.entries[slug]
	d.mu.Unlock()
	if ok && now.Before(e.expires) {
		if e.missing {
			return Integration{}, store.ErrNotFound
		}
		return e.in, nil
	}
	in, err := d.load(ctx, slug)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return in, err
	}
	d.mu.Lock()
	d.entries[slug] = dirEntry{in: in, missing: err != nil, expires: now.Add(d.ttl)}
	d.mu.Unlock()
	return in, err
}

// Forget drops a cached integration (after a change in this process).
func (d *Directory) Forget(slug string) {
	d.mu.Lock()
	delete(d.entries, slug)
	d.mu.Unlock()
}

func (d *Directory) load(ctx context.Context, slug string) (Integration, error) {
	in, err := d.store.IntegrationBySlug(ctx, slug)
	if err != nil {
		return Integration{}, err
	}
	out := Integration{ID: in.ID, Slug: in.Slug, Status: in.Status, Token: in.WebhookToken}
	if in.AgentPrompt != nil {
		out.AgentPrompt = *in.AgentPrompt
	}
	cfg, err := d.store.Config(ctx, in.ID)
	if err != nil {
		return Integration{}, err
	}
	out.Agent = cfg.Agent
	secret, err := d.store.SecretValue(ctx, in.ID, "ELEVENLABS_WEBHOOK_SECRET")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Integration{}, err
	}
	out.SignatureSecret = secret
	return out, nil
}
