package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Delivery is one message handed to a worker.
type Delivery struct {
	Kind          Kind
	IntegrationID uuid.UUID
	Subject       string
	Data          []byte
	Header        nats.Header
	TraceID       string
	// Key identifies the stored message (stream and sequence): the same
	// for every redelivery, so processing can be made idempotent.
	Key          string
	NumDelivered uint64
	Stored       time.Time

	msg jetstream.Msg
}

// ErrPermanent marks an error that retrying cannot fix: the message goes to
// the dead-letter stream at once.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err as permanent.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Handler processes decoded messages in batches. Handle is all or nothing:
// when it fails, each message is retried on its own so one bad message
// cannot hold back the others.
type Handler[T any] struct {
	// Decode turns a delivery into work; an error sends the message to the
	// dead-letter stream.
	Decode func(Delivery) (T, error)
	// Handle processes a batch.
	Handle func(ctx context.Context, batch []T) error
	// Dependency, when set, is what Handle relies on (the database). A
	// failure while it is down is not the message's fault: see hold.
	Dependency Dependency
}

// Dependency is a service a handler needs. While it is down, failing
// messages are held and retried in place instead of being redelivered, so
// an outage of any length spends none of their delivery budget.
type Dependency interface {
	// Transient reports whether err may mean the dependency is away.
	Transient(err error) bool
	// Ping reports whether the dependency answers now.
	Ping(ctx context.Context) error
}

// ConsumerConfig tunes a consumer.
type ConsumerConfig struct {
	// AckWait is how long a delivery may go unacknowledged before it is
	// redelivered; slow batches send progress to extend it.
	AckWait time.Duration
	// MaxDeliver bounds redeliveries; the last failing delivery becomes a
	// dead letter.
	MaxDeliver int
	// MaxAckPending bounds messages in flight for the consumer (all replicas).
	MaxAckPending int
	// BatchSize bounds how many messages one Handle call gets.
	BatchSize int
	// Workers is how many batches run at once in this process.
	Workers int
	// Backoff is the wait before each redelivery after a failure.
	Backoff []time.Duration
	// HoldWait caps the wait between retries of messages held while their
	// dependency is down.
	HoldWait time.Duration
	// StallAfter is how long a message may go without progress before this
	// process stops keeping it (no more in-progress reports, so the server
	// redelivers it elsewhere after AckWait): a handler stuck that long, a
	// message waiting that long for a stuck worker, or a batch held that
	// long while its dependency does not answer this process (given back
	// at once, see handleHolding).
	StallAfter time.Duration
}

// Defaults for ConsumerConfig.
const (
	AckWaitDefault       = 30 * time.Second
	MaxDeliverDefault    = 20
	MaxAckPendingDefault = 4096
	BatchSizeDefault     = 256
	WorkersDefault       = 2
	HoldWaitDefault      = 5 * time.Second
	StallAfterDefault    = time.Minute
	// pullExpiry bounds one pull request: how long Stop may wait for the
	// last one to end.
	pullExpiry = time.Second
	// holdRetriesHealthy is how often a held batch may fail with a
	// transient-looking error while its dependency answers pings before
	// the failure is counted as the message's own.
	holdRetriesHealthy = 5
	// crashLoopFactor × MaxDeliver deliveries without any answer (the
	// worker died or stopped each time) mark a message that kills its
	// worker: it is dead-lettered before it is tried again.
	crashLoopFactor = 10
)

// BackoffDefault spaces redeliveries from a second to five minutes.
var BackoffDefault = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.AckWait <= 0 {
		c.AckWait = AckWaitDefault
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = MaxDeliverDefault
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = MaxAckPendingDefault
	}
	if c.BatchSize <= 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.Workers <= 0 {
		c.Workers = WorkersDefault
	}
	if len(c.Backoff) == 0 {
		c.Backoff = BackoffDefault
	}
	if c.HoldWait <= 0 {
		c.HoldWait = HoldWaitDefault
	}
	if c.StallAfter <= 0 {
		c.StallAfter = StallAfterDefault
	}
	return c
}

// holdLimit is the most this process holds at once: what its workers can
// take in one round. One stuck process holds no more than that; the
// consumer's other messages go to other replicas.
func (c ConsumerConfig) holdLimit() int { return c.Workers * c.BatchSize }

