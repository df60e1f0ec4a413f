package deploy_test

import (
	"slices"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestKubernetesManifestsRenderAndHoldTogether renders the example overlay
// with kustomize and checks what a cluster would not: every Deployment has
// probes, resource requests, its secret key from the Secret and its own
// role's arguments; every role has a PDB; webhooks and workers an HPA.
// (Applying them to a cluster is not done here.)
func TestKubernetesManifestsRenderAndHoldTogether(t *testing.T) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "k8s/overlays/example")
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]map[string]any{}
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		byKind[r.GetKind()] = append(byKind[r.GetKind()], obj)
		if ns := r.GetNamespace(); ns != "callqueue" {
			t.Errorf("%s/%s in namespace %q", r.GetKind(), r.GetName(), ns)
		}
	}
	roles := map[string]bool{}
	for _, d := range byKind["Deployment"] {
		name := str(d, "metadata", "name")
		role := str(d, "spec", "template", "metadata", "labels", "app.kubernetes.io/component")
		roles[role] = true
		c := list(d, "spec", "template", "spec", "containers")[0].(map[string]any)
		args := toStrings(c["args"])
		if !slices.Equal(args, []string{"serve", "--role", role, "--no-migrate"}) {
			t.Errorf("%s args %v, want serve --role %s --no-migrate", name, args, role)
		}
		if str(c, "readinessProbe", "httpGet", "path") != "/readyz" || str(c, "livenessProbe", "httpGet", "path") != "/healthz" {
			t.Errorf("%s probes: %v %v", name, c["readinessProbe"], c["livenessProbe"])
		}
		if str(c, "resources", "requests", "cpu") == "" || str(c, "resources", "requests", "memory") == "" {
			t.Errorf("%s has no resource requests", name)
		}
		if str(c, "image") != "registry.example.com/callqueue:v1.0.0" {
			t.Errorf("%s image %s", name, str(c, "image"))
		}
		secretKey := ""
		for _, e := range c["env"].([]any) {
			env := e.(map[string]any)
			if env["name"] == "CALLQUEUE_SECRET_KEY" {
				secretKey = str(env, "valueFrom", "secretKeyRef", "name")
			}
		}
		if secretKey == "" || !hasSecret(byKind["Secret"], secretKey) {
			t.Errorf("%s: CALLQUEUE_SECRET_KEY from secret %q, which the overlay does not render", name, secretKey)
		}
		if !selects(byKind["PodDisruptionBudget"], role) {
			t.Errorf("%s has no PodDisruptionBudget", name)
		}
	}
	for _, role := range []string{"webhooks", "workers", "api"} {
		if !roles[role] {
			t.Errorf("no Deployment for role %s", role)
		}
	}
	var scaled []string
	for _, h := range byKind["HorizontalPodAutoscaler"] {
		scaled = append(scaled, str(h, "spec", "scaleTargetRef", "name"))
	}
	slices.Sort(scaled)
	if !slices.Equal(scaled, []string{"callqueue-webhooks", "callqueue-workers"}) {
		t.Errorf("HPAs scale %v, want webhooks and workers", scaled)
	}
	for _, kind := range []string{"ServiceMonitor", "Cluster", "Job", "ConfigMap"} {
		if len(byKind[kind]) != 1 {
			t.Errorf("%d %s, want 1", len(byKind[kind]), kind)
		}
	}
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

func list(m map[string]any, path ...string) []any {
	var v any = m
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	return v.([]any)
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func hasSecret(secrets []map[string]any, name string) bool {
	for _, s := range secrets {
		if str(s, "metadata", "name") == name {
			return true
		}
	}
	return false
}

func selects(pdbs []map[string]any, role string) bool {
	for _, p := range pdbs {
		if str(p, "spec", "selector", "matchLabels", "app.kubernetes.io/component") == role {
			return true
		}
	}
	return false
}
