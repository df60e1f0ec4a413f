package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/pgtext"
	"github.com/callqueue/callqueue/store"
)

// handlersFromSpec derives one handler per path and method of an OpenAPI
// 3.x document, in the order they appear: named after the last literal
// path segment (the operationId, or method and segment, when that is taken
// or there is none), with the request it describes as defaultArgs. field
// is the request field the document came from, named by a 422 about it.
func handlersFromSpec(raw []byte, integrationName, field string) (specs []store.HandlerSpec, err error) {
	defer func() {
		// Everything runs in this goroutine, so a parser panic on a hostile
		// document is recovered here: a document we cannot read.
		if v := recover(); v != nil {
			specs, err = nil, invalidSpec("the OpenAPI document cannot be read")
		}
	}()
	doc, err := parseSpec(raw)
	if err != nil {
		return nil, err
	}
	ops, err := doc.operations()
	if err != nil {
		return nil, err
	}
	specs = []store.HandlerSpec{}
	taken := map[string]bool{}
	total := &exampleBudget{nodes: maxSpecExampleNodes, bytes: maxSpecExampleBytes}
	for _, o := range ops {
		name := handlerName(o.path, o.method, o.operationID, taken)
		taken[name] = true
		budget := &exampleBudget{nodes: min(MaxExampleNodes, total.nodes), bytes: min(MaxExampleBytes, total.bytes)}
		start := *budget
		body, err := doc.bodyExample(o.op, budget)
		if errors.Is(err, errBudget) {
			return nil, jsonhttp.Errorf(http.StatusUnprocessableEntity, "invalid_spec", field,
				"the example body of %s %s is larger than %d properties or %d bytes (or the document's examples together are)",
				strings.ToUpper(o.method), clip(o.path), MaxExampleNodes, MaxExampleBytes)
		}
		if err != nil {
			return nil, err
		}
		total.spend(start.nodes-budget.nodes, start.bytes-budget.bytes)
		args, err := json.Marshal(requestArgs{Method: strings.ToUpper(o.method),
			URL: integrationName + "/" + strings.TrimPrefix(o.path, "/"), Body: body})
		if err != nil {
			return nil, invalidSpec("the example of %s %s cannot be encoded", strings.ToUpper(o.method), clip(o.path))
		}
		// The document is a peer's: its examples are kept without what
		// Postgres cannot store.
		specs = append(specs, store.HandlerSpec{Name: name, DefaultArgs: pgtext.CleanJSON(args)})
	}
	return specs, nil
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
