package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/store"
)

// tenants measures what /metrics costs at many integrations (-tenants, 10,000
// by default): each integration gets one simulated call, taken from queued
// to completed through the webhooks, JetStream and Postgres, then the
// process that dialled them is scraped: series, bytes, time and CPU per
// scrape, its idle CPU and RSS. It runs once with every integration
// labelled (CALLQUEUE_METRICS_PER_INTEGRATION=all, the series as they were
// before the top mode) and once with the default, top.
func (b *bench) tenants(ctx context.Context) error {
	for _, name := range b.tenantModes {
		mode := metrics.PerIntegration(strings.TrimSpace(name))
		if mode != metrics.PerIntegrationAll && mode != metrics.PerIntegrationTop && mode != metrics.PerIntegrationNone {
			return fmt.Errorf("-tenant-modes: %q is not all, top or none", name)
		}
		if err := b.tenantsWith(ctx, mode); err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
	}
	return nil
}

func (b *bench) tenantsWith(ctx context.Context, mode metrics.PerIntegration) error {
	b.metrics = metrics.Options{PerIntegration: mode}
	defer func() { b.metrics = metrics.Options{} }()
	w, err := b.newWorld(ctx, "tenants_"+string(mode))
	if err != nil {
		return err
	}
	defer w.close()
	svc, err := w.start(ctx, "all", true, nil)
	if err != nil {
		return err
	}

	// The integrations, through the store as the admin API makes them.
	setup := time.Now()
	integrations := make([]store.Integration, b.tenantCount)
	callHandling := []byte(`{"concurrency_limit": 1, "max_attempts": 1, "max_call_duration_secs": 600}`)
	voice := []byte(`{"provider": "simulator", "answer": 1, "short": 0, "no_answer": 0, "busy": 0, "talk_secs": [20, 120], "ring_secs": [2, 8], "speed": 1000}`)
	if err := parallel(16, b.tenantCount, func(i int) error {
		name := fmt.Sprintf("tenant %05d", i)
		in, err := w.st.CreateIntegration(ctx, "bench", store.ActorCLI, store.IntegrationFields{Name: &name})
		if err == nil {
			err = w.st.PutConfig(ctx, store.ActorCLI, in.ID, config.KeyCallHandling, callHandling)
		}
		if err == nil {
			err = w.st.PutConfig(ctx, store.ActorCLI, in.ID, config.KeyVoice, voice)
		}
		integrations[i] = in
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: tenants %s: %d integrations set up in %s\n", mode, b.tenantCount, time.Since(setup).Round(time.Millisecond))

	// One call each, in a burst through call-originate.
	burst := time.Now()
	client := load.NewClient(32)
	if err := parallel(32, b.tenantCount, func(i int) error {
		in := integrations[i]
		body := fmt.Appendf(nil, `{"phone_number": "+38050%07d"}`, i)
		// A 503 (the publish did not reach JetStream in time on a loaded
		// machine) is retried, as senders do, under one Idempotency-Key so
		// that a retry never makes a second call.
		for try := 1; ; try++ {
			req, err := http.NewRequest(http.MethodPost, "http://"+svc.Addr()+"/"+in.Slug+"/webhook/call-originate", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Webhook-Token", in.WebhookToken)
			req.Header.Set("Idempotency-Key", in.ID.String())
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return nil
			case resp.StatusCode != http.StatusServiceUnavailable || try == 10:
				return fmt.Errorf("%s: %d", req.URL, resp.StatusCode)
			}
			time.Sleep(time.Duration(try) * 200 * time.Millisecond)
		}
	}); err != nil {
		return err
	}
	if err := w.waitCount(ctx, `SELECT count(*) FROM calls WHERE status = 'completed'`, b.tenantCount, 20*time.Minute); err != nil {
		return err
	}
	settled := time.Since(burst)
	svc.Metrics.Rank() // as the service does every minute

	// Idle: nothing left to do but the background loops.
	runtime.GC()
	debug.FreeOSMemory()
	idleFor := 10 * time.Second
	cpu := cpuTime()
	time.Sleep(idleFor)
	idleCPU := (cpuTime() - cpu).Seconds() / idleFor.Seconds()
	rss := currentRSS()

	// Scrapes as Prometheus' text format, uncompressed.
	scraper := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableCompression: true}}
	const scrapes = 20
	var took []time.Duration
	var size, series int
	cpu = cpuTime()
	for range scrapes {
		start := time.Now()
		resp, err := scraper.Get("http://" + svc.Addr() + "/metrics")
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		took = append(took, time.Since(start))
		size, series = len(body), 0
		for line := range strings.Lines(string(body)) {
			if !strings.HasPrefix(line, "#") && strings.TrimSpace(line) != "" {
				series++
			}
		}
	}
	scrapeCPU := (cpuTime() - cpu) / scrapes
	slices.Sort(took)
	// The per-integration gauges' read of Postgres, alone: the part of a
	// scrape that grows with the integrations whatever the mode.
	var reads []time.Duration
	for range scrapes {
		start := time.Now()
		if _, err := w.st.Gauges(ctx); err != nil {
			return err
		}
		reads = append(reads, time.Since(start))
	}
	slices.Sort(reads)
	fmt.Fprintf(os.Stderr, "callqueue-bench: tenants %s: %d calls settled in %s; /metrics %d series, %d bytes, p50 %s\n",
		mode, b.tenantCount, settled.Round(time.Millisecond), series, size, took[scrapes/2].Round(time.Millisecond))
	name := "tenants_" + string(mode) + "_"
	metric(name+"series", float64(series), "series")
	metric(name+"scrape_bytes", float64(size), "bytes")
	metric(name+"scrape_p50_ms", float64(took[scrapes/2].Microseconds())/1000, "ms")
	metric(name+"scrape_max_ms", float64(took[scrapes-1].Microseconds())/1000, "ms")
	metric(name+"scrape_cpu_ms", float64(scrapeCPU.Microseconds())/1000, "ms")
	metric(name+"gauges_read_p50_ms", float64(reads[scrapes/2].Microseconds())/1000, "ms")
	metric(name+"idle_cpu_pct", idleCPU*100, "% of a core")
	metric(name+"rss_mib", float64(rss)/1024, "MiB")
	metric(name+"burst_settled_s", settled.Seconds(), "s")
	return nil
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(workers, n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// cpuTime is the user and system CPU this process has used: the service
// and the bench together, since both run in it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// currentRSS is the process's resident set in KiB (VmRSS).
func currentRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}
