package workers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/pgtext"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// CRMApplier sends an update to an integration's CRM through its breaker.
type CRMApplier interface {
	Apply(ctx context.Context, integrationID uuid.UUID, u crm.Update) error
	Allows(integrationID uuid.UUID) bool
}

// Outbox delivers pending CRM updates: each is leased by one deliverer
// under a fencing token (renewed while its request runs, so a slow CRM
// never lets a second deliverer in), sent through the integration's
// breaker, retried with exponential backoff and jitter, and kept as failed
// — visible, not retried — only when the CRM rejects it for good or it has
// been failing for OutboxGiveUpAfter. Attempts while the breaker is open
// spend nothing.
//
// Integrations are served fairly: a claim goes round-robin over them, each
// has at most outboxPerIntegration updates in flight, and one whose breaker
// is open is left alone until it may let a request through, so one
// tenant's slow or broken CRM holds up no other.
type Outbox struct {
	w   *Workers
	crm CRMApplier

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sends carries the CRM requests; Stop cancels it only after letting
	// them finish for outboxStopGrace, so their answers are recorded.
	sends      context.Context
	stopSends  context.CancelFunc
	deliveries sync.WaitGroup
	// results collects finished deliveries; the finisher records them in
	// batches, so a burst costs few round trips.
	results  chan finished
	finisher sync.WaitGroup

	mu       sync.Mutex
	inFlight map[uuid.UUID]map[uuid.UUID]uuid.UUID // integration → item → lease token
	waitTill map[uuid.UUID]time.Time               // integration → not before (breaker open)

	passes, claimed atomic.Int64
}

// OutboxCounts are what an Outbox has done since it started.
type OutboxCounts struct {
	// Passes counts looks for due updates; Claimed the updates leased.
	Passes, Claimed int64
}

// Counts tells how many passes the outbox made and how many updates it
// claimed (for tests and debugging: an open breaker must cost no claims).
func (o *Outbox) Counts() OutboxCounts {
	return OutboxCounts{Passes: o.passes.Load(), Claimed: o.claimed.Load()}
}

// Outbox tuning.
const (
	outboxLease          = time.Minute
	outboxBatch          = 256
	outboxParallel       = 64
	outboxPerIntegration = 16
	outboxBaseDelay      = time.Second
	outboxMaxDelay       = 10 * time.Minute
	outboxPoll           = 500 * time.Millisecond
	outboxStopGrace      = 10 * time.Second
	// An update is kept as failed only once it has been failing for
	// OutboxGiveUpAfter and has had outboxMaxAttempts attempts: no outage
	// shorter than that can exhaust it, however often it was tried.
	OutboxGiveUpAfter = 7 * 24 * time.Hour
	outboxMaxAttempts = 25
)

// finished is a delivery's result for the finisher.
type finished struct {
	integrationID uuid.UUID
	res           store.OutboxResult
}

func newOutbox(w *Workers, applier CRMApplier) *Outbox {
	return &Outbox{w: w, crm: applier, wake: make(chan struct{}, 1), inFlight: map[uuid.UUID]map[uuid.UUID]uuid.UUID{},
		waitTill: map[uuid.UUID]time.Time{}, results: make(chan finished, outboxParallel)}
}

func (o *Outbox) lease() time.Duration { return cmp.Or(o.w.cfg.OutboxLease, outboxLease) }

// Kick makes the outbox look for work now (a call just finished).
func (o *Outbox) Kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Start runs the delivery loop and the lease renewal.
func (o *Outbox) Start(ctx context.Context) {
	ctx, o.cancel = context.WithCancel(ctx)
	o.sends, o.stopSends = context.WithCancel(context.WithoutCancel(ctx))
	o.finisher.Add(1)
	go o.finish() //nolint:gosec // G118: results are recorded after ctx ends too, on purpose (Stop waits for them)
	o.wg.Add(2)
	go func() {
		defer o.wg.Done()
		claimLoop(ctx, outboxPoll, o.wake, o.runOnce, func(err error) {
			o.w.log.Warn().Err(err).Msg("crm outbox run failed")
		})
	}()
	go func() {
		defer o.wg.Done()
		o.renewLeases(ctx)
	}()
}

// Stop stops claiming, lets the requests in flight finish (at most
// outboxStopGrace) and records their results, so that an update the CRM
// has taken is not sent again by the next process. Requests cut short are
// released at once for the next deliverer.
func (o *Outbox) Stop() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.wg.Wait()
	done := make(chan struct{})
	go func() { o.deliveries.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(outboxStopGrace):
		o.stopSends()
		<-done
	}
	close(o.results)
	o.finisher.Wait()
	o.stopSends()
}

// RunOnce claims due updates the in-flight bounds allow and starts their
// deliveries; it returns how many it started.
func (o *Outbox) RunOnce(ctx context.Context) (int, error) {
	n, _, err := o.runOnce(ctx)
	return n, err
}

