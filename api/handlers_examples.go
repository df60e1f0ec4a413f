package api

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/pb33f/go-yaml"
)

// Bounds of a built example body: nodes visited (properties, values,
// references followed) and bytes of text in it, per operation and over the
// whole document. Nested $refs multiply: a few KB of spec can describe
// billions of nodes, so building stops at the budget and the spec is
// refused (422), never truncated.
const (
	MaxExampleNodes = 5000
	MaxExampleBytes = 256 << 10
	// The whole document's examples together.
	maxSpecExampleNodes = 20 * MaxExampleNodes
	maxSpecExampleBytes = 4 << 20
)

// errBudget says an example outgrew its budget.
var errBudget = errors.New("example budget exceeded")

// exampleBudget is what an example may still visit and hold.
type exampleBudget struct{ nodes, bytes int }

// spend takes n nodes and b bytes; false once the budget is exceeded.
func (b *exampleBudget) spend(nodes, bytes int) bool {
	b.nodes -= nodes
	b.bytes -= bytes
	return b.nodes >= 0 && b.bytes >= 0
}

// bodyExample is seed 000's body example of an operation's request body,
// by priority: (1) the JSON media type's example, (2) its schema's example
// (or first of examples), (3) an object built from the schema's
// properties' examples or defaults (their type's placeholder when they
// have neither). nil when the operation has no JSON body; errBudget when
// the example is larger than budget allows.
func (d *specDoc) bodyExample(op *yaml.Node, budget *exampleBudget) (json.RawMessage, error) {
	rb, err := d.resolve(d.get(op, "requestBody"))
	if err != nil || rb == nil {
		return nil, err
	}
	content := d.get(rb, "content")
	if content == nil || content.Kind != yaml.MappingNode {
		return nil, nil
	}
	media := d.get(content, "application/json")
	for i := 0; media == nil && i+1 < len(content.Content); i += 2 {
		if strings.Contains(nodeText(content.Content[i]), "json") {
			media = nodeDeref(content.Content[i+1])
		}
	}
	if media == nil {
		return nil, nil
	}
	var v any
	found := false
	if ex := d.get(media, "example"); ex != nil {
		v, found, err = d.value(ex, budget, 0)
	} else if schema, rerr := d.resolve(d.get(media, "schema")); rerr != nil {
		return nil, rerr
	} else if schema != nil {
		v, found, err = d.schemaExample(schema, budget)
	}
	if err != nil || !found {
		return nil, err
	}
	raw, merr := json.Marshal(v)
	if merr != nil {
		return nil, nil //nolint:nilerr // a value JSON cannot hold (a non-finite number) makes no example, not a bad spec
	}
	if len(raw) > MaxExampleBytes {
		return nil, errBudget
	}
	return raw, nil
}

// schemaExample is a schema's own example (or first of examples), else
// the object built from its properties.
func (d *specDoc) schemaExample(schema *yaml.Node, budget *exampleBudget) (any, bool, error) {
	if ex := d.get(schema, "example"); ex != nil {
		return d.value(ex, budget, 0)
	}
	if exs := d.get(schema, "examples"); exs != nil && exs.Kind == yaml.SequenceNode && len(exs.Content) > 0 {
		return d.value(exs.Content[0], budget, 0)
	}
	return d.fromProperties(schema, 0, budget)
}

// maxSchemaDepth bounds how deep nested schemas are followed.
const maxSchemaDepth = 5

// fromProperties builds an object from a schema's properties (and those
// of its allOf parts).
func (d *specDoc) fromProperties(schema *yaml.Node, depth int, budget *exampleBudget) (any, bool, error) {
	if schema == nil || depth > maxSchemaDepth {
		return nil, false, nil
	}
	out := map[string]any{}
	found := false
	add := func(s *yaml.Node) error {
		props := d.get(s, "properties")
		if props == nil || props.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(props.Content); i += 2 {
			name := nodeText(props.Content[i])
			if !budget.spend(1, len(name)) {
				return errBudget
			}
			prop, err := d.resolve(props.Content[i+1])
			if err != nil {
				return err
			}
			v, err := d.propertyValue(prop, depth, budget)
			if err != nil {
				return err
			}
			found = true
			out[name] = v
		}
		return nil
	}
	if err := add(schema); err != nil {
		return nil, false, err
	}
	if parts := d.get(schema, "allOf"); parts != nil && parts.Kind == yaml.SequenceNode {
		for _, p := range parts.Content {
			part, err := d.resolve(p)
			if err != nil {
				return nil, false, err
			}
			if !budget.spend(1, 0) {
				return nil, false, errBudget
			}
			if err := add(part); err != nil {
				return nil, false, err
			}
		}
	}
	return out, found, nil
}

// propertyValue is a property's example, first of examples, default,
// first enum value, object built from its own properties, or its type's
// placeholder, in that order.
func (d *specDoc) propertyValue(p *yaml.Node, depth int, budget *exampleBudget) (any, error) {
	if p == nil {
		return nil, nil
	}
	for _, key := range []string{"example", "examples", "default", "enum"} {
		n := d.get(p, key)
		if n == nil {
			continue
		}
		if key == "examples" || key == "enum" {
			if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
				continue
			}
			n = n.Content[0]
		}
		v, ok, err := d.value(n, budget, 0)
		if err != nil || ok {
			return v, err
		}
	}
	if v, ok, err := d.fromProperties(p, depth+1, budget); err != nil || ok {
		return v, err
	}
	typ := nodeText(d.get(p, "type"))
	if types := d.get(p, "type"); types != nil && types.Kind == yaml.SequenceNode {
		for _, t := range types.Content {
			if typ = nodeText(t); typ != "null" {
				break
			}
		}
	}
	switch typ {
	case "string":
		return "string", nil
	case "integer", "number":
		return 0, nil
	case "boolean":
		return false, nil
	case "array":
		return []any{}, nil
	case "object":
		return map[string]any{}, nil
	}
	return nil, nil
}

// maxValueDepth bounds the nesting of a literal example.
const maxValueDepth = 64

// value turns an example's node into plain JSON values, spending a node
// per node and the bytes of its text, aliases included (an alias of a
// large node costs what it expands to).
func (d *specDoc) value(n *yaml.Node, budget *exampleBudget, depth int) (any, bool, error) {
	n = nodeDeref(n)
	if n == nil {
		return nil, false, nil
	}
	if depth > maxValueDepth {
		return nil, false, errBudget
	}
	if !budget.spend(1, len(n.Value)) {
		return nil, false, errBudget
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := nodeDeref(n.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode {
				return nil, false, nil // not JSON
			}
			if !budget.spend(0, len(k.Value)) {
				return nil, false, errBudget
			}
			v, _, err := d.value(n.Content[i+1], budget, depth+1)
			if err != nil {
				return nil, false, err
			}
			out[k.Value] = v
		}
		return out, true, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, _, err := d.value(e, budget, depth+1)
			if err != nil {
				return nil, false, err
			}
			out = append(out, v)
		}
		return out, true, nil
	case yaml.ScalarNode:
		return scalarValue(n), true, nil
	}
	return nil, false, nil
}

// scalarValue reads a scalar as YAML's core schema does: null, booleans
// and numbers by their tag, everything else as text.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
			return b
		}
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	case "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && !isInfOrNaN(f) {
			return f
		}
	}
	return n.Value
}

func isInfOrNaN(f float64) bool { return math.IsInf(f, 0) || math.IsNaN(f) }
