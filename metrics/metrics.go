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
	"unicode/utf8"

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
	DispatchLatency prometheus.Histogram
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

	// The global series: everything this process counted, no integration_id.
	dialDuration      *prometheus.HistogramVec
	dials             *prometheus.CounterVec
	queueWait         prometheus.Histogram
	deferred          *prometheus.CounterVec
	attempts          *prometheus.CounterVec
	retries           *prometheus.CounterVec
	terminal          *prometheus.CounterVec
	crmDeliveries     *prometheus.CounterVec
	crmAmbiguous      prometheus.Counter
	agentInit         *prometheus.CounterVec
	agentInitDuration *prometheus.HistogramVec
	agentInitFallback *prometheus.CounterVec

	// tenants chooses the integration_id of the per-integration series
	// below; perIntegration gathers only them, so that finding whose
	// series to delete never reads the sampled collectors' sources.
	tenants        *tenants
	perIntegration *prometheus.Registry
	byIntegration  perIntegrationSeries
}

// perIntegrationSeries repeat some global series with integration_id: the
// integration's own id, or Other (see tenants).
type perIntegrationSeries struct {
	dials, attempts, retries, terminal, deferred *prometheus.CounterVec
	crmDeliveries, crmAmbiguous                  *prometheus.CounterVec
	agentInit, agentInitFallback                 *prometheus.CounterVec
	queueWait                                    *prometheus.HistogramVec
}

// integrationVec is a vector whose series can be deleted by integration.
type integrationVec interface {
	prometheus.Collector
	DeletePartialMatch(labels prometheus.Labels) int
}

func (s perIntegrationSeries) all() []integrationVec {
	return []integrationVec{s.dials, s.attempts, s.retries, s.terminal, s.deferred, s.crmDeliveries, s.crmAmbiguous,
		s.agentInit, s.agentInitFallback, s.queueWait}
}

// WebhookIgnoredReasons are the reasons of callqueue_webhook_ignored_total.
var WebhookIgnoredReasons = []string{"unknown_type", "malformed"}

// Build identifies the running binary in callqueue_build_info.
type Build struct {
	Version, Commit, Role string
}

// Call names the call an observation is about, for exemplars: a spike in a
// histogram or counter leads to a call (and its trace).
type Call struct {
	IntegrationID, ID, TraceID string
}

// exemplar labels an observation with the call's id and, when it fits the
// exemplar's 128 runes, its trace id. Invalid exemplars panic, so a trace
// id of unknown shape is left out rather than trusted.
func (c Call) exemplar() prometheus.Labels {
	if c.ID == "" {
		return nil
	}
	l := prometheus.Labels{"call_id": c.ID}
	if c.TraceID != "" && utf8.ValidString(c.TraceID) &&
		utf8.RuneCountInString(c.TraceID)+len("trace_id")+len("call_id")+utf8.RuneCountInString(c.ID) <= prometheus.ExemplarMaxRunes {
		l["trace_id"] = c.TraceID
	}
	return l
}

