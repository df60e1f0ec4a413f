package admin_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/docs"
	"github.com/callqueue/callqueue/web/admin"
)

// TestDocsServed: the console serves every page of docs/ as HTML under the
// console's security headers, with the pictures they show, an index of the
// pages, and nothing else; every relative link of every page reaches a page
// or picture that is served, and the section it names.
func TestDocsServed(t *testing.T) {
	mux := http.NewServeMux()
	admin.Register(mux)

	resp, index := serve(t, mux, admin.DocsPrefix)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %q", admin.DocsPrefix, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, name := range docs.Pages() {
		if !strings.Contains(index, `href="`+name+`"`) {
			t.Errorf("the index does not list %s", name)
		}
	}

	link := regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	for _, name := range docs.Pages() {
		page := admin.DocsPrefix + name
		resp, body := serve(t, mux, page)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %q", page, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		if resp.Header.Get("Content-Security-Policy") != admin.ContentSecurityPolicy {
			t.Errorf("GET %s: no Content-Security-Policy", page)
		}
		if !strings.Contains(body, "<h1 id=") || !strings.Contains(body, "<title>") {
			t.Errorf("GET %s: not a rendered page:\n%.300s", page, body)
		}
		base, _ := url.Parse(page)
		for _, m := range link.FindAllStringSubmatch(body, -1) {
			ref, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
			if err != nil || ref.Scheme != "" || ref.Host != "" {
				continue // another site
			}
			target := base.ResolveReference(ref)
			if !strings.HasPrefix(target.Path, admin.DocsPrefix) {
				continue // the console's own pages and files
			}
			resp, linked := serve(t, mux, target.Path)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s links to %s: %d", page, m[1], resp.StatusCode)
				continue
			}
			if target.Fragment != "" && target.Path != admin.DocsPrefix && !strings.Contains(linked, `id="`+target.Fragment+`"`) {
				t.Errorf("%s links to %s: no such section", page, m[1])
			}
		}
	}

	if resp, body := serve(t, mux, admin.DocsPrefix+"console-calls.png"); resp.StatusCode != http.StatusOK ||
		resp.Header.Get("Content-Type") != "image/png" || len(body) < 1000 {
		t.Errorf("GET the console picture: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	for _, p := range []string{"nope.md", "doc.go", "pages.go", "..%2fREADME.md", "%2e%2e%2fgo.mod", "links_test.go"} {
		if resp, _ := serve(t, mux, admin.DocsPrefix+p); resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s%s: %d, want an error", admin.DocsPrefix, p, resp.StatusCode)
		}
	}
}
