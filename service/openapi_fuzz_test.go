package service_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/jsonschema/v6"

	"github.com/callqueue/callqueue/service/servicetest"
)

// The OpenAPI-driven fuzz test plays a hostile client against every
// operation the published documents (/api/openapi.json and
// /{slug}/openapi.json) describe: valid ids and random ones, query values
// and bodies valid or mutated (missing required members, wrong types,
// nulls, U+0000 and control characters, 70 KB strings, deep nesting,
// bodies that are not JSON). It holds the service to its contract: no 5xx,
// the error shape on every 4xx, every 2xx valid against the response
// schema the document declares, and the process ready afterwards.
//
// `make test` runs a fixed seed and a bounded number of requests;
// `make fuzz` sets CALLQUEUE_FUZZ_SEED (random) and CALLQUEUE_FUZZ_REQUESTS
// (many). A failure prints the seed that replays it.
func TestOpenAPIFuzz(t *testing.T) {
	t.Parallel()
	seed := envUint(t, "CALLQUEUE_FUZZ_SEED", 25)
	requests := int(envUint(t, "CALLQUEUE_FUZZ_REQUESTS", 700))
	t.Logf("seed %d, %d requests (replay: CALLQUEUE_FUZZ_SEED=%d CALLQUEUE_FUZZ_REQUESTS=%d)", seed, requests, seed, requests)

	f := setupFuzz(t, rand.New(rand.NewPCG(seed, seed)))
	ops := append(f.operations(t, f.inst.URL+"/api/openapi.json"),
		f.operations(t, f.inst.URL+"/"+f.integ.Slug+"/openapi.json")...)
	if len(ops) < 40 {
		t.Fatalf("the documents describe %d operations; want the whole admin API and the webhooks", len(ops))
	}
	statuses := map[int]int{}
	for i := range requests {
		// Every operation once before any twice: small runs cover them all.
		op := ops[i%len(ops)]
		if i >= len(ops) {
			op = ops[f.rnd.IntN(len(ops))]
		}
		statuses[f.exercise(t, op)]++
		if t.Failed() {
			t.Fatalf("stopped after request %d (seed %d)", i+1, seed)
		}
	}
	t.Logf("answers by status: %v", statuses)

	var ready struct {
		Status string `json:"status"`
	}
	if code := servicetest.Request(t, "GET", f.inst.URL+"/readyz", nil, nil, &ready); code != http.StatusOK || ready.Status != "ok" {
		t.Fatalf("after the fuzzing /readyz = %d %+v", code, ready)
	}
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// fuzzer is one run: the process, the ids that exist, the documents'
// compiled response schemas.
type fuzzer struct {
	rnd    *rand.Rand
	inst   *servicetest.Instance
	admin  *servicetest.Admin
	integ  servicetest.Integration
	ids    map[string][]string // valid values of path parameters, by resource
	schema *jsonschema.Compiler
	cache  map[string]*jsonschema.Schema
}

// fuzzOp is one operation of a document.
type fuzzOp struct {
	docURL, method, path string // path as the document writes it
	prefix               string // the servers' path the document's paths are under
	op                   map[string]any
	doc                  map[string]any
}

func (o fuzzOp) String() string { return strings.ToUpper(o.method) + " " + o.prefix + o.path }

func setupFuzz(t *testing.T, rnd *rand.Rand) *fuzzer {
	t.Helper()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	inst := env.Start(servicetest.Options{})
	admin := env.Admin(inst, "owner-fuzz")
	integ := admin.CreateIntegration("Fuzz", va, nil)
	spare := admin.CreateIntegration("Fuzz spare", nil, nil)
	f := &fuzzer{rnd: rnd, inst: inst, admin: admin, integ: integ, cache: map[string]*jsonschema.Schema{},
		ids: map[string][]string{"integration": {integ.ID.String(), spare.ID.String()}}}
	// One of each resource, so that valid ids reach the handlers' code.
	var accepted struct {
		CallID uuid.UUID `json:"callId"`
	}
	if code := servicetest.Webhook(t, inst, integ, "call-originate", map[string]any{"phone_number": "+380991234567"}, &accepted); code != http.StatusAccepted {
		t.Fatalf("originate: %d", code)
	}
	servicetest.Eventually(t, 20*time.Second, "the call to be stored", func() bool {
		return admin.Do("GET", "/api/calls/"+accepted.CallID.String(), nil, nil) == http.StatusOK
	})
	f.ids["call"] = []string{accepted.CallID.String()}
	var created struct {
		ID uuid.UUID `json:"id"`
	}
	mustCreate := func(kind, path string, body any) {
		if code := admin.Do("POST", path, body, &created); code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("create %s: %d", kind, code)
		}
		f.ids[kind] = append(f.ids[kind], created.ID.String())
	}
	base := "/api/integrations/" + integ.ID.String()
	mustCreate("campaign", base+"/campaigns", map[string]any{"name": "Fuzz", "recipients": []any{map[string]any{"phoneNumber": "+380991234500"}}})
	mustCreate("handler", "/api/handlers", map[string]any{"integrationId": integ.ID.String(), "name": "retry"})
	mustCreate("secret", base+"/secrets", map[string]any{"key": "FUZZ_KEY", "value": "fuzz-value-1"})
	mustCreate("secret", base+"/credentials", map[string]any{"key": "FUZZ_CREDENTIAL", "value": "fuzz-value-2"})
	// A token of its own, so that revoking it leaves the fuzzer's.
	f.ids["token"] = []string{env.Admin(inst, "owner-fuzz").TokenID.String()}
	f.schema = jsonschema.NewCompiler()
	f.schema.DefaultDraft(jsonschema.Draft2020)
	return f
}