func (o *Outbox) runOnce(ctx context.Context) (int, bool, error) {
	now := o.w.clock.Now()
	o.mu.Lock()
	var skip, inFlight []uuid.UUID
	held := make(map[uuid.UUID]int, len(o.inFlight))
	for id, items := range o.inFlight {
		for item := range items {
			inFlight = append(inFlight, item)
		}
		held[id] = len(items)
		if len(items) >= outboxPerIntegration {
			skip = append(skip, id)
		}
	}
	total := len(inFlight)
	for id := range o.waitTill {
		if !o.crm.Allows(id) {
			// Its breaker is open: nothing is claimed for it until the
			// breaker may let a probe through (the breaker keeps that time).
			skip = append(skip, id)
		} else {
			delete(o.waitTill, id)
		}
	}
	o.mu.Unlock()
	defer o.passes.Add(1)
	room := min(outboxParallel-total, outboxBatch)
	if room <= 0 {
		return 0, false, nil // full: a finished delivery kicks the loop
	}
	items, err := o.w.store.ClaimOutbox(ctx, store.OutboxClaim{Now: now, Lease: o.lease(), Limit: room,
		PerIntegration: outboxPerIntegration, Held: held, Skip: skip, InFlight: inFlight})
	if err != nil || len(items) == 0 {
		return 0, false, err
	}
	o.claimed.Add(int64(len(items)))
	started := 0
	for _, it := range items {
		o.mu.Lock()
		held := o.inFlight[it.IntegrationID]
		if held == nil {
			held = map[uuid.UUID]uuid.UUID{}
			o.inFlight[it.IntegrationID] = held
		}
		held[it.ID] = it.LeaseToken
		o.mu.Unlock()
		started++
		o.deliveries.Add(1)
		go func() {
			defer o.deliveries.Done()
			o.results <- finished{integrationID: it.IntegrationID, res: o.deliver(o.sends, it, now)}
		}()
	}
	return started, len(items) == room, nil
}

// finish records results as deliveries end, in batches, also while the
// outbox stops (Stop waits for it): a delivered update whose result were
// lost would be sent again. An update leaves the in-flight set only once
// its result is recorded, so it is never claimed again meanwhile.
func (o *Outbox) finish() {
	defer o.finisher.Done()
	for f := range o.results {
		batch := []finished{f}
	more:
		for len(batch) < outboxBatch {
			select {
			case f, ok := <-o.results:
				if !ok {
					break more
				}
				batch = append(batch, f)
			default:
				break more
			}
		}
		results := make([]store.OutboxResult, len(batch))
		for i, f := range batch {
			results[i] = f.res
		}
		ctx, cancel := context.WithTimeout(context.Background(), outboxStopGrace)
		err := retryStore(ctx, func() error { return o.w.store.FinishOutbox(ctx, o.w.clock.Now(), results) })
		cancel()
		if err != nil {
			o.w.log.Error().Err(err).Int("updates", len(results)).
				Msg("could not record crm delivery results; the updates will be retried after their lease")
		}
		o.mu.Lock()
		for _, f := range batch {
			delete(o.inFlight[f.integrationID], f.res.ID)
			if len(o.inFlight[f.integrationID]) == 0 {
				delete(o.inFlight, f.integrationID)
			}
		}
		o.mu.Unlock()
		o.Kick() // room for more
	}
}

// renewLeases extends the leases of the updates in flight every third of
// the lease, so the slowest request never outlives its lease.
func (o *Outbox) renewLeases(ctx context.Context) {
	t := time.NewTicker(o.lease() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		byToken := map[uuid.UUID][]uuid.UUID{}
		o.mu.Lock()
		for _, items := range o.inFlight {
			for id, token := range items {
				byToken[token] = append(byToken[token], id)
			}
		}
		o.mu.Unlock()
		for token, ids := range byToken {
			if _, err := o.w.store.RenewOutbox(ctx, token, ids, o.lease()); err != nil && ctx.Err() == nil {
				o.w.log.Warn().Err(err).Int("updates", len(ids)).Msg("could not renew crm outbox leases")
			}
		}
	}
}

func (o *Outbox) deliver(ctx context.Context, it store.OutboxItem, now time.Time) store.OutboxResult {
	// The update continues the trace of the event that finished the call.
	ctx, span := tracing.Start(tracing.FromTraceparent(ctx, deref(it.TraceParent)), "crm update", trace.SpanKindClient)
	defer span.End()
	tracing.Call(span, it.IntegrationID, it.CallID, 0)
	res := o.deliverTraced(ctx, it, now)
	switch {
	case res.Delivered:
		tracing.Outcome(span, "delivered")
	case res.NoRecord:
		tracing.Outcome(span, "no_record")
	case !res.Attempted:
		tracing.Outcome(span, "waiting")
	default:
		tracing.Fail(span, res.Error)
	}
	return res
}

