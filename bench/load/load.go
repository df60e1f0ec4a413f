// Package load is the benchmarks' load generator: closed loops (clients
// sending back to back) and open loops (a constant arrival rate), shared by
// callqueue-bench and the peers it is compared with.
package load

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

// Result is what a closed-loop load run measured.
type Result struct {
	OK, Failed int64
	Elapsed    time.Duration
	Latencies  []time.Duration
}

func (r Result) RPS() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return Percentile(r.Latencies, p)
}

func Percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func MS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ClosedGET is Closed for GET requests.
func ClosedGET(ctx context.Context, client *http.Client, clients int, warmup, d time.Duration, url string, header http.Header) Result {
	return Closed(ctx, client, clients, warmup, d, url, header, nil)
}

// Closed runs clients goroutines that each send requests back to back
// for d (after warmup), body(i) making each request's body.
func Closed(ctx context.Context, client *http.Client, clients int, warmup, d time.Duration, url string,
	header http.Header, body func(n int64) []byte) Result {
	return ClosedSigned(ctx, client, clients, warmup, d, url, header, body, nil)
}

// ClosedSigned is Closed whose requests also carry sign(body)'s
// headers (a signature over each body).
func ClosedSigned(ctx context.Context, client *http.Client, clients int, warmup, d time.Duration, url string,
	header http.Header, body func(n int64) []byte, sign func(body []byte) http.Header) Result {
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
					_ = resp.Body.Close()
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
	return Result{OK: ok.Load(), Failed: failed.Load(), Elapsed: elapsed, Latencies: all}
}

// NewClient is the generator's HTTP client: up to 2×conns connections to
// one host, kept alive between requests.
func NewClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: conns * 2,
		MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns * 2, IdleConnTimeout: time.Minute}}
}
