// Package service wires callqueue's parts into one process for a role:
// all (the default), webhooks, workers or api. Every role serves
// /healthz, /readyz and /metrics.
package service

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/callqueue/callqueue/analysis"
	"github.com/callqueue/callqueue/api"
	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/clientip"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/migrations"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/ratelimit"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/web/admin"
	"github.com/callqueue/callqueue/webhooks"
	"github.com/callqueue/callqueue/workers"
)

// Roles.
const (
	RoleAll      = "all"
	RoleWebhooks = "webhooks"
	RoleWorkers  = "workers"
	RoleAPI      = "api"
)

// Options adjust a Service beyond the environment (tests inject a clock,
// a NATS connection, shorter timeouts).
type Options struct {
	Role    string
	Migrate bool
	Clock   workers.Clock
	Workers workers.Config
	// NATSConn, when set, is used instead of NATS_URL or the embedded server;
	// the Service closes it on shutdown.
	NATSConn *nats.Conn
	// DialClient is the HTTP client for the dialler. It and the CRM and LLM
	// clients default to ones under the egress policy of the configuration.
	DialClient *http.Client
	// BreakerOpenFor overrides how long an open breaker waits.
	BreakerOpenFor time.Duration
	// CRMClient and LLMClient are the HTTP clients for those peers.
	CRMClient *http.Client
	LLMClient *http.Client
	// Version and Commit label callqueue_build_info.
	Version string
	Commit  string
	// HeaderTimeout cuts off a client that has not sent its request headers
	// (0: HeaderTimeoutDefault).
	HeaderTimeout time.Duration
	// Notice receives what the operator must see once at start (the
	// embedded NATS token made for this run); nil is standard error.
	Notice io.Writer
}

// HTTP server limits. The header timeout is the contract's; the others keep
// a slow or idle client from holding a connection (and its memory) forever.
const (
	HeaderTimeoutDefault = 10 * time.Second
	ReadTimeoutDefault   = 2 * time.Minute // a 25 MiB post-call on a slow link
	// HTTPDrainLimit bounds the wait for requests in progress at shutdown,
	// leaving the rest of the deadline to the dials in flight.
	HTTPDrainLimit     = 10 * time.Second
	IdleTimeoutDefault = 2 * time.Minute
	MaxHeaderBytes     = 64 << 10
)

// Service is one running callqueue process.
type Service struct {
	cfg     config.Service
	opt     Options
	log     zerolog.Logger
	Pool    *pgxpool.Pool
	Store   *store.Store
	Queue   *queue.Queue
	Metrics *metrics.Metrics
	Workers *workers.Workers
	// clock is the process's clock set by the database's.
	clock  *workers.DatabaseClock
	Dialer *dialer.Breaking
	// Simulator plays the calls of integrations whose voice.provider is
	// "simulator" (roles that dial only).
	Simulator *dialer.Simulator
	CRM       *crm.Clients
	Callers   *callerctx.Cache

	llmBreakers *breaker.Set[analysis.Result]
	cancel      context.CancelFunc
	embedded    *server.Server
	nc          *nats.Conn
	ownsNC      bool
	handler     http.Handler
	http        *http.Server
	listener    net.Listener
}

