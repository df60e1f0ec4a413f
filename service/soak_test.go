package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/internal/faultnet"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/workers"
)

// The soak test is model-based: a seeded random schedule of webhooks and
// faults runs against real processes, a Voice Assistant that keeps its own
// ledger of the calls it placed, and a CRM that records every update. When
// the faults stop and everything has settled, what the VA, the CRM and the
// database saw is checked against what callqueue promises.
//
// CALLQUEUE_SOAK_SEED replays a schedule (the seed is printed);
// CALLQUEUE_SOAK_STEPS or CALLQUEUE_SOAK_DURATION make it longer
// (`make soak`). Timings between processes are real, so a replay follows
// the same schedule, not the same interleaving.

const (
	// soakLimit is the integration's concurrency limit.
	soakLimit = 3
	// soakSpeed: the service's clock runs this many times faster than the
	// wall clock, so that retry delays and deadlines pass during the run.
	soakSpeed = 20
	// soakDialTimeout bounds one originate request; a slow VA answer
	// outlives it while the call it placed goes on.
	soakDialTimeout = 400 * time.Millisecond
	// soakWorkers is how many worker processes run at any time.
	soakWorkers = 2
	// soakSettle and soakSettlePerCall bound the quiescence phase: the
	// calls still queued drain soakLimit at a time.
	soakSettle        = time.Minute
	soakSettlePerCall = 500 * time.Millisecond
)

// soakSettings are the run's seed and length.
type soakSettings struct {
	seed     uint64
	steps    int
	duration time.Duration
}

func soakSettingsFromEnv(t *testing.T) soakSettings {
	t.Helper()
	s := soakSettings{seed: rand.Uint64() % 1_000_000_000, steps: 40}
	if v := os.Getenv("CALLQUEUE_SOAK_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CALLQUEUE_SOAK_SEED=%q: %v", v, err)
		}
		s.seed = seed
	}
	if v := os.Getenv("CALLQUEUE_SOAK_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CALLQUEUE_SOAK_STEPS=%q: want a positive number", v)
		}
		s.steps = n
	}
	if v := os.Getenv("CALLQUEUE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CALLQUEUE_SOAK_DURATION=%q: want a duration such as 5m", v)
		}
		s.duration, s.steps = d, 0
	}
	return s
}

// soakAck is a webhook callqueue acknowledged: what it says happened to
// which attempt of which call.
type soakAck struct {
	call    uuid.UUID
	attempt int
	kind    string // the history's kind: call_start, call_end, postcall
	ref     string // how the webhook named the call
	// doNotCall: a post-call whose analysis asks not to call phone again.
	doNotCall bool
	phone     string
}

// TestSoak runs the schedule: call-originates (some repeated under their
// Idempotency-Key), cancellations, worker processes killed (their context
// cancelled and their database sessions terminated) or restarted, NATS
// restarted on its store, every database connection cut; meanwhile the VA
// answers some dials slowly (the call goes on when our request gives up),
// some with errors, and reports its calls late, twice and out of order.
// Afterwards:
//   - every call is terminal, and none holds a slot;
//   - the VA received at most one dial per attempt's call_id, never had
//     more calls live than the limit, and never two attempts of one call;
//   - every acknowledged originate is a call, every acknowledged call event
//     and post-call is in its call's history;
//   - the CRM received exactly one update per finished call (completed or
//     failed) and none for others;
//   - stats agree: nothing active.
func TestSoak(t *testing.T) {
	t.Parallel()
	settings := soakSettingsFromEnv(t)
	t.Logf("soak seed %d (replay with CALLQUEUE_SOAK_SEED=%d), steps %d, duration %s",
		settings.seed, settings.seed, settings.steps, settings.duration)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("soak FAILED with seed %d: replay with CALLQUEUE_SOAK_SEED=%d", settings.seed, settings.seed)
		}
	})
	w := newSoakWorld(t, settings.seed)
	start := time.Now()
	steps := w.run(settings)
	ran := time.Now()
	w.settle()
	t.Logf("faults for %s, settled in %s", ran.Sub(start).Round(time.Millisecond), time.Since(ran).Round(time.Millisecond))
	w.check()
	w.checkFired(steps)
}

