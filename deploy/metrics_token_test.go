package deploy_test

import (
	"os"
	"strings"
	"testing"

	yaml "github.com/pb33f/go-yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// /metrics lists every tenant's integration ids: every deployment sets
// CALLQUEUE_METRICS_TOKEN and its Prometheus scrapes with that token.
func TestDeploymentsProtectMetricsWithAToken(t *testing.T) {
	t.Parallel()
	// Compose: every callqueue service gets the token, Prometheus reads it
	// from the file compose writes it to.
	c := readCompose(t)
	if v := c.XCallqueue.Environment["CALLQUEUE_METRICS_TOKEN"]; !strings.Contains(v, "${CALLQUEUE_METRICS_TOKEN") {
		t.Errorf("compose sets CALLQUEUE_METRICS_TOKEN to %q, want the operator's ${CALLQUEUE_METRICS_TOKEN}", v)
	}
	if v := c.Configs["metrics-token"].Content; !strings.Contains(v, "${CALLQUEUE_METRICS_TOKEN") {
		t.Errorf("compose's metrics-token config holds %q", v)
	}
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Authorization struct {
				Type            string `yaml:"type"`
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatal(err)
	}
	composeRaw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "callqueue" {
			continue
		}
		if sc.Authorization.Type != "Bearer" || sc.Authorization.CredentialsFile == "" ||
			!strings.Contains(string(composeRaw), "target: "+sc.Authorization.CredentialsFile) {
			t.Errorf("prometheus.yml scrapes callqueue with authorization %+v, not the token compose mounts", sc.Authorization)
		}
	}

	// Kubernetes: every role reads the token from the Secret, and the
	// ServiceMonitor scrapes with the same key.
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "k8s/overlays/example")
	if err != nil {
		t.Fatal(err)
	}
	secretKeys := map[string]bool{}
	var deployments, monitors []map[string]any
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() {
		case "Secret":
			for k := range obj["data"].(map[string]any) {
				secretKeys[k] = true
			}
		case "Deployment":
			deployments = append(deployments, obj)
		case "ServiceMonitor":
			monitors = append(monitors, obj)
		}
	}
	for _, d := range deployments {
		c := list(d, "spec", "template", "spec", "containers")[0].(map[string]any)
		key := ""
		for _, e := range c["env"].([]any) {
			if env := e.(map[string]any); env["name"] == "CALLQUEUE_METRICS_TOKEN" {
				key = str(env, "valueFrom", "secretKeyRef", "key")
			}
		}
		if key == "" || !secretKeys[key] {
			t.Errorf("%s: CALLQUEUE_METRICS_TOKEN from secret key %q, which the overlay does not render", str(d, "metadata", "name"), key)
		}
	}
	if len(monitors) == 0 {
		t.Fatal("no ServiceMonitor")
	}
	for _, sm := range monitors {
		for _, e := range list(sm, "spec", "endpoints") {
			ep := e.(map[string]any)
			if str(ep, "authorization", "type") != "Bearer" || !secretKeys[str(ep, "authorization", "credentials", "key")] {
				t.Errorf("ServiceMonitor endpoint %v does not scrape with the metrics token", ep)
			}
		}
	}
}
