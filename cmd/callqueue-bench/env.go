package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/queue/queuetest"
	"github.com/callqueue/callqueue/ratelimit"
	"github.com/callqueue/callqueue/service"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/workers"
)

type bench struct {
	adminURL string
	duration time.Duration
	clients  int
	log      zerolog.Logger
	// syncInterval is the embedded server's fsync interval; 0 fsyncs
	// every write (the production default).
	syncInterval time.Duration
	// rateLimits are the processes' request limits (zero: none).
	rateLimits ratelimit.Rules
	// unverifiedBodyBytes is the processes' CALLQUEUE_UNVERIFIED_BODY_BYTES
	// (0: its default; negative: no bound).
	unverifiedBodyBytes int64
	// retentionCalls is how many expired calls the retention scenario removes.
	retentionCalls int
	// tenantCount is how many integrations the tenants scenario makes.
	tenantCount int
	// callerIDs is the size of the caller number pool campaign_dispatch
	// measures after measuring without one (0: no second phase).
	callerIDs int
	// tenantModes are the per-integration metric modes it measures.
	tenantModes []string
	// metrics is the processes' CALLQUEUE_METRICS_PER_INTEGRATION and
	// _TOP_INTEGRATIONS (zero: the defaults).
	metrics metrics.Options
	// scaleCalls is how many terminal calls the scale scenario's database holds.
	scaleCalls int
	// scaleOnly names the scenarios the scale scenario measures ("": all).
	scaleOnly string
	// scaleRounds is how many times the scale scenario measures each part.
	scaleRounds int
	// template, when set, is the database each world starts as a copy of.
	template string
}

var secretKey = []byte("bench-secret-key-32-bytes-long!!")

// world is a fresh database and embedded JetStream server for one scenario.
type world struct {
	b       *bench
	dbURL   string
	dbName  string
	ns      *server.Server
	cluster natsCluster // instead of ns, for newClusterWorld
	nodes   int
	dataDir string
	st      *store.Store
	svcs    []*service.Service
	// keep leaves the database in place at close (a template).
	keep bool
}

func (b *bench) newWorld(ctx context.Context, name string) (*world, error) {
	return b.newClusterWorld(ctx, name, 1, false)
}

// natsCluster is a JetStream cluster a world runs against.
type natsCluster interface {
	URL() string
	StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (int, error)
	Shutdown()
}

// newClusterWorld is newWorld with a JetStream cluster of nodes servers,
// every stream and bucket replicated on each: in this process, or each in
// a child process (that can be killed like a crashing machine).
func (b *bench) newClusterWorld(ctx context.Context, name string, nodes int, processes bool) (*world, error) {
	w := &world{b: b, dbName: "callqueue_bench_" + name, nodes: nodes}
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+w.dbName+" WITH (FORCE)"); err != nil {
		return nil, err
	}
	create := "CREATE DATABASE " + w.dbName
	if b.template != "" {
		// A file copy: the default strategy would write the whole template
		// through the WAL.
		create += " TEMPLATE " + b.template + " STRATEGY FILE_COPY"
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return nil, err
	}
	if w.dbURL, err = worldURL(b.adminURL, w.dbName); err != nil {
		return nil, err
	}
	if w.dataDir, err = os.MkdirTemp("", "callqueue-bench-"); err != nil {
		return nil, err
	}
	opt := queuetest.ClusterOptions{Nodes: nodes, Dir: w.dataDir, SyncInterval: b.syncInterval}
	switch {
	case nodes > 1 && processes:
		w.cluster, err = queuetest.StartProcessCluster(opt)
	case nodes > 1:
		w.cluster, err = queuetest.StartCluster(opt)
	default:
		w.ns, err = queue.StartEmbedded(queue.EmbeddedOptions{StoreDir: w.dataDir, SyncInterval: b.syncInterval})
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

// start runs a callqueue process for role against the world.
func (w *world) start(ctx context.Context, role string, migrate bool, clock workers.Clock) (*service.Service, error) {
	var nc *nats.Conn
	var err error
	replicas := 1
	if w.cluster != nil {
		replicas = w.nodes
		nc, err = nats.Connect(w.cluster.URL(), queue.ConnectOptions("bench-"+role)...)
	} else {
		nc, err = queue.ConnectEmbedded(w.ns, "bench-"+role, "")
	}
	if err != nil {
		return nil, err
	}
	cfg := config.Service{DatabaseURL: w.dbURL, SecretKey: secretKey, HTTPAddr: "127.0.0.1:0", NATSReplicas: replicas,
		Timezone: config.TimezoneDefault, DataDir: w.dataDir, AllowPrivateEgress: true, // the fake peers listen on loopback
		RateLimits: w.b.rateLimits, UnverifiedBodyBytes: w.b.unverifiedBodyBytes, Metrics: w.b.metrics}
	svc, err := service.New(ctx, cfg, service.Options{Role: role, Migrate: migrate, Clock: clock, NATSConn: nc,
		Workers: workers.Config{SweepEvery: 100 * time.Millisecond}}, w.b.log)
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	w.svcs = append(w.svcs, svc)
	if w.st == nil {
		w.st = svc.Store
	}
	return svc, nil
}

// worldURL is adminURL naming database db.
func worldURL(adminURL, db string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + db
	return u.String(), nil
}

func (w *world) close() {
	var wg sync.WaitGroup
	for _, s := range w.svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		}()
	}
	wg.Wait()
	if w.cluster != nil {
		w.cluster.Shutdown()
	} else {
		w.ns.Shutdown()
		w.ns.WaitForShutdown()
	}
	_ = os.RemoveAll(w.dataDir)
	if w.keep {
		return
	}
	ctx := context.Background()
	if conn, err := pgx.Connect(ctx, w.b.adminURL); err == nil {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+w.dbName+" WITH (FORCE)")
		conn.Close(ctx)
	}
}

