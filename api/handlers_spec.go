package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pb33f/libopenapi"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/datamodel/low"
	lowv3 "github.com/pb33f/libopenapi/datamodel/low/v3"

	"github.com/callqueue/callqueue/store"
)

// handlersFromSpec derives one handler per path and method of an OpenAPI
// 3.x document, in the order they appear: named after the last literal
// path segment (the operationId, or method and segment, when that is taken
// or there is none), with the request it describes as defaultArgs.
func handlersFromSpec(raw []byte, integrationName string) (specs []store.HandlerSpec, err error) {
	defer func() {
		// A library panic on a hostile document is a document we cannot read.
		if v := recover(); v != nil {
			specs, err = nil, invalidSpec("the OpenAPI document cannot be read: %v", v)
		}
	}()
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		return nil, invalidSpec("not an OpenAPI document: %v", err)
	}
	if v := doc.GetVersion(); !strings.HasPrefix(v, "3.") {
		return nil, invalidSpec("OpenAPI version %q is not supported: 3.0 or 3.1 are", v)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, invalidSpec("the OpenAPI document cannot be read: %v", err)
	}
	if model == nil || model.Model.Paths == nil || model.Model.Paths.PathItems == nil {
		return []store.HandlerSpec{}, nil
	}
	taken := map[string]bool{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for _, o := range operationsInOrder(item) {
			name := handlerName(path, o.method, o.op.OperationId, taken)
			taken[name] = true
			budget := &exampleBudget{nodes: MaxExampleNodes}
			body := bodyExample(o.op.RequestBody, budget)
			if budget.nodes < 0 || len(body) > MaxExampleBytes {
				// Nested $refs multiply: a few KB of spec can describe
				// billions of nodes. The example is refused, not truncated.
				return nil, invalidSpec("the example body of %s %s is larger than %d properties or %d bytes",
					strings.ToUpper(o.method), path, MaxExampleNodes, MaxExampleBytes)
			}
			args, err := json.Marshal(requestArgs{Method: strings.ToUpper(o.method),
				URL: integrationName + "/" + strings.TrimPrefix(path, "/"), Body: body})
			if err != nil {
				return nil, invalidSpec("the example of %s %s cannot be encoded: %v", strings.ToUpper(o.method), path, err)
			}
			specs = append(specs, store.HandlerSpec{Name: name, DefaultArgs: args})
		}
	}
	return specs, nil
}

type methodOp struct {
	method string
	op     *v3.Operation
	line   int
	column int
}

// operationsInOrder lists a path item's operations in document order
// (line, then column: a one-line JSON document has one line).
func operationsInOrder(item *v3.PathItem) []methodOp {
	var out []methodOp
	lowItem := item.GoLow()
	refs := map[string]low.NodeReference[*lowv3.Operation]{}
	if lowItem != nil {
		refs = map[string]low.NodeReference[*lowv3.Operation]{"get": lowItem.Get, "put": lowItem.Put, "post": lowItem.Post,
			"delete": lowItem.Delete, "options": lowItem.Options, "head": lowItem.Head, "patch": lowItem.Patch, "trace": lowItem.Trace}
	}
	for method, op := range item.GetOperations().FromOldest() {
		m := methodOp{method: strings.ToLower(method), op: op}
		if ref, ok := refs[m.method]; ok && ref.KeyNode != nil {
			m.line, m.column = ref.KeyNode.Line, ref.KeyNode.Column
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b methodOp) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return a.column - b.column
	})
	return out
}

var nonNameChars = regexp.MustCompile(`[^A-Za-z0-9._:-]+`)

// sanitizeName makes s a valid handler name ("" if nothing is left).
func sanitizeName(s string) string {
	s = strings.Trim(nonNameChars.ReplaceAllString(s, "-"), "-._:")
	if len(s) > 128 {
		s = strings.TrimRight(s[:128], "-._:")
	}
	return s
}

func handlerName(path, method, operationID string, taken map[string]bool) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	last := segments[len(segments)-1]
	var literal string // the last segment that is not a parameter
	for _, seg := range slices.Backward(segments) {
		if seg != "" && !strings.HasPrefix(seg, "{") {
			literal = seg
			break
		}
	}
	candidates := []string{sanitizeName(literal), sanitizeName(operationID)}
	if literal != last {
		// /orders/{id}: "orders" would misname it; the operation knows better.
		candidates[0], candidates[1] = candidates[1], candidates[0]
	}
	candidates = append(candidates, sanitizeName(strings.ToLower(method)+"-"+literal), sanitizeName(strings.ToLower(method)+"-"+path))
	for _, c := range candidates {
		if c != "" && !taken[c] {
			return c
		}
	}
	base := cmpOr(candidates...)
	if base == "" {
		base = "handler"
	}
	for n := 2; ; n++ {
		if c := fmt.Sprintf("%s-%d", base, n); !taken[c] {
			return c
		}
	}
}

func cmpOr(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