// operations reads a document, registers it for response validation and
// lists its operations in a stable order.
func (f *fuzzer) operations(t *testing.T, docURL string) []fuzzOp {
	t.Helper()
	resp, err := http.Get(docURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", docURL, resp.StatusCode, raw)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", docURL, err)
	}
	forSchemas, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.schema.AddResource(docURL, forSchemas); err != nil {
		t.Fatalf("%s: %v", docURL, err)
	}
	prefix := ""
	if servers, _ := doc["servers"].([]any); len(servers) > 0 {
		s, _ := servers[0].(map[string]any)
		if u, err := url.Parse(fmt.Sprint(s["url"])); err == nil {
			prefix = strings.TrimRight(u.Path, "/")
		}
	}
	paths, _ := doc["paths"].(map[string]any)
	var ops []fuzzOp
	for _, p := range slices.Sorted(mapsKeys(paths)) {
		item, _ := paths[p].(map[string]any)
		for _, m := range []string{"get", "post", "put", "patch", "delete"} {
			if op, ok := item[m].(map[string]any); ok {
				ops = append(ops, fuzzOp{docURL: docURL, method: m, path: p, prefix: prefix, op: op, doc: doc})
			}
		}
	}
	return ops
}

func mapsKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// exercise sends one request for op, valid or mutated, and checks the
// answer; it returns the status.
func (f *fuzzer) exercise(t *testing.T, op fuzzOp) int {
	t.Helper()
	params := f.parameters(op)
	target := op.prefix + pathParam.ReplaceAllStringFunc(op.path, func(m string) string {
		return url.PathEscape(f.pathValue(op, m[1:len(m)-1]))
	})
	query := url.Values{}
	header := http.Header{}
	for _, p := range params {
		name, _ := p["name"].(string)
		schema, _ := p["schema"].(map[string]any)
		switch p["in"] {
		case "query":
			if f.rnd.IntN(3) > 0 {
				query.Set(name, f.queryValue(schema))
			}
		case "header":
			if f.rnd.IntN(2) == 0 {
				header.Set(name, f.headerValue())
			}
		}
	}
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	if f.rnd.IntN(8) == 0 {
		// Kept as the trace id of what the request causes.
		header.Set("X-Request-Id", f.headerValue())
	}
	body, contentType := f.body(op)
	f.authenticate(op, header)
	if contentType != "" {
		header.Set("Content-Type", contentType)
	}
	req, err := http.NewRequest(strings.ToUpper(op.method), f.inst.URL+target, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	req.Header = header
	resp, err := fuzzClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", op, clipBytes([]byte(target)), err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read answer: %v", op, err)
	}
	what := fmt.Sprintf("%s %s with body %s", strings.ToUpper(op.method), clipBytes([]byte(target)), clipBytes(body))
	switch {
	case resp.StatusCode == http.StatusBadGateway && declares(op, resp.StatusCode):
		// A peer the client named could not be fetched (sync-handlers'
		// baseUrl): the one 5xx that is the client's to fix, documented.
		checkErrorShape(t, what, resp, answer)
	case resp.StatusCode >= 500:
		t.Errorf("%s: answered %d %s", what, resp.StatusCode, clipBytes(answer))
	case resp.StatusCode >= 400:
		checkErrorShape(t, what, resp, answer)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		f.checkSuccess(t, op, what, resp, answer)
	}
	return resp.StatusCode
}

// declares reports whether op's document lists status among its answers.
func declares(op fuzzOp, status int) bool {
	responses, _ := op.op["responses"].(map[string]any)
	_, ok := responses[strconv.Itoa(status)]
	return ok
}