// soakWorld is the run's processes, fakes and model.
type soakWorld struct {
	t       *testing.T
	c       *cluster
	va      *soakVA
	crm     *servicetest.FakeCRM
	rng     *rand.Rand // the schedule's; the test goroutine's only
	workers []*servicetest.Instance
	names   []string
	started int

	mu         sync.Mutex
	originated map[string]uuid.UUID // Idempotency-Key -> call
	acked      []soakAck
	unacked    int
	faults     map[string]int // faults that took effect, in detail
	// scheduled and effects count the fault kinds the schedule played and
	// those that took effect (current is the step being played).
	scheduled, effects map[string]int
	spent              map[string]time.Duration // by the schedule's goroutine, per kind
	current            string
	timeline           []string // faults with their wall-clock time, for failure messages
	// lostWorkers and lostAPI are the commit faults of every worker
	// process and of the admin API's (soak_commits_test.go).
	lostWorkers, lostAPI *store.LostAnswers
	// holes are the black-holed replicas' databases (soak_blackhole_test.go).
	holes soakBlackHoles

	stopClock func()
	// proxy is between the workers and Postgres (viaProxy its URL).
	proxy    *servicetest.PGProxy
	viaProxy string

	// The operator's side: the admin API process (apiMu guards its
	// address, which a restart changes), campaigns and cancels.
	apiMu          sync.Mutex
	predial        *soakPredial
	campaigns      []*soakCampaign
	campaignPhones int
	cancels        []soakCancel // guarded by mu
	// Numbers suppressed and the calls originated for them afterwards.
	suppressedPhones int
	mustNotDial      map[uuid.UUID]string
	// sameNumber counts the originates for numbers called before;
	// capsLifted is when the operator lifted the contact cap
	// (soak_pacing_test.go).
	sameNumber int
	capsLifted time.Time
	// unpaced is the span in which the operator has turned pacing off, nil
	// while it is on; unpacedSpans are all of them (soak_pacing_test.go).
	unpaced      *soakSpan
	unpacedSpans []*soakSpan
}

func newSoakWorld(t *testing.T, seed uint64) *soakWorld {
	t.Helper()
	handling := map[string]any{"concurrency_limit": soakLimit, "max_attempts": 3, "retry_delays_secs": []int{10, 20},
		"min_call_duration_secs": 5}
	maps.Copy(handling, soakPacing())
	c := startCluster(t, 0, clusterOptions{
		CallHandling: handling,
		// The lease is renewed on the wall clock (a third of it) and expires
		// on the service's clock: at soakSpeed it must be long enough to
		// outlive any delivery between renewals.
		Workers: workers.Config{DialLostAfter: 5 * time.Minute, PostcallWait: 10 * time.Minute, OutboxLease: 20 * time.Minute,
			OutageGrace: soakOutageGrace, OutageGap: soakOutageGap, Consumer: queue.ConsumerConfig{AckWait: time.Second}},
		BreakerOpenFor: 300 * time.Millisecond,
		DialTimeout:    soakDialTimeout,
	})
	w := &soakWorld{t: t, c: c, crm: servicetest.NewFakeCRM(t), rng: rand.New(rand.NewPCG(seed, 1)),
		originated: map[string]uuid.UUID{}, faults: map[string]int{}, scheduled: map[string]int{}, effects: map[string]int{},
		spent:       map[string]time.Duration{},
		mustNotDial: map[uuid.UUID]string{}}
	w.lostWorkers, w.lostAPI = w.newLostAnswers(), w.newLostAnswers()
	c.api.Store.SetCommitFault(w.lostAPI.Fault)
	w.holes.open = map[*faultnet.Proxy]bool{}
	c.admin.UseWebhookCRM(c.integ, w.crm)
	w.va = newSoakVA(c.va, rand.New(rand.NewPCG(seed, 2)), w.deliver)
	w.va.now = c.env.Clock.Now
	// The workers reach Postgres through a proxy that an outage cuts.
	w.proxy, w.viaProxy = servicetest.NewPGProxy(t, c.env.DatabaseURL)
	w.predial = newSoakPredial(t, rand.New(rand.NewPCG(seed, 3)), func(id uuid.UUID) { w.cancelCall(id) })
	if code := c.admin.Do("POST", "/api/integrations/"+c.integ.ID.String()+"/secrets",
		map[string]any{"key": "PREDIAL_SECRET", "value": soakPredialSecret}, nil); code != http.StatusCreated {
		t.Fatalf("PREDIAL_SECRET: %d", code)
	}
	// Dialled from a pool of caller numbers, with their own limits.
	if code := c.admin.Do("PUT", "/api/integrations/"+c.integ.ID.String()+"/config/voice", soakVoice(c.va.URL, true), nil); code != http.StatusOK {
		t.Fatalf("voice config: %d", code)
	}
	if code := c.admin.Do("PUT", "/api/integrations/"+c.integ.ID.String()+"/config/predial",
		map[string]any{"url": w.predial.srv.URL, "timeout_ms": soakPredialTimeout.Milliseconds()}, nil); code != http.StatusOK {
		t.Fatalf("predial config: %d", code)
	}
	for range soakWorkers {
		w.startWorker()
	}
	w.stopClock = w.runClock()
	t.Cleanup(w.stopClock)
	return w
}

// runClock moves the service's clock soakSpeed times faster than the wall
// clock until the returned func is called.
func (w *soakWorld) runClock() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				w.c.env.Clock.Advance(soakSpeed * 10 * time.Millisecond)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}

