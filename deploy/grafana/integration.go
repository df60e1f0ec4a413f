package grafana

import (
	"net/url"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Integration drills into one tenant ($integration): why its calls wait,
// how they end, and whether its peers (dialler, CRM, agent-init) keep up.
// Only the most active integrations have series of their own (the top
// mode); $integration "other" is the rest together, and one of them is
// read from the admin API (GET /api/integrations/{id}/stats, the console).
func Integration() *dashboard.DashboardBuilder { //nolint:staticcheck // v1 JSON, see generate.go
	sel := `integration_id="$integration"`
	return dashboard.NewDashboardBuilder("callqueue integration").Uid("callqueue-integration"). //nolint:staticcheck // v1 JSON, see generate.go
													Tags([]string{"callqueue"}).Refresh("30s").Time("now-6h", "now").
													WithVariable(datasourceVariable()).
		// Prometheus holds series for the most active integrations only;
		// the console shows any one of them in full, from Postgres.
		WithVariable(dashboard.NewTextBoxVariableBuilder("console").Label("callqueue URL").
			Description("Where the admin console is served, for the link to this integration's page.").
			DefaultValue(dashboard.StringOrMap{String: cog.ToPtr("http://localhost:8080")})).
		Link(dashboard.NewDashboardLinkBuilder("This integration in the console").
			Type(dashboard.DashboardLinkTypeLink).Icon("external link").TargetBlank(true).
			Tooltip("Calls, stats and campaigns of the integration, from Postgres: every tenant, labelled in Prometheus or not.").
			Url("${console}/admin/integrations/${integration}")).
		// Traces (contract §10) are optional: without a Tempo datasource the
		// variable is empty and only the trace link goes nowhere.
		WithVariable(dashboard.NewDatasourceVariableBuilder("tempo").Label("Tempo (optional)").Type("tempo").
			Description("The Tempo that receives callqueue's traces (OTEL_EXPORTER_OTLP_ENDPOINT), for the trace search link.")).
		Link(dashboard.NewDashboardLinkBuilder("Traces of this integration in the time range").
			Type(dashboard.DashboardLinkTypeLink).Icon("external link").TargetBlank(true).
			Tooltip("Tempo's search for callqueue spans of the integration, over the dashboard's time range (zoom in to a spike first).").
			Url(traceSearchURL)).
		WithVariable(dashboard.NewQueryVariableBuilder("integration").Label("Integration").Datasource(datasource).
			Query(dashboard.StringOrMap{String: cog.ToPtr(`label_values(callqueue_concurrency_limit, integration_id)`)}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged)).
		WithRow(row("Capacity")).
		WithPanel(panel("Live calls vs limit", "Calls holding a slot, calls queued and the concurrency limit.", "short", 12,
			query{`callqueue:active_calls:max{` + sel + `}`, "live"},
			query{`callqueue:queued_calls:max{` + sel + `}`, "queued"},
			query{`callqueue:concurrency_limit:max{` + sel + `}`, "limit"})).
		WithPanel(panel("Queue wait", "p50 and p90 time from queued to dialled.", "s", 12,
			query{`histogram_quantile(0.5, sum by (le) (rate(callqueue_integration_queue_wait_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p50"},
			query{`callqueue:integration_queue_wait_seconds:p90_5m{` + sel + `}`, "p90"})).
		WithPanel(panel("Calls by status", "Calls in each non-terminal status, and how old the oldest is.", "short", 12,
			query{`max by (status) (callqueue_calls{` + sel + `})`, "{{status}}"})).
		WithPanel(panel("Oldest call per status", "How long the oldest call has been in each status.", "s", 12,
			query{`max by (status) (callqueue_calls_oldest_age_seconds{` + sel + `})`, "{{status}}"})).
		WithRow(row("Drill-down")).
		WithPanel(exemplarPanel("Calls behind the latencies",
			"p90 queue wait and dial time (all integrations); each dot is one call's exemplar, with its call_id and trace_id: "+
				"open it for the call in the console or its trace in Tempo.", 24,
			query{`histogram_quantile(0.9, sum by (le) (rate(callqueue_queue_wait_seconds_bucket[$__rate_interval])))`, "queue wait p90"},
			query{`histogram_quantile(0.9, sum by (le) (rate(callqueue_dial_duration_seconds_bucket[$__rate_interval])))`, "dial p90"})).
		WithRow(row("Outcomes")).
		WithPanel(panel("Attempt outcomes", "Dial attempts that ended per second, by outcome.", "ops", 8,
			query{`sum by (outcome) (rate(callqueue_integration_attempts_total{` + sel + `}[$__rate_interval]))`, "{{outcome}}"})).
		WithPanel(panel("Retries by reason", "Retries scheduled per second, by the outcome that caused them.", "ops", 8,
			query{`sum by (reason) (rate(callqueue_integration_retries_scheduled_total{` + sel + `}[$__rate_interval]))`, "{{reason}}"})).
		WithPanel(panel("Deferred dispatches", "Dispatch passes that left queued calls waiting, by reason.", "ops", 8,
			query{`sum by (reason) (rate(callqueue_integration_dispatch_deferred_total{` + sel + `}[$__rate_interval]))`, "{{reason}}"})).
		WithRow(row("Peers")).
		WithPanel(panel("Dials", "Originate requests per second by result, and the failure ratio.", "ops", 8,
			query{`sum by (result) (rate(callqueue_integration_dials_total{` + sel + `}[$__rate_interval]))`, "{{result}}"},
			query{`callqueue:integration_dials:failure_ratio_rate10m{` + sel + `}`, "failure ratio"})).
		WithPanel(panel("CRM delivery", "CRM update attempts per second by result.", "ops", 8,
			query{`sum by (result) (rate(callqueue_integration_crm_deliveries_total{` + sel + `}[$__rate_interval]))`, "{{result}}"})).
		WithPanel(panel("Breakers", "Breaker state per peer: 0 closed, 1 half-open, 2 open.", "short", 8,
			query{`max by (peer) (callqueue_breaker_state{` + sel + `})`, "{{peer}}"})).
		WithPanel(panel("Agent-init", "agent-init answers per second by where the caller context came from, and why it had none.", "ops", 12,
			query{`sum by (source) (rate(callqueue_integration_agent_init_total{` + sel + `}[$__rate_interval]))`, "{{source}}"},
			query{`sum by (reason) (rate(callqueue_integration_agent_init_fallbacks_total{` + sel + `}[$__rate_interval]))`, "fallback: {{reason}}"})).
		WithPanel(panel("Agent-init latency", "p99 time to answer agent-init (all integrations), by source.", "s", 12,
			query{`histogram_quantile(0.99, sum by (source, le) (rate(callqueue_agent_init_duration_seconds_bucket[$__rate_interval])))`, "p99 {{source}}"}))
}

// traceSearchURL opens Grafana's Explore on $tempo with a TraceQL search for
// the integration's spans over the dashboard's time range. The JSON is
// escaped for the URL except the variables, which Grafana fills in.
var traceSearchURL = func() string {
	pane := `{"t":{"datasource":"${tempo}","queries":[{"refId":"A","datasource":{"type":"tempo","uid":"${tempo}"},` +
		`"queryType":"traceql","query":"{resource.service.name=\"callqueue\" && span.callqueue.integration_id=\"${integration}\"}"}],` +
		`"range":{"from":"${__from}","to":"${__to}"}}}`
	escaped := url.QueryEscape(pane)
	for _, v := range []string{"${tempo}", "${integration}", "${__from}", "${__to}"} {
		escaped = strings.ReplaceAll(escaped, url.QueryEscape(v), v)
	}
	return "/explore?schemaVersion=1&panes=" + escaped
}()
