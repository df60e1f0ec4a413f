package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a closed-loop load run measured.
type loadResult struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration
}

func (r loadResult) rps() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return percentile(r.latencies, p)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// closedLoopGET is closedLoop for GET requests.
func closedLoopGET(ctx context.Context, client *http.Client, clients int, warmup, d time.Duration, url string, header http.Header) loadResult {
	return closedLoop(ctx, client, clients, warmup, d, url, header, nil)
}

// closedLoop runs clients goroutines that each send requests back to back
// for d (after warmup), body(i) making each request's body.
func closedLoop(ctx context.Context, client *http.Client, clients int, warmup, d time.Duration, url string,
	header http.Header, body func(n int64) []byte) loadResult {
	return closedLoopSigned(ctx, client, clients, warmup, d, url, header, body, nil)
}

// closedLoopSigned is closedLoop whose requests also carry sign(body)'s
// headers (a signature over each body).
func closedLoopSigned(ctx context.Context, client *http.Client, clients int, warmup, d time.Duration, url string,
	header http.Header, body func(n int64) []byte, sign func(body []byte) http.Header) loadResult {
	var seq atomic.Int64
	var measuring atomic.Bool
	var ok, failed atomic.Int64
	lat := make([][]time.Duration, clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				method, raw := http.MethodGet, []byte(nil)
				if body != nil {
					method, raw = http.MethodPost, body(seq.Add(1))
				}
				req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(raw))
				req.Header = header.Clone()
				if sign != nil {
					for k, v := range sign(raw) {
						req.Header[k] = v
					}
				}
				start := time.Now()
				resp, err := client.Do(req)
				took := time.Since(start)
				good := err == nil && resp.StatusCode/100 == 2
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if !measuring.Load() {
					continue
				}
				if good {
					ok.Add(1)
					lat[c] = append(lat[c], took)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	return loadResult{ok: ok.Load(), failed: failed.Load(), elapsed: elapsed, latencies: all}
}
