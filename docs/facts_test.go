package docs_test

import (
	"go/ast"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/api"
	"github.com/callqueue/callqueue/web/admin"
	"github.com/callqueue/callqueue/webhooks"
)

// pageTexts returns README.md and every page of docs/, by path.
func pageTexts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, page := range markdownFiles(t) {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.ToSlash(strings.TrimPrefix(page, repoRoot+string(filepath.Separator)))] = string(raw)
	}
	return out
}

// routes is the service's HTTP routing: the admin API, the webhooks and
// the console registered as the service registers them, and the endpoints
// every role serves. Only the routing is used; no handler runs.
func routes() *http.ServeMux {
	mux := http.NewServeMux()
	api.New(api.Deps{}).Register(mux)
	webhooks.New(webhooks.Deps{}).Register(mux)
	admin.Register(mux)
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics"} { // service.Service's own
		mux.Handle(p, http.NotFoundHandler())
	}
	return mux
}

var (
	methods = `GET|POST|PUT|PATCH|DELETE`
	// A request named in prose or code: "GET /api/calls/{id}", "GET|PUT /api/...".
	namedRequest = regexp.MustCompile(`\b((?:` + methods + `)(?:\|(?:` + methods + `))*) (/[A-Za-z0-9_{}\-./…<>=?&$]*)`)
	curlLine     = regexp.MustCompile(`\bcurl\b[^\n]*`)
	curlMethod   = regexp.MustCompile(`-X\s+(` + methods + `)\b`)
	curlURL      = regexp.MustCompile(`["']?\$CQ(/[^\s"']*)`)
	placeholder  = regexp.MustCompile(`\{[^}/]*\}|<[^>/]*>|\$[A-Z]+|…`)
)

// documentedRequest is one request a page names.
type documentedRequest struct {
	where, method, path string
}

// documentedRequests finds the requests named in the pages: "METHOD /path"
// anywhere, and every curl command against $CQ (its method from -X, else
// POST when it sends a body, else GET).
func documentedRequests(pages map[string]string) []documentedRequest {
	var out []documentedRequest
	for page, text := range pages {
		for _, m := range namedRequest.FindAllStringSubmatch(text, -1) {
			for _, method := range strings.Split(m[1], "|") {
				out = append(out, documentedRequest{page + ": " + m[0], method, m[2]})
			}
		}
		// A curl command's continuation lines end in a backslash.
		joined := strings.ReplaceAll(text, "\\\n", " ")
		for _, line := range curlLine.FindAllString(joined, -1) {
			u := curlURL.FindStringSubmatch(line)
			if u == nil {
				continue
			}
			method := "GET"
			if m := curlMethod.FindStringSubmatch(line); m != nil {
				method = m[1]
			} else if strings.Contains(line, " -d ") || strings.Contains(line, "--data") {
				method = "POST"
			}
			out = append(out, documentedRequest{page + ": " + strings.TrimSpace(line), method, u[1]})
		}
	}
	return out
}

// TestDocumentedRequestsAreRoutes: every request the pages name or curl
// reaches a route of the service with that method, so a renamed or removed
// endpoint cannot live on in the documentation.
func TestDocumentedRequestsAreRoutes(t *testing.T) {
	t.Parallel()
	mux := routes()
	reqs := documentedRequests(pageTexts(t))
	if len(reqs) < 30 {
		t.Fatalf("found only %d requests in the pages: the scan is broken", len(reqs))
	}
	for _, r := range reqs {
		if msg := unrouted(mux, r); msg != "" {
			t.Errorf("%s\n\t%s", r.where, msg)
		}
	}
}

// unrouted says why a documented request reaches no route, or "".
func unrouted(mux *http.ServeMux, r documentedRequest) string {
	path, _, _ := strings.Cut(r.path, "?")
	path = strings.TrimRight(path, ".,;:")
	path = placeholder.ReplaceAllString(path, "x")
	req := httptest.NewRequest(r.method, "http://callqueue.test"+path, nil)
	if _, pattern := mux.Handler(req); pattern == "" {
		return r.method + " " + path + " matches no route"
	}
	return ""
}

// TestRouteCheckerFindsStaleRequests: the checker itself.
func TestRouteCheckerFindsStaleRequests(t *testing.T) {
	t.Parallel()
	mux := routes()
	reqs := documentedRequests(map[string]string{"page.md": "`GET /api/calls/{id}` and `DELETE /api/calls/{id}` and `GET /api/nothing`\n" +
		"```sh\ncurl -s -X POST $CQ/api/campaigns/$CAMPAIGN/pause \\\n  -H x\ncurl -s $CQ/api/integrations/$ID/config/voice -d '{}'\n```\n"})
	var stale []string
	for _, r := range reqs {
		if unrouted(mux, r) != "" {
			stale = append(stale, r.method+" "+r.path)
		}
	}
	slices.Sort(stale)
	want := []string{"DELETE /api/calls/{id}", "GET /api/nothing", "POST /api/integrations/$ID/config/voice"}
	if !slices.Equal(stale, want) {
		t.Errorf("stale requests %q, want %q", stale, want)
	}
}

// goStringLiterals returns every string literal of the module's non-test
// Go files.
func goStringLiterals(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range goFiles(t) {
		if f.test {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			if s, ok := stringLit(exprOf(n)); ok {
				out[s] = true
			}
			return true
		})
	}
	return out
}

func exprOf(n ast.Node) ast.Expr {
	e, _ := n.(ast.Expr)
	return e
}

