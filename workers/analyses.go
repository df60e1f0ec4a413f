package workers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/analysis"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// Analyses runs the LLM analyses that finished calls queued (store's
// pending_analyses) and amends the calls with them. The post-call consumer
// never waits on an LLM: the call completes with the agent's own analysis
// and its CRM update is held until the analysis here releases it.
//
// Integrations are served fairly: a claim goes round-robin over them and
// each has at most analysisPerIntegration analyses in flight, so one
// tenant's hanging LLM occupies only its own share. A job is leased under
// a fencing token for longer than an LLM request may take; a process that
// dies leaves it to the next one when the lease ends, and a stopping one
// gives it back at once.
type Analyses struct {
	w   *Workers
	llm Analyzer

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// requests carries the LLM requests; Stop cancels it.
	requests     context.Context
	stopRequests context.CancelFunc
	jobs         sync.WaitGroup

	mu       sync.Mutex
	inFlight map[uuid.UUID]int // integration → analyses running
	// releaseTo is set by an orderly Stop: interrupted jobs are given back
	// under it.
	releaseTo context.Context

	// onClaim, when set (tests), is told of every job claimed.
	onClaim func(store.AnalysisJob)
}

// Analysis worker tuning.
const (
	analysisParallel       = 32
	analysisPerIntegration = 2
	// analysisLease outlives an LLM request (analysis.TimeoutDefault) and
	// the store writes around it.
	analysisLease = 2 * time.Minute
	analysisPoll  = 500 * time.Millisecond
	// analysisMaxTries gives a job up (the agent's analysis stands) when
	// its workers died this many times while it ran.
	analysisMaxTries = 5
)

func newAnalyses(w *Workers, llm Analyzer) *Analyses {
	return &Analyses{w: w, llm: llm, wake: make(chan struct{}, 1), inFlight: map[uuid.UUID]int{}}
}

// Kick makes the workers look for queued analyses now.
func (a *Analyses) Kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Start runs the claim loop.
func (a *Analyses) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.requests, a.stopRequests = context.WithCancel(context.WithoutCancel(ctx))
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		claimLoop(ctx, analysisPoll, a.wake, a.runOnce, func(err error) {
			a.w.log.Warn().Err(err).Msg("llm analysis claim failed")
		})
	}()
}

// Stop stops claiming and cuts the LLM requests in flight short. When
// ctx is still alive (an orderly stop) their jobs are given back for the
// next process to run at once; otherwise (a crash) they wait out their
// lease. Either way nothing queued is lost.
func (a *Analyses) Stop(ctx context.Context) {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
	release := ctx
	if ctx.Err() != nil {
		release = nil
	}
	a.mu.Lock()
	a.releaseTo = release
	a.mu.Unlock()
	a.stopRequests()
	a.jobs.Wait()
}

// RunOnce claims the analyses the in-flight bounds allow and starts them;
// it returns how many it started.
func (a *Analyses) RunOnce(ctx context.Context) (int, error) {
	n, _, err := a.runOnce(ctx)
	return n, err
}

func (a *Analyses) runOnce(ctx context.Context) (int, bool, error) {
	a.mu.Lock()
	inFlight, total := make(map[uuid.UUID]int, len(a.inFlight)), 0
	for id, n := range a.inFlight {
		inFlight[id] = n
		total += n
	}
	a.mu.Unlock()
	room := analysisParallel - total
	if room <= 0 {
		return 0, false, nil // full: a finished analysis kicks the loop
	}
	jobs, err := a.w.store.ClaimAnalyses(ctx, store.AnalysisClaim{Now: a.w.clock.Now(), Lease: analysisLease, Limit: room,
		PerIntegration: analysisPerIntegration, InFlight: inFlight})
	if err != nil {
		return 0, false, err
	}
	for _, job := range jobs {
		a.mu.Lock()
		a.inFlight[job.IntegrationID]++
		a.mu.Unlock()
		if a.onClaim != nil {
			a.onClaim(job)
		}
		a.jobs.Add(1)
		go func() {
			defer a.jobs.Done()
			a.run(job)
			a.mu.Lock()
			if a.inFlight[job.IntegrationID]--; a.inFlight[job.IntegrationID] <= 0 {
				delete(a.inFlight, job.IntegrationID)
			}
			a.mu.Unlock()
			a.Kick() // room for more
		}()
	}
	return len(jobs), len(jobs) == room, nil
}