var fuzzClient = &http.Client{Timeout: 60 * time.Second}

// authenticate sends the credentials the endpoint wants, most of the time.
func (f *fuzzer) authenticate(op fuzzOp, h http.Header) {
	switch f.rnd.IntN(20) {
	case 0:
		return // none
	case 1:
		h.Set("Authorization", "Bearer not-a-token")
		h.Set("X-Webhook-Token", "not-a-token")
		return
	}
	if strings.HasPrefix(op.prefix+op.path, "/api/") {
		h.Set("Authorization", "Bearer "+f.admin.Token)
	} else {
		h.Set("X-Webhook-Token", f.integ.WebhookToken)
	}
}

// parameters are op's parameters, its path item's included, $refs
// followed.
func (f *fuzzer) parameters(op fuzzOp) []map[string]any {
	var out []map[string]any
	item, _ := op.doc["paths"].(map[string]any)[op.path].(map[string]any)
	for _, list := range []any{item["parameters"], op.op["parameters"]} {
		ps, _ := list.([]any)
		for _, p := range ps {
			if m, ok := resolve(op.doc, p).(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// resolve follows a local {"$ref": "#/..."} to what it names.
func resolve(doc map[string]any, node any) any {
	for range 10 {
		m, ok := node.(map[string]any)
		ref, isRef := m["$ref"].(string)
		if !ok || !isRef || !strings.HasPrefix(ref, "#/") {
			return node
		}
		node = any(doc)
		for _, tok := range strings.Split(ref[2:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			next, _ := node.(map[string]any)
			node = next[tok]
		}
	}
	return node
}

// checkErrorShape wants exactly {"error": {"code": snake_case, "message":
// text, "field"?: non-empty text}} as JSON.
func checkErrorShape(t *testing.T, what string, resp *http.Response, answer []byte) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: %d with Content-Type %q: %s", what, resp.StatusCode, ct, clipBytes(answer))
		return
	}
	var top map[string]map[string]any
	if err := json.Unmarshal(answer, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Errorf("%s: %d is not {\"error\": {...}}: %s", what, resp.StatusCode, clipBytes(answer))
		return
	}
	e := top["error"]
	for k, v := range e {
		s, ok := v.(string)
		switch {
		case k != "code" && k != "message" && k != "field":
			t.Errorf("%s: error member %q: %s", what, k, clipBytes(answer))
		case !ok || s == "":
			t.Errorf("%s: error.%s is %v, want non-empty text: %s", what, k, v, clipBytes(answer))
		}
	}
	if code, _ := e["code"].(string); !errorCode.MatchString(code) {
		t.Errorf("%s: error code %q is not snake_case: %s", what, code, clipBytes(answer))
	}
	if _, ok := e["message"]; !ok {
		t.Errorf("%s: error without a message: %s", what, clipBytes(answer))
	}
}

var errorCode = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkSuccess validates a JSON 2xx against the schema the document
// declares for its status.
func (f *fuzzer) checkSuccess(t *testing.T, op fuzzOp, what string, resp *http.Response, answer []byte) {
	t.Helper()
	responses, _ := op.op["responses"].(map[string]any)
	declared, ok := responses[strconv.Itoa(resp.StatusCode)]
	if !ok {
		t.Errorf("%s: answered %d, which the document does not declare: %s", what, resp.StatusCode, clipBytes(answer))
		return
	}
	pointer := "/paths/" + escapePointer(op.path) + "/" + op.method + "/responses/" + strconv.Itoa(resp.StatusCode)
	if m, _ := declared.(map[string]any); m != nil {
		if ref, ok := m["$ref"].(string); ok {
			pointer = strings.TrimPrefix(ref, "#")
		}
	}
	content, _ := resolve(op.doc, declared).(map[string]any)["content"].(map[string]any)
	if _, ok := content["application/json"]; !ok || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return // not JSON (CSV, HTML, assets): nothing to validate
	}
	loc := op.docURL + "#" + pointer + "/content/application~1json/schema"
	sch, ok := f.cache[loc]
	if !ok {
		var err error
		if sch, err = f.schema.Compile(loc); err != nil {
			t.Fatalf("%s: compile the declared schema %s: %v", what, loc, err)
		}
		f.cache[loc] = sch
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(answer))
	if err != nil {
		t.Errorf("%s: %d is not JSON: %s", what, resp.StatusCode, clipBytes(answer))
		return
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s: %d does not match its declared schema: %v\nanswer: %s", what, resp.StatusCode, err, clipBytes(answer))
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// clipBytes shortens what a failure prints (70 KB strings are sent).
func clipBytes(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%q… (%d bytes)", b[:300], len(b))
	}
	return fmt.Sprintf("%q", b)
}
