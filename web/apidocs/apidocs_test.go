package apidocs_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/web/apidocs"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{slug}/docs", func(w http.ResponseWriter, _ *http.Request) { apidocs.ServePage(w, "demo — callqueue") })
	mux.Handle("GET /{slug}/docs/assets/{file}", apidocs.Assets())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// answer is a response, read whole.
type answer struct {
	StatusCode int
	Header     http.Header
}

func get(t *testing.T, url string, header http.Header) (answer, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	// A bare transport: it neither asks for nor undoes gzip by itself.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{StatusCode: resp.StatusCode, Header: resp.Header}, body
}

// TestPage: the page names its assets relative to itself, runs no inline
// script or style, and is served under a CSP that allows nothing else.
func TestPage(t *testing.T) {
	t.Parallel()
	srv := serve(t)
	resp, body := get(t, srv.URL+"/demo/docs", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, must := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, must) {
			t.Errorf("CSP %q lacks %q", csp, must)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows something unsafe", csp)
	}
	html := string(body)
	if regexp.MustCompile(`<script>|<script[^>]*>[^<]`).MatchString(html) || strings.Contains(html, "<style") || strings.Contains(html, "style=") {
		t.Errorf("the page has inline script or style:\n%s", html)
	}
	if strings.Contains(html, "http://") || strings.Contains(html, "https://") || strings.Contains(html, "//") {
		t.Errorf("the page names another origin:\n%s", html)
	}
	if !strings.Contains(html, `data-spec="openapi.json"`) || !strings.Contains(html, "demo — callqueue") {
		t.Errorf("page:\n%s", html)
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="(docs/assets/[^"]+)"`).FindAllStringSubmatch(html, -1) {
		if r, _ := get(t, srv.URL+"/demo/"+m[1], nil); r.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", m[1], r.StatusCode)
		}
	}
}

// TestAssets: gzip as stored when accepted, plain otherwise, an ETag that
// answers 304, long-lived caching, 404 for anything else.
func TestAssets(t *testing.T) {
	t.Parallel()
	srv := serve(t)
	url := srv.URL + "/demo/docs/assets/swagger-ui-bundle.js"
	zipped, zbody := get(t, url, http.Header{"Accept-Encoding": {"gzip, br"}})
	if zipped.StatusCode != http.StatusOK || zipped.Header.Get("Content-Encoding") != "gzip" ||
		!strings.Contains(zipped.Header.Get("Cache-Control"), "immutable") || zipped.Header.Get("ETag") == "" ||
		!strings.HasPrefix(zipped.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("gzipped: %d %v", zipped.StatusCode, zipped.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	plain, pbody := get(t, url, nil)
	if plain.Header.Get("Content-Encoding") != "" || !bytes.Equal(pbody, unzipped) || !bytes.Contains(pbody, []byte("SwaggerUIBundle")) {
		t.Fatalf("plain: %v, %d bytes (gzipped: %d)", plain.Header, len(pbody), len(unzipped))
	}
	if refused, _ := get(t, url, http.Header{"Accept-Encoding": {"gzip;q=0"}}); refused.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent to a client that refused it")
	}
	if again, body := get(t, url, http.Header{"If-None-Match": {zipped.Header.Get("ETag")}}); again.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", again.StatusCode, len(body))
	}
	for _, name := range []string{"nope.js", "..%2Fpage.html", "swagger-ui.css.gz"} {
		if r, _ := get(t, srv.URL+"/demo/docs/assets/"+name, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", name, r.StatusCode)
		}
	}
	if apidocs.SwaggerUIVersion == "" {
		t.Error("no vendored version")
	}
}