// run asks the integration's LLM and applies its answer (or, when it
// cannot answer, the agent's analysis, which then stands for good).
func (a *Analyses) run(job store.AnalysisJob) {
	// The analysis continues the trace of the post-call it is for.
	ctx, span := tracing.Start(tracing.FromTraceparent(a.requests, deref(job.TraceParent)), "llm analysis", trace.SpanKindClient)
	defer span.End()
	tracing.Call(span, job.IntegrationID, job.CallID, job.Attempt)
	log := a.w.log.With().Str("call_id", job.CallID.String()).Str("integration_id", job.IntegrationID.String()).Logger()
	fallback := analysis.FromElevenLabs(job.Analysis)
	res := fallback
	detail := map[string]any{}
	switch cfg, key, ok, err := a.llmConfig(ctx, job.IntegrationID); {
	case err != nil:
		a.giveBack(job, err)
		return
	case !ok:
		detail["why"] = "no LLM is configured any more"
	case job.Tries > analysisMaxTries:
		detail["why"] = "given up after its workers stopped repeatedly"
	default:
		res = a.llm.Analyze(ctx, job.IntegrationID.String(), cfg, key, job.Transcript, fallback)
		if ctx.Err() != nil {
			// Stopping: this answer may be the fallback of a cut request.
			a.giveBack(job, ctx.Err())
			return
		}
		if res.Source != analysis.SourceLLM {
			detail["why"] = "the LLM did not answer; the agent's analysis stands"
		}
		tracing.Outcome(span, res.Source)
	}
	p := store.PostcallData{Analysis: job.Analysis}
	applyAnalysis(&p, res)
	detail["source"] = res.Source
	if res.Source == analysis.SourceLLM {
		detail["verdict"] = res.Outcome
	}
	write, cancel := context.WithTimeout(context.WithoutCancel(ctx), outboxStopGrace)
	defer cancel()
	err := retryStore(write, func() error {
		return a.w.store.FinishAnalysis(write, a.w.clock.Now(), job, store.Amendment{Analysis: p.Analysis,
			Summary: p.Summary, Detail: detail})
	})
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Info().Msg("llm analysis finished after its lease passed to another worker; theirs counts")
	case err != nil:
		log.Warn().Err(err).Msg("could not record the llm analysis; it runs again after its lease")
	default:
		if a.w.Outbox != nil {
			a.w.Outbox.Kick() // the held CRM update is due
		}
	}
}

// llmConfig reads the integration's analysis config and LLM key; ok is
// false when no LLM is configured.
func (a *Analyses) llmConfig(ctx context.Context, integrationID uuid.UUID) (analysis.Config, string, bool, error) {
	cfg, err := a.w.store.Config(ctx, integrationID)
	if err != nil {
		return analysis.Config{}, "", false, err
	}
	acfg, ok := analysisConfig(cfg.Raw[analysis.ConfigKey])
	if !ok {
		return acfg, "", false, nil
	}
	key, err := a.w.store.SecretValue(ctx, integrationID, "LLM_API_KEY")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return acfg, "", false, err
	}
	return acfg, key, true, nil
}

// giveBack returns a job that could not run: at once on an orderly stop,
// after its lease otherwise.
func (a *Analyses) giveBack(job store.AnalysisJob, why error) {
	a.mu.Lock()
	release := a.releaseTo
	a.mu.Unlock()
	if release == nil || release.Err() != nil {
		a.w.log.Info().Err(why).Str("call_id", job.CallID.String()).Msg("llm analysis interrupted; it runs again after its lease")
		return
	}
	if err := a.w.store.ReleaseAnalysis(release, job); err != nil {
		a.w.log.Warn().Err(err).Str("call_id", job.CallID.String()).Msg("could not give an llm analysis back; it runs again after its lease")
	}
}