// New connects to Postgres and NATS (starting the embedded server when
// NATS_URL is empty), applies migrations unless told not to, and wires the
// role's components. Nothing runs until Start.
func New(ctx context.Context, cfg config.Service, opt Options, log zerolog.Logger) (svc *Service, err error) {
	if opt.Role == "" {
		opt.Role = RoleAll
	}
	switch opt.Role {
	case RoleAll, RoleWebhooks, RoleWorkers, RoleAPI:
	default:
		return nil, fmt.Errorf("unknown role %q (all, webhooks, workers, api)", opt.Role)
	}
	if opt.Clock == nil {
		opt.Clock = workers.SystemClock{}
	}
	local := opt.Clock
	clock := workers.NewDatabaseClock(local)
	opt.Clock = clock
	perIntegration := cfg.Metrics
	perIntegration.Now = opt.Clock.Now // an integration's last hour of activity, on the service's clock
	s := &Service{cfg: cfg, opt: opt, log: log,
		Metrics: metrics.New(metrics.Build{Version: opt.Version, Commit: opt.Commit, Role: opt.Role}, perIntegration)}
	defer func() {
		if err != nil {
			s.closeConnections()
		}
	}()
	sealer, err := store.NewSealer(cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	if s.Pool, err = store.Connect(ctx, cfg.DatabaseURL, 40, store.Bounds(cfg.DB)); err != nil {
		return nil, err
	}
	if opt.Migrate {
		m, err := migrations.New(s.Pool)
		if err != nil {
			return nil, err
		}
		applied, err := m.Up(store.Unbounded(ctx)) // a migration may outlast the query deadline
		if err != nil {
			return nil, err
		}
		if len(applied) > 0 {
			log.Info().Ints("versions", applied).Msg("migrations applied")
		}
	}
	s.Store = store.New(s.Pool, sealer)
	if _, system := local.(workers.SystemClock); !system {
		// A test's clock: the database's, which decides leases, follows it.
		s.Store.SetClock(local.Now)
	}
	s.clock = clock
	if err := s.connectNATS(); err != nil {
		return nil, err
	}
	if s.Queue, err = queue.New(ctx, s.nc, queue.Options{Replicas: cfg.NATSReplicas, MaxBytes: cfg.StreamMaxBytes}); err != nil {
		return nil, err
	}
	policy := egress.Policy{AllowPrivate: cfg.AllowPrivateEgress}
	s.opt.DialClient = cmp.Or(s.opt.DialClient, egress.NewClient(policy, dialer.TimeoutDefault))
	s.opt.CRMClient = cmp.Or(s.opt.CRMClient, egress.NewClient(policy, crm.TimeoutDefault))
	s.opt.LLMClient = cmp.Or(s.opt.LLMClient, egress.NewClient(policy, 0))
	if err := s.wire(ctx); err != nil {
		return nil, err
	}
	s.registerSampled()
	return s, nil
}

func (s *Service) connectNATS() error {
	var err error
	switch {
	case s.opt.NATSConn != nil:
		s.nc, s.ownsNC = s.opt.NATSConn, true
		return nil
	case s.cfg.NATSURL != "":
		auth, aerr := s.cfg.NATSAuth.Options()
		if aerr != nil {
			return aerr
		}
		s.nc, err = nats.Connect(s.cfg.NATSURL, append(queue.ConnectOptions("callqueue-"+s.opt.Role), auth...)...)
	default:
		sync, serr := s.cfg.SyncPolicy()
		if serr != nil {
			return serr
		}
		token := s.embeddedToken()
		s.embedded, err = queue.StartEmbedded(queue.EmbeddedOptions{StoreDir: filepath.Join(s.cfg.DataDir, "nats"),
			Listen: s.cfg.NATSListen, SyncInterval: sync, Token: token})
		if err != nil {
			return err
		}
		s.nc, err = queue.ConnectEmbedded(s.embedded, "callqueue-"+s.opt.Role, token)
	}
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	s.ownsNC = true
	return nil
}

// embeddedToken is the token the embedded server requires once it listens
// on CALLQUEUE_NATS_LISTEN: CALLQUEUE_NATS_TOKEN, or one made now and
// shown once on the notice writer (never logged), for the operator to
// give other processes. Without a listener nothing outside the process
// can connect, and no token is needed.
func (s *Service) embeddedToken() string {
	if s.cfg.NATSListen == "" {
		return ""
	}
	if s.cfg.NATSAuth.Token != "" {
		return s.cfg.NATSAuth.Token
	}
	token := queue.NewToken()
	fmt.Fprintf(cmp.Or[io.Writer](s.opt.Notice, os.Stderr),
		"callqueue: the embedded NATS server on %s requires this token (made for this run; set CALLQUEUE_NATS_TOKEN to keep one):\n%s\n"+
			"callqueue: other processes connect with NATS_URL=nats://%s and CALLQUEUE_NATS_TOKEN set to it\n",
		s.cfg.NATSListen, token, s.cfg.NATSListen)
	return token
}

// EmbeddedNATSURL is the client URL of the embedded server when it
// listens, else "".
func (s *Service) EmbeddedNATSURL() string {
	if s.embedded == nil || s.cfg.NATSListen == "" {
		return ""
	}
	return s.embedded.ClientURL()
}

func (s *Service) wire(ctx context.Context) error {
	role := s.opt.Role
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		jsonhttp.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "role": role})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", metricsAuth(s.cfg.MetricsToken, promhttp.HandlerFor(s.Metrics.Registry,
		// OpenMetrics when the scraper asks for it: the exposition that carries exemplars.
		promhttp.HandlerOpts{EnableOpenMetrics: true})))

	var dispatcherBreakers func(string, gobreaker.State, gobreaker.State)
	router := dialer.NewRouter(s.opt.DialClient)
	s.Dialer = dialer.WithBreakers(router, breaker.NewSet[dialer.Result](breaker.Settings{
		Peer: "va", OpenFor: s.opt.BreakerOpenFor,
		IsSuccessful: dialer.IsRejected,
		OnChange: func(key string, from, to gobreaker.State) {
			if dispatcherBreakers != nil {
				dispatcherBreakers(key, from, to)
			}
		},
	}))
	s.CRM = crm.NewClients(s.Store, s.opt.CRMClient, breaker.NewSet[any](breaker.Settings{
		Peer: "crm", OpenFor: s.opt.BreakerOpenFor, IsSuccessful: crm.IsPermanent,
	}))
	s.CRM.Now = s.opt.Clock.Now
	s.CRM.OnAmbiguous = func(id uuid.UUID, matches int) {
		s.Metrics.CRMAmbiguousLookup(id.String())
		s.log.Warn().Str("integration_id", id.String()).Int("matches", matches).
			Msg("several different CRM records match a call's phone: none taken")
	}
	var err error
	if s.Callers, err = callerctx.New(ctx, s.Queue.JetStream(),
		callerctx.Options{Replicas: s.cfg.NATSReplicas, LocalEntries: s.cfg.CallerCacheEntries, Now: s.opt.Clock.Now}, s.CRM, s.log); err != nil {
		return fmt.Errorf("caller context cache: %w", err)
	}
	if role == RoleAll || role == RoleWorkers {
		s.llmBreakers = breaker.NewSet[analysis.Result](breaker.Settings{Peer: "llm", OpenFor: s.opt.BreakerOpenFor})
		llm := analysis.New(s.opt.LLMClient, s.llmBreakers)
		llm.OnError = func(key string, err error) {
			s.log.Warn().Err(err).Str("integration_id", key).Msg("llm analysis failed; using the agent's own analysis")
		}
		s.Workers = workers.New(workers.Deps{Store: s.Store, Queue: s.Queue, Dialer: s.Dialer, Clock: s.opt.Clock,
			Log: s.log, Metrics: s.Metrics, CRM: s.CRM, Warmer: s.Callers, Analyzer: llm,
			PredialClient: egress.NewClient(egress.Policy{AllowPrivate: s.cfg.AllowPrivateEgress}, 0)}, s.opt.Workers)
		dispatcherBreakers = s.Workers.Dispatcher.BreakerChanged
	}
	dir := webhooks.NewDirectory(s.Store, 0)
	limits := ratelimit.New(s.cfg.RateLimits, func(kind ratelimit.Kind, per string) {
		s.Metrics.RateLimited.WithLabelValues(string(kind), per).Inc()
	})
	unverified := ratelimit.NewBudget(cmp.Or(s.cfg.UnverifiedBodyBytes, ratelimit.UnverifiedBodyBytesDefault), webhooks.UnverifiedPerClient)
	// The api role runs built-in handlers (invoke) through the webhooks'
	// own code, so it has the handler even when it serves no webhooks.
	hooks := webhooks.New(webhooks.Deps{Directory: dir, Store: s.Store, Publisher: s.Queue, Events: queue.NewBatcher(s.Queue), Metrics: s.Metrics, Log: s.log,
		Now: s.opt.Clock.Now, Retries: workers.Requeuer{Store: s.Store, Kicker: s.Queue},
		Enricher: s.Callers, Health: s.integrationHealth, Kicker: s.Queue, Limits: limits, UnverifiedBodies: unverified,
		CallIDKey: webhooks.CallIDKey(s.cfg.SecretKey)})
	if role == RoleAll || role == RoleWebhooks {
		hooks.Register(mux)
	}
	if s.Workers != nil {
		// The simulated platform's webhooks enter through the receivers' code.
		s.Simulator = dialer.NewSimulator(hooks, s.log)
		router.WithSimulator(s.Simulator)
	}
	if role == RoleAll || role == RoleAPI {
		api.New(api.Deps{Store: s.Store, Kicker: s.Queue, Log: s.log, Now: s.opt.Clock.Now, Egress: egress.Policy{AllowPrivate: s.cfg.AllowPrivateEgress},
			OnIntegrationChange: dir.Forget, Invoker: hooks, DeadLetters: s.Queue}).Register(mux)
		admin.RegisterWith(mux, admin.Settings{TraceURLTemplate: s.cfg.TraceURLTemplate}) // the console is a client of the API above
	}
	proxies, err := clientip.ParseProxies(s.cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("CALLQUEUE_TRUSTED_PROXIES: %w", err)
	}
	s.handler = recoverer(s.log, proxies.Middleware(route(mux, limits)))
	return nil
}

