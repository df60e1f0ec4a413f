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

// OpenResult is what a constant-arrival-rate run measured.
type OpenResult struct {
	Offered, Achieved float64 // requests per second scheduled and completed
	OK, Failed        int64
	// latencies count from each request's scheduled send time, not from
	// when a connection was free: a slow answer delays no later request's
	// clock (no coordinated omission).
	Latencies []time.Duration
}

// openMaxInFlight bounds the goroutines of one run; a request waiting
// for one still counts its latency from its scheduled time.
const openMaxInFlight = 4096

// Open sends rate requests per second for d, the n-th scheduled at
// start + n/rate whatever became of the earlier ones, and waits for all.
func Open(ctx context.Context, client *http.Client, rate float64, d time.Duration, method, url string,
	header http.Header, body func(n int64) []byte) OpenResult {
	total := int64(rate * d.Seconds())
	lat := make([]time.Duration, total)
	good := make([]bool, total)
	var ok, failed atomic.Int64
	slots := make(chan struct{}, openMaxInFlight)
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
				_ = resp.Body.Close()
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
	return OpenResult{Offered: rate, Achieved: float64(ok.Load()) / elapsed.Seconds(), OK: ok.Load(), Failed: failed.Load(), Latencies: kept}
}
