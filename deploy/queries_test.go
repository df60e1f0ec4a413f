package deploy_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	yaml "github.com/pb33f/go-yaml"

	"github.com/callqueue/callqueue/service/servicetest"
)

// mayBeEmpty lists the queries that healthy test traffic leaves without
// data, and why; every other query must return a number.
var mayBeEmpty = map[string]string{
	`callqueue:webhook_5xx:ratio_rate5m`: "no webhook fails with 5xx",
	`sum(rate(callqueue_webhook_requests_total{code=~"5.."}[5m])) / sum(rate(callqueue_webhook_requests_total[5m]))`: "no webhook fails with 5xx",
	`callqueue:webhook_503:ratio_rate5m`: "JetStream stays up",
	`sum(rate(callqueue_webhook_requests_total{code="503"}[5m])) / sum(rate(callqueue_webhook_requests_total[5m]))`:                                                                        "JetStream stays up",
	`sum by (stream, reason) (rate(callqueue_dead_letters_total[1m]))`:                                                                                                                     "nothing is dead-lettered",
	`sum by (reason) (rate(callqueue_dispatch_deferred_total[1m]))`:                                                                                                                        "the calling window is open and the breaker closed",
	`sum by (reason) (rate(callqueue_integration_dispatch_deferred_total{integration_id="$integration"}[1m]))`:                                                                             "the calling window is open and the breaker closed",
	`sum by (result) (rate(callqueue_integration_crm_deliveries_total{integration_id="$integration"}[1m]))`:                                                                                "the integration has no CRM",
	`callqueue:dials:failure_ratio_rate10m`:                                                                                                                                                "no dial fails",
	`callqueue:integration_dials:failure_ratio_rate10m{integration_id="$integration"}`:                                                                                                     "no dial fails",
	`sum(rate(callqueue_dials_total{result=~"error|rejected|unanswered"}[10m])) / sum(rate(callqueue_dials_total[10m]))`:                                                                   "no dial fails",
	`callqueue:agent_init:fallback_ratio_rate10m`:                                                                                                                                          "agent-init finds its caller",
	`sum(rate(callqueue_agent_init_total{source="none"}[10m])) / sum(rate(callqueue_agent_init_total[10m]))`:                                                                               "agent-init finds its caller",
	`sum by (reason) (rate(callqueue_integration_agent_init_fallbacks_total{integration_id="$integration"}[1m]))`:                                                                          "agent-init finds its caller",
	`sum by (integration_id) (rate(callqueue_integration_dials_total{result=~"error|rejected|unanswered"}[10m])) / sum by (integration_id) (rate(callqueue_integration_dials_total[10m]))`: "no dial fails",
}

