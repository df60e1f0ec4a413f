package workers

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// Dispatcher dials queued calls when their integration has free slots. The
// slot decision is made in Postgres under the integration's row lock, so the
// limit holds across any number of dispatchers; within a process each
// integration is dispatched by one goroutine at a time. A kick (a freed
// slot, a new call) dispatches at once; the scheduler's sweep covers kicks
// that were lost.
type Dispatcher struct {
	w      *Workers
	dialer *dialer.Breaking

	mu       sync.Mutex
	pending  map[uuid.UUID]time.Time
	running  map[uuid.UUID]bool
	backoffs map[uuid.UUID]refusal
	wakes    map[uuid.UUID]time.Time // kicks asked for by pacing holds
	wake     chan struct{}

	healthMu sync.Mutex

	// ctx runs the loops that claim calls; Stop cancels it first.
	ctx    context.Context
	cancel context.CancelFunc
	// dialCtx runs originate requests and the recording of their answers.
	// It is not the caller's: a stop lets dials in flight finish, and only
	// Stop's deadline passing cancels it.
	dialCtx      context.Context
	dialCancel   context.CancelFunc
	loops        sync.WaitGroup
	stopClaiming sync.Once
	dials        sync.WaitGroup
	sub          *nats.Subscription
}

// refusal delays an integration's dispatch after its breaker refused
// dials: a half-open breaker lets a probe through and refuses the rest,
// and claiming them again at once would spin until the probe answers.
type refusal struct {
	until time.Time
	delay time.Duration
}

// Bounds of the per-integration backoff after refused dials.
const (
	RefusedBackoffFirst   = 100 * time.Millisecond
	RefusedBackoffLongest = 5 * time.Second
)

func newDispatcher(w *Workers, d *dialer.Breaking) *Dispatcher {
	return &Dispatcher{w: w, dialer: d, pending: map[uuid.UUID]time.Time{}, running: map[uuid.UUID]bool{},
		backoffs: map[uuid.UUID]refusal{}, wakes: map[uuid.UUID]time.Time{}, wake: make(chan struct{}, 1)}
}

// Start runs the dispatch loops and listens for kicks from other processes.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.ctx, d.cancel = context.WithCancel(ctx)
	d.dialCtx, d.dialCancel = context.WithCancel(context.WithoutCancel(ctx))
	sub, err := d.w.queue.SubscribeKicks(d.Kick)
	if err != nil {
		return err
	}
	d.sub = sub
	for range d.w.cfg.DispatchWorkers {
		d.loops.Add(1)
		go d.loop()
	}
	return nil
}

// StopClaiming stops claiming calls, without waiting: a claim under way
// completes (its calls are dialled), none starts after. The first step of
// a shutdown, so that nothing new is dialled while the rest drains.
func (d *Dispatcher) StopClaiming() {
	d.stopClaiming.Do(func() {
		if d.sub != nil {
			_ = d.sub.Unsubscribe()
		}
		if d.cancel != nil {
			d.cancel()
		}
	})
}

// ClaimingStopped is closed once StopClaiming has run (nil before Start).
func (d *Dispatcher) ClaimingStopped() <-chan struct{} {
	if d.ctx == nil {
		return nil
	}
	return d.ctx.Done()
}

// Stop stops claiming calls, then waits for the dials in flight to be
// answered and their answers recorded, until ctx ends. Dials still open
// then are abandoned: their calls stay dialing and the watchdog releases
// them as dial_lost (never dialling them twice).
func (d *Dispatcher) Stop(ctx context.Context) {
	d.StopClaiming()
	if d.dialCancel == nil {
		return // never started
	}
	done := make(chan struct{})
	// A claim under way adds its dials before its loop is done.
	go func() { d.loops.Wait(); d.dials.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		d.w.log.Warn().Msg("dials still in flight at the shutdown deadline are abandoned")
		d.dialCancel()
		<-done
	}
	d.dialCancel()
}

