package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/callqueue/callqueue/metrics"
)

// clock is a settable time for the activity window.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// busy records one call's life for an integration: dialled, waited,
// answered, completed, its CRM updated and its agent-init answered.
func busy(m *metrics.Metrics, integrationID string, n int) {
	for i := range n {
		c := metrics.Call{IntegrationID: integrationID, ID: fmt.Sprintf("%s-%d", integrationID, i)}
		m.QueueWait(c, 3*time.Second)
		m.Dialled(c, "accepted")
		m.DialTook(c, "va", "accepted", 20*time.Millisecond)
		m.AttemptEnded(integrationID, "answered")
		m.Terminated(integrationID, "completed")
		m.CRMDelivered(integrationID, "delivered")
		m.AgentInitAnswered(integrationID, "crm", "", time.Millisecond)
	}
}

// scrape returns the text exposition's series count and size.
func scrape(t *testing.T, m *metrics.Metrics) (series, size int) {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	for line := range strings.Lines(b.String()) {
		if !strings.HasPrefix(line, "#") {
			series++
		}
	}
	return series, b.Len()
}

// At 10,000 integrations, each with a call and its live state and
// breakers, the top mode keeps a process's series and scrape within the
// issue's bounds. (Labelling every integration, as before, made 26 series
// per integration: 264,016 at 10,000.)
func TestTenThousandIntegrationsKeepSeriesBounded(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Build{}, metrics.Options{PerIntegration: metrics.PerIntegrationTop})
	const n = 10_000
	live := make([]metrics.Live, n)
	ages := make([]metrics.StatusAge, n)
	for i := range n {
		id := fmt.Sprintf("integration-%05d", i)
		busy(m, id, 1)
		live[i] = metrics.Live{IntegrationID: id, Slug: fmt.Sprintf("slug-%05d", i), Active: 1, Queued: 2, Limit: 3}
		ages[i] = metrics.StatusAge{IntegrationID: id, Status: "waiting_postcall", Calls: 1, OldestSeconds: float64(i)}
	}
	m.RegisterIntegrations(func(context.Context) ([]metrics.Live, error) { return live, nil },
		map[string]metrics.BreakerStates{"va": func(string) float64 { return 0 }, "crm": func(string) float64 { return 0 }})
	m.RegisterCallAges(func(context.Context) ([]metrics.StatusAge, error) { return ages, nil })
	m.Rank()

	series, size := scrape(t, m)
	t.Logf("%d integrations: %d series, %d bytes per scrape", n, series, size)
	if series > 20_000 || size > 2<<20 {
		t.Errorf("%d series, %d bytes at %d integrations; want at most 20,000 series and 2 MiB", series, size, n)
	}
	if ids := integrationIDs(t, m); len(ids) != metrics.TopIntegrationsDefault+1 || !ids[metrics.Other] {
		t.Errorf("%d integration_id values, want the top %d and other", len(ids), metrics.TopIntegrationsDefault)
	}
	// Every integration is still counted: in the global series, and in
	// its own series or other's.
	if v := value(t, m, "callqueue_dials_total", nil); v != n {
		t.Errorf("callqueue_dials_total = %v, want %d", v, n)
	}
	if v := value(t, m, "callqueue_integration_dials_total", nil); v != n {
		t.Errorf("callqueue_integration_dials_total sums to %v, want %d", v, n)
	}
	if v := value(t, m, "callqueue_active_calls", map[string]string{"integration_id": metrics.Other}); v != n-metrics.TopIntegrationsDefault {
		t.Errorf("other's active calls = %v, want %d", v, n-metrics.TopIntegrationsDefault)
	}
	if v := value(t, m, "callqueue_calls_oldest_age_seconds", map[string]string{"integration_id": metrics.Other}); v != n-1 {
		t.Errorf("other's oldest waiting_postcall = %v, want the oldest of all, %d", v, n-1)
	}
}

