// Package workers turns queued events into calls: intake stores new calls,
// the dispatcher dials them when the integration has a free slot, the event
// and post-call workers move calls through their lifecycle, and the
// scheduler brings retries back, releases calls that overstayed their slot
// and sweeps for work a lost signal left behind.
package workers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/store"
)

// Clock tells the time; tests inject one they can move.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Kicker asks dispatchers to look at an integration now.
type Kicker interface{ Kick(integrationID uuid.UUID) }

// Config tunes the workers.
type Config struct {
	Consumer queue.ConsumerConfig
	// DispatchWorkers is how many integrations are dispatched at once.
	DispatchWorkers int
	// Tick is how often due retries are looked for.
	Tick time.Duration
	// SweepEvery is how often the watchdog and the queued-call sweep run.
	SweepEvery time.Duration
	// DialLostAfter releases a call whose dial never reported back (its
	// process died mid-request).
	DialLostAfter time.Duration
	// PostcallWait is how long a call waits in waiting_postcall for its
	// post-call report before it is completed from what is known.
	PostcallWait time.Duration
	// OutboxLease is how long a CRM update is leased to its deliverer
	// before another may take it; it is renewed while the request runs.
	OutboxLease time.Duration
	// OutageGrace is how long the watchdog waits, once the database is
	// back after an outage, before it releases any call: what was held
	// meanwhile (dial answers, events, post-calls) is applied first.
	OutageGrace time.Duration
	// OutageGap is how long no watchdog of any replica may have reached the
	// database before its return counts as the end of an outage for every
	// replica, also for one started after it (store.WatchdogHeartbeat).
	OutageGap time.Duration
}

// Defaults for Config.
const (
	DispatchWorkersDefault = 4
	TickDefault            = 200 * time.Millisecond
	SweepEveryDefault      = time.Second
	DialLostAfterDefault   = 2 * time.Minute
	PostcallWaitDefault    = 15 * time.Minute
	// OutageGraceDefault covers the consumers' redelivery of held messages
	// (a few HoldWaits and AckWaits) and retryStore's longest delay.
	OutageGraceDefault = time.Minute
	// OutageGapDefault is many sweeps without a heartbeat from any replica.
	OutageGapDefault = 30 * time.Second
)

func (c Config) withDefaults() Config {
	if c.DispatchWorkers <= 0 {
		c.DispatchWorkers = DispatchWorkersDefault
	}
	if c.Tick <= 0 {
		c.Tick = TickDefault
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = SweepEveryDefault
	}
	if c.DialLostAfter <= 0 {
		c.DialLostAfter = DialLostAfterDefault
	}
	if c.PostcallWait <= 0 {
		c.PostcallWait = PostcallWaitDefault
	}
	if c.OutageGrace <= 0 {
		c.OutageGrace = OutageGraceDefault
	}
	if c.OutageGap <= 0 {
		c.OutageGap = OutageGapDefault
	}
	return c
}

// Workers runs every worker of one process.
type Workers struct {
	store   *store.Store
	queue   *queue.Queue
	clock   Clock
	log     zerolog.Logger
	metrics *metrics.Metrics
	cfg     Config

	Dispatcher *Dispatcher
	Scheduler  *Scheduler
	Outbox     *Outbox
	// Analyses runs queued LLM analyses; nil without an Analyzer.
	Analyses *Analyses
	warmer   Warmer
	// stopMu orders Stops: a second shutdown, after the first one's
	// deadline, may call Stop while the first still runs.
	stopMu sync.Mutex
	stops  []func(context.Context)
	// predialClient asks integrations' pre-dial endpoints.
	predialClient *http.Client
}

// Warmer looks a caller up ahead of their call, so the agent's context is
// ready when the conversation starts.
type Warmer interface {
	Warm(ctx context.Context, integrationID uuid.UUID, phone string, callID uuid.UUID, callVars json.RawMessage)
}

// Deps are what the workers need.
type Deps struct {
	Store   *store.Store
	Queue   *queue.Queue
	Dialer  *dialer.Breaking
	Clock   Clock
	Log     zerolog.Logger
	Metrics *metrics.Metrics
	// CRM delivers outcome updates; nil disables the outbox.
	CRM CRMApplier
	// Warmer, when set, is told about every call about to be dialled.
	Warmer Warmer
	// Analyzer, when set, analyses transcripts with the integration's LLM.
	Analyzer Analyzer
	// PredialClient asks integrations' pre-dial endpoints; it should apply
	// the egress policy (egress.NewClient). nil refuses redirects only.
	PredialClient *http.Client
}

// New wires the workers.
func New(d Deps, cfg Config) *Workers {
	cfg = cfg.withDefaults()
	if d.Clock == nil {
		d.Clock = SystemClock{}
	}
	w := &Workers{store: d.Store, queue: d.Queue, clock: d.Clock, log: d.Log, metrics: d.Metrics, cfg: cfg, warmer: d.Warmer,
		predialClient: cmp.Or(d.PredialClient, newPredialHTTPClient())}
	w.Dispatcher = newDispatcher(w, d.Dialer)
	w.Scheduler = newScheduler(w)
	if d.CRM != nil {
		w.Outbox = newOutbox(w, d.CRM)
	}
	if d.Analyzer != nil {
		w.Analyses = newAnalyses(w, d.Analyzer)
	}
	return w
}

