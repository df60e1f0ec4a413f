package service_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/internal/faultnet"
	"github.com/callqueue/callqueue/service/servicetest"
)

// The black-holed replica's database bounds and how long its database
// stays silent: longer than each of them, so that its statements time
// out, its connections are declared dead and new ones cannot be opened.
var (
	soakBlackHoleBounds = config.DatabaseBounds{ConnectTimeout: time.Second, StatementTimeout: 2 * time.Second,
		TCPUserTimeout: 2 * time.Second}
	soakBlackHoleFor = 3 * time.Second
)

// soakBlackHoles are the black holes still open, closed by settle.
type soakBlackHoles struct {
	mu      sync.Mutex
	pending sync.WaitGroup
	open    map[*faultnet.Proxy]bool
}

// blackHoleReplica replaces a worker by one whose database connections
// pass through a proxy (after the outage proxy), lets it take work for a
// moment, then black-holes its database: packets dropped both ways, no
// reset, new connections accepted and never answered, for longer than its
// statement, connect and TCP timeouts. The schedule goes on meanwhile; the
// database comes back a few seconds later and the replica stays. Nothing
// it held may be dialled twice or lost: the other replica takes over what
// the silent one cannot finish.
func (w *soakWorld) blackHoleReplica() {
	i := w.rng.IntN(len(w.workers))
	victim := w.workers[i]
	w.workers, w.names = append(w.workers[:i:i], w.workers[i+1:]...), append(w.names[:i:i], w.names[i+1:]...)
	proxy := w.startWorkerBehind()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	w.shutdown(ctx, victim)
	cancel()
	time.Sleep(time.Duration(200+w.rng.IntN(600)) * time.Millisecond)
	proxy.BlackHole()
	silent := soakBlackHoleFor + time.Duration(w.rng.IntN(2000))*time.Millisecond
	w.holes.mu.Lock()
	w.holes.open[proxy] = true
	w.holes.mu.Unlock()
	w.holes.pending.Add(1)
	go func() {
		defer w.holes.pending.Done()
		time.Sleep(silent)
		w.holes.mu.Lock()
		defer w.holes.mu.Unlock()
		if w.holes.open[proxy] {
			proxy.Restore()
			delete(w.holes.open, proxy)
		}
	}()
	w.fault(fmt.Sprintf("black_hole %s", silent.Round(100*time.Millisecond)))
}

// restoreBlackHoles ends every black hole at once (the faults stop).
func (w *soakWorld) restoreBlackHoles() {
	w.holes.mu.Lock()
	for p := range w.holes.open {
		p.Restore()
		delete(w.holes.open, p)
	}
	w.holes.mu.Unlock()
	w.holes.pending.Wait()
}

// startWorkerBehind starts a worker process whose database is reached
// through a faultnet proxy of its own, with the black hole's bounds.
func (w *soakWorld) startWorkerBehind() *faultnet.Proxy {
	t := w.t
	u, err := url.Parse(w.viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultnet.Listen(t.Context(), u.Host)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = proxy.Addr()
	w.started++
	name := fmt.Sprintf("soak-worker-%d", w.started)
	sep := "?"
	if strings.Contains(u.String(), "?") {
		sep = "&"
	}
	saved := w.c.env.DatabaseURL
	w.c.env.DatabaseURL = u.String() + sep + "application_name=" + name
	cfg := w.c.opt.Workers
	cfg.Consumer.StallAfter, cfg.Consumer.HoldWait = 3*time.Second, 500*time.Millisecond
	in := w.c.env.Start(servicetest.Options{Role: "workers", Workers: cfg, BreakerOpenFor: w.c.opt.BreakerOpenFor,
		DialTimeout: w.c.opt.DialTimeout, DB: soakBlackHoleBounds})
	w.c.env.DatabaseURL = saved
	in.Store.SetCommitFault(w.lostWorkers.Fault)
	// Closed before the process shuts down: its connections then fail at
	// once instead of waiting out the black hole.
	t.Cleanup(func() { _ = proxy.Close() })
	w.c.workers = append(w.c.workers, in)
	w.workers = append(w.workers, in)
	w.names = append(w.names, name)
	return proxy
}
