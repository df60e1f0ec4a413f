// Package grafana generates callqueue's Grafana dashboards as code: typed
// builders from the Grafana Foundation SDK, so a panel is reviewed as Go and
// the JSON in dashboards/ is only ever the generator's output (`make
// dashboards` writes it; a test fails when it is stale).
package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasource is the dashboards' Prometheus, chosen with the $datasource variable.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus")
}

// query is one PromQL target with its legend.
type query struct{ expr, legend string }

// panel is a time series of queries, a unit and a width on the 24-column grid.
func panel(title, description, unit string, width uint32, queries ...query) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Unit(unit).
		Datasource(datasource).Span(width).Height(8)
	for _, q := range queries {
		p.WithTarget(prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(q.expr).LegendFormat(q.legend))
	}
	return p
}

func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }

// exemplarPanel is a panel whose queries also fetch exemplars: each drawn
// as a dot that links, through the Prometheus datasource's exemplar
// settings (provisioning/datasources), to the call and its trace.
func exemplarPanel(title, description string, width uint32, queries ...query) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Unit("s").
		Datasource(datasource).Span(width).Height(8)
	for _, q := range queries {
		p.WithTarget(prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(q.expr).LegendFormat(q.legend).Exemplar(true))
	}
	return p
}