// New registers every series on a fresh registry, with the Go, process and
// build-info collectors; opt chooses which integrations have series of
// their own.
func New(build Build, opt Options) *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callqueue_build_info",
		Help: "Always 1; the labels say which build and role this process runs.",
		ConstLabels: prometheus.Labels{"version": build.Version, "commit": build.Commit, "role": build.Role,
			"goversion": runtime.Version()}}, func() float64 { return 1 }))
	fast := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	// Waiting in the queue takes seconds to hours (limits, calling windows).
	slow := []float64{.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		Registry:        r,
		WebhookRequests: counter("callqueue_webhook_requests_total", "Webhook requests by handler and HTTP status code.", "handler", "code"),
		WebhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_webhook_duration_seconds",
			Help: "Webhook handling time, including the durable publish.", Buckets: fast}, []string{"handler"}),
		PublishDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_publish_duration_seconds",
			Help: "Time for JetStream to acknowledge a publish.", Buckets: fast}, []string{"kind"}),
		Redeliveries: counter("callqueue_consumer_redeliveries_total", "Messages delivered more than once.", "kind"),
		DeadLetters: counter("callqueue_dead_letters_total",
			"Messages moved to the dead-letter stream, by the stream they came from and why (decode, no_metadata, permanent, max_deliveries).",
			"stream", "reason"),
		Processed: counter("callqueue_consumer_processed_total", "Messages processed by workers.", "kind"),
		BatchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_consumer_batch_duration_seconds",
			Help: "Time to process one batch of messages.", Buckets: fast}, []string{"kind"}),
		EventsIgnored: counter("callqueue_events_ignored_total", "Late, duplicate, out-of-order or unmatched call events that changed nothing.", "event"),
		ParkedDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "callqueue_parked_events_dropped_total",
			Help: "Parked call events dropped, oldest first, beyond an integration's quota of events waiting for a dialler id."}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callqueue_dispatch_duration_seconds",
			Help: "Time from a dispatch being requested to its calls being claimed.", Buckets: fast}),
		RateLimited: counter("callqueue_http_rate_limited_total",
			"Requests answered 429, by endpoint kind (webhook, api) and the limit reached (integration, ip, token).", "kind", "limit"),
		RetentionDeleted: counter("callqueue_retention_deleted_rows_total",
			"Rows deleted by the daily retention job (data.retention_days), by table.", "table"),
		WebhookIgnored: counter("callqueue_webhook_ignored_total",
			"Authenticated webhooks answered 2xx and ignored, by reason (unknown_type, malformed).", "reason"),

		dialDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_dial_duration_seconds",
			Help: "Originate request latency by result.", Buckets: fast}, []string{"provider", "result"}),
		dials: counter("callqueue_dials_total", "Originate requests by result.", "result"),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callqueue_queue_wait_seconds",
			Help: "Time a call waited queued before a dispatcher claimed it for dialling.", Buckets: slow}),
		deferred: counter("callqueue_dispatch_deferred_total",
			"Dispatch passes that left an integration's queued calls waiting, by reason (breaker_open, not_configured, ...), and queued calls held by a pacing rule (dial_rate, caller_id, contact_cap, excluded_date).", "reason"),
		attempts: counter("callqueue_attempts_total", "Dial attempts that ended, by outcome (answered, no_answer, busy, dial_error, ...).", "outcome"),
		retries:  counter("callqueue_retries_scheduled_total", "Call retries scheduled, by reason.", "reason"),
		terminal: counter("callqueue_calls_terminal_total", "Calls that reached a terminal status.", "status"),
		crmDeliveries: counter("callqueue_crm_deliveries_total",
			"CRM update attempts by result: delivered, retry, failed, no_record.", "result"),
		crmAmbiguous: prometheus.NewCounter(prometheus.CounterOpts{Name: "callqueue_crm_ambiguous_lookups_total",
			Help: "CRM lookups that found several different records for one phone and so took none."}),
		agentInit: counter("callqueue_agent_init_total", "agent-init answers by where the caller context came from: cache, crm, none.", "source"),
		agentInitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_agent_init_duration_seconds",
			Help: "Time to answer an agent-init webhook, by where the caller context came from.", Buckets: fast}, []string{"source"}),
		agentInitFallback: counter("callqueue_agent_init_fallbacks_total",
			"agent-init answers without caller context, by reason (deadline, lookup_failed, no_phone, no_call, crm_empty).", "reason"),

		tenants:        newTenants(opt),
		perIntegration: prometheus.NewRegistry(),
	}
	const perHelp = " Per integration: its own id for the most active ones (CALLQUEUE_METRICS_PER_INTEGRATION), the rest summed as other."
	m.byIntegration = perIntegrationSeries{
		dials:    counter("callqueue_integration_dials_total", "Originate requests by result."+perHelp, IntegrationLabel, "result"),
		attempts: counter("callqueue_integration_attempts_total", "Dial attempts that ended, by outcome."+perHelp, IntegrationLabel, "outcome"),
		retries:  counter("callqueue_integration_retries_scheduled_total", "Call retries scheduled, by reason."+perHelp, IntegrationLabel, "reason"),
		terminal: counter("callqueue_integration_calls_terminal_total", "Calls that reached a terminal status."+perHelp, IntegrationLabel, "status"),
		deferred: counter("callqueue_integration_dispatch_deferred_total",
			"Dispatch passes that left queued calls waiting, by reason."+perHelp, IntegrationLabel, "reason"),
		crmDeliveries: counter("callqueue_integration_crm_deliveries_total", "CRM update attempts by result."+perHelp, IntegrationLabel, "result"),
		crmAmbiguous: counter("callqueue_integration_crm_ambiguous_lookups_total",
			"CRM lookups that found several records for one phone."+perHelp, IntegrationLabel),
		agentInit: counter("callqueue_integration_agent_init_total",
			"agent-init answers by where the caller context came from."+perHelp, IntegrationLabel, "source"),
		agentInitFallback: counter("callqueue_integration_agent_init_fallbacks_total",
			"agent-init answers without caller context, by reason."+perHelp, IntegrationLabel, "reason"),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callqueue_integration_queue_wait_seconds",
			Help: "Time a call waited queued before it was claimed for dialling." + perHelp, Buckets: slow}, []string{IntegrationLabel}),
	}
	// Known label values start at 0, so the first answer of each kind is a
	// visible increase (a series born at 1 shows no rate).
	for _, source := range []string{"cache", "crm", "none"} {
		m.agentInitDuration.WithLabelValues(source)
		m.agentInit.WithLabelValues(source)
	}
	for _, kl := range [][2]string{{"webhook", "integration"}, {"webhook", "ip"}, {"api", "ip"}, {"api", "token"}} {
		m.RateLimited.WithLabelValues(kl[0], kl[1])
	}
	for _, reason := range WebhookIgnoredReasons {
		m.WebhookIgnored.WithLabelValues(reason)
	}
	r.MustRegister(m.WebhookRequests, m.WebhookDuration, m.PublishDuration, m.Redeliveries, m.DeadLetters, m.Processed,
		m.BatchDuration, m.EventsIgnored, m.ParkedDropped, m.DispatchLatency, m.RateLimited, m.RetentionDeleted, m.WebhookIgnored,
		m.dialDuration, m.dials, m.queueWait, m.deferred, m.attempts, m.retries, m.terminal, m.crmDeliveries, m.crmAmbiguous,
		m.agentInit, m.agentInitDuration, m.agentInitFallback)
	for _, v := range m.byIntegration.all() {
		r.MustRegister(v)
		m.perIntegration.MustRegister(v)
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callqueue_metrics_labelled_integrations",
		Help: "Integrations with series of their own in this process (the rest are summed as integration_id=\"other\")."},
		func() float64 { return float64(m.tenants.count()) }))
	return m
}

