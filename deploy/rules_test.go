package deploy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// promtool finds (installing when missing) the binary through scripts/prometheus.sh.
func tool(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("../scripts/prometheus.sh", name).Output()
	if err != nil {
		t.Fatalf("scripts/prometheus.sh %s: %v", name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestRulesPassPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "prometheus/rules.yml"},
		{"test", "rules", "prometheus/rules_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
