// Package metrics defines callqueue's Prometheus series. Every name starts
// with callqueue_; integrations are labelled by id (stable across renames),
// never by phone number or call id, so every label is bounded.
//
// Two kinds of series: counters and histograms observed where something
// happens (one call into this package each), and sampled collectors that
// read Postgres, JetStream or the pool at scrape time (sampled.go), so state
// such as backlogs, live calls and breakers needs no code on the hot paths.
package metrics

import (
	"runtime"
	"strings"
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
	// ParkedDropped counts parked events pushed out by an integration's
	// newer ones beyond its quota.
	ParkedDropped   prometheus.Counter
	RetriesSched    *prometheus.CounterVec
	Terminal        *prometheus.CounterVec
	DialDuration    *prometheus.HistogramVec
	Dials           *prometheus.CounterVec
	DispatchLatency prometheus.Histogram
	CRMDeliveries   *prometheus.CounterVec
	// CRMAmbiguous counts lookups that found several different records
	// for one phone (and so took none).
	CRMAmbiguous *prometheus.CounterVec
	AgentInit    *prometheus.CounterVec
	// RateLimited counts requests refused with 429, by endpoint kind and
	// what the limit is kept per; never by address or integration, which
	// would give an attacker a label per request.
	RateLimited *prometheus.CounterVec
	// RetentionDeleted counts the rows the retention job deleted, by table.
	RetentionDeleted *prometheus.CounterVec
	// WebhookIgnored counts authenticated webhooks answered 2xx and set
	// aside, by why (WebhookIgnoredReasons): a platform that disables
	// failing webhooks must never see a 4xx for a body it may send.
	WebhookIgnored *prometheus.CounterVec

	queueWait         *prometheus.HistogramVec
	deferred          *prometheus.CounterVec
	attempts          *prometheus.CounterVec
	agentInitDuration *prometheus.HistogramVec
	agentInitFallback *prometheus.CounterVec
}

// WebhookIgnoredReasons are the reasons of callqueue_webhook_ignored_total.
var WebhookIgnoredReasons = []string{"unknown_type", "malformed"}

// Build identifies the running binary in callqueue_build_info.
type Build struct {
	Version, Commit, Role string
}

// New registers every series on a fresh registry, with the Go, process and
// build-info collectors.
func New(build Build) *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callqueue_build_info",
		Help: "Always 1; the labels say which build and role this process runs.",
		ConstLabels: prometheus.Labels{"version": build.Version, "commit": build.Commit, "role": build.Role,
			"goversion": runtime.Version()}}, func() float64 { return 1 }))
	fast := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	// Waiting in the queue takes seconds to hours (limits, calling windows).
	slow := []float64{.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600}
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
			Help: "Messages moved to the dead-letter stream, by the stream they came from and why (decode, no_metadata, permanent, max_deliveries)."},
			[]string{"stream", "reason"}),
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_consumer_processed_total",
			Help: "Messages processed by workers."}, []string{"kind"}),
		BatchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_consumer_batch_duration_seconds",
			Help: "Time to process one batch of messages.", Buckets: fast}, []string{"kind"}),
		EventsIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_events_ignored_total",
			Help: "Late, duplicate, out-of-order or unmatched call events that changed nothing."}, []string{"event"}),
		ParkedDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "callqueue_parked_events_dropped_total",
			Help: "Parked call events dropped, oldest first, beyond an integration's quota of events waiting for a dialler id."}),
		RetriesSched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_retries_scheduled_total",
			Help: "Call retries scheduled, by reason."}, []string{"integration_id", "reason"}),
		Terminal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_calls_terminal_total",
			Help: "Calls that reached a terminal status."}, []string{"integration_id", "status"}),
		DialDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_dial_duration_seconds",
			Help: "Originate request latency by result.", Buckets: fast}, []string{"provider", "result"}),
		Dials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_dials_total",
			Help: "Originate requests by result."}, []string{"integration_id", "result"}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callqueue_dispatch_duration_seconds",
			Help: "Time from a dispatch being requested to its calls being claimed.", Buckets: fast}),
	}
	m.CRMDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_crm_deliveries_total",
		Help: "CRM update attempts by result: delivered, retry, failed, no_record."}, []string{"integration_id", "result"})
	m.CRMAmbiguous = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_crm_ambiguous_lookups_total",
		Help: "CRM lookups that found several different records for one phone and so took none."}, []string{"integration_id"})
	m.AgentInit = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_agent_init_total",
		Help: "agent-init answers by where the caller context came from: cache, crm, none."}, []string{"integration_id", "source"})
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_queue_wait_seconds",
		Help: "Time a call waited queued before a dispatcher claimed it for dialling.", Buckets: slow}, []string{"integration_id"})
	m.deferred = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_dispatch_deferred_total",
		Help: "Dispatch passes that left an integration's queued calls waiting, by reason (breaker_open, not_configured)."},
		[]string{"integration_id", "reason"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_attempts_total",
		Help: "Dial attempts that ended, by outcome (answered, no_answer, busy, dial_error, ...)."}, []string{"integration_id", "outcome"})
	m.agentInitDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_agent_init_duration_seconds",
		Help: "Time to answer an agent-init webhook, by where the caller context came from.", Buckets: fast}, []string{"source"})
	m.agentInitFallback = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_agent_init_fallbacks_total",
		Help: "agent-init answers without caller context, by reason (deadline, lookup_failed, no_phone, no_call, crm_empty)."}, []string{"integration_id", "reason"})
	m.RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_http_rate_limited_total",
		Help: "Requests answered 429, by endpoint kind (webhook, api) and the limit reached (integration, ip, token)."},
		[]string{"kind", "limit"})
	// Known label values start at 0, so the first answer of each kind is a
	// visible increase (a series born at 1 shows no rate).
	for _, source := range []string{"cache", "crm", "none"} {
		m.agentInitDuration.WithLabelValues(source)
	}
	for _, kl := range [][2]string{{"webhook", "integration"}, {"webhook", "ip"}, {"api", "ip"}, {"api", "token"}} {
		m.RateLimited.WithLabelValues(kl[0], kl[1])
	}
	m.RetentionDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_retention_deleted_rows_total",
		Help: "Rows deleted by the daily retention job (data.retention_days), by table."}, []string{"table"})
	r.MustRegister(m.RateLimited, m.RetentionDeleted)
	m.WebhookIgnored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callqueue_webhook_ignored_total",
		Help: "Authenticated webhooks answered 2xx and ignored, by reason (unknown_type, malformed)."}, []string{"reason"})
	for _, reason := range WebhookIgnoredReasons {
		m.WebhookIgnored.WithLabelValues(reason)
	}
	r.MustRegister(m.WebhookIgnored)
	r.MustRegister(m.CRMDeliveries, m.CRMAmbiguous, m.AgentInit, m.queueWait, m.deferred, m.attempts, m.agentInitDuration, m.agentInitFallback)
	r.MustRegister(m.WebhookRequests, m.WebhookDuration, m.PublishDuration, m.Redeliveries, m.DeadLetters, m.Processed,
		m.BatchDuration, m.EventsIgnored, m.ParkedDropped, m.RetriesSched, m.Terminal, m.DialDuration, m.Dials, m.DispatchLatency)
	return m
}

