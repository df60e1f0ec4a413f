package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/callqueue/callqueue/bench/load"
)

// openLoopShares are the fractions of a measured maximum offered open loop.
var openLoopShares = []float64{0.25, 0.50, 0.75}

// reportOpenLoop offers each share of maxRPS for d and prints
// <name>_open<pct>_{p50,p99,p999,max}_ms; it fails when requests fail.
func reportOpenLoop(ctx context.Context, client *http.Client, name string, maxRPS float64, d time.Duration, method, url string,
	header http.Header, body func(n int64) []byte) error {
	for _, share := range openLoopShares {
		r := load.Open(ctx, client, maxRPS*share, d, method, url, header, body)
		if r.Failed > 0 || len(r.Latencies) == 0 {
			return fmt.Errorf("%s open loop at %.0f/s: %d of %d requests failed", name, r.Offered, r.Failed, r.Failed+r.OK)
		}
		pct := int(share * 100)
		p := func(q float64) float64 { return load.MS(load.Percentile(r.Latencies, q)) }
		metric(fmt.Sprintf("%s_open%d_rps", name, pct), r.Achieved, "req/s")
		metric(fmt.Sprintf("%s_open%d_p50_ms", name, pct), p(0.50), "ms")
		metric(fmt.Sprintf("%s_open%d_p99_ms", name, pct), p(0.99), "ms")
		metric(fmt.Sprintf("%s_open%d_p999_ms", name, pct), p(0.999), "ms")
		metric(fmt.Sprintf("%s_open%d_max_ms", name, pct), p(1), "ms")
	}
	return nil
}