// value sums the samples of name whose labels include want (a histogram's
// count).
func value(t *testing.T, m *metrics.Metrics, name string, want map[string]string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			sum += s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// An integration that goes quiet gives its place, and its series, to a
// busier one at the next ranking; its events are then counted as other's.
func TestRankMovesQuietIntegrationsToOther(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	m := metrics.New(metrics.Build{}, metrics.Options{TopIntegrations: 2, Now: c.Now})
	busy(m, "early", 5)
	busy(m, "steady", 3)
	busy(m, "late", 1) // no free slot: counted as other's
	if ids := integrationIDs(t, m); !ids["early"] || !ids["steady"] || ids["late"] || !ids[metrics.Other] {
		t.Fatalf("integrations with series: %v, want early, steady and other", ids)
	}
	c.Add(50 * time.Minute)
	busy(m, "late", 2) // still less than early's
	busy(m, "steady", 1)
	if dropped := m.Rank(); len(dropped) != 0 {
		t.Fatalf("Rank dropped %v while early's events are within the hour", dropped)
	}
	c.Add(20 * time.Minute) // early's events are over an hour old
	if dropped := m.Rank(); len(dropped) != 1 || dropped[0] != "early" {
		t.Fatalf("Rank dropped %v, want [early]", dropped)
	}
	busy(m, "late", 1)
	busy(m, "early", 1)
	ids := integrationIDs(t, m)
	if ids["early"] || !ids["late"] || !ids["steady"] {
		t.Fatalf("integrations with series after the ranking: %v, want late, steady and other", ids)
	}
	if v := value(t, m, "callqueue_integration_dials_total", map[string]string{"integration_id": "late"}); v != 1 {
		t.Errorf("late's dials since it took its place = %v, want 1", v)
	}
	if v := value(t, m, "callqueue_dials_total", nil); v != 14 {
		t.Errorf("callqueue_dials_total = %v, want all 14", v)
	}
}

// Failures weigh more than successes: a quieter integration that keeps
// failing outranks a busier healthy one.
func TestRankPrefersFailingIntegrations(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Build{}, metrics.Options{TopIntegrations: 1})
	busy(m, "healthy", 5) // 30 events
	for range 4 {
		m.Dialled(metrics.Call{IntegrationID: "failing", ID: "x"}, "error")
	}
	if dropped := m.Rank(); len(dropped) != 1 || dropped[0] != "healthy" {
		t.Fatalf("Rank dropped %v, want [healthy]", dropped)
	}
}

// none sums every integration as other; all labels each (series grow with
// the integrations).
func TestPerIntegrationModes(t *testing.T) {
	t.Parallel()
	for mode, want := range map[metrics.PerIntegration]int{metrics.PerIntegrationNone: 1, metrics.PerIntegrationAll: 300} {
		m := metrics.New(metrics.Build{}, metrics.Options{PerIntegration: mode})
		for i := range 300 {
			busy(m, fmt.Sprintf("integration-%d", i), 1)
		}
		m.Rank()
		if ids := integrationIDs(t, m); len(ids) != want {
			t.Errorf("%s: %d integration_id values, want %d", mode, len(ids), want)
		}
	}
	for _, bad := range []metrics.Options{{PerIntegration: "some"}, {TopIntegrations: -1}, {TopIntegrations: metrics.TopIntegrationsMax + 1}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// BenchmarkScrapeTenThousandIntegrations: one scrape's work in this
// package at 10,000 integrations in the top mode (the sources' own cost,
// Postgres' queries, is not in it).
func BenchmarkScrapeTenThousandIntegrations(b *testing.B) {
	m := metrics.New(metrics.Build{}, metrics.Options{})
	const n = 10_000
	live := make([]metrics.Live, n)
	for i := range n {
		id := fmt.Sprintf("integration-%05d", i)
		busy(m, id, 1)
		live[i] = metrics.Live{IntegrationID: id, Slug: fmt.Sprintf("slug-%05d", i), Active: 1, Queued: 2, Limit: 3}
	}
	m.RegisterIntegrations(func(context.Context) ([]metrics.Live, error) { return live, nil },
		map[string]metrics.BreakerStates{"va": func(string) float64 { return 0 }, "crm": func(string) float64 { return 0 }})
	m.Rank()
	b.ReportAllocs()
	for b.Loop() {
		families, err := m.Registry.Gather()
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(&out, f); err != nil {
				b.Fatal(err)
			}
		}
	}
}
