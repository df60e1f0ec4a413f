package deploy_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	yaml "github.com/pb33f/go-yaml"

	"github.com/callqueue/callqueue/queue"
)

// compose is the part of compose.yaml this test reads.
type compose struct {
	XCallqueue struct {
		Environment map[string]string `yaml:"environment"`
	} `yaml:"x-callqueue"`
	Configs map[string]struct {
		Content string `yaml:"content"`
	} `yaml:"configs"`
}

// The compose file's NATS servers refuse anonymous clients and let
// callqueue in with the password every callqueue service gets in NATS_URL:
// the server configuration is loaded by nats-server itself (as one
// server, without the cluster routes) and callqueue's streams are created
// through it.
//
// Not parallel: it sets NATS_PASSWORD in the environment, as compose does.
func TestComposeNATSRequiresAuthentication(t *testing.T) {
	c := readCompose(t)
	url := c.XCallqueue.Environment["NATS_URL"]
	for _, server := range []string{"nats-1", "nats-2", "nats-3"} {
		if !strings.Contains(url, "callqueue:${NATS_PASSWORD") || !strings.Contains(url, "@"+server+":4222") {
			t.Errorf("NATS_URL %q does not sign in to %s", url, server)
		}
	}

	const password = "compose-test-password"
	opts := composeNATSOptions(t, c, password, "compose-test-route-password")
	if opts.NoAuthUser != "" {
		t.Errorf("nats.conf lets clients in without credentials as %q", opts.NoAuthUser)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, 0, true, true
	opts.Cluster = server.ClusterOpts{}
	opts.Routes = nil
	opts.StoreDir = t.TempDir()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	addr := ns.Addr().String()
	for what, u := range map[string]string{"anonymous": "nats://" + addr, "wrong password": "nats://callqueue:guess@" + addr} {
		if nc, err := nats.Connect(u, nats.Timeout(5*time.Second)); err == nil {
			nc.Close()
			t.Errorf("%s: let in", what)
		}
	}
	nc, err := nats.Connect("nats://callqueue:"+password+"@"+addr, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("callqueue's user: %v", err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := queue.New(ctx, nc, queue.Options{}); err != nil {
		t.Fatalf("callqueue's streams in its account: %v", err)
	}
}

// readCompose reads compose.yaml.
func readCompose(t *testing.T) compose {
	t.Helper()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// composeNATSOptions loads the compose file's nats.conf as a server would:
// compose interpolates ${NATS_ROUTE_PASSWORD} and writes $$ as $; the
// server reads $NATS_PASSWORD from its environment.
func composeNATSOptions(t *testing.T, c compose, password, routePassword string) *server.Options {
	t.Helper()
	content := c.Configs["nats-conf"].Content
	content = strings.ReplaceAll(content, "${NATS_ROUTE_PASSWORD:?set it}", routePassword)
	content = strings.ReplaceAll(content, "${NATS_ROUTE_PASSWORD}", routePassword)
	content = strings.ReplaceAll(content, "$$", "$")
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_PASSWORD", password)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	return opts
}

// The compose file's servers form their cluster only with the route
// password: each route it lists carries it, and a server of that
// configuration takes a route that presents it and refuses one that does
// not (real servers, on loopback ports).
func TestComposeNATSRoutesRequireAuthentication(t *testing.T) {
	c := readCompose(t)
	const routePassword = "compose-test-route-password"
	opts := composeNATSOptions(t, c, "compose-test-password", routePassword)
	if opts.Cluster.Username == "" || opts.Cluster.Password != routePassword {
		t.Fatalf("the cluster port takes routes without the route password (user %q)", opts.Cluster.Username)
	}
	if len(opts.Routes) != 3 {
		t.Fatalf("%d routes, want the 3 servers", len(opts.Routes))
	}
	for _, r := range opts.Routes {
		if p, ok := r.User.Password(); r.User.Username() != opts.Cluster.Username || !ok || p != routePassword {
			t.Errorf("route %s does not present the route password", r.Host)
		}
	}

	// A seed server with the compose file's cluster settings, on loopback.
	seed := *opts
	seed.Host, seed.Port, seed.HTTPPort, seed.NoLog, seed.NoSigs = "127.0.0.1", -1, 0, true, true
	seed.Cluster.Host, seed.Cluster.Port = "127.0.0.1", -1
	seed.Routes, seed.ServerName = nil, "seed"
	seed.JetStream = false // routes are what is tested; a lone JetStream cluster node waits for peers
	ns := startServer(t, &seed)
	seedURL := "nats-route://127.0.0.1:" + strconv.Itoa(ns.ClusterAddr().Port)

	join := func(name, userinfo string) *server.Server {
		u, err := url.Parse(strings.Replace(seedURL, "://", "://"+userinfo, 1))
		if err != nil {
			t.Fatal(err)
		}
		o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, ServerName: name,
			Cluster: server.ClusterOpts{Name: opts.Cluster.Name, Host: "127.0.0.1", Port: -1}, Routes: []*url.URL{u}}
		return startServer(t, o)
	}
	stranger := join("stranger", "")
	guesser := join("guesser", opts.Cluster.Username+":guess@")
	member := join("member", opts.Cluster.Username+":"+routePassword+"@")
	deadline := time.Now().Add(15 * time.Second)
	for member.NumRoutes() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if member.NumRoutes() == 0 {
		t.Fatal("a server presenting the route password did not join")
	}
	time.Sleep(500 * time.Millisecond) // time for the others' attempts, which must fail
	for _, s := range []*server.Server{stranger, guesser} {
		if n := s.NumRoutes(); n != 0 {
			t.Errorf("%s joined the cluster (%d routes) without the route password", s.Name(), n)
		}
	}
}

func startServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("%s did not start", o.ServerName)
	}
	return ns
}
