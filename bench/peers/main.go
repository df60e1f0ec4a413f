// Command peers measures what a team would build instead of callqueue's
// webhook intake and event workers, with the same durability, on the same
// machine and Postgres, with the same load generator (bench/load) as
// callqueue-bench: a net/http handler that inserts a River job per
// webhook, one that publishes each webhook to JetStream (file store,
// fsync before every ack, as callqueue runs it), a bare net/http handler,
// and River's workers applying the call events of callqueue-bench's e2e
// scenario. Its own module, so that callqueue never depends on River.
//
//	DATABASE_URL=... go run . [-duration 5s] [-clients 64] [-calls 20000]
//
// scripts/bench.sh runs it after callqueue-bench and prints the ratios.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/callqueue/callqueue/bench/load"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func metric(name string, value float64, unit string) {
	fmt.Printf("metric: %s %.2f %s\n", name, value, unit)
}

// callEvent is the body callqueue-bench's intake scenario posts.
type callEvent struct {
	EventType      string  `json:"eventType"`
	CallID         string  `json:"callId"`
	Duration       float64 `json:"duration"`
	ConversationID string  `json:"conversation_id"`
}

// Kind implements river.JobArgs.
func (callEvent) Kind() string { return "call_event" }

func (e callEvent) valid() bool { return e.EventType != "" && e.CallID != "" }

func body(n int64) []byte {
	return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42,"conversation_id":"conv-%d"}`, n, n)
}

func run() error {
	duration := flag.Duration("duration", 5*time.Second, "how long each throughput measurement runs")
	clients := flag.Int("clients", 64, "concurrent HTTP clients")
	calls := flag.Int("calls", 20000, "calls whose call_start and call_end River's workers apply")
	flag.Parse()
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		return errors.New("DATABASE_URL is not set")
	}
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "peers: %s, %d CPUs, %s per measurement\n", runtime.Version(), runtime.NumCPU(), *duration)
	dbURL, drop, err := freshDatabase(ctx, admin)
	if err != nil {
		return err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	client := load.NewClient(*clients)
	header := http.Header{"Content-Type": {"application/json"}}

	// Bare net/http: reads the body and answers as the webhook does.
	bare := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		accepted(w)
	}
	if err := measureIntake(ctx, client, *clients, *duration, "peer_bare", bare, header); err != nil {
		return err
	}

	// River: one job inserted (one committed transaction) per webhook.
	workers := river.NewWorkers()
	river.AddWorker(workers, &applyWorker{pool: pool})
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	if err != nil {
		return err
	}
	riverIntake := func(w http.ResponseWriter, r *http.Request) {
		var ev callEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || !ev.valid() {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		if _, err := inserter.Insert(r.Context(), ev, nil); err != nil {
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		accepted(w)
	}
	if err := measureIntake(ctx, client, *clients, *duration, "peer_river_intake", riverIntake, header); err != nil {
		return err
	}

	// JetStream: one synchronous publish per webhook, file store, fsync always.
	js, stopNATS, err := startJetStream(ctx)
	if err != nil {
		return err
	}
	defer stopNATS()
	publishIntake := func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		var ev callEvent
		if err != nil || json.Unmarshal(raw, &ev) != nil || !ev.valid() {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		if _, err := js.Publish(r.Context(), "events.bench", raw); err != nil {
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		accepted(w)
	}
	if err := measureIntake(ctx, client, *clients, *duration, "peer_publish_intake", publishIntake, header); err != nil {
		return err
	}

	return measureRiverWorkers(ctx, pool, workers, *calls)
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"success":true}` + "\n"))
}

// measureIntake serves handler on loopback and drives it as
// callqueue-bench drives intake: a closed loop, then the open loop at 50 %.
func measureIntake(ctx context.Context, client *http.Client, clients int, d time.Duration, name string,
	handler http.HandlerFunc, header http.Header) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	res := load.Closed(ctx, client, clients, time.Second, d, url, header, body)
	if res.Failed > 0 {
		return fmt.Errorf("%s: %d requests failed", name, res.Failed)
	}
	metric(name+"_rps", res.RPS(), "req/s")
	metric(name+"_p99_ms", load.MS(res.Percentile(0.99)), "ms")
	open := load.Open(ctx, client, res.RPS()/2, d, http.MethodPost, url, header, body)
	if open.Failed > 0 || len(open.Latencies) == 0 {
		return fmt.Errorf("%s open loop: %d requests failed", name, open.Failed)
	}
	metric(name+"_open50_p99_ms", load.MS(load.Percentile(open.Latencies, 0.99)), "ms")
	return nil
}