// setupIntegration creates an owner token and an active integration whose
// VA is at vaURL, with the given call_handling.
func (w *world) setupIntegration(ctx context.Context, baseURL, vaURL string, callHandling string) (store.Integration, string, error) {
	_, token, err := w.st.CreateToken(ctx, "bench", store.ActorCLI, "bench")
	if err != nil {
		return store.Integration{}, "", err
	}
	name := "bench"
	in, err := w.st.CreateIntegration(ctx, "bench", store.ActorCLI, store.IntegrationFields{Name: &name})
	if err != nil {
		return in, "", err
	}
	put := func(key, value string) error {
		return w.st.PutConfig(ctx, store.ActorCLI, in.ID, key, []byte(value))
	}
	if err := put(config.KeyCallHandling, callHandling); err != nil {
		return in, "", err
	}
	if err := put(config.KeyVoice, fmt.Sprintf(`{"provider":"va","base_url":%q,"sip_id":"sip-1","assistant_id":"a-1"}`, vaURL)); err != nil {
		return in, "", err
	}
	if _, err := w.st.PutSecret(ctx, store.ActorCLI, in.ID, store.KindSecret, "VA_AUTH_TOKEN", "bench-va-token", true); err != nil {
		return in, "", err
	}
	in, err = w.st.IntegrationByID(ctx, in.ID)
	return in, token, err
}

// startIdle migrates the database, starts a process of role and sets up an
// integration whose VA is unreachable, with the given call_handling: for
// measurements that dial nothing.
func (w *world) startIdle(ctx context.Context, role, callHandling string) (*service.Service, store.Integration, string, error) {
	svc, err := w.start(ctx, role, true, nil)
	if err != nil {
		return nil, store.Integration{}, "", err
	}
	in, token, err := w.setupIntegration(ctx, "", "http://127.0.0.1:1", callHandling)
	return svc, in, token, err
}

// startUndialled migrates the database, starts a process of every role and
// creates an integration with callHandling and no dialler: the calls it is
// sent stay queued, so only the intake is at work.
func (w *world) startUndialled(ctx context.Context, name, callHandling string) (*service.Service, store.Integration, error) {
	svc, err := w.start(ctx, "all", true, nil)
	if err != nil {
		return nil, store.Integration{}, err
	}
	in, err := w.st.CreateIntegration(ctx, "bench", store.ActorCLI, store.IntegrationFields{Name: &name})
	if err != nil {
		return nil, in, err
	}
	err = w.st.PutConfig(ctx, store.ActorCLI, in.ID, config.KeyCallHandling, []byte(callHandling))
	return svc, in, err
}

// intakeLag is the lag, in ms, from each of the integration's calls'
// receipt (its created_at) to the intake worker's insert (its queued
// history entry): how long a 202's call id waits to be readable.
func (w *world) intakeLag(ctx context.Context, integrationID uuid.UUID) (p50, p99, worst float64, err error) {
	err = w.st.Pool().QueryRow(ctx, `SELECT
			COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), 0),
			COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), 0), COALESCE(max(lag), 0)
		FROM (SELECT EXTRACT(EPOCH FROM e.occurred_at - c.created_at) * 1000 AS lag
			FROM calls c JOIN call_events e ON e.call_id = c.id AND e.kind = 'queued' WHERE c.integration_id = $1) l`,
		integrationID).Scan(&p50, &p99, &worst)
	return p50, p99, worst, err
}

// waitCount polls a count query until it reaches want or timeout passes.
func (w *world) waitCount(ctx context.Context, query string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var n int
		if err := w.st.Pool().QueryRow(ctx, query).Scan(&n); err != nil {
			return err
		}
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d after %s (%s)", n, want, timeout, query)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
