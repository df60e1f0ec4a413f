package admin

import (
	"bytes"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/callqueue/callqueue/docs"
)

// DocsPrefix is where the console serves the documentation: the pages of
// docs/, built into the binary and rendered from Markdown, so that the
// console's links to them work offline.
const DocsPrefix = Prefix + "docs/"

var docPage = template.Must(template.New("doc").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · callqueue documentation</title>
<link rel="stylesheet" href="/admin/static/app.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="topbar">
  <a class="brand" href="/admin/integrations">callqueue</a>
  <nav aria-label="Main"><a href="/admin/integrations">Integrations</a> <a href="` + DocsPrefix + `">Documentation</a></nav>
</header>
<main id="main" class="doc">
{{.Body}}
</main>
</body>
</html>
`))

// registerDocs adds the documentation's routes: an index of the pages,
// each page as HTML, and the pictures the pages show.
func registerDocs(mux *http.ServeMux) {
	mux.Handle("GET "+DocsPrefix+"{$}", secured(http.HandlerFunc(serveDocsIndex)))
	mux.Handle("GET "+DocsPrefix+"{page}", secured(http.HandlerFunc(serveDoc)))
}

func serveDocsIndex(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	b.WriteString("<h1>Documentation</h1>\n<ul>\n")
	for _, name := range docs.Pages() {
		title, _, err := docs.Render(name)
		if err != nil {
			continue
		}
		b.WriteString(`<li><a href="` + template.HTMLEscapeString(name) + `">` + template.HTMLEscapeString(title) + "</a></li>\n")
	}
	b.WriteString("</ul>\n")
	writeDoc(w, "Documentation", template.HTML(b.String())) //nolint:gosec // G203: built from escaped names and titles
}

func serveDoc(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("page")
	if path.Ext(name) != ".md" {
		if path.Ext(name) != ".png" {
			http.NotFound(w, r)
			return
		}
		// A picture of the pages: the embedded files hold nothing else,
		// and a name never has a directory (the pattern is one segment).
		png, err := fs.ReadFile(docs.Files(), name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(png) //nolint:gosec // G705: one of our own embedded pictures, served as image/png
		return
	}
	title, body, err := docs.Render(name)
	if errors.Is(err, docs.ErrNoPage) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "cannot render "+name, http.StatusInternalServerError)
		return
	}
	// The pages link the repository's README as ../README.md; in the
	// console the index of the pages stands in for it.
	body = bytes.ReplaceAll(body, []byte(`href="../README.md`), []byte(`href="./`))
	writeDoc(w, title, template.HTML(body)) //nolint:gosec // G203: goldmark leaves raw HTML out of our own pages
}

func writeDoc(w http.ResponseWriter, title string, body template.HTML) {
	var out bytes.Buffer
	if err := docPage.Execute(&out, struct {
		Title string
		Body  template.HTML
	}{title, body}); err != nil {
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(out.Bytes())
}