func (o *Outbox) deliverTraced(ctx context.Context, it store.OutboxItem, now time.Time) store.OutboxResult {
	res := store.OutboxResult{ID: it.ID, LeaseToken: it.LeaseToken}
	integration := it.IntegrationID.String()
	if !o.crm.Allows(it.IntegrationID) {
		// The breaker is open: wait for it without spending an attempt, and
		// leave the integration alone meanwhile (no hot loop).
		res.NextAt = o.breakerWait(it.IntegrationID, now, now.Add(outboxBaseDelay))
		return res
	}
	var u crm.Update
	if err := json.Unmarshal(it.Payload, &u); err != nil {
		res.Permanent, res.Error = true, "payload: "+err.Error()
		return res
	}
	u.Key = it.ID.String()
	u.FinishedAt = it.CreatedAt
	u.StepsDone = it.StepsDone
	u.StepDone = func(ctx context.Context, step string) error {
		return o.w.store.RecordOutboxStep(context.WithoutCancel(ctx), it.ID, it.LeaseToken, step)
	}
	err := o.crm.Apply(ctx, it.IntegrationID, u)
	if errors.Is(err, breaker.ErrOpen) {
		// The breaker opened, or is letting another update probe, since
		// Allows: nothing was sent. Wait as above, keeping the CRM's own
		// last answer as the update's lastError.
		res.NextAt = o.breakerWait(it.IntegrationID, now, now.Add(outboxBaseDelay))
		return res
	}
	if crm.IsHeld(err) {
		// The CRM asked for a pause (429) that still runs: nothing was
		// sent; the integration's updates wait for its end.
		res.NextAt = o.breakerWait(it.IntegrationID, now, now.Add(crm.RetryAfter(err)))
		return res
	}
	if ctx.Err() != nil && err != nil {
		// Stopped mid-request: the next process retries it at once.
		res.NextAt = now
		return res
	}
	res.Attempted = true
	switch {
	case err == nil:
		res.Delivered = true
		o.w.metrics.CRMDelivered(integration, "delivered")
		return res
	case crm.IsNoRecord(err):
		// Not the CRM's fault and not worth retrying: kept as no_record.
		res.NoRecord = true
		o.w.metrics.CRMDelivered(integration, "no_record")
	case crm.IsPermanent(err):
		res.Permanent = true
		o.w.metrics.CRMDelivered(integration, "failed")
	case it.Attempts+1 >= outboxMaxAttempts && now.Sub(it.CreatedAt) >= OutboxGiveUpAfter:
		res.Permanent = true
		o.w.metrics.CRMDelivered(integration, "failed")
	default:
		res.NextAt = now.Add(backoff(it.Attempts))
		o.w.metrics.CRMDelivered(integration, "retry")
		if wait := crm.RetryAfter(err); wait > 0 {
			// A 429: no update of the integration goes before its Retry-After.
			res.NextAt = o.breakerWait(it.IntegrationID, now, later(res.NextAt, now.Add(wait)))
		} else if !o.crm.Allows(it.IntegrationID) {
			// This failure opened the breaker: leave the integration alone
			// until it may probe, as if the breaker had refused the next one.
			o.breakerWait(it.IntegrationID, now, now.Add(outboxBaseDelay))
		}
	}
	res.Error = pgtext.Clean(egress.Describe(err)) // a tenant reads it: the raw error goes to the log
	o.w.log.Warn().Err(err).Str("call_id", it.CallID.String()).Str("integration_id", integration).
		Int("attempts", it.Attempts+1).Bool("permanent", res.Permanent).Msg("crm update not delivered")
	return res
}

// breakerWait keeps the outbox off an integration whose CRM may not be
// called (its breaker is open, or it asked for a pause) until next, and
// returns next: when to look at the refused update again.
func (o *Outbox) breakerWait(integrationID uuid.UUID, now, next time.Time) time.Time {
	o.mu.Lock()
	till := o.waitTill[integrationID]
	waiting := now.Before(till)
	if next.After(till) {
		o.waitTill[integrationID] = next
	}
	o.mu.Unlock()
	// Deferred once per wait, and again when a longer one (a 429's) starts.
	if !waiting || next.After(till.Add(outboxBaseDelay)) {
		// The integration's other due updates wait too, in one statement.
		if err := o.w.store.DeferOutbox(o.sends, integrationID, next); err != nil {
			o.w.log.Warn().Err(err).Str("integration_id", integrationID.String()).Msg("could not defer crm updates")
		}
	}
	return next
}

// backoff is exponential from a second to ten minutes, with ±20% jitter
// so a recovering CRM is not hit by every update at once.
func backoff(attempts int) time.Duration {
	d := outboxBaseDelay << min(attempts, 20)
	d = min(d, outboxMaxDelay)
	jitter := 0.8 + 0.4*rand.Float64() //nolint:gosec // jitter needs no cryptographic randomness
	return time.Duration(float64(d) * jitter)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
