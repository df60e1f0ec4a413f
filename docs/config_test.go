package docs_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/ratelimit"
)

// envName is what an environment variable of callqueue's looks like.
var envName = regexp.MustCompile(`^(CALLQUEUE(_[A-Z0-9]+)+|DATABASE_URL|NATS_URL)$`)

// envUses is what the repository's code says about environment variables:
// the names it holds as string literals (with the file of one of them), the
// suffixes it appends to a name held elsewhere ("_PER_S"), and the names of
// JetStream streams, which look like variables but are not.
type envUses struct {
	names    map[string]string // name -> a file that holds it
	suffixes map[string]bool
	streams  map[string]bool
}

// scanEnv reads every Go file of the module (tests and test helpers too,
// not these tests' own examples) and the scripts under scripts/.
func scanEnv(t *testing.T) envUses {
	t.Helper()
	u := envUses{names: map[string]string{}, suffixes: map[string]bool{}, streams: map[string]bool{}}
	suffix := regexp.MustCompile(`^_[A-Z0-9]+(_[A-Z0-9]+)*$`)
	for _, f := range goFiles(t) {
		if strings.HasPrefix(f.rel, "docs/") {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr: // a Stream field of a struct literal
				if k, ok := n.Key.(*ast.Ident); ok && strings.Contains(k.Name, "Stream") {
					if s, ok := stringLit(n.Value); ok {
						u.streams[s] = true
					}
				}
			case *ast.ValueSpec: // a const or var named after a stream
				for i, name := range n.Names {
					if strings.Contains(strings.ToLower(name.Name), "stream") && i < len(n.Values) {
						if s, ok := stringLit(n.Values[i]); ok {
							u.streams[s] = true
						}
					}
				}
			case *ast.CallExpr: // os.Getenv("OTEL_…"): a variable whatever its name
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") {
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "os" && len(n.Args) == 1 {
						if s, ok := stringLit(n.Args[0]); ok {
							u.names[s] = f.rel
						}
					}
				}
			case *ast.BasicLit:
				s, ok := stringLit(n)
				if !ok {
					return true
				}
				// "CALLQUEUE_DATA_DIR=" + dir sets a child's environment.
				s = strings.TrimSuffix(s, "=")
				switch {
				case envName.MatchString(s):
					u.names[s] = f.rel
				case suffix.MatchString(s):
					u.suffixes[s] = true
				}
			}
			return true
		})
	}
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "scripts", "*.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range scripts {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`CALLQUEUE(_[A-Z0-9]+)+`).FindAllString(string(raw), -1) {
			u.names[m] = "scripts/" + filepath.Base(path)
		}
	}
	for s := range u.streams {
		delete(u.names, s)
	}
	return u
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// documentedEnv returns the variables configuration.md lists: the first
// cell of the rows of its Environment and Development and tests tables.
func documentedEnv(t *testing.T, page string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	return capitalRows(section(t, string(raw), "Environment") + section(t, string(raw), "Development and tests"))
}

// capitalRows returns the first cells of text's table rows that are a
// name in capitals.
func capitalRows(text string) map[string]bool {
	row := regexp.MustCompile("(?m)^\\|\\s*`([A-Z][A-Z0-9_]*)`\\s*\\|")
	out := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// section returns the text under a page's "## heading", up to the next.
func section(t *testing.T, page, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("docs/configuration.md has no section %q", heading)
	}
	body, _, _ := strings.Cut(rest, "\n## ")
	return body
}