// Dialled records a dial's result (accepted, rejected, error, unanswered,
// predial_failed, ineligible, or why a claimed dial was not sent).
func (m *Metrics) Dialled(c Call, result string) {
	addWithExemplar(m.dials.WithLabelValues(result), c.exemplar())
	failed := result == "error" || result == "rejected" || result == "unanswered" || result == "predial_failed"
	m.byIntegration.dials.WithLabelValues(m.tenants.observe(c.IntegrationID, failed), result).Inc()
}

// DialTook records how long an originate request to provider took.
func (m *Metrics) DialTook(c Call, provider, result string, took time.Duration) {
	observeWithExemplar(m.dialDuration.WithLabelValues(provider, result), took.Seconds(), c.exemplar())
}

// QueueWait records how long a call waited queued before it was claimed.
func (m *Metrics) QueueWait(c Call, waited time.Duration) {
	s := max(waited, 0).Seconds()
	observeWithExemplar(m.queueWait, s, c.exemplar())
	m.byIntegration.queueWait.WithLabelValues(m.tenants.observe(c.IntegrationID, false)).Observe(s)
}

// Deferred records a dispatch pass that could not dial an integration's
// queued calls; an empty reason records nothing.
func (m *Metrics) Deferred(integrationID, reason string) {
	if reason == "" {
		return
	}
	m.deferred.WithLabelValues(reason).Inc()
	m.byIntegration.deferred.WithLabelValues(m.tenants.observe(integrationID, reason == "breaker_open"), reason).Inc()
}