// QueueWait records how long a call waited queued before it was claimed.
func (m *Metrics) QueueWait(integrationID string, waited time.Duration) {
	m.queueWait.WithLabelValues(integrationID).Observe(max(waited, 0).Seconds())
}

// Deferred records a dispatch pass that could not dial an integration's
// queued calls; an empty reason records nothing.
func (m *Metrics) Deferred(integrationID, reason string) {
	if reason != "" {
		m.deferred.WithLabelValues(integrationID, reason).Inc()
	}
}

// AttemptEnded records the outcome of a finished dial attempt.
func (m *Metrics) AttemptEnded(integrationID, outcome string) {
	m.attempts.WithLabelValues(integrationID, outcome).Inc()
}

// AgentInitAnswered records one agent-init answer: where its context came from, how
// long it took and, when it had none, why.
func (m *Metrics) AgentInitAnswered(integrationID, source, fallbackReason string, took time.Duration) {
	m.AgentInit.WithLabelValues(integrationID, source).Inc()
	m.agentInitDuration.WithLabelValues(source).Observe(took.Seconds())
	if fallbackReason != "" {
		m.agentInitFallback.WithLabelValues(integrationID, fallbackReason).Inc()
	}
}

var _ queue.Observer = (*Metrics)(nil)

// Redelivered implements queue.Observer.
func (m *Metrics) Redelivered(kind queue.Kind) { m.Redeliveries.WithLabelValues(string(kind)).Inc() }

// DeadLettered implements queue.Observer. The reason text carries error
// details; only its class becomes a label.
func (m *Metrics) DeadLettered(kind queue.Kind, reason string) {
	m.DeadLetters.WithLabelValues(kind.Stream(), deadLetterClass(reason)).Inc()
}

func deadLetterClass(reason string) string {
	switch {
	case strings.HasPrefix(reason, "decode"):
		return "decode"
	case strings.HasPrefix(reason, "no metadata"):
		return "no_metadata"
	case strings.HasPrefix(reason, queue.ErrPermanent.Error()):
		return "permanent"
	default:
		return "max_deliveries"
	}
}

// ProcessedBatch implements queue.Observer.
func (m *Metrics) ProcessedBatch(kind queue.Kind, n int, took time.Duration) {
	m.Processed.WithLabelValues(string(kind)).Add(float64(n))
	m.BatchDuration.WithLabelValues(string(kind)).Observe(took.Seconds())
}