// envMismatches compares what the code reads with what the page lists. A
// name the code builds from a prefix and a suffix ("CALLQUEUE_RATE_API" +
// "_PER_S") counts as read; a prefix counts as documented when the names
// built from it are.
func envMismatches(code envUses, documented map[string]bool) (undocumented, unread []string) {
	builtFrom := func(name string) bool {
		for prefix := range code.names {
			if rest, ok := strings.CutPrefix(name, prefix); ok && code.suffixes[rest] {
				return true
			}
		}
		return false
	}
	for name := range code.names {
		if documented[name] {
			continue
		}
		prefixOfDocumented := false
		for d := range documented {
			if strings.HasPrefix(d, name+"_") && code.suffixes[strings.TrimPrefix(d, name)] {
				prefixOfDocumented = true
			}
		}
		if !prefixOfDocumented {
			undocumented = append(undocumented, name)
		}
	}
	for name := range documented {
		if _, ok := code.names[name]; !ok && !builtFrom(name) {
			unread = append(unread, name)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unread)
	return undocumented, unread
}

// TestConfigurationReferenceListsEveryVariable: every environment variable
// the code (service, commands, scripts, tests) reads — a CALLQUEUE_* name,
// DATABASE_URL, NATS_URL, or any name given to os.Getenv — is a row of
// configuration.md, and every row names a variable that is still read.
func TestConfigurationReferenceListsEveryVariable(t *testing.T) {
	t.Parallel()
	code := scanEnv(t)
	if len(code.names) < 20 {
		t.Fatalf("found only %d variables in the code: the scan is broken", len(code.names))
	}
	undocumented, unread := envMismatches(code, documentedEnv(t, "configuration.md"))
	for _, name := range undocumented {
		t.Errorf("%s (read in %s) is not in docs/configuration.md: add a row with its default and meaning", name, code.names[name])
	}
	for _, name := range unread {
		t.Errorf("docs/configuration.md lists %s, which no code reads any more: remove its row", name)
	}
}

// TestEnvCheckerFindsDrift: the comparison itself, both ways, with a name
// built from a prefix and a suffix.
func TestEnvCheckerFindsDrift(t *testing.T) {
	t.Parallel()
	code := envUses{
		names:    map[string]string{"CALLQUEUE_A": "a.go", "CALLQUEUE_RATE_X": "b.go", "CALLQUEUE_NEW": "c.go"},
		suffixes: map[string]bool{"_PER_S": true},
	}
	documented := map[string]bool{"CALLQUEUE_A": true, "CALLQUEUE_RATE_X_PER_S": true, "CALLQUEUE_GONE": true}
	undocumented, unread := envMismatches(code, documented)
	if !slices.Equal(undocumented, []string{"CALLQUEUE_NEW"}) || !slices.Equal(unread, []string{"CALLQUEUE_GONE"}) {
		t.Errorf("undocumented %v, unread %v; want [CALLQUEUE_NEW], [CALLQUEUE_GONE]", undocumented, unread)
	}
}

// TestConfigurationReferenceListsEveryKey: every integration config key the
// config package defines (its Key* constants) is a row of the keys table,
// every row is such a key, and each known key's default is shown as the
// code marshals it.
func TestConfigurationReferenceListsEveryKey(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)

	keys := map[string]bool{}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if strings.HasPrefix(name.Name, "Key") && i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i]); ok {
							keys[s] = true
						}
					}
				}
			}
		}
	}
	if len(keys) < len(config.KnownKeys) {
		t.Fatalf("found %d keys in config/, fewer than config.KnownKeys: the scan is broken", len(keys))
	}

	row := regexp.MustCompile("(?m)^\\|\\s*`([a-z][a-z0-9_]*)`\\s*\\|")
	rows := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(page, -1) {
		rows[m[1]] = true
	}
	for k := range keys {
		if !rows[k] {
			t.Errorf("config key %q is not a row of docs/configuration.md's keys table: add its fields and bounds", k)
		}
	}
	for k := range rows {
		if !keys[k] {
			t.Errorf("docs/configuration.md has a row for config key %q, which config/ does not define", k)
		}
	}

	defaults := config.Defaults()
	for _, k := range config.KnownKeys {
		b, err := json.Marshal(defaults[k])
		if err != nil {
			t.Fatal(err)
		}
		if line := strconv.Quote(k) + ": " + string(b); !strings.Contains(page, "\n"+line+"\n") {
			t.Errorf("docs/configuration.md does not show %s's default as the code has it; want the line\n%s", k, line)
		}
	}
}

