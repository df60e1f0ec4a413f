package grafana_test

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
)

// TestIntegrationDrillDown: the integration dashboard has an optional
// Tempo variable, a link that opens Tempo's search for the integration's
// spans over the dashboard's time range, and a panel whose queries fetch
// exemplars (each one call, with its call_id and trace_id).
func TestIntegrationDrillDown(t *testing.T) {
	raw, err := os.ReadFile("dashboards/integration.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct{ Name, Type, Query string } `json:"list"`
		} `json:"templating"`
		Links []struct {
			Title string `json:"title"`
			URL   string `json:"url"`
		} `json:"links"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr     string `json:"expr"`
				Exemplar bool   `json:"exemplar"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	tempo := false
	for _, v := range d.Templating.List {
		tempo = tempo || (v.Name == "tempo" && v.Type == "datasource" && v.Query == "tempo")
	}
	if !tempo {
		t.Errorf("no $tempo datasource variable: %+v", d.Templating.List)
	}

	var search string
	for _, l := range d.Links {
		if strings.HasPrefix(l.URL, "/explore?") {
			search = l.URL
		}
	}
	// Grafana fills the variables in; the rest must be a valid Explore pane.
	filled := strings.NewReplacer("${tempo}", "tempo-uid", "${integration}", "0194c9a2-7b1e-7c3d-9f10-2a3b4c5d6e7f",
		"${__from}", "1769000000000", "${__to}", "1769003600000").Replace(search)
	u, err := url.Parse(filled)
	if err != nil || search == "" {
		t.Fatalf("trace search link %q: %v", search, err)
	}
	var panes map[string]struct {
		Datasource string `json:"datasource"`
		Queries    []struct {
			QueryType string `json:"queryType"`
			Query     string `json:"query"`
		} `json:"queries"`
		Range struct{ From, To string } `json:"range"`
	}
	if err := json.Unmarshal([]byte(u.Query().Get("panes")), &panes); err != nil {
		t.Fatalf("panes of %q: %v", filled, err)
	}
	p := panes["t"]
	want := `{resource.service.name="callqueue" && span.callqueue.integration_id="0194c9a2-7b1e-7c3d-9f10-2a3b4c5d6e7f"}`
	if p.Datasource != "tempo-uid" || len(p.Queries) != 1 || p.Queries[0].QueryType != "traceql" || p.Queries[0].Query != want ||
		p.Range.From != "1769000000000" || p.Range.To != "1769003600000" {
		t.Errorf("trace search pane %+v", p)
	}

	exemplars := 0
	for _, panel := range d.Panels {
		for _, target := range panel.Targets {
			if target.Exemplar {
				exemplars++
			}
		}
	}
	if exemplars == 0 {
		t.Error("no panel query fetches exemplars")
	}
}
