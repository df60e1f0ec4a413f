package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/docs"
)

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = ".."

// markdownFiles lists README.md and every page under docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no pages in docs/")
	}
	return append([]string{filepath.Join(repoRoot, "README.md")}, pages...)
}

// fenced reports, per line, whether it is inside a fenced code block
// (``` or ~~~), fences included.
func fenced(lines []string) []bool {
	in := make([]bool, len(lines))
	open := ""
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case open == "" && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")):
			open = trimmed[:3]
			in[i] = true
		case open != "":
			in[i] = true
			if strings.HasPrefix(trimmed, open) {
				open = ""
			}
		}
	}
	return in
}

var (
	heading    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	inlineCode = regexp.MustCompile("`[^`]*`")
	// A link or image: [text](target) or [text](target "title").
	link = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
)

// anchors returns the anchors GitHub gives a page's headings.
func anchors(text string) map[string]bool {
	lines := strings.Split(text, "\n")
	in := fenced(lines)
	seen := map[string]int{}
	out := map[string]bool{}
	for i, l := range lines {
		if in[i] {
			continue
		}
		m := heading.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		slug := docs.Anchor(m[1])
		if n := seen[slug]; n > 0 {
			out[slug+"-"+itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// brokenLinks returns, for one page, each relative link or anchor inside
// the repository repo that does not resolve, as "line N: target: why".
func brokenLinks(t *testing.T, repo, page string) []string {
	t.Helper()
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	lines := strings.Split(text, "\n")
	in := fenced(lines)
	root, err := filepath.Abs(repo)
	if err != nil {
		t.Fatal(err)
	}
	var broken []string
	for i, l := range lines {
		if in[i] {
			continue
		}
		for _, m := range link.FindAllStringSubmatch(inlineCode.ReplaceAllString(l, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "//") {
				continue // not ours to check offline
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := page
			if path != "" {
				file = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
				abs, err := filepath.Abs(file)
				if err != nil {
					t.Fatal(err)
				}
				if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
					continue // outside the repository (the shared contract)
				}
				if _, err := os.Stat(file); err != nil {
					broken = append(broken, "line "+itoa(i+1)+": "+target+": no such file")
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(file, ".md") {
				broken = append(broken, "line "+itoa(i+1)+": "+target+": an anchor into a file that is not Markdown")
				continue
			}
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !anchors(string(body))[anchor] {
				broken = append(broken, "line "+itoa(i+1)+": "+target+": no heading with that anchor")
			}
		}
	}
	return broken
}

// TestLinksResolve: every relative link and #anchor in README.md and docs/
// points at a file and a heading that exist, so moving or renaming a
// section breaks this test instead of a reader's click.
func TestLinksResolve(t *testing.T) {
	t.Parallel()
	for _, page := range markdownFiles(t) {
		for _, b := range brokenLinks(t, repoRoot, page) {
			t.Errorf("%s %s", page, b)
		}
	}
}

// TestEveryPageIsLinkedFromTheReadme: the README is the map, so a page it
// does not name cannot be found.
func TestEveryPageIsLinkedFromTheReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range markdownFiles(t)[1:] {
		if !strings.Contains(string(readme), "(docs/"+filepath.Base(page)) {
			t.Errorf("README.md does not link to docs/%s: add it to the map of the documentation", filepath.Base(page))
		}
	}
}

// TestLinkCheckerFindsBrokenLinks: the checker itself, on a page with a
// missing file, a missing anchor and links it must accept.
func TestLinkCheckerFindsBrokenLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	page := filepath.Join(dir, "page.md")
	other := filepath.Join(dir, "other.md")
	if err := os.WriteFile(other, []byte("# Other\n\n## The NATS cluster: sync policy, and `R3`\n\n```\n# not a heading\n```\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := "# Page\n\n[ok](other.md) [ok](other.md#the-nats-cluster-sync-policy-and-r3) [ok](#page)\n" +
		"[gone](missing.md) [bad anchor](other.md#not-a-heading)\n" +
		"`[in code](nowhere.md)` [web](https://example.com/x.md)\n```\n[in a fence](nowhere.md)\n```\n"
	if err := os.WriteFile(page, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := brokenLinks(t, dir, page)
	want := []string{"line 4: missing.md: no such file", "line 4: other.md#not-a-heading: no heading with that anchor"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("broken links:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRenderedPagesKeepTheAnchors: the console's rendering of each page
// gives every heading the id the link checker (and GitHub) expects, so a
// link that resolves here also resolves in the console.
func TestRenderedPagesKeepTheAnchors(t *testing.T) {
	t.Parallel()
	if len(docs.Pages()) < 10 {
		t.Fatalf("only %d pages built into the binary", len(docs.Pages()))
	}
	for _, name := range docs.Pages() {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		title, html, err := docs.Render(name)
		if err != nil {
			t.Fatal(err)
		}
		if title == "" {
			t.Errorf("%s has no title (a first line \"# ...\")", name)
		}
		for a := range anchors(string(raw)) {
			if !strings.Contains(string(html), `id="`+a+`"`) {
				t.Errorf("%s: the rendered page has no id %q", name, a)
			}
		}
	}
	if _, _, err := docs.Render("../README.md"); err == nil {
		t.Error("Render reads outside the pages")
	}
}

// TestConsoleLinksResolve: every page and #anchor the console links to
// (web/admin/static/js) is a page of docs/ with that heading.
func TestConsoleLinksResolve(t *testing.T) {
	t.Parallel()
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "web", "admin", "static", "js", "*.js"))
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`'([a-z0-9-]+\.md)(?:#([^']*))?'`)
	n := 0
	for _, script := range scripts {
		raw, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range target.FindAllStringSubmatch(string(raw), -1) {
			n++
			page, err := os.ReadFile(m[1])
			if err != nil {
				t.Errorf("%s links to %s, which is not a page of docs/", script, m[1])
				continue
			}
			if m[2] != "" && !anchors(string(page))[m[2]] {
				t.Errorf("%s links to %s#%s, a heading %s does not have", script, m[1], m[2], m[1])
			}
		}
	}
	if n < 5 {
		t.Fatalf("found only %d links to the documentation in the console: the scan is broken", n)
	}
}
