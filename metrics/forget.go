package metrics

import (
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
)

// IntegrationLabel is the label per-integration series carry.
const IntegrationLabel = "integration_id"

type partialDeleter interface {
	DeletePartialMatch(labels prometheus.Labels) int
}

// Retain deletes every series of an integration keep refuses (a deleted
// one): per-integration series would otherwise stay, and grow, for every
// integration that ever existed.
func (m *Metrics) Retain(keep func(integrationID string) bool) (forgotten []string) {
	families, err := m.Registry.Gather()
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == IntegrationLabel && !seen[l.GetValue()] {
					seen[l.GetValue()] = true
					if !keep(l.GetValue()) {
						forgotten = append(forgotten, l.GetValue())
					}
				}
			}
		}
	}
	for _, id := range forgotten {
		m.forget(id)
	}
	return forgotten
}

// forget deletes id's series from every labelled vector of m.
func (m *Metrics) forget(id string) {
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanInterface() || f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		if d, ok := f.Interface().(partialDeleter); ok {
			d.DeletePartialMatch(prometheus.Labels{IntegrationLabel: id})
		}
	}
	// The unexported series are fed through methods; reflection cannot reach them.
	for _, d := range []partialDeleter{m.queueWait, m.deferred, m.attempts, m.agentInitDuration, m.agentInitFallback} {
		d.DeletePartialMatch(prometheus.Labels{IntegrationLabel: id})
	}
}