// Start starts the consumers, the dispatcher and the scheduler.
func (w *Workers) Start(ctx context.Context) error {
	if err := w.Dispatcher.Start(ctx); err != nil {
		return err
	}
	w.stops = append(w.stops, w.Dispatcher.Stop)
	if err := startConsumer(ctx, w, queue.KindOriginate, w.originateHandler()); err != nil {
		return err
	}
	if err := startConsumer(ctx, w, queue.KindEvents, w.eventsHandler()); err != nil {
		return err
	}
	if err := startConsumer(ctx, w, queue.KindPostcall, w.postcallHandler()); err != nil {
		return err
	}
	w.Scheduler.Start(ctx)
	w.stops = append(w.stops, func(context.Context) { w.Scheduler.Stop() })
	if w.Outbox != nil {
		w.Outbox.Start(ctx)
		w.stops = append(w.stops, func(context.Context) { w.Outbox.Stop() })
	}
	if w.Analyses != nil {
		// Stopped before the outbox (stops run in reverse), which then
		// sends what the analyses released.
		w.Analyses.Start(ctx)
		w.stops = append(w.stops, w.Analyses.Stop)
	}
	return nil
}

func startConsumer[T any](ctx context.Context, w *Workers, kind queue.Kind, h queue.Handler[T]) error {
	h.Dependency = database{w.store}
	h.Handle = dataErrorsPermanent(h.Handle)
	c, err := queue.NewConsumer(ctx, w.queue, kind, h, w.cfg.Consumer, w.log, w.metrics)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	w.stops = append(w.stops, func(context.Context) { c.Stop() })
	return nil
}

// Stop stops intake first (consumers, then the scheduler), then lets the
// dispatcher finish its dials in flight and record their answers, for as
// long as ctx allows. A later call waits for an earlier one still running.
func (w *Workers) Stop(ctx context.Context) {
	w.Dispatcher.StopClaiming() // nothing new is dialled while the rest drains
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	for i := len(w.stops) - 1; i >= 0; i-- {
		w.stops[i](ctx)
	}
	w.stops = nil
}

// applied records metrics for applied events, kicks dispatch where a slot
// was freed or a call queued, and logs what was ignored.
func (w *Workers) applied(results []store.Applied) {
	kicked := map[uuid.UUID]bool{}
	for _, a := range results {
		ev := a.Event
		switch {
		case a.Duplicate:
			continue
		case a.Parked:
			if a.ParkedDropped > 0 {
				w.metrics.ParkedDropped.Add(float64(a.ParkedDropped))
				w.log.Warn().Str("integration_id", ev.IntegrationID.String()).Int("dropped", a.ParkedDropped).
					Msg("too many events wait for dialler ids never recorded; the oldest were dropped")
			}
			w.log.Info().Str("trace_id", ev.TraceID).Str("event", string(ev.Event.Kind)).Str("ref", ev.ExternalCallID).
				Msg("event names a dialler id not known yet; parked until the dial's answer records it")
			continue
		case !a.Found:
			w.metrics.EventsIgnored.WithLabelValues(string(ev.Event.Kind)).Inc()
			w.log.Info().Str("trace_id", ev.TraceID).Str("event", string(ev.Event.Kind)).
				Str("integration_id", ev.IntegrationID.String()).Str("ref", ev.ExternalCallID).Msg("event matches no call")
			continue
		case !a.Decision.Changed:
			w.metrics.EventsIgnored.WithLabelValues(string(ev.Event.Kind)).Inc()
			w.log.Debug().Str("trace_id", ev.TraceID).Str("call_id", a.CallID.String()).
				Str("event", string(ev.Event.Kind)).Str("why", a.Decision.Why).Msg("event changed nothing")
			continue
		}
		d := a.Decision
		integration := a.IntegrationID.String()
		if d.Outcome != "" && (d.From == callstate.Initiated || d.From == callstate.InProgress) {
			w.metrics.AttemptEnded(integration, d.Outcome)
		}
		if d.To == callstate.RetryScheduled {
			w.metrics.RetryScheduled(integration, d.Outcome)
		}
		if d.To.Terminal() {
			w.metrics.Terminated(integration, string(d.To))
			if w.Outbox != nil {
				w.Outbox.Kick()
			}
			if w.Analyses != nil && ev.Postcall != nil {
				w.Analyses.Kick()
			}
		}
		if d.From != d.To {
			w.log.Info().Str("trace_id", ev.TraceID).Str("call_id", a.CallID.String()).Str("integration_id", integration).
				Str("event", string(ev.Event.Kind)).Str("from", string(d.From)).Str("to", string(d.To)).
				Str("outcome", d.Outcome).Int("attempt", d.Attempt).Msg("call moved")
		}
		// A dial the breaker refused goes back to the queue without a kick:
		// the dispatcher backs that integration off instead.
		requeued := d.To == callstate.Queued && ev.Event.Kind != callstate.DialAborted
		if (a.FreesSlot() || requeued) && !kicked[a.IntegrationID] {
			kicked[a.IntegrationID] = true
			w.Dispatcher.Kick(a.IntegrationID)
		}
	}
}

// retryStore retries fn while the database is unreachable, until ctx ends.
func retryStore(ctx context.Context, fn func() error) error {
	delay := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || !store.IsTransient(err) || errors.Is(err, context.Canceled) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}
