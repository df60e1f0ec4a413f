package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/jsonhttp"
)

// explodingSpec is a few KB: each of levels schemas has width properties
// that all refer to the next level, so a naive example has width^levels
// leaves.
func explodingSpec(width, levels int) []byte {
	schemas := map[string]any{}
	for l := range levels {
		props := map[string]any{}
		for p := range width {
			if l == levels-1 {
				props[fmt.Sprintf("p%d", p)] = map[string]any{"type": "string"}
			} else {
				props[fmt.Sprintf("p%d", p)] = map[string]any{"$ref": fmt.Sprintf("#/components/schemas/L%d", l+1)}
			}
		}
		schemas[fmt.Sprintf("L%d", l)] = map[string]any{"type": "object", "properties": props}
	}
	spec := map[string]any{
		"openapi": "3.1.0", "info": map[string]any{"title": "bomb", "version": "1"},
		"paths": map[string]any{"/boom": map[string]any{"post": map[string]any{
			"requestBody": map[string]any{"content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/L0"}}}},
			"responses": map[string]any{"200": map[string]any{"description": "ok"}}}}},
		"components": map[string]any{"schemas": schemas},
	}
	raw, _ := json.Marshal(spec)
	return raw
}

// aliasBomb is a YAML document whose example is a "billion laughs": each
// level is a list of ten aliases of the one before.
func aliasBomb(levels int) []byte {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: laughs, version: '1'}\nx-laughs:\n  l0: &l0 [\"ha ha ha ha ha ha ha ha\"]\n")
	for l := 1; l <= levels; l++ {
		fmt.Fprintf(&b, "  l%d: &l%d [", l, l)
		for i := range 10 {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", l-1)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "paths:\n  /laugh:\n    post:\n      requestBody:\n        content:\n          application/json:\n            example: *l%d\n", levels)
	return []byte(b.String())
}

// refusedFor checks err is a 422 naming field.
func refusedFor(t *testing.T, what string, err error, field string) {
	t.Helper()
	var e *jsonhttp.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Code != "invalid_spec" {
		t.Fatalf("%s: %v, want a 422 invalid_spec", what, err)
	}
	if field != "" && e.Field != field {
		t.Errorf("%s: field %q, want %q", what, e.Field, field)
	}
}

// TestExplodingSpecIsRefused: a few-KB spec whose nested $refs describe
// 50^6 nodes is refused (422 naming the field the spec came from) after a
// bounded amount of work: the allocations stay within a generous bound,
// where building it would need terabytes. A modest nested spec still builds.
func TestExplodingSpecIsRefused(t *testing.T) {
	// Not parallel: the allocation count is the whole process's.
	raw := explodingSpec(50, 6)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := handlersFromSpec(raw, "bomb", "baseUrl")
	runtime.ReadMemStats(&after)
	refusedFor(t, fmt.Sprintf("a %d-byte spec of 50^6 nodes", len(raw)), err, "baseUrl")
	const bound = 64 << 20
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > bound {
		t.Errorf("refusing the spec allocated %d bytes, want under %d", alloc, bound)
	}
	if !strings.Contains(err.Error(), "POST /boom") {
		t.Errorf("the refusal does not name the operation: %v", err)
	}

	specs, err := handlersFromSpec(explodingSpec(3, 3), "small", "baseUrl")
	if err != nil || len(specs) != 1 {
		t.Fatalf("small nested spec: %v, %v", specs, err)
	}
	var args requestArgs
	if err := json.Unmarshal(specs[0].DefaultArgs, &args); err != nil {
		t.Fatal(err)
	}
	var body map[string]map[string]map[string]string
	if err := json.Unmarshal(args.Body, &body); err != nil || body["p2"]["p1"]["p0"] != "string" {
		t.Errorf("small nested example %s: %v", args.Body, err)
	}
}

// TestHostileSpecsAreRefused: documents built to make a reader loop,
// explode or reach out are refused with a 422, none of them slowly.
func TestHostileSpecsAreRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		raw  []byte
	}{
		{"billion laughs through YAML aliases", aliasBomb(9)},
		{"a reference cycle", []byte(`{"openapi": "3.0.3", "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {
			"schema": {"$ref": "#/components/schemas/A"}}}}}}}, "components": {"schemas": {"A": {"$ref": "#/components/schemas/B"},
			"B": {"$ref": "#/components/schemas/A"}}}}`)},
		{"a remote reference", []byte(`{"openapi": "3.1.0", "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {
			"schema": {"$ref": "http://169.254.169.254/latest/meta-data"}}}}}}}}`)},
		{"a reference to nothing", []byte(`{"openapi": "3.1.0", "paths": {"/a": {"$ref": "#/components/pathItems/missing"}}}`)},
		{"paths not an object", []byte(`{"openapi": "3.1.0", "paths": ["/a"]}`)},
		{"an operation not an object", []byte(`{"openapi": "3.1.0", "paths": {"/a": {"get": 7}}}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := handlersFromSpec(c.raw, "hostile", "baseUrl")
			refusedFor(t, c.name, err, "")
		})
	}
}

// TestSelfReferencingSchemaBuildsToItsDepth: a schema that refers to
// itself (a tree) is not an error: its example stops at the depth bound.
func TestSelfReferencingSchemaBuildsToItsDepth(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"openapi": "3.1.0", "paths": {"/tree": {"post": {"requestBody": {"content": {"application/json": {
		"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
		"components": {"schemas": {"Node": {"type": "object", "properties": {"name": {"type": "string"},
			"child": {"$ref": "#/components/schemas/Node"}}}}}}`)
	specs, err := handlersFromSpec(raw, "tree", "baseUrl")
	if err != nil || len(specs) != 1 {
		t.Fatalf("self-referencing schema: %v, %v", specs, err)
	}
	if depth := strings.Count(string(specs[0].DefaultArgs), `"child"`); depth < 3 || depth > maxSchemaDepth+2 {
		t.Errorf("tree example %s nests %d children", specs[0].DefaultArgs, depth)
	}
}

func FuzzHandlersFromSpec(f *testing.F) {
	f.Add(explodingSpec(3, 3))
	f.Add(explodingSpec(8, 6))
	f.Add(aliasBomb(3))
	f.Add([]byte(`{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}`))
	f.Add([]byte(`openapi: 3.1.0`))
	f.Add([]byte(`{"openapi": "3.1.0", "paths": {"/a": {"$ref": "#/paths/~1b"}, "/b": {"post": {"requestBody": {"$ref": "#/components/requestBodies/R"}}}},
		"components": {"requestBodies": {"R": {"content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/S"}],
		"properties": {"x": {"type": ["null", "integer"]}}}}}}}, "schemas": {"S": {"properties": {"s": {"$ref": "#/components/schemas/S"}}}}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		specs, err := handlersFromSpec(raw, "fuzz", "baseUrl")
		if err != nil {
			var e *jsonhttp.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
				t.Fatalf("a document is refused with %v, want a 422", err)
			}
			return
		}
		total := 0
		for _, s := range specs {
			if !json.Valid(s.DefaultArgs) {
				t.Fatalf("handler %s has invalid default args %q", s.Name, s.DefaultArgs)
			}
			if len(s.DefaultArgs) > MaxExampleBytes+4096 {
				t.Fatalf("handler %s has %d bytes of default args", s.Name, len(s.DefaultArgs))
			}
			total += len(s.DefaultArgs)
		}
		if total > maxSpecExampleBytes+len(specs)*4096 {
			t.Fatalf("%d handlers hold %d bytes of default args", len(specs), total)
		}
	})
}
