package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/web/admin"
)

// answer is what serve got: the status and headers of a response whose
// body is already read.
type answer struct {
	StatusCode int
	Header     http.Header
}

func serve(t *testing.T, mux *http.ServeMux, path string) (answer, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return answer{StatusCode: rec.Code, Header: rec.Header()}, rec.Body.String()
}

// TestConsolePaths: every console path answers with the same page (deep
// links), its files are served with their types, and nothing else is.
func TestConsolePaths(t *testing.T) {
	mux := http.NewServeMux()
	admin.Register(mux)
	_, index := serve(t, mux, "/admin/")
	if !strings.Contains(index, `<script type="module" src="/admin/static/js/main.js">`) {
		t.Fatalf("index.html:\n%s", index)
	}
	for _, p := range []string{"/admin/", "/admin/integrations", "/admin/integrations/new",
		"/admin/integrations/3f1c1d9e-8b8a-4c3e-9d51-0d5f0f6f4a11", "/admin/calls/3f1c1d9e-8b8a-4c3e-9d51-0d5f0f6f4a11",
		"/admin/campaigns/3f1c1d9e-8b8a-4c3e-9d51-0d5f0f6f4a11", "/admin/dead-letters", "/admin/people"} {
		resp, body := serve(t, mux, p)
		if resp.StatusCode != http.StatusOK || body != index || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %q, want index.html", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for path, typ := range map[string]string{"/admin/static/js/main.js": "text/javascript", "/admin/static/app.css": "text/css"} {
		if resp, body := serve(t, mux, path); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), typ) || body == "" {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/admin/static/", "/admin/static/js/", "/admin/static/nope.js", "/admin/static/../admin.go"} {
		if resp, _ := serve(t, mux, p); resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s: %d, want an error", p, resp.StatusCode)
		}
	}
	if resp, _ := serve(t, mux, "/admin"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/admin/" {
		t.Errorf("GET /admin: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestConsoleHeaders: no inline script may run, the console is never
// framed (clickjacking), and types are not sniffed.
func TestConsoleHeaders(t *testing.T) {
	mux := http.NewServeMux()
	admin.Register(mux)
	for _, p := range []string{"/admin/integrations", "/admin/static/js/main.js"} {
		resp, _ := serve(t, mux, p)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline or eval", p, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", p, resp.Header)
		}
	}
}

// TestConsoleRoutesBesideIntegrationRoutes: the console's patterns must not
// overlap the per-integration ones (ServeMux panics on a conflict).
func TestConsoleRoutesBesideIntegrationRoutes(t *testing.T) {
	mux := http.NewServeMux()
	for _, p := range []string{"GET /{slug}/health", "GET /{slug}/docs", "GET /{slug}/openapi.json", "POST /{slug}/setup"} {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	admin.Register(mux)
	if _, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, "/sales/docs", nil)); pattern != "GET /{slug}/docs" {
		t.Fatalf("/sales/docs routed to %q", pattern)
	}
}

// TestConsoleSettings: the console reads the trace viewer's URL template
// from /admin/settings.json, under the console's own headers.
func TestConsoleSettings(t *testing.T) {
	mux := http.NewServeMux()
	admin.RegisterWith(mux, admin.Settings{TraceURLTemplate: "https://grafana.local/explore?traceId={traceId}"})
	resp, body := serve(t, mux, "/admin/settings.json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"traceUrlTemplate":"https://grafana.local/explore?traceId={traceId}"`) ||
		resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /admin/settings.json: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	mux = http.NewServeMux()
	admin.Register(mux)
	if _, body := serve(t, mux, "/admin/settings.json"); !strings.Contains(body, `"traceUrlTemplate":""`) {
		t.Fatalf("default settings: %q", body)
	}
}
