package dialer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/jsonhttp"
)

// Platform takes the webhooks a simulated platform sends, through the
// webhook receivers' own decoding and publishing (webhooks.Handler), in
// this process: no network hop, no HTTP authentication.
type Platform interface {
	SubmitCallEvent(ctx context.Context, integrationID uuid.UUID, body []byte) error
	SubmitPostcall(ctx context.Context, integrationID uuid.UUID, body []byte) error
}

// Simulator is the dialler of voice.provider "simulator" (contract §5). It
// dials nobody: each originate is answered at once with an external id,
// and the attempt is then played as a platform would report it — call_start,
// call_end with its reason and reported duration, and for answered calls
// ElevenLabs' post-call — at config speed. The call holds its slot until
// its call_end is applied, as with a real dialler.
//
// Pending events live in this process only: when it stops (or dies) before
// an attempt's call_end was sent, the call holds its slot until the
// watchdog releases it (max_call_duration_secs), as for a call whose
// platform went silent, and the retry policy takes it from there.
type Simulator struct {
	platform Platform
	log      zerolog.Logger
	now      func() time.Time

	ctx      context.Context
	cancel   context.CancelFunc
	pending  sync.WaitGroup
	observer atomic.Pointer[func(delta int)]
}

// simSubmitTries bounds how often one webhook is offered while JetStream
// refuses it (a real platform retries its webhooks too).
const simSubmitTries = 8

// NewSimulator returns a simulator that sends its webhooks to platform.
func NewSimulator(platform Platform, log zerolog.Logger) *Simulator {
	ctx, cancel := context.WithCancel(context.Background())
	return &Simulator{platform: platform, log: log, now: time.Now, ctx: ctx, cancel: cancel}
}

// Stop drops the events not yet sent and waits for those being sent.
func (s *Simulator) Stop() {
	s.cancel()
	s.pending.Wait()
}

// Observe is a test signal: fn is told +1 when the platform accepts an
// attempt and -1 when that call is over for the platform (it hangs up and
// is about to send call_end), as a phone network would count its live
// calls. fn runs on the simulator's goroutines.
func (s *Simulator) Observe(fn func(delta int)) { s.observer.Store(&fn) }

func (s *Simulator) observe(delta int) {
	if fn := s.observer.Load(); fn != nil {
		(*fn)(delta)
	}
}

// attemptCallID is the call_id that names this attempt in the platform's
// webhooks, as the VA echoes the call_id it was sent (`<call id>.<attempt>`).
func attemptCallID(req Request) string {
	return callstate.AttemptCallID(req.CallID, req.Attempt)
}

// simID derives the platform's ids of an attempt (external call id,
// conversation id) from the call and the attempt, so that a redelivered
// dial would name the same call.
func simID(prefix string, req Request) string {
	h := fnv.New64a()
	h.Write(req.CallID[:])
	fmt.Fprintf(h, ".%d", req.Attempt)
	return fmt.Sprintf("%s_%016x", prefix, h.Sum64())
}

// Originate implements Dialer: the attempt is accepted and its events are
// scheduled.
func (s *Simulator) Originate(ctx context.Context, req Request) (Result, error) {
	if req.Voice.Simulator == nil {
		return Result{}, &RejectedError{Reason: "voice.provider is simulator but its settings are missing"}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if s.ctx.Err() != nil {
		// Stopping: like a platform that is going away, answer as an outage.
		return Result{}, errors.New("simulator stopped")
	}
	cfg := *req.Voice.Simulator
	plan := PlanAttempt(cfg, req.CallID, req.Attempt)
	externalID := simID("sim", req)
	conversationID := ""
	if plan.Answered() {
		conversationID = simID("conv_sim", req)
	}
	s.pending.Add(1)
	s.observe(1)
	go s.play(req, plan, externalID, conversationID, cfg.Speed)
	return Result{ExternalID: externalID}, nil
}

// play sends the attempt's webhooks at their (compressed) times.
func (s *Simulator) play(req Request, plan SimPlan, externalID, conversationID string, speed float64) {
	defer s.pending.Done()
	live := true
	hangUp := func() {
		if live {
			live = false
			s.observe(-1)
		}
	}
	defer hangUp()
	started := s.now()
	callID := attemptCallID(req)
	log := s.log.With().Str("call_id", req.CallID.String()).Int("attempt", req.Attempt).Str("outcome", plan.Outcome).Logger()
	at := func(secs float64) bool {
		t := time.NewTimer(time.Until(started.Add(compress(secs, speed))))
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if plan.Answered() {
		if !at(plan.StartAfter) || !s.submit(log, "call_start", func(ctx context.Context) error {
			return s.platform.SubmitCallEvent(ctx, req.IntegrationID, simCallEvent("call_start", callID, conversationID, nil, "", externalID, req.Attempt))
		}) {
			return
		}
	}
	duration := plan.Duration
	if !at(plan.EndAfter) {
		return
	}
	hangUp()
	if !s.submit(log, "call_end", func(ctx context.Context) error {
		return s.platform.SubmitCallEvent(ctx, req.IntegrationID, simCallEvent("call_end", callID, conversationID, &duration, plan.Reason, externalID, req.Attempt))
	}) {
		return
	}
	if plan.PostcallAfter > 0 {
		if !at(plan.PostcallAfter) {
			return
		}
		s.submit(log, "post_call_transcription", func(ctx context.Context) error {
			return s.platform.SubmitPostcall(ctx, req.IntegrationID, simPostcall(req, callID, conversationID, plan, started))
		})
	}
}

// submit offers one webhook until it is taken, with backoff; it gives up
// when the simulator stops or after simSubmitTries (the watchdog then
// releases the call, as for a platform whose webhooks were lost).
func (s *Simulator) submit(log zerolog.Logger, what string, send func(context.Context) error) bool {
	backoff := 100 * time.Millisecond
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		err := send(ctx)
		cancel()
		if err == nil {
			return true
		}
		if s.ctx.Err() != nil || try == simSubmitTries || !retryable(err) {
			log.Error().Err(err).Str("webhook", what).Msg("simulated webhook not taken")
			return false
		}
		select {
		case <-s.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// retryable reports whether offering a webhook again may help: not when
// it was refused as invalid (a 4xx), which it will always be.
func retryable(err error) bool {
	var e *jsonhttp.Error
	return !errors.As(err, &e) || e.Status >= 500
}

var _ Dialer = (*Simulator)(nil)
