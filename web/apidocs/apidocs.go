// Package apidocs renders OpenAPI documents for people: the pages
// /{slug}/docs and /api/docs, drawn by Swagger UI (swagger-ui-dist, vendored
// under swagger-ui/ by update.sh) from the binary itself. Nothing is loaded
// from elsewhere, so the pages work without internet access, under a
// Content-Security-Policy that allows only the page's own scripts and
// styles: no inline script or style, no CDN, no fonts from outside.
//
// A page is served at .../docs and loads its assets from .../docs/assets/
// and its document from ./openapi.json, both relative to the page, so the
// same page works under any prefix (an integration's slug, /api).
package apidocs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io"
	"net/http"
	"path"
	"strings"
)

//go:embed swagger-ui/swagger-ui-bundle.js.gz swagger-ui/swagger-ui.css.gz swagger-ui/VERSION page.js page.css page.html
var files embed.FS

// CSP is the pages' Content-Security-Policy: their own scripts, styles and
// document only. Swagger UI sets styles through the DOM, which 'self'
// allows; it needs no inline <style> or script.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// SwaggerUIVersion is the vendored swagger-ui-dist release.
var SwaggerUIVersion = strings.TrimSpace(string(mustRead("swagger-ui/VERSION")))

// asset is one file served under docs/assets/, kept gzipped.
type asset struct {
	gz          []byte
	etag        string
	contentType string
}

var (
	assets  = map[string]asset{}
	version string // a digest of every asset, for cache-busting URLs
	page    = template.Must(template.New("page").Parse(string(mustRead("page.html"))))
)

func init() {
	digest := sha256.New()
	add := func(name, file, contentType string, gzipped bool) {
		data := mustRead(file)
		if !gzipped {
			data = compress(data)
		}
		sum := sha256.Sum256(data)
		digest.Write(sum[:])
		assets[name] = asset{gz: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentType}
	}
	add("swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js.gz", "text/javascript; charset=utf-8", true)
	add("swagger-ui.css", "swagger-ui/swagger-ui.css.gz", "text/css; charset=utf-8", true)
	add("page.js", "page.js", "text/javascript; charset=utf-8", false)
	add("page.css", "page.css", "text/css; charset=utf-8", false)
	version = hex.EncodeToString(digest.Sum(nil)[:8])
}

func mustRead(name string) []byte {
	data, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded: cannot happen in a built binary
	}
	return data
}

func compress(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = w.Write(data)
	_ = w.Close()
	return b.Bytes()
}

// ServePage writes the page that renders ./openapi.json, titled title.
func ServePage(w http.ResponseWriter, title string) {
	var b bytes.Buffer
	if err := page.Execute(&b, map[string]string{"Title": title, "Spec": "openapi.json", "Version": version}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache") // small, and names the current assets
	_, _ = w.Write(b.Bytes())
}

// Assets serves docs/assets/{file}: gzipped as stored to clients that
// accept it, with an ETag, and cacheable for good (the page names them by
// a digest of their contents).
func Assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[path.Base(r.PathValue("file"))]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			_, _ = w.Write(a.gz)
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(a.gz))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.Copy(w, zr) //nolint:gosec // G110: our own embedded file, of known size
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