func (w *soakWorld) startWorker() { w.startWorkerSkewed(0) }

// startWorkerSkewed starts a worker process on a host whose clock is skew
// off, reaching the database through the proxy.
func (w *soakWorld) startWorkerSkewed(skew time.Duration) {
	w.started++
	name := fmt.Sprintf("soak-worker-%d", w.started)
	direct := w.c.env.DatabaseURL
	w.c.env.DatabaseURL = w.viaProxy
	in := w.c.startSkewedWorkers(w.t, name, w.c.opt.Workers, skew)
	w.c.env.DatabaseURL = direct
	in.Store.SetCommitFault(w.lostWorkers.Fault)
	w.workers = append(w.workers, in)
	w.names = append(w.names, name)
}

// fault counts a fault that took effect, for the log, and as an effect of
// the step being played.
func (w *soakWorld) fault(name string) {
	w.mu.Lock()
	w.faults[name]++
	if w.current != "" {
		w.effects[w.current]++
	}
	w.mu.Unlock()
	w.note(name)
}

// note adds an entry to the timeline.
func (w *soakWorld) note(name string) {
	w.mu.Lock()
	w.timeline = append(w.timeline, time.Now().Format("15:04:05.000")+" "+name)
	w.mu.Unlock()
}

func (w *soakWorld) timelineNow() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.timeline)
}

// step plays one fault kind of the schedule.
func (w *soakWorld) step(kind string, play func()) {
	w.mu.Lock()
	w.scheduled[kind]++
	w.current = kind
	w.mu.Unlock()
	start := time.Now()
	play()
	w.mu.Lock()
	w.current = ""
	w.spent[kind] += time.Since(start)
	w.mu.Unlock()
}

// run plays the schedule and returns how many steps it played.
func (w *soakWorld) run(s soakSettings) int {
	deadline := time.Now().Add(s.duration)
	step := 0
	for ; ; step++ {
		if s.steps > 0 && step >= s.steps || s.steps == 0 && time.Now().After(deadline) {
			break
		}
		if w.unpaced != nil && w.rng.IntN(10) == 0 {
			// Pacing is off for ten steps on average, beside whatever they play.
			w.step("toggle_pacing", w.togglePacing)
			continue
		}
		switch roll := w.rng.IntN(100); {
		case roll < 34:
			// In bursts, so that calls wait for slots.
			for range 1 + w.rng.IntN(4) {
				w.originate()
			}
		case roll < 39:
			w.repeatOriginate()
		case roll < 42:
			w.step("cancel", w.cancel)
		case roll < 46:
			w.step("cancel_at_stage", w.cancelAtStage)
		case roll < 50:
			w.step("kill_worker", w.killWorker)
		case roll < 53:
			w.step("restart_worker", w.restartWorker)
		case roll < 56:
			w.step("restart_nats", w.restartNATS)
		case roll < 60:
			w.step("cut_postgres", w.cutPostgres)
		case roll < 68:
			w.loseCommitAnswers()
		case roll < 78:
			w.step("campaign", w.campaignStep)
		case roll < 81:
			w.step("suppress_and_originate", w.suppressAndOriginate)
		case roll < 83:
			w.step("postgres_outage", w.postgresOutage)
		case roll < 85:
			w.step("skewed_replica", w.skewedReplica)
		case roll < 87:
			w.step("upload_during_restart", w.uploadDuringRestart)
		case roll < 89:
			w.step("black_hole_replica", w.blackHoleReplica)
		case roll < 91:
			w.step("slow_client_during_restart", w.slowClientDuringRestart)
		case roll < 93:
			w.step("originate_same_number", w.originateSameNumber)
		case roll < 95:
			w.step("toggle_pacing", w.togglePacing)
		default:
			time.Sleep(time.Duration(20+w.rng.IntN(80)) * time.Millisecond)
		}
	}
	w.mu.Lock()
	w.t.Logf("schedule done: %d calls originated, %d campaigns (%d numbers), faults %v", len(w.originated),
		len(w.campaigns), w.campaignPhones, w.faults)
	w.mu.Unlock()
	return step
}

// originate queues a new call under a fresh Idempotency-Key, retrying
// until it is taken, as a CRM would.
func (w *soakWorld) originate() {
	n := len(w.originated)
	key := fmt.Sprintf("soak-%d", n)
	w.originateUntilTaken(fmt.Sprintf("+38063%07d", n), key)
}

// originateUntilTaken sends a call-originate until it is taken, as a CRM
// would, and records its call, or counts it never taken.
func (w *soakWorld) originateUntilTaken(phone, key string) {
	id, err := w.c.originateRetrying(phone, key)
	if err != nil {
		w.mu.Lock()
		w.unacked++
		w.mu.Unlock()
		return
	}
	w.originated[key] = id
}