// DeferredN records n queued calls held back by a pacing rule (reason is
// the rule's hold: dial_rate, caller_id, contact_cap, excluded_date).
func (m *Metrics) DeferredN(integrationID, reason string, n int) {
	if n <= 0 {
		return
	}
	m.deferred.WithLabelValues(reason).Add(float64(n))
	m.byIntegration.deferred.WithLabelValues(m.tenants.observe(integrationID, false), reason).Add(float64(n))
}

// AttemptEnded records the outcome of a finished dial attempt.
func (m *Metrics) AttemptEnded(integrationID, outcome string) {
	m.attempts.WithLabelValues(outcome).Inc()
	m.byIntegration.attempts.WithLabelValues(m.tenants.observe(integrationID, false), outcome).Inc()
}

// RetryScheduled records a retry scheduled because of reason (the outcome
// of the attempt before).
func (m *Metrics) RetryScheduled(integrationID, reason string) {
	m.retries.WithLabelValues(reason).Inc()
	m.byIntegration.retries.WithLabelValues(m.tenants.observe(integrationID, false), reason).Inc()
}

// Terminated records a call reaching a terminal status.
func (m *Metrics) Terminated(integrationID, status string) {
	m.terminal.WithLabelValues(status).Inc()
	m.byIntegration.terminal.WithLabelValues(m.tenants.observe(integrationID, status == "failed"), status).Inc()
}

// CRMDelivered records a CRM update attempt's result.
func (m *Metrics) CRMDelivered(integrationID, result string) {
	m.crmDeliveries.WithLabelValues(result).Inc()
	failed := result == "failed" || result == "retry"
	m.byIntegration.crmDeliveries.WithLabelValues(m.tenants.observe(integrationID, failed), result).Inc()
}

// CRMAmbiguousLookup records a lookup that found several records for one phone.
func (m *Metrics) CRMAmbiguousLookup(integrationID string) {
	m.crmAmbiguous.Inc()
	m.byIntegration.crmAmbiguous.WithLabelValues(m.tenants.observe(integrationID, false)).Inc()
}

// AgentInitAnswered records one agent-init answer: where its context came from, how
// long it took and, when it had none, why.
func (m *Metrics) AgentInitAnswered(integrationID, source, fallbackReason string, took time.Duration) {
	m.agentInit.WithLabelValues(source).Inc()
	m.agentInitDuration.WithLabelValues(source).Observe(took.Seconds())
	label := m.tenants.observe(integrationID, fallbackReason != "")
	m.byIntegration.agentInit.WithLabelValues(label, source).Inc()
	if fallbackReason != "" {
		m.agentInitFallback.WithLabelValues(fallbackReason).Inc()
		m.byIntegration.agentInitFallback.WithLabelValues(label, fallbackReason).Inc()
	}
}

func addWithExemplar(c prometheus.Counter, e prometheus.Labels) {
	if a, ok := c.(prometheus.ExemplarAdder); ok && e != nil {
		a.AddWithExemplar(1, e)
		return
	}
	c.Inc()
}

func observeWithExemplar(o prometheus.Observer, v float64, e prometheus.Labels) {
	if x, ok := o.(prometheus.ExemplarObserver); ok && e != nil {
		x.ObserveWithExemplar(v, e)
		return
	}
	o.Observe(v)
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
