package workers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/sony/gobreaker/v2"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/store"
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

	mu      sync.Mutex
	pending map[uuid.UUID]time.Time
	running map[uuid.UUID]bool
	wake    chan struct{}

	healthMu sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	dials  sync.WaitGroup
	sub    *nats.Subscription
}

func newDispatcher(w *Workers, d *dialer.Breaking) *Dispatcher {
	return &Dispatcher{w: w, dialer: d, pending: map[uuid.UUID]time.Time{}, running: map[uuid.UUID]bool{},
		wake: make(chan struct{}, 1)}
}

// Start runs the dispatch loops and listens for kicks from other processes.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.ctx, d.cancel = context.WithCancel(ctx)
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

// Stop stops dispatching and waits for dials in flight (their context is
// the caller's: cancelling it abandons them, and the watchdog releases the
// calls).
func (d *Dispatcher) Stop() {
	if d.sub != nil {
		_ = d.sub.Unsubscribe()
	}
	d.cancel()
	d.loops.Wait()
	d.dials.Wait()
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

// next takes a pending integration not being dispatched by another loop.
func (d *Dispatcher) next() (uuid.UUID, time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, since := range d.pending {
		if !d.running[id] {
			delete(d.pending, id)
			d.running[id] = true
			return id, since, true
		}
	}
	return uuid.Nil, time.Time{}, false
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

// dispatch claims free slots for queued calls and dials them.
func (d *Dispatcher) dispatch(integrationID uuid.UUID, since time.Time) error {
	now := d.w.clock.Now()
	claimed, err := d.w.store.ClaimCalls(d.ctx, integrationID, now, func(cfg config.Integration) bool {
		return cfg.Voice.Complete() && d.dialer.Allows(integrationID)
	})
	d.w.metrics.DispatchLatency.Observe(time.Since(since).Seconds())
	if err != nil {
		return err
	}
	for _, c := range claimed {
		d.w.log.Info().Str("trace_id", deref(c.Call.TraceID)).Str("call_id", c.Call.ID.String()).
			Str("integration_id", integrationID.String()).Int("attempt", c.Call.Attempt).Msg("dialling")
		if d.w.warmer != nil {
			d.dials.Add(1)
			go func() {
				defer d.dials.Done()
				d.w.warmer.Warm(d.ctx, integrationID, c.Call.PhoneNumber, c.Call.ID, c.Call.DynamicVariables)
			}()
		}
		d.dials.Add(1)
		go d.dial(c)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// dial sends the one originate request of a claimed attempt and records
// its outcome. If the process is stopped mid-request the outcome is
// unknown: nothing is recorded and the watchdog releases the call as
// dial_lost, so the attempt is never sent twice.
func (d *Dispatcher) dial(c store.Claimed) {
	defer d.dials.Done()
	call := c.Call
	voice := c.Config.Voice
	ev := store.CallEvent{IntegrationID: call.IntegrationID, CallID: call.ID, Attempt: call.Attempt, TraceID: deref(call.TraceID)}
	vars, held := d.predial(c)
	if held {
		return
	}

	secret, err := d.w.store.SecretValue(d.ctx, call.IntegrationID, voice.SecretKey())
	notSent := store.IsTransient(err)
	var res dialer.Result
	start := time.Now()
	if err == nil {
		res, err = d.dialer.Originate(d.ctx, dialer.Request{IntegrationID: call.IntegrationID, CallID: call.ID,
			Attempt: call.Attempt, Phone: call.PhoneNumber, DynamicVariables: vars, Voice: voice, Secret: secret})
	}
	if d.ctx.Err() != nil {
		return
	}
	result := "accepted"
	switch {
	case err == nil:
		ev.Event = callstate.Event{Kind: callstate.DialAccepted}
		ev.ExternalCallID, ev.ConversationID = res.ExternalID, res.ConversationID
	case errors.Is(err, breaker.ErrOpen):
		result = "breaker_open"
		ev.Event = callstate.Event{Kind: callstate.DialAborted}
	case notSent:
		// The database failed before anything was sent: the call goes back
		// to the queue without spending an attempt.
		result = "not_sent"
		ev.Event = callstate.Event{Kind: callstate.DialAborted}
		ev.Detail = map[string]any{"error": err.Error()}
	case dialer.IsRejected(err):
		result = "rejected"
		ev.Event = callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialError}
		ev.Detail = map[string]any{"error": err.Error()}
	default:
		result = "error"
		ev.Event = callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialError}
		ev.Detail = map[string]any{"error": err.Error()}
	}
	d.w.metrics.DialDuration.WithLabelValues(voice.Provider, result).Observe(time.Since(start).Seconds())
	d.w.metrics.Dials.WithLabelValues(call.IntegrationID.String(), result).Inc()
	if err != nil {
		d.w.log.Warn().Err(err).Str("trace_id", ev.TraceID).Str("call_id", call.ID.String()).Int("attempt", call.Attempt).Msg("dial failed")
	}
	ev.At = d.w.clock.Now()
	var applied []store.Applied
	err = retryStore(d.ctx, func() (err error) {
		applied, err = d.w.store.ApplyEvents(d.ctx, []store.CallEvent{ev})
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
	d.w.metrics.BreakerState.WithLabelValues(key, "va").Set(breaker.StateValue(to))
	id, err := uuid.Parse(key)
	if err != nil {
		return
	}
	if to != gobreaker.StateHalfOpen {
		// Not here: this runs under the breaker's lock.
		go d.recordHealth(id)
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
