package api

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// bodyExample is seed 000's body example of a request body, by priority:
// (1) the JSON media type's example, (2) its schema's example (or first of
// examples), (3) an object built from the schema's properties' examples or
// defaults (their type's placeholder when they have neither). nil when the
// operation has no JSON body.
func bodyExample(rb *v3.RequestBody, budget *exampleBudget) json.RawMessage {
	if rb == nil || rb.Content == nil {
		return nil
	}
	media := rb.Content.GetOrZero("application/json")
	if media == nil {
		for typ, m := range rb.Content.FromOldest() {
			if strings.Contains(typ, "json") {
				media = m
				break
			}
		}
	}
	if media == nil {
		return nil
	}
	if v, ok := nodeValue(media.Example); ok {
		return mustJSON(v)
	}
	if media.Schema == nil {
		return nil
	}
	schema := media.Schema.Schema()
	if schema == nil {
		return nil
	}
	if v, ok := nodeValue(schema.Example); ok {
		return mustJSON(v)
	}
	if len(schema.Examples) > 0 {
		if v, ok := nodeValue(schema.Examples[0]); ok {
			return mustJSON(v)
		}
	}
	if v, ok := fromProperties(schema, 0, budget); ok {
		return mustJSON(v)
	}
	return nil
}

// Bounds of a built example body: properties visited and encoded size.
const (
	MaxExampleNodes = 5000
	MaxExampleBytes = 256 << 10
)

// exampleBudget counts the properties an example may still visit; below
// zero, the example was too large.
type exampleBudget struct{ nodes int }

func mustJSON(v any) json.RawMessage {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return raw
}

// nodeValue decodes an example or default into plain JSON values.
func nodeValue(n *yaml.Node) (any, bool) {
	if n == nil {
		return nil, false
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, false
	}
	return jsonable(v), true
}

// jsonable turns YAML-decoded values (map[any]any) into JSON ones.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		out := map[string]any{}
		for k, e := range t {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}

// fromProperties builds an object from a schema's properties (and those
// of its allOf parts).
func fromProperties(schema *base.Schema, depth int, budget *exampleBudget) (any, bool) {
	if schema == nil || depth > 5 || budget.nodes < 0 {
		return nil, false
	}
	out := map[string]any{}
	found := false
	add := func(s *base.Schema) {
		if s == nil || s.Properties == nil {
			return
		}
		for name, proxy := range s.Properties.FromOldest() {
			if budget.nodes--; budget.nodes < 0 {
				return
			}
			found = true
			out[name] = propertyValue(proxy.Schema(), depth, budget)
		}
	}
	add(schema)
	for _, part := range schema.AllOf {
		add(part.Schema())
	}
	return out, found
}

func propertyValue(p *base.Schema, depth int, budget *exampleBudget) any {
	if p == nil {
		return nil
	}
	if v, ok := nodeValue(p.Example); ok {
		return v
	}
	if len(p.Examples) > 0 {
		if v, ok := nodeValue(p.Examples[0]); ok {
			return v
		}
	}
	if v, ok := nodeValue(p.Default); ok {
		return v
	}
	if len(p.Enum) > 0 {
		if v, ok := nodeValue(p.Enum[0]); ok {
			return v
		}
	}
	if v, ok := fromProperties(p, depth+1, budget); ok {
		return v
	}
	typ := ""
	for _, t := range p.Type {
		if t != "null" {
			typ = t
			break
		}
	}
	switch typ {
	case "string":
		return "string"
	case "integer", "number":
		return 0
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return nil
}
