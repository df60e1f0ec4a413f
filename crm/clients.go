package crm

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/store"
)

// Source is where integrations' CRM settings come from (the store); a
// secret that is not set is store.ErrNotFound.
type Source interface {
	Config(ctx context.Context, id uuid.UUID) (config.Integration, error)
	SecretValue(ctx context.Context, id uuid.UUID, key string) (string, error)
}

// Clients gives each integration its CRM client, built from its config and
// secrets (cached briefly), behind its own circuit breaker.
type Clients struct {
	src      Source
	http     *http.Client
	breakers *breaker.Set[any]
	ttl      time.Duration

	// OnAmbiguous, when set, hears of each lookup that found several
	// different records for one phone and so took none (to log and count).
	OnAmbiguous func(integrationID uuid.UUID, matches int)
	// Now is the clock Retry-After holds are measured on (the service's,
	// so that they agree with the outbox's schedule).
	Now func() time.Time

	mu    sync.Mutex
	cache map[uuid.UUID]cachedClient
	// holdUntil is when each rate-limited integration's CRM may be asked
	// again (its last 429's Retry-After).
	holdUntil map[uuid.UUID]time.Time
}

type cachedClient struct {
	client  Client
	fields  config.CRMFields
	kind    string
	err     error
	expires time.Time
}

// ClientTTLDefault is how long a built client is reused: config and secret
// changes take effect within it.
const ClientTTLDefault = 5 * time.Second

// NewClients returns the CRM access for every integration.
func NewClients(src Source, httpClient *http.Client, breakers *breaker.Set[any]) *Clients {
	if httpClient == nil {
		httpClient = egress.NewClient(egress.Policy{}, TimeoutDefault)
	}
	return &Clients{src: src, http: httpClient, breakers: breakers, ttl: ClientTTLDefault, Now: time.Now,
		cache: map[uuid.UUID]cachedClient{}, holdUntil: map[uuid.UUID]time.Time{}}
}

// ErrNoCRM means the integration has no CRM configured.
var ErrNoCRM = errors.New("no CRM configured")

func (c *Clients) client(ctx context.Context, id uuid.UUID) (cachedClient, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.cache[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e, e.err
	}
	cfg, err := c.src.Config(ctx, id)
	if err != nil {
		return e, err // not cached: the store may be back next time
	}
	e = cachedClient{fields: cfg.CRMFields, kind: cfg.CRM.Kind, expires: now.Add(c.ttl)}
	secrets := map[string]string{}
	for _, k := range SecretsFor(cfg.CRM) {
		v, err := c.src.SecretValue(ctx, id, k)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			// Unread is not unset: a client built without the secret
			// would fail every update for good while it is cached.
			return e, err // not cached
		}
		secrets[k] = v
	}
	e.client, e.err = New(cfg.CRM, cfg.CRMFields, secrets, c.http)
	c.mu.Lock()
	c.cache[id] = e
	c.mu.Unlock()
	return e, e.err
}

func isNone(kind string) bool { return kind == "none" || kind == "" }

// forget drops the integration's cached client.
func (c *Clients) forget(id uuid.UUID) {
	c.mu.Lock()
	delete(c.cache, id)
	c.mu.Unlock()
}

// Kind is the integration's CRM kind ("none" when it has none).
func (c *Clients) Kind(ctx context.Context, id uuid.UUID) (string, error) {
	e, err := c.client(ctx, id)
	return e.kind, err
}

// Lookup finds the caller through the integration's breaker and returns
// the agent's variables for them (empty when there is no record, or when
// several different records match: then none is taken).
func (c *Clients) Lookup(ctx context.Context, id uuid.UUID, phone string) (map[string]any, error) {
	e, err := c.client(ctx, id)
	if err != nil {
		return nil, err
	}
	if isNone(e.kind) {
		return nil, ErrNoCRM
	}
	if err := c.held(id); err != nil {
		return nil, err
	}
	var ambiguous *AmbiguousError
	rec, err := c.breakers.Execute(id.String(), func() (any, error) {
		r, err := e.client.Lookup(ctx, phone)
		if errors.As(err, &ambiguous) {
			return nil, nil // an answer, not a failure of the CRM
		}
		return r, err
	})
	c.hold(id, err)
	if ambiguous != nil {
		c.ambiguous(id, ambiguous.Matches)
	}
	if err != nil {
		return nil, err
	}
	r, _ := rec.(*Record)
	return Variables(r, e.fields), nil
}

// Apply sends an update through the integration's breaker. While a 429's
// Retry-After runs, it sends nothing and answers a *RateLimitedError.
func (c *Clients) Apply(ctx context.Context, id uuid.UUID, u Update) error {
	e, err := c.client(ctx, id)
	if err == nil && isNone(e.kind) {
		// Updates are queued only for an integration with a CRM: a cached
		// "none" may predate its setting. Read the settings again rather
		// than report an update delivered that went nowhere.
		c.forget(id)
		e, err = c.client(ctx, id)
		if err == nil && isNone(e.kind) {
			return &PermanentError{Message: ErrNoCRM.Error()}
		}
	}
	if err != nil {
		return err
	}
	if err := c.held(id); err != nil {
		return err
	}
	_, err = c.breakers.Execute(id.String(), func() (any, error) { return nil, e.client.Apply(ctx, u) })
	c.hold(id, err)
	var none *NoRecordError
	if errors.As(err, &none) && none.Matches > 1 {
		c.ambiguous(id, none.Matches)
	}
	return err
}

// held is a *RateLimitedError (Held) while the integration's CRM asked for
// a pause, else nil.
func (c *Clients) held(id uuid.UUID) error {
	c.mu.Lock()
	until := c.holdUntil[id]
	c.mu.Unlock()
	if wait := until.Sub(c.Now()); wait > 0 {
		return &RateLimitedError{After: wait, Held: true}
	}
	return nil
}

// hold starts the pause a 429 asked for.
func (c *Clients) hold(id uuid.UUID, err error) {
	wait := RetryAfter(err)
	if wait <= 0 {
		return
	}
	until := c.Now().Add(wait)
	c.mu.Lock()
	if until.After(c.holdUntil[id]) {
		c.holdUntil[id] = until
	}
	c.mu.Unlock()
}

func (c *Clients) ambiguous(id uuid.UUID, matches int) {
	if c.OnAmbiguous != nil {
		c.OnAmbiguous(id, matches)
	}
}

// Allows reports whether the integration's CRM breaker lets calls through.
func (c *Clients) Allows(id uuid.UUID) bool { return c.breakers.Allows(id.String()) }

// Breakers exposes the breaker set, for health and metrics.
func (c *Clients) Breakers() *breaker.Set[any] { return c.breakers }

// Retain drops cached clients of integrations keep refuses (deleted ones).
func (c *Clients) Retain(keep func(id uuid.UUID) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.cache {
		if !keep(id) {
			delete(c.cache, id)
		}
	}
	for id := range c.holdUntil {
		if !keep(id) {
			delete(c.holdUntil, id)
		}
	}
}
