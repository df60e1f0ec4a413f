package grafana_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/callqueue/callqueue/deploy/grafana"
)

func TestCommittedDashboardsAreTheGeneratorsOutput(t *testing.T) {
	files, err := grafana.Files()
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := filepath.Glob("dashboards/*.json")
	if len(committed) != len(files) {
		t.Errorf("dashboards/ holds %d files, the generator makes %d: run make dashboards", len(committed), len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("dashboards", name))
		if err != nil {
			t.Errorf("%s: %v (run make dashboards)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dashboards/%s differs from the generator's output: run make dashboards", name)
		}
	}
}
