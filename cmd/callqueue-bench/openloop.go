package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// openLoopResult is what a constant-arrival-rate run measured.
type openLoopResult struct {
	offered, achieved float64 // requests per second scheduled and completed
	ok, failed        int64
	// latencies count from each request's scheduled send time, not from
	// when a connection was free: a slow answer delays no later request's
	// clock (no coordinated omission).
	latencies []time.Duration
}

// openLoopMaxInFlight bounds the goroutines of one run; a request waiting
// for one still counts its latency from its scheduled time.
const openLoopMaxInFlight = 4096

// openLoop sends rate requests per second for d, the n-th scheduled at
// start + n/rate whatever became of the earlier ones, and waits for all.
func openLoop(ctx context.Context, client *http.Client, rate float64, d time.Duration, method, url string,
	header http.Header, body func(n int64) []byte) openLoopResult {
	total := int64(rate * d.Seconds())
	lat := make([]time.Duration, total)
	good := make([]bool, total)
	var ok, failed atomic.Int64
	slots := make(chan struct{}, openLoopMaxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for n := range total {
		scheduled := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
		time.Sleep(time.Until(scheduled))
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			var raw []byte
			if body != nil {
				raw = body(n)
			}
			req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(raw))
			req.Header = header.Clone()
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			lat[n] = time.Since(scheduled)
			if err == nil && resp.StatusCode/100 == 2 {
				good[n] = true
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var kept []time.Duration
	for n, l := range lat {
		if good[n] {
			kept = append(kept, l)
		}
	}
	slices.Sort(kept)
	return openLoopResult{offered: rate, achieved: float64(ok.Load()) / elapsed.Seconds(), ok: ok.Load(), failed: failed.Load(), latencies: kept}
}

// openLoopShares are the fractions of a measured maximum offered open loop.
var openLoopShares = []float64{0.25, 0.50, 0.75}

// reportOpenLoop offers each share of maxRPS for d and prints
// <name>_open<pct>_{p50,p99,p999,max}_ms; it fails when requests fail.
func reportOpenLoop(ctx context.Context, client *http.Client, name string, maxRPS float64, d time.Duration, method, url string,
	header http.Header, body func(n int64) []byte) error {
	for _, share := range openLoopShares {
		r := openLoop(ctx, client, maxRPS*share, d, method, url, header, body)
		if r.failed > 0 || len(r.latencies) == 0 {
			return fmt.Errorf("%s open loop at %.0f/s: %d of %d requests failed", name, r.offered, r.failed, r.failed+r.ok)
		}
		pct := int(share * 100)
		p := func(q float64) float64 { return ms(percentile(r.latencies, q)) }
		metric(fmt.Sprintf("%s_open%d_rps", name, pct), r.achieved, "req/s")
		metric(fmt.Sprintf("%s_open%d_p50_ms", name, pct), p(0.50), "ms")
		metric(fmt.Sprintf("%s_open%d_p99_ms", name, pct), p(0.99), "ms")
		metric(fmt.Sprintf("%s_open%d_p999_ms", name, pct), p(0.999), "ms")
		metric(fmt.Sprintf("%s_open%d_max_ms", name, pct), p(1), "ms")
	}
	return nil
}
