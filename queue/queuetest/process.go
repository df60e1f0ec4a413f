package queuetest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// nodeEnv carries a child process's server configuration.
const nodeEnv = "CALLQUEUE_TEST_NATS_NODE"

// RunNodeIfChild turns this process into one server of a ProcessCluster
// when it was started as one, and never returns then; otherwise it returns
// at once. Call it first thing in main or TestMain of a program that
// starts a ProcessCluster.
func RunNodeIfChild() {
	raw := os.Getenv(nodeEnv)
	if raw == "" {
		return
	}
	var node nodeConfig
	if err := json.Unmarshal([]byte(raw), &node); err != nil {
		fmt.Fprintln(os.Stderr, "nats node:", err)
		os.Exit(2)
	}
	// Signals stay the server's own: SIGTERM is an orderly stop.
	ns, err := server.NewServer(node.options())
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats node:", err)
		os.Exit(2)
	}
	ns.Start()
	// The cluster's owner may die without killing its children.
	parent := os.Getppid()
	go func() {
		for range time.Tick(200 * time.Millisecond) {
			if os.Getppid() != parent {
				os.Exit(1)
			}
		}
	}()
	ns.WaitForShutdown()
	os.Exit(0)
}

// ProcessCluster is a JetStream cluster whose servers are child processes
// (the running program re-run as RunNodeIfChild), so that one can be
// killed the way a machine crashes: no leadership handed over, nothing
// flushed that was not already.
type ProcessCluster struct {
	nodes
	mu    sync.Mutex
	procs []*exec.Cmd // nil once killed
}

// StartProcessCluster starts the servers and returns once JetStream
// answers on every one of them.
func StartProcessCluster(opt ClusterOptions) (*ProcessCluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	n := cmp.Or(opt.Nodes, 3)
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &ProcessCluster{}
	for i, node := range clusterNodes(opt, n, ports[n:]) {
		node.Port = ports[i]
		raw, err := json.Marshal(node)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(context.Background(), exe) //nolint:gosec // G204: this very program, re-run as a NATS server
		cmd.Env = append(os.Environ(), nodeEnv+"="+string(raw))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("nats node %d: %w", i, err)
		}
		c.procs = append(c.procs, cmd)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", node.Port))
	}
	if err := c.waitJetStream(60 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// waitJetStream waits until every server answers a JetStream request,
// which needs the meta group to have a leader.
func (c *ProcessCluster) waitJetStream(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, url := range c.urls {
		for {
			err := pingJetStream(ctx, url)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("jetstream at %s not ready in %s: %w", url, timeout, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func pingJetStream(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Kill kills server i with SIGKILL, as a crash would.
func (c *ProcessCluster) Kill(i int) error {
	c.mu.Lock()
	cmd := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	if cmd == nil {
		return errors.New("already killed")
	}
	err := cmd.Process.Kill()
	_ = cmd.Wait() // killed: its exit status says so
	return err
}

// Shutdown kills every server still running.
func (c *ProcessCluster) Shutdown() {
	for i := range c.procs {
		_ = c.Kill(i)
	}
}