func (c ConsumerConfig) backoff(delivered uint64) time.Duration {
	i := min(int(delivered)-1, len(c.Backoff)-1)
	return c.Backoff[max(i, 0)]
}

// Observer is told what a consumer does, for metrics.
type Observer interface {
	Redelivered(kind Kind)
	DeadLettered(kind Kind, reason string)
	ProcessedBatch(kind Kind, n int, took time.Duration)
}

// Consumer runs a Handler over one kind's durable consumer.
type Consumer[T any] struct {
	q       *Queue
	kind    Kind
	handler Handler[T]
	cfg     ConsumerConfig
	log     zerolog.Logger
	obs     Observer

	cons     jetstream.Consumer
	inbox    chan jetstream.Msg
	wg       sync.WaitGroup
	pulling  sync.WaitGroup
	stopped  chan struct{}
	stopOnce sync.Once
	// freed wakes the puller when a message is settled.
	freed chan struct{}
	// depDown is set while the handler's dependency does not answer this
	// process: it pulls nothing more until it does.
	depDown atomic.Bool

	// held is every message received and not yet settled (buffered, in a
	// batch or held through an outage), with when it last made progress.
	// Those that made some within StallAfter get progress reports, so none
	// is redelivered while it waits its turn here.
	heldMu   sync.Mutex
	held     map[jetstream.Msg]time.Time
	progress sync.WaitGroup
}

// NewConsumer creates or updates the durable consumer for kind.
func NewConsumer[T any](ctx context.Context, q *Queue, kind Kind, h Handler[T], cfg ConsumerConfig, log zerolog.Logger, obs Observer) (*Consumer[T], error) {
	cfg = cfg.withDefaults()
	_, err := q.js.CreateOrUpdateConsumer(ctx, specs[kind].Stream, jetstream.ConsumerConfig{
		Durable:     string(kind),
		Description: "callqueue " + string(kind) + " workers",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     cfg.AckWait,
		// The server never gives up on a message by itself: a message it
		// stops delivering would be neither processed nor dead-lettered.
		// The consumer dead-letters by its own count (see fail), which
		// outages do not move.
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: subjectPrefix + "." + string(kind) + ".*",
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", kind, err)
	}
	return &Consumer[T]{q: q, kind: kind, handler: h, cfg: cfg, obs: obs,
		log: log.With().Str("consumer", string(kind)).Logger()}, nil
}

// Start begins pulling and processing messages until Stop.
func (c *Consumer[T]) Start(ctx context.Context) error {
	var err error
	if c.cons, err = c.q.js.Consumer(ctx, specs[c.kind].Stream, string(c.kind)); err != nil {
		return err
	}
	// The puller never holds more than holdLimit, so the inbox never fills.
	c.inbox = make(chan jetstream.Msg, c.cfg.holdLimit())
	c.stopped = make(chan struct{})
	c.freed = make(chan struct{}, 1)
	c.held = map[jetstream.Msg]time.Time{}
	workCtx := context.WithoutCancel(ctx)
	c.pulling.Add(1)
	go c.pull(workCtx)
	for range c.cfg.Workers {
		c.wg.Add(1)
		go c.work(workCtx)
	}
	c.progress.Add(1)
	go c.reportProgress()
	return nil
}

// pull fetches messages while this process holds fewer than holdLimit,
// asking for no more than the room left, so that a process whose workers
// are stuck takes nothing more. While the dependency does not answer this
// process, it takes nothing at all: other replicas may reach it.
func (c *Consumer[T]) pull(ctx context.Context) {
	defer c.pulling.Done()
	for {
		select {
		case <-c.stopped:
			return
		default:
		}
		if c.depDown.Load() && !c.dependencyAnswers(ctx) {
			c.waitOrStop(c.cfg.HoldWait)
			continue
		}
		c.heldMu.Lock()
		room := c.cfg.holdLimit() - len(c.held)
		c.heldMu.Unlock()
		if room <= 0 {
			select {
			case <-c.stopped:
				return
			case <-c.freed:
			}
			continue
		}
		batch, err := c.cons.Fetch(room, jetstream.FetchMaxWait(pullExpiry))
		if err != nil {
			c.log.Debug().Err(err).Msg("pull")
			c.waitOrStop(pullExpiry)
			continue
		}
		for m := range batch.Messages() {
			select {
			case <-c.stopped:
				_ = m.Nak() // shutting down: let another worker have it now
				continue
			default:
			}
			c.hold(m)
			c.inbox <- m
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			c.log.Debug().Err(err).Msg("pull")
		}
	}
}

// dependencyAnswers pings the handler's dependency and records the answer.
func (c *Consumer[T]) dependencyAnswers(ctx context.Context) bool {
	dep := c.handler.Dependency
	if dep == nil {
		return true
	}
	pingCtx, cancel := context.WithTimeout(ctx, c.cfg.HoldWait)
	defer cancel()
	up := dep.Ping(pingCtx) == nil
	c.depDown.Store(!up)
	return up
}

func (c *Consumer[T]) waitOrStop(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.stopped:
	case <-t.C:
	}
}

