package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/service/servicetest"
)

// TestConfigRefusesCredentialsInURLs: a URL that carries a credential (a
// user or password, a token- or key-like parameter) is refused with a 422
// naming the field and pointing to secrets, and nothing is stored.
func TestConfigRefusesCredentialsInURLs(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Leaky URLs"})
	tests := []struct {
		key   string
		value map[string]any
		field string
	}{
		{"crm", map[string]any{"kind": "webhook", "lookup_url": "https://crm.example/lookup?token=s3cr3t-value",
			"update_url": "https://crm.example/update"}, "lookup_url"},
		{"crm", map[string]any{"kind": "webhook", "update_url": "https://user:s3cr3t-value@crm.example/update"}, "update_url"},
		{"voice", map[string]any{"base_url": "https://va.example/?api_key=s3cr3t-value", "sip_id": "s", "assistant_id": "a"}, "base_url"},
		{"analysis", map[string]any{"base_url": "https://llm.example/v1?access_token=s3cr3t-value", "model": "m"}, "base_url"},
		{"predial", map[string]any{"url": "https://check.example/?password=s3cr3t-value"}, "url"},
	}
	for _, tt := range tests {
		e := expectFieldError(t, w.a.do(t, "PUT", integrationPath(in, "/config/", tt.key), tt.value), http.StatusUnprocessableEntity, tt.field)
		if !strings.Contains(e.Message, "secret") || strings.Contains(e.Message, "s3cr3t-value") {
			t.Errorf("%s: message %q should point to secrets without repeating the value", tt.key, e.Message)
		}
	}
	cfg := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK)
	if strings.Contains(string(cfg.body), "s3cr3t-value") {
		t.Fatalf("a refused URL was stored: %s", cfg.body)
	}
	audit := w.a.do(t, "GET", integrationPath(in, "/audit-logs"), nil).expect(t, http.StatusOK)
	if strings.Contains(string(audit.body), "s3cr3t-value") {
		t.Fatalf("a refused URL was audited: %s", audit.body)
	}
	// The same URLs without the credential are taken.
	w.a.do(t, "PUT", integrationPath(in, "/config/crm"), map[string]any{"kind": "webhook",
		"lookup_url": "https://crm.example/lookup?folder=leads", "update_url": "https://crm.example/update"}).expect(t, http.StatusOK)
}

// TestConfigRefusesMetadataAddresses: a URL whose host is a cloud metadata
// address, literally or inside an IPv6 address, is refused when it is
// written (422 naming the field), even with private egress allowed (as in
// this test service); internal ranges are refused with it off.
func TestConfigRefusesMetadataAddresses(t *testing.T) {
	t.Parallel()
	opened, strict := setup(t), setupWith(t, servicetest.Options{StrictEgress: true})
	for _, host := range []string{"169.254.169.254", "100.100.100.200", "[fd00:ec2::254]", "[::ffff:100.100.100.200]",
		"[64:ff9b::a9fe:a9fe]", "[2002:6464:64c8::1]"} {
		for _, w := range []*world{opened, strict} {
			in := createIntegration(t, w.a, map[string]any{"name": "Metadata " + host})
			e := expectFieldError(t, w.a.do(t, "PUT", integrationPath(in, "/config/predial"), map[string]any{"url": "http://" + host + "/latest"}),
				http.StatusUnprocessableEntity, "url")
			if strings.Contains(e.Message, strings.Trim(host, "[]")) {
				t.Errorf("message %q repeats the address", e.Message)
			}
		}
	}
	for _, host := range []string{"100.64.0.1", "198.18.0.1", "240.0.0.1", "[64:ff9b::a00:1]", "[2002:a00:1::]", "[::a00:1]"} {
		in := createIntegration(t, strict.a, map[string]any{"name": "Internal " + host})
		expectFieldError(t, strict.a.do(t, "PUT", integrationPath(in, "/config/voice"),
			map[string]any{"base_url": "http://" + host, "sip_id": "s", "assistant_id": "a"}), http.StatusUnprocessableEntity, "base_url")
	}
}
