// Package servicetest runs real callqueue processes for tests: a fresh
// Postgres database, an in-process JetStream server on a random port (that
// can be restarted on the same store), a clock the test moves, and a fake
// Voice Assistant speaking the originate wire format.
package servicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/queue/queuetest"
	"github.com/callqueue/callqueue/ratelimit"
	"github.com/callqueue/callqueue/service"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
	"github.com/callqueue/callqueue/workers"
)

// Clock is a clock the test moves; it starts at a fixed instant.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at 2026-01-21 12:39:12 UTC (a Wednesday).
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 21, 12, 39, 12, 0, time.UTC)} }

// Now implements workers.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Env is one test's world: database, NATS, clock.
type Env struct {
	t           testing.TB
	DatabaseURL string
	Store       *store.Store
	Clock       *Clock
	natsDir     string
	natsPort    int
	NATS        *server.Server
	// NATSCluster, when the env was made by NewClustered, replaces NATS:
	// streams and buckets are replicated on every node.
	NATSCluster *queuetest.Cluster
	// NATSProcesses is NATSCluster with each server in a child process
	// (NewClusteredProcesses), so that one can be killed like a crash.
	NATSProcesses *queuetest.ProcessCluster
	natsNodes     int
	Log           zerolog.Logger
}

// New prepares a database and a JetStream server for t.
func New(t testing.TB) *Env {
	t.Helper()
	st, url := storetest.NewStore(t)
	e := &Env{t: t, DatabaseURL: url, Store: st, Clock: NewClock(), natsDir: t.TempDir(), natsPort: -1,
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	st.SetClock(e.Clock.Now) // the instances' database clock follows it too
	e.StartNATS()
	t.Cleanup(e.StopNATS)
	return e
}

// NewClustered prepares a database and a JetStream cluster of nodes
// servers; instances connect to all of them and create every stream and
// bucket with one replica per node (CALLQUEUE_NATS_REPLICAS=nodes).
func NewClustered(t testing.TB, nodes int) *Env {
	t.Helper()
	st, url := storetest.NewStore(t)
	nc, err := queuetest.StartCluster(queuetest.ClusterOptions{Nodes: nodes, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Shutdown)
	e := &Env{t: t, DatabaseURL: url, Store: st, Clock: NewClock(), NATSCluster: nc, natsNodes: nodes,
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	st.SetClock(e.Clock.Now)
	return e
}

// NewClusteredProcesses is NewClustered with each server a child process
// of the test binary, whose TestMain must call queuetest.RunNodeIfChild.
func NewClusteredProcesses(t testing.TB, nodes int) *Env {
	t.Helper()
	st, url := storetest.NewStore(t)
	pc, err := queuetest.StartProcessCluster(queuetest.ClusterOptions{Nodes: nodes, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Shutdown)
	e := &Env{t: t, DatabaseURL: url, Store: st, Clock: NewClock(), NATSProcesses: pc, natsNodes: nodes,
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	st.SetClock(e.Clock.Now)
	return e
}

// replicas is the stream replica count instances are configured with.
func (e *Env) replicas() int { return max(e.natsNodes, 1) }

// StartNATS starts (or restarts, on the same store and port) the server.
func (e *Env) StartNATS() {
	e.t.Helper()
	if e.natsNodes > 1 {
		e.t.Fatal("StartNATS on a clustered env: stop its nodes through NATSCluster or NATSProcesses")
	}
	opts := &server.Options{Host: "127.0.0.1", Port: e.natsPort, JetStream: true, StoreDir: e.natsDir,
		NoLog: true, NoSigs: true, MaxPayload: queue.MaxPayload}
	ns, err := server.NewServer(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("nats did not start")
	}
	e.NATS = ns
	e.natsPort = ns.Addr().(*net.TCPAddr).Port
}

// StopNATS shuts the server down (its store stays for StartNATS).
func (e *Env) StopNATS() {
	if e.NATS != nil {
		e.NATS.Shutdown()
		e.NATS.WaitForShutdown()
		e.NATS = nil
	}
}

// NATSURL is the server's client URL, or every cluster node's.
func (e *Env) NATSURL() string {
	switch {
	case e.NATSCluster != nil:
		return e.NATSCluster.URL()
	case e.NATSProcesses != nil:
		return e.NATSProcesses.URL()
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", e.natsPort)
}

// Options tune an Instance.
type Options struct {
	Role    string
	Workers workers.Config
	// BreakerOpenFor shortens the dialler breaker's open period.
	BreakerOpenFor time.Duration
	// StrictEgress keeps the production egress policy. Tests' fake peers
	// listen on 127.0.0.1, so by default private egress is allowed.
	StrictEgress bool
	// HeaderTimeout shortens the server's request-header timeout.
	HeaderTimeout time.Duration
	// MetricsToken protects /metrics.
	MetricsToken string
	// DialTimeout bounds one originate request (0: the dialler's default).
	DialTimeout time.Duration
	// CRMTimeout bounds one CRM request (0: the CRM client's default).
	CRMTimeout time.Duration
	// TrustedProxies is CALLQUEUE_TRUSTED_PROXIES.
	TrustedProxies string
	// TraceURLTemplate links the console's trace ids (CALLQUEUE_TRACE_URL_TEMPLATE).
	TraceURLTemplate string
	// RateLimits are the request limits (zero: none).
	RateLimits ratelimit.Rules
	// UnverifiedBodyBytes is CALLQUEUE_UNVERIFIED_BODY_BYTES (0: its default).
	UnverifiedBodyBytes int64
	// ClockSkew sets the process's own clock this far from the env's, as
	// on a host whose clock is off; the database's clock stays the env's.
	ClockSkew time.Duration
	// DB bounds the database connection (CALLQUEUE_DB_*; zero: defaults).
	DB config.DatabaseBounds
	// RealClock runs the process on the system clock instead of the env's
	// (rates measured against the fakes' own wall-clock ledgers).
	RealClock bool
}

// skewedClock is the env's clock read on a host whose clock is off.
type skewedClock struct {
	*Clock
	skew time.Duration
}

func (c skewedClock) Now() time.Time { return c.Clock.Now().Add(c.skew) }

// Instance is one running callqueue process.
type Instance struct {
	*service.Service
	URL string
}

// Start runs a callqueue process against the env. It is shut down when the
// test ends unless killed first.
func (e *Env) Start(opt Options) *Instance {
	e.t.Helper()
	nc, err := nats.Connect(e.NATSURL(), queue.ConnectOptions("test")...)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := config.Service{DatabaseURL: e.DatabaseURL, SecretKey: storetest.SecretKey, HTTPAddr: "127.0.0.1:0",
		NATSReplicas: e.replicas(), Timezone: config.TimezoneDefault, DataDir: e.t.TempDir(), AllowPrivateEgress: !opt.StrictEgress,
		MetricsToken: opt.MetricsToken, TrustedProxies: opt.TrustedProxies, RateLimits: opt.RateLimits,
		UnverifiedBodyBytes: opt.UnverifiedBodyBytes, DB: opt.DB, TraceURLTemplate: opt.TraceURLTemplate}
	if opt.Workers.Consumer.AckWait == 0 {
		opt.Workers.Consumer.AckWait = 3 * time.Second
	}
	if opt.Workers.Tick == 0 {
		opt.Workers.Tick = 20 * time.Millisecond
	}
	if opt.Workers.SweepEvery == 0 {
		opt.Workers.SweepEvery = 100 * time.Millisecond
	}
	if len(opt.Workers.Consumer.Backoff) == 0 {
		opt.Workers.Consumer.Backoff = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}
	}
	var dialClient *http.Client
	if opt.DialTimeout > 0 {
		dialClient = egress.NewClient(egress.Policy{AllowPrivate: !opt.StrictEgress}, opt.DialTimeout)
	}
	var crmClient *http.Client
	if opt.CRMTimeout > 0 {
		crmClient = egress.NewClient(egress.Policy{AllowPrivate: !opt.StrictEgress}, opt.CRMTimeout)
	}
	var clock workers.Clock = e.Clock
	switch {
	case opt.RealClock:
		clock = workers.SystemClock{}
	case opt.ClockSkew != 0:
		clock = skewedClock{Clock: e.Clock, skew: opt.ClockSkew}
	}
	svc, err := service.New(context.Background(), cfg, service.Options{Role: opt.Role, Clock: clock, Workers: opt.Workers,
		NATSConn: nc, BreakerOpenFor: opt.BreakerOpenFor, HeaderTimeout: opt.HeaderTimeout, DialClient: dialClient,
		CRMClient: crmClient}, e.Log)
	if err != nil {
		e.t.Fatal(err)
	}
	if opt.ClockSkew != 0 {
		svc.Store.SetDatabaseClock(e.Clock.Now)
	}
	if err := svc.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	in := &Instance{Service: svc, URL: "http://" + svc.Addr()}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return in
}

// Admin is an owner's admin-API client.
type Admin struct {
	t       testing.TB
	URL     string
	Token   string
	TokenID uuid.UUID
}

// Admin creates a token for owner against the instance.
func (e *Env) Admin(in *Instance, owner string) *Admin {
	e.t.Helper()
	created, tok, err := e.Store.CreateToken(context.Background(), owner, store.ActorCLI, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return &Admin{t: e.t, URL: in.URL, Token: tok, TokenID: created.ID}
}

// Do sends an admin request and decodes the JSON answer into out (if not nil).
func (a *Admin) Do(method, path string, body any, out any) int {
	a.t.Helper()
	return Request(a.t, method, a.URL+path, map[string]string{"Authorization": "Bearer " + a.Token}, body, out)
}

// Request sends a JSON request. body may be a string (sent raw), []byte or
// a value to encode.
func Request(t testing.TB, method, url string, headers map[string]string, body any, out any) int {
	t.Helper()
	status, _, raw := Send(t, http.DefaultClient, method, url, headers, body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return status
}

// Send sends a request with client and returns the answer's status,
// headers and body. body is sent raw when it is a string or []byte,
// JSON-encoded otherwise (with Content-Type: application/json).
func Send(t testing.TB, client *http.Client, method, url string, headers map[string]string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	// Not t.Context(): checks also run after a group of parallel subtests.
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, raw
}

// Integration is a created integration with its webhook token.
type Integration = store.Integration

// CreateIntegration creates an integration dialling through va, with the
// given call_handling overrides, active and ready to dial.
func (a *Admin) CreateIntegration(name string, va *FakeVA, callHandling map[string]any) Integration {
	a.t.Helper()
	var in Integration
	if code := a.Do("POST", "/api/integrations", map[string]any{"name": name}, &in); code != http.StatusCreated {
		a.t.Fatalf("create integration: %d", code)
	}
	if callHandling != nil {
		if code := a.Do("PUT", "/api/integrations/"+in.ID.String()+"/config/call_handling", callHandling, nil); code != http.StatusOK {
			a.t.Fatalf("put call_handling: %d", code)
		}
	}
	if va != nil {
		if code := a.Do("PUT", "/api/integrations/"+in.ID.String()+"/config/voice",
			map[string]any{"provider": "va", "base_url": va.URL, "sip_id": "sip-1", "assistant_id": "asst-1"}, nil); code != http.StatusOK {
			a.t.Fatalf("put voice: %d", code)
		}
		if code := a.Do("POST", "/api/integrations/"+in.ID.String()+"/secrets",
			map[string]any{"key": "VA_AUTH_TOKEN", "value": FakeVAToken}, nil); code != http.StatusCreated {
			a.t.Fatalf("post secret: %d", code)
		}
	}
	a.Do("GET", "/api/integrations/"+in.ID.String(), nil, &in)
	return in
}

// Webhook posts body to /{slug}/webhook/{name} with the integration's token.
func Webhook(t testing.TB, in *Instance, integ Integration, name string, body any, out any) int {
	t.Helper()
	return Request(t, "POST", in.URL+"/"+integ.Slug+"/webhook/"+name, map[string]string{"X-Webhook-Token": integ.WebhookToken}, body, out)
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
