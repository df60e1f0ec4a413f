// Package metrics defines callqueue's Prometheus series. Every name starts
// with callqueue_; integrations are labelled by id (stable across renames).
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/callqueue/callqueue/queue"
)

// Metrics holds the series one process exports.
type Metrics struct {
	Registry *prometheus.Registry

	WebhookRequests *prometheus.CounterVec
	WebhookDuration *prometheus.HistogramVec
	PublishDuration *prometheus.HistogramVec
	Redeliveries    *prometheus.CounterVec
	DeadLetters     *prometheus.CounterVec
	Processed       *prometheus.CounterVec
	BatchDuration   *prometheus.HistogramVec
	EventsIgnored   *prometheus.CounterVec
	RetriesSched    *prometheus.CounterVec
	Terminal        *prometheus.CounterVec
	BreakerState    *prometheus.GaugeVec
	DialDuration    *prometheus.HistogramVec
	Dials           *prometheus.CounterVec
	DispatchLatency prometheus.Histogram
	CRMDeliveries   *prometheus.CounterVec
	AgentInit       *prometheus.CounterVec
}

// New registers every series on a fresh registry, with Go and process
// collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fast := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		Registry: r,
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_webhook_requests_total",
			Help: "Webhook requests by handler and HTTP status code."}, []string{"handler", "code"}),
		WebhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_webhook_duration_seconds",
			Help: "Webhook handling time, including the durable publish.", Buckets: fast}, []string{"handler"}),
		PublishDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_publish_duration_seconds",
			Help: "Time for JetStream to acknowledge a publish.", Buckets: fast}, []string{"kind"}),
		Redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_consumer_redeliveries_total",
			Help: "Messages delivered more than once."}, []string{"kind"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_dead_letters_total",
			Help: "Messages moved to the dead-letter stream."}, []string{"kind"}),
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_consumer_processed_total",
			Help: "Messages processed by workers."}, []string{"kind"}),
		BatchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_consumer_batch_duration_seconds",
			Help: "Time to process one batch of messages.", Buckets: fast}, []string{"kind"}),
		EventsIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_events_ignored_total",
			Help: "Late, duplicate, out-of-order or unmatched call events that changed nothing."}, []string{"event"}),
		RetriesSched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_retries_scheduled_total",
			Help: "Call retries scheduled, by reason."}, []string{"integration_id", "reason"}),
		Terminal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_calls_terminal_total",
			Help: "Calls that reached a terminal status."}, []string{"integration_id", "status"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "callqueue_breaker_state",
			Help: "Circuit breaker state per integration and peer: 0 closed, 1 half-open, 2 open."}, []string{"integration_id", "peer"}),
		DialDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_dial_duration_seconds",
			Help: "Originate request latency by result.", Buckets: fast}, []string{"provider", "result"}),
		Dials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_dials_total",
			Help: "Originate requests by result."}, []string{"integration_id", "result"}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callqueue_dispatch_duration_seconds",
			Help: "Time from a dispatch being requested to its calls being claimed.", Buckets: fast}),
	}
	m.CRMDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_crm_deliveries_total",
		Help: "CRM update attempts by result: delivered, retry, failed."}, []string{"integration_id", "result"})
	m.AgentInit = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_agent_init_total",
		Help: "agent-init answers by where the caller context came from: cache, crm, none."}, []string{"source"})
	r.MustRegister(m.CRMDeliveries, m.AgentInit)
	r.MustRegister(m.WebhookRequests, m.WebhookDuration, m.PublishDuration, m.Redeliveries, m.DeadLetters, m.Processed,
		m.BatchDuration, m.EventsIgnored, m.RetriesSched, m.Terminal, m.BreakerState, m.DialDuration, m.Dials, m.DispatchLatency)
	return m
}

var _ queue.Observer = (*Metrics)(nil)

// Redelivered implements queue.Observer.
func (m *Metrics) Redelivered(kind queue.Kind) { m.Redeliveries.WithLabelValues(string(kind)).Inc() }

// DeadLettered implements queue.Observer.
func (m *Metrics) DeadLettered(kind queue.Kind, _ string) {
	m.DeadLetters.WithLabelValues(string(kind)).Inc()
}

// ProcessedBatch implements queue.Observer.
func (m *Metrics) ProcessedBatch(kind queue.Kind, n int, took time.Duration) {
	m.Processed.WithLabelValues(string(kind)).Add(float64(n))
	m.BatchDuration.WithLabelValues(string(kind)).Observe(took.Seconds())
}

// GaugeSource reports live per-integration counts at scrape time.
type GaugeSource func(ctx context.Context) ([]Gauge, error)

// Gauge is one integration's live counts.
type Gauge struct {
	IntegrationID, Slug   string
	Active, Queued, Limit int
}

// gaugeCollector queries the database on scrape, so the numbers are the
// same whichever replica is scraped.
type gaugeCollector struct {
	src                   GaugeSource
	active, queued, limit *prometheus.Desc
}

// RegisterOutbox exports the CRM outbox's pending and failed updates.
func (m *Metrics) RegisterOutbox(counts func(ctx context.Context) (map[string]int, error)) {
	desc := prometheus.NewDesc("callqueue_crm_outbox", "CRM updates not delivered, by status (pending, failed).", []string{"status"}, nil)
	m.Registry.MustRegister(collectorFunc{desc: desc, collect: func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := counts(ctx)
		if err != nil {
			return
		}
		for status, n := range c {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), status)
		}
	}})
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// RegisterGauges exports active calls, queued calls and the limit per
// integration from src.
func (m *Metrics) RegisterGauges(src GaugeSource) {
	labels := []string{"integration_id", "slug"}
	m.Registry.MustRegister(&gaugeCollector{src: src,
		active: prometheus.NewDesc("callqueue_active_calls", "Calls holding a concurrency slot.", labels, nil),
		queued: prometheus.NewDesc("callqueue_queued_calls", "Calls waiting for a slot or calling window.", labels, nil),
		limit:  prometheus.NewDesc("callqueue_concurrency_limit", "Configured concurrency limit.", labels, nil),
	})
}

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.active
	ch <- g.queued
	ch <- g.limit
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gauges, err := g.src(ctx)
	if err != nil {
		return
	}
	for _, x := range gauges {
		ch <- prometheus.MustNewConstMetric(g.active, prometheus.GaugeValue, float64(x.Active), x.IntegrationID, x.Slug)
		ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(x.Queued), x.IntegrationID, x.Slug)
		ch <- prometheus.MustNewConstMetric(g.limit, prometheus.GaugeValue, float64(x.Limit), x.IntegrationID, x.Slug)
	}
}
