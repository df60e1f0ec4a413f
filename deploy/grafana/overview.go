package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Overview is the whole service at a glance: does intake flow, do calls
// flow, what is failing, and how close Postgres and JetStream are to full.
func Overview() *dashboard.DashboardBuilder { //nolint:staticcheck // v1 JSON, see generate.go
	return dashboard.NewDashboardBuilder("callqueue overview").Uid("callqueue-overview"). //nolint:staticcheck // v1 JSON, see generate.go
												Tags([]string{"callqueue"}).Refresh("30s").Time("now-3h", "now").
												WithVariable(datasourceVariable()).
												WithRow(row("Intake")).
												WithPanel(panel("Webhook requests", "Requests per second by handler and status code.", "reqps", 12,
			query{`callqueue:webhook_requests:rate5m`, "{{handler}} {{code}}"})).
		WithPanel(panel("Webhook errors", "Share of webhooks answered 5xx, and 503 (not stored: JetStream unavailable).", "percentunit", 12,
			query{`callqueue:webhook_5xx:ratio_rate5m`, "5xx"},
			query{`callqueue:webhook_503:ratio_rate5m`, "503"})).
		WithPanel(panel("Webhook latency", "p50 and p99 time to answer a webhook, durable publish included.", "s", 8,
			query{`callqueue:webhook_duration_seconds:p50_5m`, "p50 {{handler}}"},
			query{`callqueue:webhook_duration_seconds:p99_5m`, "p99 {{handler}}"})).
		WithPanel(panel("Publish latency", "p99 time for JetStream to acknowledge a publish.", "s", 8,
			query{`callqueue:publish_duration_seconds:p99_5m`, "p99 {{kind}}"})).
		WithPanel(panel("Messages processed", "Messages the workers processed per second, by kind (events applied, originates, post-call).", "ops", 8,
			query{`sum by (kind) (rate(callqueue_consumer_processed_total[$__rate_interval]))`, "{{kind}}"})).
		WithRow(row("Calls")).
		WithPanel(panel("Live calls", "Calls holding a slot, in all, and the ten integrations with the most.", "short", 12,
			query{`callqueue:active_calls:sum`, "all"},
			query{`topk(10, callqueue:active_calls:max{integration_id!="other"})`, "{{slug}}"})).
		WithPanel(panel("Queue depth", "Calls waiting for a slot or a calling window, in all, and the ten integrations with the most.", "short", 12,
			query{`callqueue:queued_calls:sum`, "all"},
			query{`topk(10, callqueue:queued_calls:max{integration_id!="other"})`, "{{slug}}"})).
		WithPanel(panel("Queue wait", "p90 time from queued to dialled, all integrations.", "s", 8,
			query{`callqueue:queue_wait_seconds:p90_5m`, "p90"})).
		WithPanel(panel("Dispatch latency", "p99 time from a dispatch being requested to its calls being claimed.", "s", 8,
			query{`histogram_quantile(0.99, sum by (le) (rate(callqueue_dispatch_duration_seconds_bucket[$__rate_interval])))`, "p99"})).
		WithPanel(panel("Deferred dispatches", "Dispatch passes that left queued calls waiting, by reason.", "ops", 8,
			query{`sum by (reason) (rate(callqueue_dispatch_deferred_total[$__rate_interval]))`, "{{reason}}"})).
		WithPanel(panel("Attempt outcomes", "Dial attempts that ended per second, by outcome.", "ops", 8,
			query{`sum by (outcome) (rate(callqueue_attempts_total[$__rate_interval]))`, "{{outcome}}"})).
		WithPanel(panel("Dials", "Originate requests per second by result, and the share that failed, all integrations.", "ops", 8,
			query{`sum by (result) (rate(callqueue_dials_total[$__rate_interval]))`, "{{result}}"},
			query{`callqueue:dials:failure_ratio_rate10m`, "failure ratio"})).
		WithPanel(panel("Terminal calls", "Calls that finished per second, by status.", "ops", 8,
			query{`sum by (status) (rate(callqueue_calls_terminal_total[$__rate_interval]))`, "{{status}}"})).
		WithRow(row("Failures")).
		WithPanel(panel("Dead letters", "Messages moved to the dead-letter stream per second, by stream and reason.", "ops", 8,
			query{`sum by (stream, reason) (rate(callqueue_dead_letters_total[$__rate_interval]))`, "{{stream}} {{reason}}"},
			query{`max(callqueue_jetstream_stream_messages{stream="CALLQUEUE_DLQ"})`, "kept in CALLQUEUE_DLQ"})).
		WithPanel(panel("CRM outbox backlog", "Undelivered CRM updates, and the age of the oldest pending one.", "short", 8,
			query{`max by (status) (callqueue_crm_outbox)`, "{{status}}"},
			query{`max(callqueue_crm_outbox_oldest_pending_age_seconds)`, "oldest pending (s)"})).
		WithPanel(panel("Open breakers", "Integrations whose breaker is open, per peer (every integration, labelled or not).", "short", 8,
			query{`max by (peer) (callqueue_breakers_open)`, "{{peer}}"})).
		WithPanel(panel("LLM analyses backlog", "Analyses waiting to amend finished calls (their CRM updates wait too), and the age of the oldest.", "short", 12,
			query{`max(callqueue_analyses_pending)`, "waiting"},
			query{`max(callqueue_analyses_oldest_pending_age_seconds)`, "oldest (s)"})).
		WithPanel(panel("Requests refused by rate limits", "Requests answered 429 per second, by endpoint kind and the limit reached.", "reqps", 12,
			query{`sum by (kind, limit) (rate(callqueue_http_rate_limited_total[$__rate_interval]))`, "{{kind}} per {{limit}}"})).
		WithRow(row("Saturation")).
		WithPanel(panel("Postgres pool in use", "Share of each process's pgx pool that is acquired.", "percentunit", 8,
			query{`max by (instance) (callqueue_pgxpool_acquired_connections / callqueue_pgxpool_max_connections)`, "{{instance}}"})).
		WithPanel(panel("Postgres acquire wait", "Seconds per second spent waiting for a connection.", "s", 8,
			query{`sum by (instance) (rate(callqueue_pgxpool_acquire_duration_seconds_total[$__rate_interval]))`, "{{instance}}"})).
		WithPanel(panel("Dependencies up", "1 when every process reaches Postgres and JetStream.", "short", 8,
			query{`min by (dependency) (callqueue_dependency_up)`, "{{dependency}}"})).
		WithPanel(panel("JetStream consumer backlog", "Messages not yet delivered, and delivered but not acknowledged.", "short", 12,
			query{`callqueue:jetstream_consumer_pending:max`, "{{consumer}} pending"},
			query{`max by (stream, consumer) (callqueue_jetstream_consumer_ack_pending_messages)`, "{{consumer}} ack pending"})).
		WithPanel(panel("JetStream streams", "Messages stored per stream.", "short", 12,
			query{`max by (stream) (callqueue_jetstream_stream_messages)`, "{{stream}}"}))
}
