// Package queuetest runs a JetStream cluster of several NATS servers routed
// to each other over loopback, so that replicated streams
// (CALLQUEUE_NATS_REPLICAS=3) and leader failover can be exercised by tests
// and benchmarks without an installed nats-server: in the calling process
// (Cluster), or each server in a child process of it that can be killed
// like a crashing machine (ProcessCluster).
package queuetest

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callqueue/callqueue/queue"
)

// ClusterName is the NATS cluster the servers form.
const ClusterName = "callqueue"

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Nodes is the number of servers (default 3).
	Nodes int
	// Dir holds one JetStream store directory per server.
	Dir string
	// SyncInterval is the file store's fsync interval; zero fsyncs every
	// write before it is acknowledged (callqueue's default policy).
	SyncInterval time.Duration
}

// Cluster is a running in-process JetStream cluster.
type Cluster struct {
	nodes
	mu      sync.Mutex
	servers []*server.Server // nil once stopped
}

// nodes are a cluster's servers as its clients see them.
type nodes struct {
	urls []string
}

// StartCluster starts the servers and returns once JetStream has a meta
// leader that every server follows, so streams can be created at once.
func StartCluster(opt ClusterOptions) (*Cluster, error) {
	n := cmp.Or(opt.Nodes, 3)
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i, node := range clusterNodes(opt, n, ports) {
		opts := node.options()
		opts.Port = -1 // a free client port, read back below
		opts.NoSigs = true
		ns, err := server.NewServer(opts)
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("nats node %d: %w", i, err)
		}
		ns.Start()
		c.servers = append(c.servers, ns)
	}
	for i, ns := range c.servers {
		if !ns.ReadyForConnections(30 * time.Second) {
			c.Shutdown()
			return nil, fmt.Errorf("nats node %d did not accept connections in 30s", i)
		}
		c.urls = append(c.urls, ns.ClientURL())
	}
	if err := c.waitMetaLeader(30 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// nodeConfig is what one server of a cluster needs to know; a server run
// in a child process gets it as JSON.
type nodeConfig struct {
	Name         string
	Port         int
	ClusterPort  int
	Routes       []string
	StoreDir     string
	SyncInterval time.Duration
}

// clusterNodes configures n servers whose route ports are routePorts.
// Every server is told every route, so each expects the full peer set from
// the start (a seed-only topology would start with a smaller expected meta
// group); that is why the ports are chosen up front.
func clusterNodes(opt ClusterOptions, n int, routePorts []int) []nodeConfig {
	routes := make([]string, n)
	for i, p := range routePorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	nodes := make([]nodeConfig, n)
	for i := range nodes {
		nodes[i] = nodeConfig{Name: nodeName(i), ClusterPort: routePorts[i], Routes: routes,
			StoreDir: filepath.Join(opt.Dir, nodeName(i)), SyncInterval: opt.SyncInterval}
	}
	return nodes
}

func (c nodeConfig) options() *server.Options {
	opts := &server.Options{
		ServerName: c.Name,
		Host:       "127.0.0.1",
		Port:       c.Port,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		MaxPayload: queue.MaxPayload,
		NoLog:      true,
		Cluster:    server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: c.ClusterPort},
		Routes:     server.RoutesFromStr(strings.Join(c.Routes, ",")),
	}
	if c.SyncInterval == 0 {
		opts.SyncAlways = true
	} else {
		opts.SyncInterval = c.SyncInterval
	}
	return opts
}

// freePorts reserves n loopback ports and releases them for the servers.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitMetaLeader waits for the routes to be up, a JetStream meta leader to
// be elected and every server to be current with it.
func (c *Cluster) waitMetaLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		leaders, current := 0, 0
		for _, ns := range c.servers {
			if ns.NumRoutes() < len(c.servers)-1 {
				continue
			}
			if ns.JetStreamIsLeader() {
				leaders++
			}
			if ns.JetStreamIsCurrent() {
				current++
			}
		}
		if leaders == 1 && current == len(c.servers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jetstream cluster not formed in %s: %d leaders, %d of %d current", timeout, leaders, current, len(c.servers))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is every server's client URL, comma-separated, as NATS_URL takes it.
func (c *nodes) URL() string { return strings.Join(c.urls, ",") }

// Servers are the servers, nil where one was stopped.
func (c *Cluster) Servers() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*server.Server(nil), c.servers...)
}

// StreamLeader is the index of the server leading stream's Raft group, as
// the stream's info reports it.
func (c *nodes) StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return 0, fmt.Errorf("stream %s has no leader", stream)
	}
	for i := range c.urls {
		if nodeName(i) == info.Cluster.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("stream %s: leader %q is not a server of this cluster", stream, info.Cluster.Leader)
}

// MoveStreamLeader asks stream's leader to step down in favour of server
// i. JetStream has no client call for it, so this is the API request.
func (c *nodes) MoveStreamLeader(ctx context.Context, js jetstream.JetStream, stream string, i int) error {
	if current, err := c.StreamLeader(ctx, js, stream); err == nil && current == i {
		return nil
	}
	body := fmt.Sprintf(`{"placement":{"preferred":%q}}`, nodeName(i))
	msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(body))
	if err != nil {
		return fmt.Errorf("step down %s: %w", stream, err)
	}
	if strings.Contains(string(msg.Data), `"error"`) {
		return fmt.Errorf("step down %s: %s", stream, msg.Data)
	}
	for {
		if current, err := c.StreamLeader(ctx, js, stream); err == nil && current == i {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s leader did not move to %s: %w", stream, nodeName(i), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts server i down in order, as SIGTERM would: it steps down from
// the Raft groups it leads, so the others take over at once, then closes
// its connections. Its store stays on disk.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	ns := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// Shutdown stops every server still running.
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for i := range c.Servers() {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}
