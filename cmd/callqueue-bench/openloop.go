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

// openTarget is an endpoint offered load open loop, by its metrics' name.
type openTarget struct{ name, url string }

// reportOpenLoop offers each share of maxRPS for d to each target in turn
// (so that other load on the machine weighs on them alike) and prints
// <name>_open<pct>_{rps,p50,p99,p999,max}_ms; it fails when requests fail.
func reportOpenLoop(ctx context.Context, client *http.Client, maxRPS float64, d time.Duration, method string,
	header http.Header, body func(n int64) []byte, targets ...openTarget) error {
	for _, share := range openLoopShares {
		for _, t := range targets {
			r := load.Open(ctx, client, maxRPS*share, d, method, t.url, header, body)
			if r.Failed > 0 || len(r.Latencies) == 0 {
				return fmt.Errorf("%s open loop at %.0f/s: %d of %d requests failed", t.name, r.Offered, r.Failed, r.Failed+r.OK)
			}
			pct := int(share * 100)
			p := func(q float64) float64 { return load.MS(load.Percentile(r.Latencies, q)) }
			metric(fmt.Sprintf("%s_open%d_rps", t.name, pct), r.Achieved, "req/s")
			metric(fmt.Sprintf("%s_open%d_p50_ms", t.name, pct), p(0.50), "ms")
			metric(fmt.Sprintf("%s_open%d_p99_ms", t.name, pct), p(0.99), "ms")
			metric(fmt.Sprintf("%s_open%d_p999_ms", t.name, pct), p(0.999), "ms")
			metric(fmt.Sprintf("%s_open%d_max_ms", t.name, pct), p(1), "ms")
		}
	}
	return nil
}