// Handler is the process's HTTP handler.
func (s *Service) Handler() http.Handler { return s.handler }

func (s *Service) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// The driver's words name hosts, users and databases: they go to the
	// log, the answer says only which check failed.
	checks := map[string]string{"db": "ok", "queue": "ok"}
	status, word := http.StatusOK, "ok"
	for name, ping := range map[string]func(context.Context) error{"db": s.Store.Ping, "queue": s.Queue.Ping} {
		if err := ping(ctx); err != nil {
			s.log.Warn().Err(err).Str("check", name).Msg("not ready")
			checks[name], status, word = "down", http.StatusServiceUnavailable, "unavailable"
		}
	}
	jsonhttp.WriteJSON(w, status, map[string]any{"status": word, "checks": checks})
}

// integrationHealth is GET /{slug}/health: db, queue, dialler and CRM.
func (s *Service) integrationHealth(ctx context.Context, in webhooks.Integration) (bool, map[string]any) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	check := func(err error) map[string]any { return map[string]any{"ok": err == nil} } // states, never error text
	checks := map[string]any{"db": check(s.Store.Ping(ctx)), "queue": check(s.Queue.Ping(ctx))}
	ok := checks["db"].(map[string]any)["ok"] == true && checks["queue"].(map[string]any)["ok"] == true
	cfg, err := s.Store.Config(ctx, in.ID)
	voice := map[string]any{"ok": false}
	if err == nil {
		voice["provider"] = cfg.Voice.Provider
		voice["configured"] = cfg.Voice.Complete()
		var serr error
		if key := cfg.Voice.SecretKey(); key != "" { // the simulator needs none
			secret, err := s.Store.SecretValue(ctx, in.ID, key)
			if serr = err; err == nil && secret == "" {
				serr = errors.New("empty") // a placeholder from setup is not a secret
			}
		}
		voice["secret"] = serr == nil
		state := s.Dialer.Breakers().State(in.ID.String())
		voice["breaker"] = state.String()
		// This process's breaker knows only its own dials (none in the
		// webhooks role); the workers record an open one on the integration.
		current, ierr := s.Store.IntegrationByID(ctx, in.ID)
		unhealthy := ierr == nil && (current.Status == store.StatusHasErrors || current.Status == store.StatusFailed)
		if ierr == nil {
			voice["status"] = current.Status
		}
		voice["ok"] = cfg.Voice.Complete() && serr == nil && state != gobreaker.StateOpen && !unhealthy
		if cfg.Voice.Provider == config.ProviderElevenLabs {
			checks["postcall"] = s.postcallCheck(ctx, in.ID, cfg)
		}
		crmState := s.CRM.Breakers().State(in.ID.String())
		checks["crm"] = map[string]any{"ok": crmState != gobreaker.StateOpen, "kind": cfg.CRM.Kind, "breaker": crmState.String()}
	}
	checks["voice"] = voice
	crmOK := checks["crm"] == nil || checks["crm"].(map[string]any)["ok"] == true
	return ok && voice["ok"] == true && crmOK, checks
}

