package workers

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/store"
)

// CRMApplier sends an update to an integration's CRM through its breaker.
type CRMApplier interface {
	Apply(ctx context.Context, integrationID uuid.UUID, u crm.Update) error
	Allows(integrationID uuid.UUID) bool
}

// Outbox delivers pending CRM updates: each is leased by one deliverer,
// sent through the integration's breaker (nothing is attempted while it is
// open, and nothing is lost), retried with exponential backoff and jitter,
// and kept as failed — visible, not retried — when the CRM rejects it for
// good or it runs out of attempts.
type Outbox struct {
	w   *Workers
	crm CRMApplier

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Outbox tuning.
const (
	outboxLease       = time.Minute
	outboxBatch       = 256
	outboxParallel    = 32
	outboxMaxAttempts = 25
	outboxBaseDelay   = time.Second
	outboxMaxDelay    = 10 * time.Minute
	outboxPoll        = 500 * time.Millisecond
)

func newOutbox(w *Workers, applier CRMApplier) *Outbox {
	return &Outbox{w: w, crm: applier, wake: make(chan struct{}, 1)}
}

// Kick makes the outbox look for work now (a call just finished).
func (o *Outbox) Kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Start runs the delivery loop.
func (o *Outbox) Start(ctx context.Context) {
	ctx, o.cancel = context.WithCancel(ctx)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		t := time.NewTicker(outboxPoll)
		defer t.Stop()
		for {
			n, err := o.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				o.w.log.Warn().Err(err).Msg("crm outbox run failed")
			}
			if n == outboxBatch {
				continue // more may be due
			}
			select {
			case <-ctx.Done():
				return
			case <-o.wake:
			case <-t.C:
			}
		}
	}()
}

// Stop stops delivering; leased updates are retried after their lease.
func (o *Outbox) Stop() {
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
}

// RunOnce delivers one batch of due updates and returns how many it took.
func (o *Outbox) RunOnce(ctx context.Context) (int, error) {
	now := o.w.clock.Now()
	items, err := o.w.store.ClaimOutbox(ctx, now, outboxLease, outboxBatch)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	results := make([]store.OutboxResult, len(items))
	sem := make(chan struct{}, outboxParallel)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = o.deliver(ctx, it, now)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return len(items), ctx.Err() // leases lapse; nothing is lost
	}
	return len(items), retryStore(ctx, func() error { return o.w.store.FinishOutbox(ctx, o.w.clock.Now(), results) })
}

func (o *Outbox) deliver(ctx context.Context, it store.OutboxItem, now time.Time) store.OutboxResult {
	res := store.OutboxResult{ID: it.ID}
	integration := it.IntegrationID.String()
	if !o.crm.Allows(it.IntegrationID) {
		// The breaker is open: wait for it without spending an attempt.
		res.NextAt = now.Add(outboxBaseDelay)
		return res
	}
	var u crm.Update
	if err := json.Unmarshal(it.Payload, &u); err != nil {
		res.Permanent, res.Error = true, "payload: "+err.Error()
		return res
	}
	u.Key = it.ID.String()
	err := o.crm.Apply(ctx, it.IntegrationID, u)
	if errors.Is(err, breaker.ErrOpen) {
		// The breaker opened, or is letting another update probe, since
		// Allows: nothing was sent. Wait as above, keeping the CRM's own
		// last answer as the update's lastError.
		res.NextAt = now.Add(outboxBaseDelay)
		return res
	}
	res.Attempted = true
	switch {
	case err == nil:
		res.Delivered = true
		o.w.metrics.CRMDeliveries.WithLabelValues(integration, "delivered").Inc()
		return res
	case crm.IsPermanent(err):
		res.Permanent = true
		o.w.metrics.CRMDeliveries.WithLabelValues(integration, "failed").Inc()
	case it.Attempts+1 >= outboxMaxAttempts:
		res.Permanent = true
		o.w.metrics.CRMDeliveries.WithLabelValues(integration, "failed").Inc()
	default:
		res.NextAt = now.Add(backoff(it.Attempts))
		o.w.metrics.CRMDeliveries.WithLabelValues(integration, "retry").Inc()
	}
	res.Error = err.Error()
	o.w.log.Warn().Err(err).Str("call_id", it.CallID.String()).Str("integration_id", integration).
		Int("attempts", it.Attempts+1).Bool("permanent", res.Permanent).Msg("crm update not delivered")
	return res
}

// backoff is exponential from a second to ten minutes, with ±20% jitter
// so a recovering CRM is not hit by every update at once.
func backoff(attempts int) time.Duration {
	d := outboxBaseDelay << min(attempts, 20)
	d = min(d, outboxMaxDelay)
	jitter := 0.8 + 0.4*rand.Float64() //nolint:gosec // jitter needs no cryptographic randomness
	return time.Duration(float64(d) * jitter)
}
