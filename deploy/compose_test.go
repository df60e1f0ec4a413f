package deploy_test

import (
	"context"
	"os"
	"path/filepath"
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
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	url := c.XCallqueue.Environment["NATS_URL"]
	for _, server := range []string{"nats-1", "nats-2", "nats-3"} {
		if !strings.Contains(url, "callqueue:${NATS_PASSWORD") || !strings.Contains(url, "@"+server+":4222") {
			t.Errorf("NATS_URL %q does not sign in to %s", url, server)
		}
	}

	const password = "compose-test-password"
	conf := filepath.Join(t.TempDir(), "nats.conf")
	// Compose writes $$ as $; the server reads $NATS_PASSWORD from its environment.
	content := strings.ReplaceAll(c.Configs["nats-conf"].Content, "$$", "$")
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_PASSWORD", password)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
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
