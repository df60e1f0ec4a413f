package service_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/service/servicetest"
)

// TestDocsRequestsRun runs the curl commands of the documentation's shell
// blocks (docs/*.md) in order, page by page, against a real callqueue, as a
// reader would paste them with the variables the banner of `make run` gives:
// CQ, TOKEN, ID, WH, and what the pages export (CAMPAIGN) or write
// (leads.csv). Every request must succeed (a 2xx), and where a page shows an
// answer ("# → {...}") the answer must hold it. A page whose request stops
// working fails here rather than in a reader's terminal.
func TestDocsRequestsRun(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "docs")
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, page := range pages {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		blocks := shellBlocks(string(raw))
		if !strings.Contains(strings.Join(blocks, "\n"), "$CQ") {
			continue
		}
		t.Run(filepath.Base(page), func(t *testing.T) {
			// Each page starts from an integration of its own, as after `make run`.
			var integ servicetest.Integration
			if code := admin.Do("POST", "/api/integrations", map[string]any{"name": "Docs " + filepath.Base(page)}, &integ); code != http.StatusCreated {
				t.Fatalf("create integration: %d", code)
			}
			sh := &docShell{t: t, vars: map[string]string{"CQ": in.URL, "TOKEN": admin.Token, "ID": integ.ID.String(),
				"WH": integ.WebhookToken}, slug: integ.Slug, files: map[string]string{}}
			for _, block := range blocks {
				sh.run(block)
			}
			ran += sh.requests
		})
	}
	if ran < 20 {
		t.Fatalf("ran only %d requests from the documentation: the scan is broken", ran)
	}
}

// shellBlocks returns the bodies of a page's ```sh blocks.
func shellBlocks(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// docShell plays the few shell forms the pages use: export, a heredoc into
// a file, curl (alone or under watch) and a comment showing the answer.
type docShell struct {
	t        *testing.T
	vars     map[string]string
	files    map[string]string
	slug     string
	requests int
	lastID   string // the "id" (or "callId") of the last answer
	lastCall string // the "callId" of the last call-originate
	last     any    // the last answer, decoded
}

func (sh *docShell) run(block string) {
	lines := strings.Split(block, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "# → "):
			sh.expect(strings.TrimPrefix(line, "# → "))
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "cat > "):
			// cat > name <<'END' ... END
			m := regexp.MustCompile(`^cat > (\S+) <<'?(\w+)'?$`).FindStringSubmatch(line)
			if m == nil {
				sh.t.Fatalf("cannot read %q", line)
			}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != m[2]; i++ {
				body = append(body, lines[i])
			}
			sh.files[m[1]] = strings.Join(body, "\n") + "\n"
		case strings.HasPrefix(line, "export "):
			for _, assign := range strings.Fields(strings.SplitN(strings.TrimPrefix(line, "export "), "#", 2)[0]) {
				name, value, _ := strings.Cut(assign, "=")
				if _, set := sh.vars[name]; set && (name == "CQ" || name == "TOKEN" || name == "ID" || name == "WH") {
					continue // the banner's values, which the test has
				}
				if value == "…" { // "its id": the answer just shown
					value = sh.lastID
				}
				sh.vars[name] = value
			}
		default:
			// A command, continued by backslashes or by a quote left open.
			cmd := lines[i]
			for (strings.HasSuffix(cmd, "\\") || strings.Count(cmd, "'")%2 == 1) && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + "\n" + lines[i]
			}
			sh.command(cmd)
		}
	}
}

// command runs one curl command (or the curl a watch repeats); other
// commands (the role processes of operating.md) are not requests.
func (sh *docShell) command(cmd string) {
	words := shellWords(sh.t, cmd)
	if len(words) > 1 && words[0] == "watch" {
		inner := words[len(words)-1]
		inner, _, _ = strings.Cut(inner, "|")
		words = shellWords(sh.t, inner)
	}
	if len(words) == 0 || words[0] != "curl" {
		return
	}
	method, url := "", ""
	headers := map[string]string{}
	var body string
	hasBody := false
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "-s", "-sS", "-S", "-i", "-v", "-f", "-sf", "-fsS", "--fail", "-L", "--silent", "--show-error":
		case "-X":
			i++
			method = words[i]
		case "-H":
			i++
			k, v, _ := strings.Cut(sh.expand(words[i]), ":")
			headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		case "-d", "--data", "--data-binary":
			i++
			body, hasBody = sh.expand(words[i]), true
			if name, ok := strings.CutPrefix(body, "@"); ok {
				f, found := sh.files[name]
				if !found {
					sh.t.Fatalf("%s reads %s, which no block wrote", cmd, name)
				}
				body = f
			}
		default:
			if strings.HasPrefix(w, "-") {
				sh.t.Fatalf("%s: curl option %s is not understood here", cmd, w)
			}
			url = sh.expand(w)
		}
	}
	if method == "" {
		method = "GET"
		if hasBody {
			method = "POST"
		}
	}
	if _, ok := headers["Content-Type"]; !ok && hasBody {
		headers["Content-Type"] = "application/x-www-form-urlencoded" // what curl -d sends
	}
	var payload any
	if hasBody {
		payload = body
	}
	status, _, raw := servicetest.Send(sh.t, http.DefaultClient, method, url, headers, payload)
	sh.requests++
	sh.t.Logf("%s %s → %d", method, url, status)
	if status < 200 || status > 299 {
		sh.t.Errorf("%s\n\t→ %d %s", strings.TrimSpace(cmd), status, raw)
		return
	}
	sh.last = nil
	if json.Unmarshal(raw, &sh.last) == nil {
		if m, ok := sh.last.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				sh.lastID = id
			}
			if id, ok := m["callId"].(string); ok {
				sh.lastID, sh.lastCall = id, id
			}
		}
	}
}

// expand substitutes $VAR, the demo slug and the <callId> the pages use.
func (sh *docShell) expand(s string) string {
	s = regexp.MustCompile(`\$([A-Z]+)`).ReplaceAllStringFunc(s, func(v string) string {
		if val, ok := sh.vars[v[1:]]; ok {
			return val
		}
		sh.t.Fatalf("%s is not set by the page", v)
		return ""
	})
	s = strings.ReplaceAll(s, "/demo/", "/"+sh.slug+"/")
	return strings.ReplaceAll(s, "<callId>", sh.lastCall)
}

// expect checks the last answer against the one a page shows after
// "# → ": every member the page shows, with its value.
func (sh *docShell) expect(shown string) {
	var want any
	if err := json.Unmarshal([]byte(shown), &want); err != nil {
		return // prose, not an answer
	}
	if !contains(sh.last, want) {
		got, _ := json.Marshal(sh.last)
		sh.t.Errorf("the page shows the answer %s; the service answered %s", shown, got)
	}
}

// contains reports whether got holds every member of want, recursively.
func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !contains(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

// shellWords splits a command as a POSIX shell would for the pages' forms:
// words separated by blanks, '…' and "…" quoted, backslash-newline joined,
// a # at a word's start ending the command.
func shellWords(t *testing.T, cmd string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c == '\\' && i+1 < len(cmd) && cmd[i+1] == '\n':
			i++
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words
		case c == '\'' || c == '"':
			end := strings.IndexByte(cmd[i+1:], c)
			if end < 0 {
				t.Fatalf("unclosed quote in %q", cmd)
			}
			cur.WriteString(cmd[i+1 : i+1+end])
			i += end + 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