// TestEveryDashboardAndRuleQueryWorks runs callqueue with traffic and a real
// Prometheus that scrapes it with the rules loaded, then evaluates every
// dashboard query and every rule expression through Prometheus' HTTP API:
// none may fail, and each returns data unless listed in mayBeEmpty.
func TestEveryDashboardAndRuleQueryWorks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	prometheus := tool(t, "prometheus")
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-ops")
	integ := admin.CreateIntegration("Ops", va, map[string]any{"concurrency_limit": 1, "max_attempts": 2, "retry_delays_secs": []int{3600}})

	prom := startPrometheus(t, prometheus, strings.TrimPrefix(in.URL, "http://"))
	servicetest.Eventually(t, 30*time.Second, "Prometheus scraped callqueue", func() bool {
		r, err := prom.query(`up{job="callqueue"} == 1`)
		return err == nil && len(r) == 1
	})

	// Traffic in two waves: series are born with the first wave and
	// scraped, so that rates and quantiles see the second wave's increase.
	// Two calls against a limit of 1 (one waits); the first ends short (a
	// retry), the second is answered and completed; agent-init; a bad webhook.
	var first, second struct {
		CallID uuid.UUID `json:"callId"`
	}
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380991111111"}, &first)
	o := va.Next(t, 10*time.Second)
	servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": "+380991111111"}, nil)
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_start", "callId": o.CallID}, nil)
	servicetest.Eventually(t, 30*time.Second, "the first wave scraped", func() bool {
		r, err := prom.query(`callqueue_queue_wait_seconds_count and on () callqueue_agent_init_duration_seconds_count and on () callqueue_publish_duration_seconds_count`)
		return err == nil && len(r) > 0
	})
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380992222222"}, &second)
	servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": "+380991111111"}, nil)
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_end", "callId": o.CallID, "duration": 1}, nil)
	servicetest.Webhook(t, in, integ, "call-events", "not an event", nil)
	o2 := va.Next(t, 10*time.Second) // the freed slot dials the second call
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_start", "callId": o2.CallID, "conversation_id": "conv-ops"}, nil)
	va.End(o2.CallID)
	servicetest.Webhook(t, in, integ, "call-events", map[string]any{"eventType": "call_end", "callId": o2.CallID, "duration": 45}, nil)
	servicetest.Webhook(t, in, integ, "agent-postcall", map[string]any{"type": "post_call_transcription", "event_timestamp": 1705845552,
		"data": map[string]any{"agent_id": "agent_abc123", "conversation_id": "conv-ops", "status": "done",
			"transcript":                          []map[string]any{{"role": "agent", "message": "Привіт", "time_in_call_secs": 0}},
			"metadata":                            map[string]any{"call_duration_secs": 45, "termination_reason": "user_ended_call"},
			"analysis":                            map[string]any{"call_successful": "success", "transcript_summary": "Підтвердив"},
			"conversation_initiation_client_data": map[string]any{"dynamic_variables": map[string]any{"phone_number": "+380992222222"}}}}, nil)
	waitStatus(t, admin, first.CallID, "retry_scheduled")
	waitStatus(t, admin, second.CallID, "completed")

	exprs := append(dashboardQueries(t, integ.ID.String()), ruleExpressions(t)...)
	var mustHaveData []string
	for _, e := range exprs {
		if _, err := prom.query(e.promql); err != nil {
			t.Errorf("%s: %s: %v", e.from, e.promql, err)
			continue
		}
		if _, ok := mayBeEmpty[e.raw]; !ok && !e.alert {
			mustHaveData = append(mustHaveData, e.promql)
		}
	}
	// Recording rules and rates need a few scrapes after the traffic.
	deadline := time.Now().Add(90 * time.Second)
	for len(mustHaveData) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, q := range mustHaveData {
			if r, err := prom.query(q); err != nil || !hasNumber(r) {
				still = append(still, q)
			}
		}
		mustHaveData = still
		if len(still) > 0 {
			time.Sleep(time.Second)
		}
	}
	sort.Strings(mustHaveData)
	for _, q := range mustHaveData {
		t.Errorf("no data after the traffic: %s", q)
	}
	t.Logf("%d dashboard and rule expressions evaluated", len(exprs))
}

type expression struct {
	from, raw, promql string
	alert             bool
}

// dashboardQueries returns every target of the committed dashboards, with
// Grafana's variables replaced as Grafana would.
func dashboardQueries(t *testing.T, integrationID string) []expression {
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards in grafana/dashboards")
	}
	var out []expression
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(doc, func(expr string) {
			grafanaRaw := expr
			q := strings.NewReplacer("$__rate_interval", "1m", "$integration", integrationID).Replace(expr)
			// mayBeEmpty is keyed by the query with [1m] windows.
			out = append(out, expression{from: f, raw: strings.ReplaceAll(grafanaRaw, "$__rate_interval", "1m"), promql: q})
		})
	}
	return out
}

func walk(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		if e, ok := x["expr"].(string); ok {
			fn(e)
		}
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

// ruleExpressions returns every recording and alerting rule's expression.
func ruleExpressions(t *testing.T) []expression {
	raw, err := os.ReadFile("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Record, Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	var out []expression
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			out = append(out, expression{from: "rules " + r.Record + r.Alert, raw: strings.Join(strings.Fields(r.Expr), " "),
				promql: r.Expr, alert: r.Alert != ""})
		}
	}
	return out
}

type prometheusServer struct{ url string }

func startPrometheus(t *testing.T, bin, target string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: callqueue
    static_configs: [{targets: [%q]}]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", log)
		}
	})
	p := &prometheusServer{url: "http://" + addr}
	servicetest.Eventually(t, 60*time.Second, "Prometheus ready", func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

type sample struct {
	Value [2]any `json:"value"`
}

// query evaluates an instant query; an error is Prometheus rejecting it.
func (p *prometheusServer) query(q string) ([]sample, error) {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s", body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", body.Data.ResultType)
	}
	var out []sample
	err = json.Unmarshal(body.Data.Result, &out)
	return out, err
}

// hasNumber reports a sample that is a number (a quantile over no
// observations is NaN: no data).
func hasNumber(r []sample) bool {
	for _, s := range r {
		v, _ := s.Value[1].(string)
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
			return true
		}
	}
	return false
}

func waitStatus(t *testing.T, admin *servicetest.Admin, id uuid.UUID, status string) {
	t.Helper()
	servicetest.Eventually(t, 20*time.Second, "call "+id.String()+" to be "+status, func() bool {
		var c struct {
			Status string `json:"status"`
		}
		admin.Do("GET", "/api/calls/"+id.String(), nil, &c)
		return c.Status == status
	})
}