// hold records m as received and unsettled.
func (c *Consumer[T]) hold(m jetstream.Msg) {
	c.heldMu.Lock()
	c.held[m] = time.Now()
	c.heldMu.Unlock()
}

// touch records progress on items: a worker took them, or a try at them
// ended (a failure held through an outage counts: it is not stuck).
func (c *Consumer[T]) touch(items []pending[T]) {
	now := time.Now()
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	for _, it := range items {
		if _, ok := c.held[it.msg]; ok {
			c.held[it.msg] = now
		}
	}
}

// settle forgets m and answers the server with answer (Ack, Nak, Term...).
func (c *Consumer[T]) settle(m jetstream.Msg, answer func() error) error {
	c.heldMu.Lock()
	delete(c.held, m)
	c.heldMu.Unlock()
	select {
	case c.freed <- struct{}{}:
	default:
	}
	return answer()
}

// reportProgress tells the server, every third of AckWait, that the
// unsettled messages are still being worked on: buffered ones waiting for
// a worker, slow batches and batches held through an outage alike, as long
// as they made progress within StallAfter. A stuck one is left to be
// redelivered to another replica.
func (c *Consumer[T]) reportProgress() {
	defer c.progress.Done()
	t := time.NewTicker(c.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stopped:
			return
		case <-t.C:
		}
		c.heldMu.Lock()
		msgs := make([]jetstream.Msg, 0, len(c.held))
		for m, touched := range c.held {
			if time.Since(touched) < c.cfg.StallAfter {
				msgs = append(msgs, m)
			}
		}
		c.heldMu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// Stop stops pulling, finishes the batches in hand and naks what is
// buffered, so other replicas get it at once.
func (c *Consumer[T]) Stop() {
	c.stopOnce.Do(c.stop)
}

func (c *Consumer[T]) stop() {
	if c.stopped == nil {
		return
	}
	// The last pull request runs out (pullExpiry), its messages naked as
	// they come: not cancelled, which would leave those on their way to
	// wait out AckWait before any replica saw them.
	close(c.stopped)
	c.wg.Wait()
	c.progress.Wait()
	c.pulling.Wait()
	for {
		select {
		case m := <-c.inbox:
			_ = c.settle(m, m.Nak)
		default:
			return
		}
	}
}

func (c *Consumer[T]) work(ctx context.Context) {
	defer c.wg.Done()
	batch := make([]jetstream.Msg, 0, c.cfg.BatchSize)
	for {
		batch = batch[:0]
		// Stopping wins over a full inbox: what is buffered is naked for
		// other replicas, not worked through here.
		select {
		case <-c.stopped:
			return
		default:
		}
		select {
		case <-c.stopped:
			return
		case m := <-c.inbox:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < c.cfg.BatchSize {
			select {
			case m := <-c.inbox:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		c.process(ctx, batch)
	}
}

type pending[T any] struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	item T
}

// errStopping ends the hold of a batch when the consumer stops.
var errStopping = errors.New("consumer stopping")

// errGivenBack ends the hold of a batch whose dependency has not answered
// this process for StallAfter: other replicas may reach it.
var errGivenBack = errors.New("dependency unreachable from this process")

func (c *Consumer[T]) process(ctx context.Context, msgs []jetstream.Msg) {
	start := time.Now()
	items := make([]pending[T], 0, len(msgs))
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			c.deadLetter(m, nil, "no metadata: "+err.Error())
			continue
		}
		if meta.NumDelivered > 1 && c.obs != nil {
			c.obs.Redelivered(c.kind)
		}
		if limit := uint64(crashLoopFactor * c.cfg.MaxDeliver); meta.NumDelivered > limit {
			// Outages do not redeliver (messages are held), so this many
			// deliveries mean its worker died or stopped with it every time.
			c.deadLetter(m, meta, fmt.Sprintf("delivered %d times without an answer", meta.NumDelivered))
			continue
		}
		d := Delivery{Kind: c.kind, Subject: m.Subject(), Data: m.Data(), Header: m.Headers(),
			TraceID: m.Headers().Get(HeaderTraceID), NumDelivered: meta.NumDelivered, Stored: meta.Timestamp,
			Key: deliveryKey(m, meta), msg: m}
		d.IntegrationID, err = IntegrationFromSubject(d.Subject)
		var item T
		if err == nil {
			item, err = c.handler.Decode(d)
		}
		if err != nil {
			c.deadLetter(m, meta, "decode: "+err.Error())
			continue
		}
		items = append(items, pending[T]{msg: m, meta: meta, item: item})
	}
	if len(items) == 0 {
		return
	}
	err := c.handleHolding(ctx, items)
	switch {
	case err == nil:
		c.ackAll(items)
	case errors.Is(err, errStopping):
		c.nakAll(items)
	case errors.Is(err, errGivenBack):
		c.giveBack(items, err)
	case len(items) == 1:
		c.fail(items[0], err)
	default:
		c.log.Warn().Err(err).Int("batch", len(items)).Msg("batch failed; retrying its messages one by one")
		for _, it := range items {
			one := []pending[T]{it}
			switch err := c.handleHolding(ctx, one); {
			case err == nil:
				c.ackAll(one)
			case errors.Is(err, errStopping):
				c.nakAll(one)
			case errors.Is(err, errGivenBack):
				c.giveBack(one, err)
			default:
				c.fail(it, err)
			}
		}
	}
	if c.obs != nil {
		c.obs.ProcessedBatch(c.kind, len(items), time.Since(start))
	}
}

// deliveryKey is the identity of a stored message for idempotency: its
// stream and sequence, or for a replayed dead letter the original's.
func deliveryKey(m jetstream.Msg, meta *jetstream.MsgMetadata) string {
	if k := m.Headers().Get(HeaderOriginKey); k != "" {
		return k
	}
	return fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
}

// handleHolding runs the handler and, while it fails because its
// dependency is down, holds the batch and retries it in place: the
// messages stay ours (reportProgress), are not redelivered, and their
// delivery count does not grow however long the outage lasts. The hold
// ends when the handler succeeds, fails for another reason, keeps failing
// while the dependency answers (holdRetriesHealthy: then the failure is
// the message's), the dependency has not answered this process for
// StallAfter (errGivenBack: the batch is given back, and this process pulls
// nothing until it answers again), or the consumer stops (errStopping).
func (c *Consumer[T]) handleHolding(ctx context.Context, items []pending[T]) error {
	err := c.handle(ctx, items)
	dep := c.handler.Dependency
	if err == nil || dep == nil || !dep.Transient(err) || errors.Is(err, ErrPermanent) {
		return err
	}
	wait, healthyFailures := 50*time.Millisecond, 0
	var downSince time.Time
	c.log.Warn().Err(err).Int("batch", len(items)).Msg("dependency unavailable; holding the batch until it is back")
	for {
		select {
		case <-c.stopped:
			return errors.Join(errStopping, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, c.cfg.HoldWait)
		if !c.dependencyAnswers(ctx) {
			healthyFailures = 0
			if downSince.IsZero() {
				downSince = time.Now()
			}
			if time.Since(downSince) >= c.cfg.StallAfter {
				return errors.Join(errGivenBack, err)
			}
			c.touch(items) // waiting for the dependency, not stuck
			continue
		}
		downSince = time.Time{}
		err = c.handle(ctx, items)
		if err == nil || !dep.Transient(err) || errors.Is(err, ErrPermanent) {
			return err
		}
		if healthyFailures++; healthyFailures >= holdRetriesHealthy {
			return err
		}
	}
}

// handle runs the handler once; its start and its end are progress.
func (c *Consumer[T]) handle(ctx context.Context, items []pending[T]) error {
	batch := make([]T, len(items))
	for i, it := range items {
		batch[i] = it.item
	}
	c.touch(items)
	defer c.touch(items)
	return c.handler.Handle(ctx, batch)
}

func (c *Consumer[T]) ackAll(items []pending[T]) {
	for _, it := range items {
		if err := c.settle(it.msg, it.msg.Ack); err != nil {
			// The work is done and idempotent: a redelivery changes nothing.
			c.log.Warn().Err(err).Msg("ack failed; the message will be redelivered and skipped")
		}
	}
}

func (c *Consumer[T]) nakAll(items []pending[T]) {
	for _, it := range items {
		_ = c.settle(it.msg, it.msg.Nak)
	}
}

// giveBack returns items whose dependency this process cannot reach, after
// a HoldWait, to whichever replica can. The delivery this costs is their
// only one for the outage: this process pulls nothing until the dependency
// answers it again.
func (c *Consumer[T]) giveBack(items []pending[T], err error) {
	c.log.Warn().Err(err).Int("batch", len(items)).Dur("stalled", c.cfg.StallAfter).
		Msg("dependency unreachable from this process; giving the batch back")
	for _, it := range items {
		_ = c.settle(it.msg, func() error { return it.msg.NakWithDelay(c.cfg.HoldWait) })
	}
}

// fail answers a message whose processing failed for a reason of its own
// (not an outage: those are held). It is dead-lettered when the failure is
// permanent or its last allowed delivery failed, else redelivered after
// backoff.
func (c *Consumer[T]) fail(it pending[T], err error) {
	if errors.Is(err, ErrPermanent) || it.meta.NumDelivered >= uint64(c.cfg.MaxDeliver) {
		c.deadLetter(it.msg, it.meta, err.Error())
		return
	}
	delay := c.cfg.backoff(it.meta.NumDelivered)
	c.log.Warn().Err(err).Str("trace_id", it.msg.Headers().Get(HeaderTraceID)).
		Uint64("delivered", it.meta.NumDelivered).Dur("retry_in", delay).Msg("message failed; will retry")
	_ = c.settle(it.msg, func() error { return it.msg.NakWithDelay(delay) })
}

// deadLetter keeps a message that cannot be processed in the dead-letter
// stream, then terminates its delivery. If the dead-letter stream cannot
// take it, the message is left to be redelivered: never dropped.
func (c *Consumer[T]) deadLetter(m jetstream.Msg, meta *jetstream.MsgMetadata, reason string) {
	dl := nats.NewMsg(subjectPrefix + ".dlq." + string(c.kind))
	dl.Data = m.Data()
	for k, v := range m.Headers() {
		// Nats-* headers are instructions to the server (Nats-Msg-Id,
		// Nats-Expected-Stream, Nats-Rollup, ...): copied, they would make
		// the dead-letter stream reject or misapply the message.
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			dl.Header[k] = v
		}
	}
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderOriginSubject, m.Subject())
	if meta != nil {
		dl.Header.Set(HeaderOriginStream, meta.Stream)
		dl.Header.Set(HeaderOriginSeq, fmt.Sprint(meta.Sequence.Stream))
		dl.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%d", meta.Stream, meta.Sequence.Stream))
		if dl.Header.Get(HeaderOriginKey) == "" {
			// The message's identity for idempotency, kept through a replay.
			dl.Header.Set(HeaderOriginKey, fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream))
		}
		if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
			dl.Header.Set(HeaderOriginMsgID, id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.q.js.PublishMsg(ctx, dl); err != nil {
		c.log.Error().Err(err).Str("reason", reason).Msg("dead-letter stream unavailable; message kept for redelivery")
		_ = c.settle(m, func() error { return m.NakWithDelay(c.cfg.backoff(uint64(len(c.cfg.Backoff)))) })
		return
	}
	c.log.Error().Str("reason", reason).Str("subject", m.Subject()).Str("trace_id", m.Headers().Get(HeaderTraceID)).
		Msg("message dead-lettered")
	if c.obs != nil {
		c.obs.DeadLettered(c.kind, reason)
	}
	_ = c.settle(m, m.Term)
}
