package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sampleTimeout bounds one reading: a scrape never hangs on a slow database.
const sampleTimeout = 2 * time.Second

// Cached wraps fn so that concurrent callers (several scrapers at once)
// share one reading, and a reading is reused for ttl after it finished.
// ttl 0 shares only readings in flight, so values are never stale.
func Cached[T any](ttl time.Duration, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	type reading struct {
		done chan struct{}
		at   time.Time
		v    T
		err  error
	}
	var (
		mu   sync.Mutex
		last *reading
	)
	return func(ctx context.Context) (T, error) {
		mu.Lock()
		r := last
		fresh := r != nil && (!isClosed(r.done) || (r.err == nil && time.Since(r.at) < ttl))
		if !fresh {
			r = &reading{done: make(chan struct{})}
			last = r
			mu.Unlock()
			r.v, r.err = fn(ctx)
			r.at = time.Now()
			close(r.done)
			return r.v, r.err
		}
		mu.Unlock()
		select {
		case <-r.done:
			return r.v, r.err
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// sampled is a collector that reads its numbers at scrape time: the values
// come from where the truth is (Postgres, JetStream), so every replica
// reports the same and none of the hot paths carries instrumentation.
type sampled struct {
	descs   []*prometheus.Desc
	collect func(ctx context.Context, ch chan<- prometheus.Metric)
}

func (s *sampled) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s *sampled) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), sampleTimeout)
	defer cancel()
	s.collect(ctx, ch)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