// TestDocumentedMetricsExist: every callqueue_* series the pages name is a
// name the code registers (a histogram's _bucket, _sum and _count too).
func TestDocumentedMetricsExist(t *testing.T) {
	t.Parallel()
	literals := goStringLiterals(t)
	series := regexp.MustCompile(`\bcallqueue_[a-z0-9_]*[a-z0-9]`)
	n := 0
	for page, text := range pageTexts(t) {
		for _, name := range series.FindAllString(text, -1) {
			n++
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && literals[b] {
					base = b
				}
			}
			if !literals[base] {
				t.Errorf("%s names %s, which no code registers", page, name)
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d metric names in the pages: the scan is broken", n)
	}
}

// TestEveryAlertHasARunbook: the alerts table of monitoring.md has one row
// per alert of deploy/prometheus/rules.yml, and no other.
func TestEveryAlertHasARunbook(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*-\s*alert:\s*(\S+)`).FindAllStringSubmatch(string(rules), -1) {
		alerts[m[1]] = true
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts in deploy/prometheus/rules.yml: the scan is broken")
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\|\\s*`(Callqueue[A-Za-z0-9]+)`\\s*\\|").FindAllStringSubmatch(string(page), -1) {
		rows[m[1]] = true
	}
	for a := range alerts {
		if !rows[a] {
			t.Errorf("alert %s has no row in docs/monitoring.md's alerts table: say what it means and what to do", a)
		}
	}
	for a := range rows {
		if !alerts[a] {
			t.Errorf("docs/monitoring.md has a row for %s, which deploy/prometheus/rules.yml does not define", a)
		}
	}
}

// TestDocumentedMakeTargetsExist: every `make TARGET` the pages name is a
// target of the Makefile.
func TestDocumentedMakeTargetsExist(t *testing.T) {
	t.Parallel()
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_-]+):`).FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	for page, text := range pageTexts(t) {
		for _, m := range regexp.MustCompile("`(?:[A-Z_]+=\\S+ )*make ([a-z0-9-]+)").FindAllStringSubmatch(text, -1) {
			if !targets[m[1]] {
				t.Errorf("%s names `make %s`, which the Makefile does not have", page, m[1])
			}
		}
	}
}

// TestDocumentedCommandsExist: every `callqueue COMMAND ...` the pages show
// (in code spans and shell blocks) is a command of the binary's usage, with
// its subcommand and flags.
func TestDocumentedCommandsExist(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "callqueue", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	var usage []string // "callqueue serve [--role ...] [--no-migrate]", ...
	for _, m := range regexp.MustCompile(`(?m)^  (callqueue [a-z].*)$`).FindAllStringSubmatch(string(src), -1) {
		usage = append(usage, m[1])
	}
	if len(usage) < 5 {
		t.Fatalf("found %d usage lines in cmd/callqueue/main.go: the scan is broken", len(usage))
	}
	shown := regexp.MustCompile("`(?:bin/)?(callqueue [a-z][^`]*)`|(?m)^(?:bin/)?(callqueue [a-z][^#\n]*)")
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	n := 0
	for page, text := range pageTexts(t) {
		var code []string // code spans, and shell blocks
		for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text, -1) {
			code = append(code, m[1])
		}
		code = append(code, regexp.MustCompile("`[^`\n]+`").FindAllString(text, -1)...)
		for _, c := range code {
			for _, m := range shown.FindAllStringSubmatch(c, -1) {
				cmd := strings.Fields(m[1] + m[2])
				n++
				if msg := unknownCommand(usage, cmd, word); msg != "" {
					t.Errorf("%s shows `%s`: %s", page, strings.Join(cmd, " "), msg)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("found only %d callqueue commands in the pages: the scan is broken", n)
	}
}

// unknownCommand says what of cmd ("callqueue", command, subcommand or
// flags...) no usage line has, or "".
func unknownCommand(usage, cmd []string, word *regexp.Regexp) string {
	var lines []string
	for _, u := range usage {
		if f := strings.Fields(u); len(f) > 1 && f[1] == cmd[1] {
			lines = append(lines, u)
		}
	}
	if len(lines) == 0 {
		return "no command " + cmd[1]
	}
	for _, arg := range cmd[2:] {
		switch {
		case strings.HasPrefix(arg, "--"):
			flag, _, _ := strings.Cut(arg, "=")
			if !slices.ContainsFunc(lines, func(u string) bool { return strings.Contains(u, flag+" ") || strings.Contains(u, flag+"]") }) {
				return "no flag " + flag
			}
		case strings.Contains(arg, "|"): // dlq list|replay
			for _, alt := range strings.Split(arg, "|") {
				if !slices.ContainsFunc(lines, func(u string) bool { return slices.Contains(strings.Fields(u), alt) }) {
					return "no subcommand " + alt
				}
			}
		case word.MatchString(arg) && arg == cmd[2]:
			if !slices.ContainsFunc(lines, func(u string) bool {
				f := strings.Fields(u)
				return len(f) > 2 && (f[2] == arg || slices.Contains(strings.Split(strings.Trim(f[2], "[]()"), "|"), arg))
			}) {
				return "no subcommand " + arg
			}
		}
	}
	return ""
}

// TestReadmeIsShort: the README stays the map (issue 26 asks for at most
// 200 lines); what it would grow by belongs on a page of docs/.
func TestReadmeIsShort(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n > 200 {
		t.Errorf("README.md has %d lines: move what is not the tour or the map into a page of docs/ (at most 200)", n)
	}
}

// TestReadmeNamesEveryMakeTarget: the README's list of what `make help`
// shows names every target the Makefile documents (a "## " comment).
func TestReadmeNamesEveryMakeTarget(t *testing.T) {
	t.Parallel()
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_-]+):.*## `).FindAllStringSubmatch(string(makefile), -1) {
		if m[1] != "help" && !strings.Contains(string(readme), "`"+m[1]+"`") && !strings.Contains(string(readme), "make "+m[1]) {
			t.Errorf("README.md does not name the make target %s: add it where it lists the targets", m[1])
		}
	}
}
