package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// IntegrationLabel is the label per-integration series carry.
const IntegrationLabel = "integration_id"

// Rank chooses again which integrations have series of their own (the top
// mode's N most active of the last hour) and deletes the series of those
// that lost their place: an integration that went quiet gives its series
// up instead of keeping them forever. The service calls it every RankEvery.
func (m *Metrics) Rank() (dropped []string) {
	m.tenants.rank()
	return m.sweep(func(id string) bool { return id == Other || m.tenants.isLabelled(id) })
}

// Retain deletes every series of an integration keep refuses (a deleted
// one): per-integration series would otherwise stay, and grow, for every
// integration that ever existed.
func (m *Metrics) Retain(keep func(integrationID string) bool) (forgotten []string) {
	m.tenants.retain(keep)
	return m.sweep(func(id string) bool { return id == Other || keep(id) })
}

// sweep deletes the per-integration series whose integration keep refuses,
// and returns those integrations. It also catches a series written by an
// observation that raced with the integration losing its label.
func (m *Metrics) sweep(keep func(integrationID string) bool) (forgotten []string) {
	families, err := m.perIntegration.Gather()
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
		for _, v := range m.byIntegration.all() {
			v.DeletePartialMatch(prometheus.Labels{IntegrationLabel: id})
		}
	}
	return forgotten
}
