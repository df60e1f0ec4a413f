package webhooks

import (
	"container/list"
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
	// Agent, AgentPrompt and CRMFields render agent-init's answer.
	Agent       config.Agent
	AgentPrompt string
	CRMFields   config.CRMFields
}

// Directory finds integrations by slug, caching them briefly so that
// intake does not query Postgres on every request. A token rotated in
// another process takes effect within the TTL.
//
// Slugs come from anonymous requests, so the cache is bounded: a slug that
// cannot exist is refused before any query, a miss is remembered only
// briefly, and the least recently used entry goes when the cache is full.
type Directory struct {
	store   *store.Store
	ttl     time.Duration
	missTTL time.Duration
	max     int

	mu      sync.Mutex
	entries map[string]*list.Element // of *dirEntry
	order   *list.List               // most recently used first
}

type dirEntry struct {
	slug    string
	in      Integration
	missing bool
	expires time.Time
}

// Directory defaults.
const (
	// DirectoryTTLDefault bounds how stale a cached integration can be.
	DirectoryTTLDefault = 2 * time.Second
	// DirectoryMissTTL is how long an unknown slug is remembered: long
	// enough to absorb a burst, short enough that a flood of made-up slugs
	// ages out at once.
	DirectoryMissTTL = 500 * time.Millisecond
	// DirectoryMaxEntries bounds the cache, hits and misses together.
	DirectoryMaxEntries = 10000
)

// NewDirectory returns a Directory over st.
func NewDirectory(st *store.Store, ttl time.Duration) *Directory {
	if ttl <= 0 {
		ttl = DirectoryTTLDefault
	}
	return &Directory{store: st, ttl: ttl, missTTL: min(ttl, DirectoryMissTTL), max: DirectoryMaxEntries,
		entries: map[string]*list.Element{}, order: list.New()}
}

// Lookup returns the integration with slug, or store.ErrNotFound.
func (d *Directory) Lookup(ctx context.Context, slug string) (Integration, error) {
	if !store.SlugPattern.MatchString(slug) {
		return Integration{}, store.ErrNotFound // no such slug can exist: no query, nothing cached
	}
	now := time.Now()
	if e, ok := d.cached(slug, now); ok {
		if e.missing {
			return Integration{}, store.ErrNotFound
		}
		return e.in, nil
	}
	in, err := d.load(ctx, slug)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return in, err
	}
	ttl := d.ttl
	if err != nil {
		ttl = d.missTTL
	}
	d.remember(&dirEntry{slug: slug, in: in, missing: err != nil, expires: now.Add(ttl)})
	return in, err
}

func (d *Directory) cached(slug string, now time.Time) (dirEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	el, ok := d.entries[slug]
	if !ok {
		return dirEntry{}, false
	}
	e := el.Value.(*dirEntry)
	if !now.Before(e.expires) {
		d.order.Remove(el)
		delete(d.entries, slug)
		return dirEntry{}, false
	}
	d.order.MoveToFront(el)
	return *e, true
}

func (d *Directory) remember(e *dirEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.entries[e.slug]; ok {
		el.Value = e
		d.order.MoveToFront(el)
		return
	}
	d.entries[e.slug] = d.order.PushFront(e)
	for d.order.Len() > d.max {
		oldest := d.order.Back()
		d.order.Remove(oldest)
		delete(d.entries, oldest.Value.(*dirEntry).slug)
	}
}

// Len is how many slugs are cached.
func (d *Directory) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// Forget drops a cached integration (after a change in this process).
func (d *Directory) Forget(slug string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.entries[slug]; ok {
		d.order.Remove(el)
		delete(d.entries, slug)
	}
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
	out.Agent, out.CRMFields = cfg.Agent, cfg.CRMFields
	secret, err := d.store.SecretValue(ctx, in.ID, "ELEVENLABS_WEBHOOK_SECRET")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Integration{}, err
	}
	out.SignatureSecret = secret
	return out, nil
}
