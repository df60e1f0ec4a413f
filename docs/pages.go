package docs

import (
	"bytes"
	"embed"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
)

//go:embed *.md *.png
var files embed.FS

// ErrNoPage reports a page that is not part of the documentation.
var ErrNoPage = errors.New("no such page")

// Files returns the pages (Markdown) and their pictures, as built into the
// binary.
func Files() fs.FS { return files }

// Pages lists the pages' file names, sorted.
func Pages() []string {
	names, _ := fs.Glob(files, "*.md") // the pattern is valid
	slices.Sort(names)
	return names
}

// Anchor is the id GitHub gives a heading, so that links such as
// guarantees.md#how-the-guarantees-are-tested work on GitHub and in the
// console alike: lower case, letters, digits, '-' and '_' kept, spaces
// turned into '-', everything else dropped.
func Anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// githubIDs numbers repeated headings as GitHub does: the second "Foo" is
// foo-1.
type githubIDs struct{ seen map[string]bool }

func (g *githubIDs) Generate(value []byte, _ ast.NodeKind) []byte {
	base := Anchor(string(value))
	id := base
	for n := 1; g.seen[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	g.seen[id] = true
	return []byte(id)
}

func (g *githubIDs) Put(value []byte) { g.seen[string(value)] = true }

var markdown = goldmark.New(
	goldmark.WithExtensions(extension.GFM),
	goldmark.WithParserOptions(parser.WithAutoHeadingID()),
)

// Render returns a page as HTML (without raw HTML from the page: goldmark
// leaves it out) and its title, the text of its first heading.
func Render(name string) (title string, html []byte, err error) {
	if path.Ext(name) != ".md" || strings.Contains(name, "/") {
		return "", nil, ErrNoPage
	}
	src, err := fs.ReadFile(files, name)
	if err != nil {
		return "", nil, ErrNoPage
	}
	var out bytes.Buffer
	ctx := parser.NewContext(parser.WithIDs(&githubIDs{seen: map[string]bool{}}))
	if err := markdown.Convert(src, &out, parser.WithContext(ctx)); err != nil {
		return "", nil, err
	}
	return Title(src), out.Bytes(), nil
}

// Title is the text of a page's first "# " heading, or "".
func Title(src []byte) string {
	for line := range strings.Lines(string(src)) {
		if t, ok := strings.CutPrefix(line, "# "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}
