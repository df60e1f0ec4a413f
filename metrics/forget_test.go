package metrics_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/metrics"
)

// Series of a deleted integration are forgotten; the others stay.
func TestRetainForgetsDeletedIntegrations(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Build{})
	m.Dials.WithLabelValues("kept", "ok").Inc()
	m.Dials.WithLabelValues("gone", "ok").Inc()
	m.QueueWait("gone", time.Second)
	m.AttemptEnded("gone", "busy")
	forgotten := m.Retain(func(id string) bool { return id == "kept" })
	if len(forgotten) != 1 || forgotten[0] != "gone" {
		t.Fatalf("Retain forgot %v, want [gone]", forgotten)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == metrics.IntegrationLabel && l.GetValue() == "gone" {
					t.Errorf("%s still has a series of the deleted integration", f.GetName())
				}
			}
		}
	}
	if again := m.Retain(func(id string) bool { return id == "kept" }); len(again) != 0 {
		t.Errorf("a second Retain found %v", again)
	}
}