// TestConfigurationDefaultsAreTheCode: each service variable's default in
// configuration.md (the first `value` of its default cell, or "empty") is
// what config.FromEnv reads when the variable is not set.
func TestConfigurationDefaultsAreTheCode(t *testing.T) {
	raw, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // name -> default cell
	for _, m := range regexp.MustCompile("(?m)^\\|\\s*`([A-Z][A-Z0-9_]*)`\\s*\\|([^|]*)\\|").FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	for name := range documented {
		t.Setenv(name, "")
	}
	s := config.FromEnv()
	rate := func(r ratelimit.Rule) (string, string) {
		return strconv.FormatFloat(r.PerSecond, 'f', -1, 64), strconv.Itoa(r.Burst)
	}
	code := map[string]string{
		"DATABASE_URL": s.DatabaseURL, "NATS_URL": s.NATSURL,
		"CALLQUEUE_DATA_DIR": s.DataDir, "CALLQUEUE_HTTP_ADDR": s.HTTPAddr,
		"CALLQUEUE_LOG_LEVEL": s.LogLevel, "CALLQUEUE_LOG_FORMAT": s.LogFormat, "CALLQUEUE_TIMEZONE": s.Timezone,
		"CALLQUEUE_NATS_LISTEN": s.NATSListen, "CALLQUEUE_NATS_SYNC": s.NATSSync,
		"CALLQUEUE_NATS_REPLICAS": strconv.Itoa(s.NATSReplicas), "CALLQUEUE_STREAM_MAX_MB": strconv.FormatInt(s.StreamMaxBytes>>20, 10),
		"CALLQUEUE_NATS_TOKEN": s.NATSAuth.Token, "CALLQUEUE_NATS_CREDS": s.NATSAuth.Creds, "CALLQUEUE_NATS_NKEY": s.NATSAuth.NkeySeed,
		"CALLQUEUE_NATS_TLS_CA": s.NATSAuth.TLSCA, "CALLQUEUE_NATS_TLS_CERT": s.NATSAuth.TLSCert, "CALLQUEUE_NATS_TLS_KEY": s.NATSAuth.TLSKey,
		"CALLQUEUE_ALLOW_PRIVATE_EGRESS": strconv.FormatBool(s.AllowPrivateEgress),
		"CALLQUEUE_METRICS_TOKEN":        s.MetricsToken, "CALLQUEUE_TRUSTED_PROXIES": s.TrustedProxies,
		"CALLQUEUE_METRICS_PER_INTEGRATION":  string(s.Metrics.PerIntegration),
		"CALLQUEUE_METRICS_TOP_INTEGRATIONS": strconv.Itoa(s.Metrics.TopIntegrations),
		// Zero is "the default" to the service, which takes the ratelimit package's.
		"CALLQUEUE_UNVERIFIED_BODY_BYTES": strconv.FormatInt(cmp.Or(s.UnverifiedBodyBytes, ratelimit.UnverifiedBodyBytesDefault), 10),
		"CALLQUEUE_CALLER_CACHE_ENTRIES":  strconv.Itoa(cmp.Or(s.CallerCacheEntries, config.CallerCacheEntriesDefault)),
	}
	code["CALLQUEUE_RATE_WEBHOOK_PER_S"], code["CALLQUEUE_RATE_WEBHOOK_BURST"] = rate(s.RateLimits.WebhookIntegration)
	code["CALLQUEUE_RATE_WEBHOOK_IP_PER_S"], code["CALLQUEUE_RATE_WEBHOOK_IP_BURST"] = rate(s.RateLimits.WebhookIP)
	code["CALLQUEUE_RATE_API_PER_S"], code["CALLQUEUE_RATE_API_BURST"] = rate(s.RateLimits.APIIP)
	code["CALLQUEUE_RATE_API_TOKEN_PER_S"], code["CALLQUEUE_RATE_API_TOKEN_BURST"] = rate(s.RateLimits.APIToken)

	first := regexp.MustCompile("^`([^`]*)`")
	for name, want := range code {
		cell, ok := documented[name]
		if !ok {
			t.Errorf("%s is not a row of docs/configuration.md", name)
			continue
		}
		var got string
		switch m := first.FindStringSubmatch(cell); {
		case m != nil:
			got = m[1]
		case strings.HasPrefix(cell, "empty"), strings.HasPrefix(cell, "—"):
			got = ""
		default:
			t.Errorf("%s: default cell %q is neither `value`, empty nor —", name, cell)
			continue
		}
		if got != want {
			t.Errorf("docs/configuration.md gives %s the default %q; config.FromEnv reads %q", name, got, want)
		}
	}
}

