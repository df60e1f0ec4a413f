package metrics

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterPool exports the pgx pool's Stat(): how saturated this process's
// Postgres connections are, and how long acquiring one takes.
func (m *Metrics) RegisterPool(pool *pgxpool.Pool) {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("callqueue_pgxpool_"+name, help, nil, nil)
	}
	var (
		acquired  = d("acquired_connections", "Connections in use.")
		idle      = d("idle_connections", "Idle connections.")
		total     = d("total_connections", "Open connections (acquired, idle and being opened).")
		maxConns  = d("max_connections", "The pool's size limit.")
		acquires  = d("acquires_total", "Connections acquired from the pool.")
		waitTotal = d("acquire_duration_seconds_total", "Time spent acquiring connections.")
		empty     = d("empty_acquires_total", "Acquires that had to wait because the pool had no idle connection.")
		canceled  = d("canceled_acquires_total", "Acquires cancelled by their context.")
	)
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{acquired, idle, total, maxConns, acquires, waitTotal, empty, canceled},
		collect: func(_ context.Context, ch chan<- prometheus.Metric) {
			s := pool.Stat()
			ch <- gauge(acquired, float64(s.AcquiredConns()))
			ch <- gauge(idle, float64(s.IdleConns()))
			ch <- gauge(total, float64(s.TotalConns()))
			ch <- gauge(maxConns, float64(s.MaxConns()))
			ch <- prometheus.MustNewConstMetric(acquires, prometheus.CounterValue, float64(s.AcquireCount()))
			ch <- prometheus.MustNewConstMetric(waitTotal, prometheus.CounterValue, s.AcquireDuration().Seconds())
			ch <- prometheus.MustNewConstMetric(empty, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
			ch <- prometheus.MustNewConstMetric(canceled, prometheus.CounterValue, float64(s.CanceledAcquireCount()))
		},
	})
}