// applyWorker applies a call event as callqueue's event workers do at the
// least: the call's row changes and its history gains a row, in one
// transaction.
type applyWorker struct {
	river.WorkerDefaults[callEvent]
	pool *pgxpool.Pool
}

func (a *applyWorker) Work(ctx context.Context, job *river.Job[callEvent]) error {
	status := "in_progress"
	if job.Args.EventType == "call_end" {
		status = "completed"
	}
	return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE peer_calls SET status = $2, duration = $3, updated_at = now() WHERE id = $1`,
			job.Args.CallID, status, job.Args.Duration); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO peer_call_events (call_id, kind, occurred_at) VALUES ($1, $2, now())`,
			job.Args.CallID, job.Args.EventType)
		return err
	})
}

// measureRiverWorkers stores a backlog of call_start + call_end jobs for
// calls in progress first, then lets River's workers drain it, as
// callqueue-bench's e2e does with JetStream and callqueue's workers.
func measureRiverWorkers(ctx context.Context, pool *pgxpool.Pool, workers *river.Workers, calls int) error {
	if _, err := pool.Exec(ctx, `CREATE TABLE peer_calls (id text PRIMARY KEY, status text NOT NULL, duration double precision,
			updated_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE peer_call_events (id bigserial PRIMARY KEY, call_id text NOT NULL, kind text NOT NULL, occurred_at timestamptz NOT NULL);
		CREATE INDEX peer_call_events_call ON peer_call_events (call_id, id)`); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO peer_calls (id, status) SELECT 'va-' || g, 'initiated' FROM generate_series(1, $1) g`, calls); err != nil {
		return err
	}
	worker, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}}})
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, 0, 2*calls)
	for i := range calls {
		id := fmt.Sprintf("va-%d", i+1)
		params = append(params, river.InsertManyParams{Args: callEvent{EventType: "call_start", CallID: id}},
			river.InsertManyParams{Args: callEvent{EventType: "call_end", CallID: id, Duration: 42}})
	}
	for len(params) > 0 {
		n := min(len(params), 5000)
		if _, err := worker.InsertMany(ctx, params[:n]); err != nil {
			return err
		}
		params = params[n:]
	}
	done, cancel := worker.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	start := time.Now()
	if err := worker.Start(ctx); err != nil {
		return err
	}
	deadline := time.After(10 * time.Minute)
	for n := 0; n < 2*calls; n++ {
		select {
		case <-done:
		case <-deadline:
			return fmt.Errorf("river applied %d of %d events in 10 minutes", n, 2*calls)
		}
	}
	elapsed := time.Since(start)
	stopCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	_ = worker.Stop(stopCtx)
	var completed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM peer_calls WHERE status = 'completed'`).Scan(&completed); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "peers: river workers: %d events in %s, %d calls completed (an end applied before its start is overwritten: River does not order a call's jobs)\n",
		2*calls, elapsed.Round(time.Millisecond), completed)
	metric("peer_river_events_per_s", float64(2*calls)/elapsed.Seconds(), "events/s")
	return nil
}

// startJetStream runs an embedded JetStream server with a file store that
// fsyncs every write (callqueue's production policy) and one stream.
func startJetStream(ctx context.Context) (jetstream.JetStream, func(), error) {
	dir, err := os.MkdirTemp("", "peers-nats-")
	if err != nil {
		return nil, nil, err
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, SyncAlways: true, NoSigs: true})
	if err != nil {
		return nil, nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, nil, errors.New("nats server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage}); err != nil {
		return nil, nil, err
	}
	return js, func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown(); _ = os.RemoveAll(dir) }, nil
}

// freshDatabase creates a database next to admin's and returns its URL and
// how to drop it.
func freshDatabase(ctx context.Context, admin string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("cq_peers_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	}
	return u.String(), drop, nil
}