// TestConfigurationBoundsAreTheCode: the bounds configuration.md gives are
// the config package's constants.
func TestConfigurationBoundsAreTheCode(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	// 2,592,000 reads as 2592000.
	page := regexp.MustCompile(`(\d),(\d{3})`).ReplaceAllString(string(raw), "$1$2")
	page = regexp.MustCompile(`(\d),(\d{3})`).ReplaceAllString(page, "$1$2")
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	for _, want := range []string{
		fmt.Sprintf("(%d – %d MiB)", config.StreamMaxMBMin, config.StreamMaxMBMax),
		fmt.Sprintf("caller contexts (0 – %d)", config.CallerCacheEntriesMax),
		fmt.Sprintf("`concurrency_limit` 1–%d", config.ConcurrencyLimitMax),
		fmt.Sprintf("`min_call_duration_secs` 0–%d", config.MinCallDurationMaxSecs),
		fmt.Sprintf("`max_attempts` 1–%d", config.MaxAttemptsMax),
		fmt.Sprintf("`retry_delays_secs` 1–%d delays of 0–%d s", config.RetryDelaysMaxCount, config.RetryDelayMaxSecs),
		fmt.Sprintf("`max_call_duration_secs` %d–%d", config.MaxCallDurationMinSecs, config.MaxCallDurationMaxSecs),
		fmt.Sprintf("`ring_timeout_secs` (default %d, at most %d)", config.RingTimeoutDefault, config.RingTimeoutMax),
		fmt.Sprintf("`folder_id` (at most %d characters)", config.FolderIDMaxLen),
		fmt.Sprintf("labels of 1–%d characters", config.StatusLabelMaxLen),
		fmt.Sprintf("`retention_days` (%d–%d", config.RetentionDaysMin, config.RetentionDaysMax),
		fmt.Sprintf("`init_deadline_ms` (0–10000; default %d)", ms(config.AgentInitDeadlineDefault)),
		fmt.Sprintf("`timeout_ms` (0–10000; default %d)", ms(config.PredialTimeoutDefault)),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("docs/configuration.md does not say %q, as the code has it", want)
		}
	}
}

// TestConfigurationReferenceListsEveryField: the keys table names every
// field of every known key's value, as the config types' JSON tags have it
// (the simulator's weights and ranges are described as a whole).
func TestConfigurationReferenceListsEveryField(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := func(key string) string {
		m := regexp.MustCompile("(?m)^\\|\\s*`" + regexp.QuoteMeta(key) + "`\\s*\\|.*$").FindString(string(raw))
		if m == "" {
			t.Errorf("docs/configuration.md has no row for config key %q", key)
		}
		return m
	}
	for key, types := range map[string][]any{
		config.KeyCallHandling: {config.CallHandling{}, config.CallingWindow{}, config.RetryRule{}},
		config.KeyVoice:        {config.Voice{}},
		config.KeyCRM:          {config.CRM{}},
		config.KeyAgent:        {config.Agent{}},
		config.KeyData:         {config.Data{}},
		config.KeyPredial:      {config.Predial{}},
	} {
		text := row(key)
		for _, v := range types {
			typ := reflect.TypeOf(v)
			for i := range typ.NumField() {
				f := typ.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if f.Anonymous || !f.IsExported() || name == "" || name == "-" {
					continue
				}
				if !strings.Contains(text, "`"+name+"`") {
					t.Errorf("docs/configuration.md's row for %s does not name its field %s (%s.%s)", key, name, typ.Name(), f.Name)
				}
			}
		}
	}
}

// TestConfigurationReferenceListsEverySecret: the integration secrets the
// service reads — a literal given to SecretValue, a constant named after a
// secret, the dialler's secret — are the rows of configuration.md's
// Integration secrets table, and no other.
func TestConfigurationReferenceListsEverySecret(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := capitalRows(section(t, string(raw), "Integration secrets"))

	code := map[string]string{} // name -> where
	for _, p := range []string{config.ProviderVA, config.ProviderElevenLabs} {
		if k := (config.Voice{Provider: p}).SecretKey(); k != "" {
			code[k] = "config.Voice.SecretKey"
		}
	}
	name := regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$`)
	for _, f := range goFiles(t) {
		// Tests, their helpers (…test/) and the benchmark set secrets; they do not read them.
		if f.test || strings.Contains(f.rel, "test/") || strings.HasPrefix(f.rel, "cmd/callqueue-bench/") {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr: // a literal given to SecretValue
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "SecretValue" && len(n.Args) > 0 {
					if s, ok := stringLit(n.Args[len(n.Args)-1]); ok && name.MatchString(s) {
						code[s] = f.rel
					}
				}
			case *ast.ValueSpec: // a constant named Secret… or …SecretKey
				for i, id := range n.Names {
					if strings.HasPrefix(id.Name, "Secret") || strings.HasSuffix(id.Name, "SecretKey") {
						if i < len(n.Values) {
							if s, ok := stringLit(n.Values[i]); ok && name.MatchString(s) {
								code[s] = f.rel
							}
						}
					}
				}
			}
			return true
		})
	}
	if len(code) < 5 {
		t.Fatalf("found only %d secrets in the code: the scan is broken", len(code))
	}
	for s, where := range code {
		if !documented[s] {
			t.Errorf("the secret %s (read in %s) is not in docs/configuration.md's Integration secrets table", s, where)
		}
	}
	for s := range documented {
		if _, ok := code[s]; !ok {
			t.Errorf("docs/configuration.md lists the secret %s, which no code reads", s)
		}
	}
}
