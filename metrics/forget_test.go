package metrics_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/metrics"
)

// Series of a deleted integration are forgotten; the others stay.
func TestRetainForgetsDeletedIntegrations(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Build{}, metrics.Options{})
	m.Dialled(metrics.Call{IntegrationID: "kept", ID: "c1"}, "accepted")
	m.Dialled(metrics.Call{IntegrationID: "gone", ID: "c2"}, "accepted")
	m.QueueWait(metrics.Call{IntegrationID: "gone", ID: "c2"}, time.Second)
	m.AttemptEnded("gone", "busy")
	forgotten := m.Retain(func(id string) bool { return id == "kept" })
	if len(forgotten) != 1 || forgotten[0] != "gone" {
		t.Fatalf("Retain forgot %v, want [gone]", forgotten)
	}
	if ids := integrationIDs(t, m); ids["gone"] || !ids["kept"] {
		t.Errorf("integrations with series after Retain: %v, want kept only", ids)
	}
	if again := m.Retain(func(id string) bool { return id == "kept" }); len(again) != 0 {
		t.Errorf("a second Retain found %v", again)
	}
}

// integrationIDs returns every integration_id value m exports.
func integrationIDs(t *testing.T, m *metrics.Metrics) map[string]bool {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == metrics.IntegrationLabel {
					ids[l.GetValue()] = true
				}
			}
		}
	}
	return ids
}
