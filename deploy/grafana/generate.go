package grafana

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Files returns every dashboard's JSON by its file name in dashboards/.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	//nolint:staticcheck // v1 dashboard JSON: what Grafana's file provisioning loads everywhere; v2 is not yet.
	for name, b := range map[string]*dashboard.DashboardBuilder{
		"overview.json":    Overview(),
		"integration.json": Integration(),
	} {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		raw, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		out[name] = append(raw, '\n')
	}
	return out, nil
}
