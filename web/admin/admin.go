// Package admin serves the admin console (contract §8, seed 001) from the
// binary: a handful of static files, embedded, that run in the browser and
// talk only to the public admin API (/api/...). Every console path
// (/admin/integrations, /admin/integrations/{id}, /admin/calls/{id}, ...)
// answers with the same index.html, so deep links and the browser's
// back/forward work; the script reads the path and draws the page.
package admin

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// static is the console's files, rooted at static/.
var static = mustSub(files, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Prefix is where the console lives.
const Prefix = "/admin/"

// pagePatterns are the console's own paths, each answered with index.html.
// They are listed one by one rather than as "/admin/" so they never overlap
// the per-integration routes (/{slug}/docs, /{slug}/health, ...).
var pagePatterns = []string{
	"GET /admin/{$}",
	"GET /admin/integrations",
	"GET /admin/integrations/{rest...}",
	"GET /admin/calls/{id}",
	"GET /admin/campaigns/{id}",
	"GET /admin/dead-letters",
	"GET /admin/people",
}

// ContentSecurityPolicy allows scripts, styles and API calls from this
// origin only: no inline script, no eval, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Settings are the operator's choices the console follows. They hold no
// tenant's data and nothing secret: the console's own files show them.
type Settings struct {
	// TraceURLTemplate links the trace ids of a call's timeline to a trace
	// viewer, {traceId} replaced by the id ("" shows the ids unlinked).
	// Validated at startup (config.ValidateTraceURLTemplate).
	TraceURLTemplate string `json:"traceUrlTemplate"`
}

// Register adds the console's routes to mux, with default settings.
func Register(mux *http.ServeMux) { RegisterWith(mux, Settings{}) }

// RegisterWith adds the console's routes to mux; the console reads
// settings from /admin/settings.json.
func RegisterWith(mux *http.ServeMux, settings Settings) {
	mux.Handle("GET /admin/settings.json", secured(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(settings)
	})))
	index := secured(http.HandlerFunc(serveIndex))
	for _, p := range pagePatterns {
		mux.Handle(p, index)
	}
	mux.Handle("GET /admin", http.RedirectHandler(Prefix, http.StatusMovedPermanently))
	assets := http.StripPrefix("/admin/static/", http.FileServerFS(static))
	mux.Handle("GET /admin/static/{file...}", secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := r.PathValue("file"); f == "" || strings.HasSuffix(f, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		assets.ServeHTTP(w, r)
	})))
	registerDocs(mux)
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	// The page holds no data of its own (the script fetches it), yet a
	// cached copy could outlive a release: always revalidate.
	http.ServeFileFS(w, r, static, "index.html")
}

// secured sets the headers every console response carries.
func secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