// Start starts the workers and the HTTP server. Cancelling ctx abandons
// dials in flight (see Kill); Shutdown is the orderly stop.
func (s *Service) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	// The process's clock is set by the database's before it writes any
	// time; a database not reachable yet leaves it on its own until the
	// next sync.
	syncCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if err := s.clock.Sync(syncCtx, s.Store, s.log); err != nil {
		s.log.Warn().Err(err).Msg("could not read the database's clock; this process's own is used until it can")
	}
	cancel()
	go s.clock.Keep(ctx, s.Store, s.log)
	if s.Workers != nil {
		if err := s.Workers.Start(ctx); err != nil {
			return err
		}
	}
	go s.runForgetting(ctx)
	if s.opt.Role != RoleAPI {
		go s.Callers.Watch(ctx) // agent-init's and the dial's copy of the caller contexts
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.listener = ln
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: cmp.Or(s.opt.HeaderTimeout, HeaderTimeoutDefault),
		ReadTimeout: ReadTimeoutDefault, IdleTimeout: IdleTimeoutDefault, MaxHeaderBytes: MaxHeaderBytes}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Str("role", s.opt.Role).Msg("callqueue serving")
	return nil
}

// Addr is the HTTP listen address once started.
func (s *Service) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Shutdown stops intake first (HTTP), then the workers (finishing or
// nakking what they hold), then closes NATS and the pool.
func (s *Service) Shutdown(ctx context.Context) error {
	var errs []error
	if s.Workers != nil {
		// First, so that no call is dialled while the rest drains.
		s.Workers.Dispatcher.StopClaiming()
	}
	if s.http != nil {
		// Bounded: a slow upload must not use the time the dials in
		// flight need to finish and be recorded. What is still being read
		// then is cut off (its sender gets no 2xx and retries).
		drain, cancel := context.WithTimeout(ctx, HTTPDrainLimit)
		if err := s.http.Shutdown(drain); err != nil {
			_ = s.http.Close()
			if ctx.Err() != nil {
				errs = append(errs, err)
			}
		}
		cancel()
	}
	if s.Workers != nil {
		done := make(chan struct{})
		go func() { s.Workers.Stop(ctx); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, errors.New("workers did not stop in time"))
		}
	}
	if s.Simulator != nil {
		s.Simulator.Stop() // events not yet sent are the watchdog's
	}
	if s.cancel != nil {
		s.cancel() // background loops of the process (forgetting, the caller contexts' watch)
	}
	// Bounded too: the pool waits for its connections' cleanup, which for
	// one a silent database cut off can take pgx's 15 s.
	closed := make(chan struct{})
	go func() { s.closeConnections(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		errs = append(errs, errors.New("connections did not close in time"))
	}
	return errors.Join(errs...)
}

// Kill stops the process the way a crash would, for tests: connections are
// cut without draining, nothing in flight is acknowledged or recorded.
func (s *Service) Kill() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.Simulator != nil {
		s.Simulator.Stop()
	}
	if s.listener != nil {
		_ = s.http.Close()
	}
	s.nc.Close() // no drain: unacked messages are redelivered elsewhere
	if s.Workers != nil {
		// A crash answers nothing: dials in flight are abandoned.
		abandon, cancel := context.WithCancel(context.Background())
		cancel()
		s.Workers.Stop(abandon)
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	s.Pool.Close()
}

func (s *Service) closeConnections() {
	if s.nc != nil && s.ownsNC {
		_ = s.nc.Drain()
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
		s.embedded.WaitForShutdown()
	}
	if s.Pool != nil {
		s.Pool.Close()
	}
}

// metricsAuth requires CALLQUEUE_METRICS_TOKEN as a bearer token, when set:
// per-integration series name every tenant's slug and volume.
func metricsAuth(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			jsonhttp.WriteError(w, jsonhttp.ErrUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// route answers unknown routes in the contract's error shape and holds
// the webhooks and the admin API to their rate limits before any work is
// done for a request.
func route(mux *http.ServeMux, limits *ratelimit.Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" {
			jsonhttp.WriteError(w, jsonhttp.ErrNotFound)
			return
		}
		if kind, limited := limitKind(pattern); limited && !limits.Allow(w, r, kind) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// limitKind says which limits a route pattern ("POST /{slug}/webhook/...",
// "GET /api/calls") is under: per-integration routes and the admin API;
// health, metrics and the console's static files are not limited.
func limitKind(pattern string) (ratelimit.Kind, bool) {
	_, path, found := strings.Cut(pattern, " ")
	if !found {
		path = pattern
	}
	switch {
	case strings.HasPrefix(path, "/{slug}/"):
		return ratelimit.KindWebhook, true
	case strings.HasPrefix(path, "/api/"):
		return ratelimit.KindAPI, true
	}
	return "", false
}

// recoverer turns a handler panic into a 500 in the contract's shape.
func recoverer(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.Error().Interface("panic", v).Str("route", r.Pattern).Msg("handler panicked")
				jsonhttp.WriteError(w, errors.New("panic"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// ClockOffset is what this process adds to its host's clock to read the
// database's.
func (s *Service) ClockOffset() time.Duration { return s.clock.Offset() }