// repeatOriginate sends an earlier call-originate again: the same call.
func (w *soakWorld) repeatOriginate() {
	if len(w.originated) == 0 {
		return
	}
	n := w.rng.IntN(len(w.originated))
	key := fmt.Sprintf("soak-%d", n)
	want, ok := w.originated[key]
	if !ok {
		return
	}
	id, err := w.c.originateRetrying(fmt.Sprintf("+38063%07d", n), key)
	if err == nil && id != want {
		w.t.Errorf("Idempotency-Key %s answered %s, earlier %s", key, id, want)
	}
}

// cancel cancels a random originated call through the admin API, maybe
// one not stored yet or already over.
func (w *soakWorld) cancel() {
	if len(w.originated) == 0 {
		return
	}
	id := w.originated[fmt.Sprintf("soak-%d", w.rng.IntN(len(w.originated)))]
	if id == uuid.Nil {
		return
	}
	w.cancelCall(id)
	w.fault("cancel")
}

// killWorker crashes a worker process: its context is cancelled, its NATS
// connection closed without draining and its database sessions terminated
// while it goes down.
func (w *soakWorld) killWorker() {
	w.kill(w.rng.IntN(len(w.workers)))
	w.startWorker()
	w.fault("kill_worker")
}

// kill crashes the i-th worker process.
func (w *soakWorld) kill(i int) {
	victim, name := w.workers[i], w.names[i]
	w.workers, w.names = slices.Delete(w.workers, i, i+1), slices.Delete(w.names, i, i+1)
	killed := make(chan struct{})
	go func() { victim.Kill(); close(killed) }()
	deadline := time.After(30 * time.Second)
	for dead := false; !dead; {
		_ = w.c.terminateBackendsErr(name)
		select {
		case <-killed:
			dead = true
		case <-deadline:
			w.t.Fatalf("worker %s: Kill did not return", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// restartWorker is a deploy: SIGTERM's orderly stop, then a new process.
func (w *soakWorld) restartWorker() {
	i := w.rng.IntN(len(w.workers))
	victim := w.workers[i]
	w.workers, w.names = slices.Delete(w.workers, i, i+1), slices.Delete(w.names, i, i+1)
	w.startWorker() // rolling: the new one is up before the old one leaves
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.shutdown(ctx, victim)
	w.fault("restart_worker")
}

// shutdown stops a worker process as SIGTERM does, and notes a slow stop.
func (w *soakWorld) shutdown(ctx context.Context, victim *servicetest.Instance) {
	start := time.Now()
	err := victim.Shutdown(ctx)
	if took := time.Since(start); took > 3*time.Second || err != nil {
		w.note(fmt.Sprintf("shutdown took %s: %v", took.Round(time.Millisecond), err))
		w.t.Logf("a worker's shutdown took %s: %v", took.Round(time.Millisecond), err)
	}
}

// restartNATS stops the server and starts it again on its store.
func (w *soakWorld) restartNATS() {
	w.c.env.StopNATS()
	time.Sleep(time.Duration(100+w.rng.IntN(500)) * time.Millisecond)
	w.c.env.StartNATS()
	w.fault("restart_nats")
}

// cutPostgres terminates every database session of every process.
func (w *soakWorld) cutPostgres() {
	if err := w.c.terminateBackendsErr(""); err == nil {
		w.fault("cut_postgres")
	}
}

// deliver posts a webhook as a platform does: retried on failure until it
// is taken (or for 30s), and recorded as acknowledged when it was.
func (w *soakWorld) deliver(name string, body map[string]any, ack soakAck) {
	want := http.StatusAccepted
	if name == "agent-postcall" {
		want = http.StatusOK
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, raw, err := w.c.post(name, body, nil)
		if err == nil && code == want {
			w.mu.Lock()
			w.acked = append(w.acked, ack)
			w.mu.Unlock()
			return
		}
		if err == nil && code < 500 {
			w.t.Errorf("%s %v: %d %s", name, body, code, raw)
			return
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			w.unacked++
			w.mu.Unlock()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle stops the faults and lets everything finish: the VA's calls end
// and are reported, retries come due, lost dials are released, the CRM
// gets its updates. The clock jumps ahead only when nothing is in flight
// at the VA and every dial has had time to answer, so that a jump never
// makes a dial in flight look lost, and by less than a CRM update's lease.
func (w *soakWorld) settle() {
	w.restoreBlackHoles()
	w.liftCaps()
	w.va.setQuiet()
	w.predial.setQuiet()
	w.endCampaignFaults()
	limit := soakSettle + time.Duration(len(w.originated))*soakSettlePerCall
	deadline := time.Now().Add(limit)
	dialingSince := map[uuid.UUID]time.Time{}
	for {
		if time.Now().After(deadline) {
			w.t.Fatalf("not settled after %s: %s; VA busy %d, live %d; %d campaigns open; waiting: %s", limit,
				w.c.describeStragglers(w.t, "completed"), w.va.busy.Load(), w.va.liveCount(), w.campaignsOpen(), w.describeWaiting())
		}
		rows, err := w.c.callsErr()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		settled, quiet := true, true
		for id, r := range rows {
			if !callstate.Status(r.Status).Terminal() {
				settled = false
			}
			if r.DialState == "dialing" && (r.Status == "initiated" || r.Status == "in_progress") {
				if _, ok := dialingSince[id]; !ok {
					dialingSince[id] = time.Now()
				}
				quiet = quiet && time.Since(dialingSince[id]) > 3*soakDialTimeout
			} else {
				delete(dialingSince, id)
			}
		}
		if settled && w.holdingSlots() == 0 && w.pendingUpdates() == 0 && w.va.busy.Load() == 0 && w.campaignsOpen() == 0 {
			return
		}
		if quiet && w.va.busy.Load() == 0 && w.va.liveCount() == 0 {
			// Towards dial_lost, retry delays, the post-call deadline and the
			// outbox's backoff (and the lease of an update whose process
			// died); in steps far shorter than an update's lease, so that
			// none in flight looks abandoned.
			w.c.env.Clock.Advance(30 * time.Second)
			for _, in := range w.workers {
				in.Workers.Outbox.Kick()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *soakWorld) holdingSlots() int {
	var n int
	if err := w.c.env.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM calls
		WHERE integration_id = $1 AND slot_taken_at IS NOT NULL`, w.c.integ.ID).Scan(&n); err != nil {
		return -1
	}
	return n
}

// parked counts the events parked under a dialler id.
func (w *soakWorld) parked(ref string) int {
	var n int
	if err := w.c.env.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM parked_events
		WHERE integration_id = $1 AND external_call_id = $2`, w.c.integ.ID, ref).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// describeWaiting is what the calls not yet over wait for, against the
// clock, with their campaign's status.
func (w *soakWorld) describeWaiting() string {
	rows, err := w.c.env.Store.Pool().Query(context.Background(), `SELECT k.id, k.status, k.dial_state, k.next_retry_at,
		k.not_before, COALESCE(c.status || ' ' || c.id::text, '')
		FROM calls k LEFT JOIN campaigns c ON c.id = k.campaign_id
		WHERE k.integration_id = $1 AND k.status NOT IN ('completed', 'failed', 'cancelled')`, w.c.integ.ID)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	out := []string{"clock " + w.c.env.Clock.Now().Format(time.RFC3339)}
	for rows.Next() {
		var id uuid.UUID
		var status, dial, campaign string
		var retryAt, notBefore *time.Time
		if err := rows.Scan(&id, &status, &dial, &retryAt, &notBefore, &campaign); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("%s %s dial %s retry at %v not before %v campaign %q", id, status, dial, retryAt, notBefore, campaign))
	}
	for _, cp := range w.campaigns {
		out = append(out, fmt.Sprintf("model: campaign %s paused %v unsure %v cancel asked %v", cp.id, cp.paused, cp.pauseUnsure, cp.cancelAsked))
	}
	return strings.Join(out, "; ")
}

// describeOutbox is a call's CRM updates as the outbox has them.
func (w *soakWorld) describeOutbox(call uuid.UUID) string {
	rows, err := w.c.env.Store.Pool().Query(context.Background(), `SELECT event, status, attempts, COALESCE(last_error, '')
		FROM crm_outbox WHERE call_id = $1`, call)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var event, status, lastError string
		var attempts int
		if err := rows.Scan(&event, &status, &attempts, &lastError); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("%s %s after %d attempts (%s)", event, status, attempts, lastError))
	}
	return "[" + strings.Join(out, "; ") + "]"
}

func (w *soakWorld) pendingUpdates() int {
	var n int
	if err := w.c.env.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM crm_outbox
		WHERE integration_id = $1 AND status = 'pending'`, w.c.integ.ID).Scan(&n); err != nil {
		return -1
	}
	return n
}

// check compares what everyone saw with the model.
func (w *soakWorld) check() {
	t := w.t
	rows := w.c.calls(t)
	slow, refused := w.va.counts()
	t.Logf("settled: %d calls %v; %d webhooks acknowledged, %d never taken; VA: %d dials (%d refused, %d answered after our request gave up), at most %d live",
		len(rows), w.c.statusCounts(t), len(w.acked), w.unacked, len(w.va.Requests()), refused, slow, w.va.maxLive())

	// Every call terminal and no slot held.
	for id, r := range rows {
		if !callstate.Status(r.Status).Terminal() {
			t.Errorf("call %s is %s (attempt %d, dial %s)", id, r.Status, r.Attempt, r.DialState)
		}
	}
	if n := w.holdingSlots(); n != 0 {
		t.Errorf("%d calls still hold a slot", n)
	}
	if st := w.c.stats(t); st.Active != 0 || st.Queued != 0 || st.RetryScheduled != 0 || st.WaitingPostcall != 0 {
		t.Errorf("stats after settling = %+v", st)
	}

	// Nothing taken may end in the dead-letter stream: a dead letter is in
	// no history until an operator replays it.
	dead, _, err := w.c.api.Queue.ListDeadLetters(context.Background(), queue.DeadLetterFilter{Limit: queue.DeadLetterLimitMax})
	if err != nil {
		t.Errorf("list dead letters: %v", err)
	}
	for _, dl := range dead {
		t.Errorf("dead letter %d (from %s #%d, integration %s): %s", dl.Seq, dl.OriginStream, dl.OriginSeq, dl.IntegrationID, dl.Reason)
	}

	// The VA's ledger.
	for _, p := range w.va.problems() {
		t.Error(p)
	}
	if m := w.va.maxLive(); m > soakLimit {
		t.Errorf("the VA had %d calls live at once; the limit is %d", m, soakLimit)
	}
	dials := map[string]int{}
	for _, o := range w.va.Requests() {
		dials[o.CallID]++
		id, attempt, ok := callstate.ParseAttemptCallID(o.CallID)
		if !ok {
			t.Errorf("the VA was dialled with call_id %q", o.CallID)
			continue
		}
		if r, known := rows[id]; !known || attempt > r.Attempt {
			t.Errorf("the VA was dialled for %s, which the database has at attempt %d", o.CallID, r.Attempt)
		}
	}
	for callID, n := range dials {
		if n > 1 {
			t.Errorf("the VA was dialled %d times with call_id %s", n, callID)
		}
	}

	// Every acknowledged originate is a call, every acknowledged report is
	// in the history of the attempt it named.
	for key, id := range w.originated {
		if _, ok := rows[id]; !ok {
			t.Errorf("originate %s was answered with %s, which is not stored", key, id)
		}
	}
	histories := map[uuid.UUID][]store.CallEventRow{}
	history := func(id uuid.UUID) []store.CallEventRow {
		h, ok := histories[id]
		if !ok {
			var err error
			if h, err = w.c.env.Store.CallHistory(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			histories[id] = h
		}
		return h
	}
	parked := 0
	defer func() { t.Logf("%d acknowledged reports parked under a VA id never learnt", parked) }()
	for _, a := range w.acked {
		h := history(a.call)
		found := slices.ContainsFunc(h, func(e store.CallEventRow) bool { return e.Attempt == a.attempt && e.Kind == a.kind })
		if !found && !slices.ContainsFunc(h, func(e store.CallEventRow) bool { return e.Attempt == a.attempt && e.Kind == "dial_accepted" }) &&
			w.parked(a.ref) > 0 {
			// Named by the VA's own id, which callqueue never learnt: the
			// dial's answer was lost with its process. Kept, parked.
			parked++
			continue
		}
		if !found {
			t.Errorf("call %s: the acknowledged %s of attempt %d is not in its history %s", a.call, a.kind, a.attempt, describeHistory(h))
		}
	}

	// The operator's requests: cancels and campaigns.
	w.checkCancels(history)
	w.checkCampaigns()
	w.checkSuppressions(rows)
	w.checkPacing()
	counts, issues := w.predial.summary()
	t.Logf("pre-dial checks answered: %v", counts)
	for _, p := range issues {
		t.Error(p)
	}

	// One CRM update per finished call.
	delivered := map[string]int{}
	sent := map[string][]string{} // call and event -> each delivery's key and time
	for _, r := range w.crm.Updates() {
		if r.Status < 200 || r.Status >= 300 {
			continue
		}
		var body struct {
			Event  string `json:"event"`
			CallID string `json:"callId"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Errorf("CRM update %q: %v", r.Body, err)
			continue
		}
		delivered[body.CallID+" "+body.Event]++
		sent[body.CallID+" "+body.Event] = append(sent[body.CallID+" "+body.Event],
			r.Header.Get("Idempotency-Key")+" at "+r.At.Format("15:04:05.000"))
	}
	for id, r := range rows {
		want := map[string]string{"completed": store.CRMEventCompleted, "failed": store.CRMEventFailed}[r.Status]
		for _, event := range []string{store.CRMEventCompleted, store.CRMEventFailed} {
			n := delivered[id.String()+" "+event]
			delete(delivered, id.String()+" "+event)
			switch {
			case event == want && n != 1:
				t.Errorf("call %s (%s): the CRM got %d %s updates, want 1: %v; outbox %s; faults %v", id, r.Status, n, event,
					sent[id.String()+" "+event], w.describeOutbox(id), w.timelineNow())
			case event != want && n != 0:
				t.Errorf("call %s (%s): the CRM got %d %s updates, want none", id, r.Status, n, event)
			}
		}
	}
	for k, n := range delivered {
		t.Errorf("the CRM got %d updates for %s, which is no call", n, k)
	}
}

func describeHistory(h []store.CallEventRow) string {
	var parts []string
	for _, e := range h {
		to := ""
		if e.ToStatus != nil {
			to = "→" + *e.ToStatus
		}
		parts = append(parts, fmt.Sprintf("%d:%s%s", e.Attempt, e.Kind, to))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// soakVA is the Voice Assistant of the soak: the fake VA's wire format with
// a ledger of the calls it placed, each played as a script of webhooks.
type soakVA struct {
	*servicetest.FakeVA
	deliver func(name string, body map[string]any, ack soakAck)
	// busy counts calls in progress and webhooks not yet taken.
	busy atomic.Int64

	// now is the world's clock, which the service's runs on.
	now func() time.Time

	mu     sync.Mutex
	rng    *rand.Rand
	quiet  bool
	ledger []soakDial           // every originate received
	live   map[string]uuid.UUID // attempt call_id -> call, while the VA has it live
	// liveFrom is the caller number of each live call.
	liveFrom map[string]string
	most     int
	slow     int // calls placed after our request gave up
	refused  int // dials answered 503 or 422
	issues   []string
	// doNotCall are the numbers whose post-calls asked not to call again.
	doNotCall []string
}

func newSoakVA(fake *servicetest.FakeVA, rng *rand.Rand, deliver func(string, map[string]any, soakAck)) *soakVA {
	va := &soakVA{FakeVA: fake, deliver: deliver, rng: rng, live: map[string]uuid.UUID{}, liveFrom: map[string]string{}}
	fake.Decide(va.answer)
	return va
}

// setQuiet ends slow and failed answers.
func (va *soakVA) setQuiet() {
	va.mu.Lock()
	va.quiet = true
	va.mu.Unlock()
}

func (va *soakVA) maxLive() int {
	va.mu.Lock()
	defer va.mu.Unlock()
	return va.most
}

func (va *soakVA) counts() (slow, refused int) {
	va.mu.Lock()
	defer va.mu.Unlock()
	return va.slow, va.refused
}

func (va *soakVA) liveCount() int {
	va.mu.Lock()
	defer va.mu.Unlock()
	return len(va.live)
}

func (va *soakVA) doNotCallPhones() []string {
	va.mu.Lock()
	defer va.mu.Unlock()
	return append([]string(nil), va.doNotCall...)
}

func (va *soakVA) dials() []soakDial {
	va.mu.Lock()
	defer va.mu.Unlock()
	return slices.Clone(va.ledger)
}

func (va *soakVA) problems() []string {
	va.mu.Lock()
	defer va.mu.Unlock()
	return append([]string(nil), va.issues...)
}

// dialledAt is when the VA last received callID (the wall clock); va.mu
// is held.
func (va *soakVA) dialledAt(callID string) time.Time {
	for i := len(va.ledger) - 1; i >= 0; i-- {
		if va.ledger[i].callID == callID {
			return va.ledger[i].wall
		}
	}
	return time.Time{}
}

// answer decides an originate: refused (503, 422) or placed, answered
// at once or after our request has given up.
func (va *soakVA) answer(o servicetest.Originate) (int, time.Duration) {
	va.mu.Lock()
	defer va.mu.Unlock()
	va.ledger = append(va.ledger, soakDial{callID: o.CallID, phone: o.PhoneNumber, caller: o.CallerID, at: va.now(), wall: time.Now()})
	roll := va.rng.Float64()
	switch {
	case !va.quiet && roll < 0.05:
		va.refused++
		return http.StatusServiceUnavailable, 0
	case !va.quiet && roll < 0.08:
		va.refused++
		return http.StatusUnprocessableEntity, 0
	}
	call, attempt, ok := callstate.ParseAttemptCallID(o.CallID)
	if !ok {
		va.issues = append(va.issues, fmt.Sprintf("originate with call_id %q", o.CallID))
		return http.StatusBadRequest, 0
	}
	for other, c := range va.live {
		if c == call {
			va.issues = append(va.issues, fmt.Sprintf("call %s: attempt %d dialled while %s is still live", call, attempt, other))
		}
	}
	for other, caller := range va.liveFrom {
		if caller == o.CallerID {
			va.issues = append(va.issues, fmt.Sprintf("caller number %s: %s dialled at %s while %s, dialled at %s, is still live (one live call allowed)",
				caller, o.CallID, time.Now().Format("15:04:05.000"), other, va.dialledAt(other).Format("15:04:05.000")))
		}
	}
	va.live[o.CallID], va.liveFrom[o.CallID] = call, o.CallerID
	va.most = max(va.most, len(va.live))
	var delay time.Duration
	slow := !va.quiet && roll < 0.14
	if slow {
		delay = 2 * soakDialTimeout // the call goes on; our request gives up
	}
	script := va.script(o.CallID, call, attempt, !slow && roll < 0.35)
	script.phone = o.PhoneNumber
	if slow {
		// Slow because it was busy connecting: the call outlives our
		// request.
		script.ring += soakDialTimeout
		va.slow++
	}
	va.busy.Add(1)
	go va.play(script)
	return http.StatusOK, delay
}

// vaScript is how one placed call goes.
type vaScript struct {
	callID   string // the attempt's call_id we sent
	phone    string
	call     uuid.UUID
	attempt  int
	ref      string // how its webhooks name it
	outcome  string
	ring     time.Duration
	talk     time.Duration
	duration float64
	// doNotCall: the person asks not to be called again, which the
	// post-call's analysis says.
	doNotCall bool
	// postcallAfter delays the post-call well past the call's end: after a
	// short call's retry was scheduled, or after the call finished.
	postcallAfter time.Duration
}

// script draws a call's course. byOwnID: the VA names the call by its own
// id (which callqueue learns from the dial's answer) instead of call_id.
func (va *soakVA) script(callID string, call uuid.UUID, attempt int, byOwnID bool) vaScript {
	s := vaScript{callID: callID, call: call, attempt: attempt, ref: callID,
		ring: time.Duration(5+va.rng.IntN(60)) * time.Millisecond}
	if byOwnID {
		s.ref = "va-" + callID
	}
	switch roll := va.rng.Float64(); {
	case roll < 0.5:
		s.outcome, s.duration = "completed", float64(30+va.rng.IntN(150))
	case roll < 0.62:
		s.outcome, s.duration = "short", float64(1+va.rng.IntN(3))
	case roll < 0.82:
		s.outcome = callstate.OutcomeNoAnswer
	case roll < 0.94:
		s.outcome = callstate.OutcomeBusy
	default:
		s.outcome = callstate.OutcomeVoicemail
	}
	if s.outcome == "completed" || s.outcome == "short" {
		s.talk = time.Duration(50+va.rng.IntN(450)) * time.Millisecond
		s.doNotCall = !va.quiet && va.rng.Float64() < 0.12
		if va.rng.Float64() < 0.2 {
			s.postcallAfter = time.Duration(300+va.rng.IntN(700)) * time.Millisecond
		}
	}
	return s
}

// play runs a script: the VA reports the call as it goes, each webhook on
// its own way (late, repeated, overtaking another), and ends it in its
// ledger before it reports the end.
func (va *soakVA) play(s vaScript) {
	defer va.busy.Add(-1)
	time.Sleep(s.ring)
	conv := "conv-" + s.callID
	answered := s.talk > 0
	if answered {
		va.send("call-events", map[string]any{"eventType": "call_start", "callId": s.ref, "conversation_id": conv},
			soakAck{call: s.call, attempt: s.attempt, kind: "call_start", ref: s.ref})
		time.Sleep(s.talk)
	}
	va.mu.Lock()
	delete(va.live, s.callID)
	delete(va.liveFrom, s.callID)
	va.mu.Unlock()
	end := map[string]any{"eventType": "call_end", "callId": s.ref, "duration": s.duration}
	if answered {
		end["conversation_id"], end["reason"] = conv, "completed"
	} else {
		end["reason"] = s.outcome // identical for every no-answer of this attempt
	}
	va.send("call-events", end, soakAck{call: s.call, attempt: s.attempt, kind: "call_end", ref: s.ref})
	if answered {
		var collected map[string]any
		if s.doNotCall {
			collected = map[string]any{"do_not_call": true}
			va.mu.Lock()
			va.doNotCall = append(va.doNotCall, s.phone)
			va.mu.Unlock()
		}
		time.Sleep(s.postcallAfter)
		// The post-call is ElevenLabs': its variables are what agent-init
		// answered, the call's id among them, whatever id the VA uses.
		va.send("agent-postcall", transcription(conv, int(s.duration), elAnalysis("Розмова "+s.callID, collected),
			map[string]any{"call_id": s.callID}), soakAck{call: s.call, attempt: s.attempt, kind: "postcall", ref: s.callID,
			doNotCall: s.doNotCall, phone: s.phone})
	}
}

// send delivers a webhook after a delay of its own, sometimes late, and
// sometimes twice.
func (va *soakVA) send(name string, body map[string]any, ack soakAck) {
	va.mu.Lock()
	delay := time.Duration(va.rng.IntN(40)) * time.Millisecond
	if va.rng.Float64() < 0.1 {
		delay += time.Duration(200+va.rng.IntN(500)) * time.Millisecond
	}
	copies := 1
	if va.rng.Float64() < 0.15 {
		copies = 2
	}
	va.mu.Unlock()
	for i := range copies {
		va.busy.Add(1)
		go func() {
			defer va.busy.Add(-1)
			time.Sleep(delay + time.Duration(i)*30*time.Millisecond)
			va.deliver(name, body, ack)
		}()
	}
}