// Kick asks for the integration to be dispatched now.
func (d *Dispatcher) Kick(integrationID uuid.UUID) {
	d.mu.Lock()
	if _, ok := d.pending[integrationID]; !ok {
		d.pending[integrationID] = time.Now()
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// next takes a pending integration not being dispatched by another loop
// and not backing off.
func (d *Dispatcher) next() (uuid.UUID, time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for id, since := range d.pending {
		if !d.running[id] && !now.Before(d.backoffs[id].until) {
			delete(d.pending, id)
			d.running[id] = true
			return id, since, true
		}
	}
	return uuid.Nil, time.Time{}, false
}

// refused backs the integration's dispatch off after its breaker refused
// a dial, and kicks it again when the backoff is over. The refused call
// keeps its place in the queue (store: a dial not sent keeps queued_at).
func (d *Dispatcher) refused(id uuid.UUID) {
	d.mu.Lock()
	b := d.backoffs[id]
	now := time.Now()
	if now.Before(b.until) {
		d.mu.Unlock() // several refusals of one claim back off once
		return
	}
	b.delay = min(max(b.delay*2, RefusedBackoffFirst), RefusedBackoffLongest)
	b.until = now.Add(b.delay)
	d.backoffs[id] = b
	d.mu.Unlock()
	time.AfterFunc(b.delay, func() { d.Kick(id) })
}

// kickAt kicks the integration after delay, once however many claims ask
// for it before then.
func (d *Dispatcher) kickAt(id uuid.UUID, delay time.Duration) {
	delay = max(delay, time.Millisecond)
	d.mu.Lock()
	if at, ok := d.wakes[id]; ok && !time.Now().Add(delay).Before(at) {
		d.mu.Unlock()
		return // an earlier kick is on its way
	}
	d.wakes[id] = time.Now().Add(delay)
	d.mu.Unlock()
	time.AfterFunc(delay, func() {
		d.mu.Lock()
		delete(d.wakes, id)
		d.mu.Unlock()
		d.Kick(id)
	})
}

// dialled ends the integration's backoff: its dials get through again.
func (d *Dispatcher) dialled(id uuid.UUID) {
	d.mu.Lock()
	delete(d.backoffs, id)
	d.mu.Unlock()
}

func (d *Dispatcher) done(id uuid.UUID) {
	d.mu.Lock()
	delete(d.running, id)
	more := len(d.pending) > 0
	d.mu.Unlock()
	if more {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

func (d *Dispatcher) loop() {
	defer d.loops.Done()
	for {
		id, since, ok := d.next()
		if !ok {
			select {
			case <-d.ctx.Done():
				return
			case <-d.wake:
				continue
			}
		}
		if err := d.dispatch(id, since); err != nil && d.ctx.Err() == nil {
			d.w.log.Warn().Err(err).Str("integration_id", id.String()).Msg("dispatch failed; will retry on the next sweep")
		}
		d.done(id)
	}
}

// dispatch claims free slots for queued calls and dials them. The claim
// runs under dialCtx: a stop landing during its COMMIT must not cut it off,
// or the calls it took would be left to the watchdog as dial_lost; Stop
// waits for it (loops) before it waits for the dials.
func (d *Dispatcher) dispatch(integrationID uuid.UUID, since time.Time) error {
	if d.ctx.Err() != nil {
		return nil //nolint:nilerr // stopping: the loop ends, nothing failed
	}
	now := d.w.clock.Now()
	claimStart := time.Now()
	res, err := d.w.store.Claim(d.dialCtx, integrationID, now, func(cfg config.Integration) bool {
		reason := d.closedReason(cfg, integrationID)
		d.w.metrics.Deferred(integrationID.String(), reason)
		return reason == ""
	})
	d.w.metrics.DispatchLatency.Observe(time.Since(since).Seconds())
	if err != nil {
		return err
	}
	for hold, n := range res.Holds {
		d.w.metrics.DeferredN(integrationID.String(), string(hold), n)
	}
	if !res.Wake.IsZero() {
		// A pacing rule held a call for a moment: claim again when it may go.
		d.kickAt(integrationID, res.Wake.Sub(d.w.clock.Now()))
	}
	for _, c := range res.Calls {
		// One claim takes calls of many traces: each gets its span of it,
		// and its dial continues under that span.
		ctx, claim := tracing.StartAt(tracing.FromTraceparent(d.dialCtx, deref(c.Call.TraceParent)), "claim slot",
			trace.SpanKindInternal, claimStart)
		tracing.Call(claim, integrationID, c.Call.ID, c.Call.Attempt)
		claim.End()
		d.w.metrics.QueueWait(metricsCall(c.Call), now.Sub(c.Call.QueuedAt))
		d.w.log.Info().Str("trace_id", deref(c.Call.TraceID)).Str("call_id", c.Call.ID.String()).
			Str("integration_id", integrationID.String()).Int("attempt", c.Call.Attempt).Msg("dialling")
		if d.w.warmer != nil {
			warm := d.ctx
			if tracing.Enabled() {
				warm = trace.ContextWithSpan(warm, claim)
			}
			d.dials.Add(1)
			go func() {
				defer d.dials.Done()
				d.w.warmer.Warm(warm, integrationID, c.Call.PhoneNumber, c.Call.ID, c.Call.DynamicVariables)
			}()
		}
		d.dials.Add(1)
		go d.dial(ctx, c)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// metricsCall names a call for the exemplars of its metrics.
func metricsCall(c store.Call) metrics.Call {
	return metrics.Call{IntegrationID: c.IntegrationID.String(), ID: c.ID.String(), TraceID: deref(c.TraceID)}
}

// dial sends the one originate request of a claimed attempt and records
// its outcome. A stop lets it finish (Stop); if the process dies
// mid-request, or Stop's deadline passes, the outcome is unknown: nothing
// is recorded and the watchdog releases the call as dial_lost, so the
// attempt is never sent twice.
func (d *Dispatcher) dial(ctx context.Context, c store.Claimed) {
	defer d.dials.Done()
	call := c.Call
	voice := c.Config.Voice
	var callerID string
	if c.Caller != nil {
		// The number the claim took: its own trunk or ElevenLabs number.
		callerID = c.Caller.Number
		voice.SipID = cmp.Or(c.Caller.SipID, voice.SipID)
		voice.AgentPhoneNumberID = cmp.Or(c.Caller.AgentPhoneNumberID, voice.AgentPhoneNumberID)
	}
	ctx, span := tracing.Start(ctx, "dial", trace.SpanKindInternal)
	defer span.End()
	tracing.Call(span, call.IntegrationID, call.ID, call.Attempt)
	ev := store.CallEvent{IntegrationID: call.IntegrationID, CallID: call.ID, Attempt: call.Attempt, Claim: c.Claim,
		TraceID: deref(call.TraceID), Traceparent: tracing.Traceparent(ctx)}
	vars, held := d.predial(ctx, c)
	if held {
		tracing.Outcome(span, "held")
		return
	}

	var secret string
	var err error
	if key := voice.SecretKey(); key != "" { // the simulator needs none
		secret, err = d.w.store.DiallerSecret(c)
	}
	notSent := store.IsTransient(err)
	// Everything the originate needs is ready before it is confirmed: the
	// confirmation takes the dial rate's token, and the originate should
	// follow it at once.
	var agent *elevenlabs.ClientData
	if err == nil {
		agent = d.agentContext(ctx, c, vars)
	}
	if err == nil {
		var send bool
		if send, err = d.confirmDial(ctx, c); err != nil {
			notSent = true
		} else if !send {
			return
		}
	}
	var res dialer.Result
	start := time.Now()
	if err == nil {
		octx, originate := tracing.Start(ctx, "originate", trace.SpanKindClient)
		tracing.Call(originate, call.IntegrationID, call.ID, call.Attempt)
		if originate.IsRecording() {
			originate.SetAttributes(tracing.KeyPeer.String(voice.Provider))
		}
		res, err = d.dialer.Originate(octx, dialer.Request{IntegrationID: call.IntegrationID, CallID: call.ID,
			Attempt: call.Attempt, Phone: call.PhoneNumber, DynamicVariables: vars, Voice: voice, Secret: secret,
			Agent: agent, CallerID: callerID})
		if err != nil {
			tracing.Fail(originate, egress.Describe(err))
		}
		originate.End()
	}
	if ctx.Err() != nil {
		return
	}
	result := "accepted"
	switch {
	case err == nil:
		d.dialled(call.IntegrationID)
		ev.Event = callstate.Event{Kind: callstate.DialAccepted}
		ev.ExternalCallID, ev.ConversationID = res.ExternalID, res.ConversationID
	case errors.Is(err, breaker.ErrOpen):
		result = "breaker_open"
		ev.Event = callstate.Event{Kind: callstate.DialAborted}
		d.refused(call.IntegrationID)
	case notSent:
		// The database failed before anything was sent: the call goes back
		// to the queue without spending an attempt.
		result = "not_sent"
		ev.Event = callstate.Event{Kind: callstate.DialAborted}
		ev.Detail = map[string]any{"error": egress.Describe(err)}
	case dialer.Unanswered(err):
		// The platform may have placed the call: it keeps its slot and is
		// not dialled again until its events or the watchdog settle it.
		result = "unanswered"
		ev.Event = callstate.Event{Kind: callstate.DialUnanswered}
		ev.Detail = map[string]any{"error": egress.Describe(err)}
	case dialer.IsRejected(err):
		result = "rejected"
		ev.Event = callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialError}
		ev.Detail = rejectionDetail(err)
		var rejected *dialer.RejectedError
		if errors.As(err, &rejected) {
			// A conversation ElevenLabs opened for a call it did not place is
			// this attempt's: its initiation failure, which names that
			// conversation, then stays with it instead of looking for a dial
			// still waiting for its answer, such as this call's retry.
			ev.ConversationID = rejected.ConversationID
		}
	default:
		result = "error"
		ev.Event = callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialError}
		ev.Detail = map[string]any{"error": egress.Describe(err)}
	}
	tracing.Outcome(span, result)
	d.w.metrics.DialTook(metricsCall(call), voice.Provider, result, time.Since(start))
	d.w.metrics.Dialled(metricsCall(call), result)
	if err != nil {
		d.w.log.Warn().Err(err).Str("trace_id", ev.TraceID).Str("call_id", call.ID.String()).Int("attempt", call.Attempt).Msg("dial failed")
	}
	ev.At = d.w.clock.Now()
	var applied []store.Applied
	err = retryStore(ctx, func() (err error) {
		applied, err = d.w.store.ApplyEvents(ctx, []store.CallEvent{ev})
		return err
	})
	if err != nil {
		d.w.log.Error().Err(err).Str("call_id", call.ID.String()).Msg("could not record the dial outcome; the watchdog will release the call")
		return
	}
	d.w.applied(applied)
}

// BreakerChanged exports a dialler breaker's state, records it on the
// integration and kicks dispatch when it lets calls through again.
func (d *Dispatcher) BreakerChanged(key string, _, to gobreaker.State) {
	id, err := uuid.Parse(key)
	if err != nil {
		return
	}
	if to != gobreaker.StateHalfOpen {
		// Not here: this runs under the breaker's lock.
		go d.recordHealth(id)
	}
	if to == gobreaker.StateClosed {
		d.dialled(id)
	}
	if to != gobreaker.StateOpen {
		d.Kick(id)
	}
}

// recordHealth marks the integration has_errors while its breaker is open
// and active once it has closed, so that every process sees it: the
// webhooks role answers /{slug}/health but dials nothing itself. It writes
// the breaker's state at the time of writing, so writes that overtake each
// other still end on the latest.
func (d *Dispatcher) recordHealth(id uuid.UUID) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	status := store.StatusActive
	if d.dialer.Breakers().State(id.String()) != gobreaker.StateClosed {
		status = store.StatusHasErrors
	}
	parent := d.ctx
	if parent == nil { // not started
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, 5*time.Second)
	defer cancel()
	if err := d.w.store.SetIntegrationHealth(ctx, id, status); err != nil && ctx.Err() == nil {
		d.w.log.Warn().Err(err).Str("integration_id", id.String()).Str("status", status).Msg("could not record the dialler's health")
	}
}
