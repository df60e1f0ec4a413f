package api

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/pb33f/go-yaml"
)

// An OpenAPI document a tenant points sync-handlers at is hostile input: it
// is read here, as a plain YAML/JSON node tree in the request's goroutine,
// with every walk bounded, instead of by a full OpenAPI library (which
// resolves references eagerly in goroutines of its own, where a panic on a
// crafted document could not be recovered and would end the process).
// Only what sync-handlers needs is read: paths, operations, request bodies
// and schemas, following local "$ref"s; remote references are never
// fetched.

// Bounds of a spec as read.
const (
	// MaxSpecNodes bounds the node tree a spec may parse into (anchors and
	// aliases are not expanded, so this bounds memory with the byte cap).
	MaxSpecNodes = 1 << 20
	// maxRefHops bounds one chain of $ref to $ref.
	maxRefHops = 32
)

// specDoc is a parsed OpenAPI 3.x document.
type specDoc struct {
	root *yaml.Node
}

// parseSpec reads and validates an OpenAPI 3.x document before anything is
// built from it: it must parse, be a mapping with a 3.x "openapi" version,
// stay within MaxSpecNodes, and have "paths" (if any) map paths to
// mappings of operations.
func parseSpec(raw []byte) (*specDoc, error) {
	var top yaml.Node
	if err := yaml.Unmarshal(raw, &top); err != nil {
		return nil, invalidSpec("not an OpenAPI document: %s", firstLine(err.Error()))
	}
	root := &top
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, invalidSpec("not an OpenAPI document: the top level is not an object")
	}
	if n := countNodes(root, MaxSpecNodes); n > MaxSpecNodes {
		return nil, invalidSpec("the OpenAPI document has more than %d nodes", MaxSpecNodes)
	}
	d := &specDoc{root: root}
	version := nodeText(d.get(root, "openapi"))
	if version == "" {
		version = nodeText(d.get(root, "swagger"))
	}
	if !strings.HasPrefix(version, "3.") {
		return nil, invalidSpec("OpenAPI version %q is not supported: 3.0 or 3.1 are", version)
	}
	paths := d.get(root, "paths")
	if paths == nil {
		return d, nil
	}
	if paths.Kind != yaml.MappingNode {
		return nil, invalidSpec("the OpenAPI document's paths is not an object")
	}
	for i := 0; i+1 < len(paths.Content); i += 2 {
		item, err := d.resolve(paths.Content[i+1])
		if err != nil {
			return nil, err
		}
		if item == nil || item.Kind != yaml.MappingNode {
			return nil, invalidSpec("the path item %q is not an object", paths.Content[i].Value)
		}
	}
	return d, nil
}

// firstLine keeps a parser's message short.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// countNodes counts the nodes under n, without following aliases, and
// stops counting past limit.
func countNodes(n *yaml.Node, limit int) int {
	count := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 && count <= limit {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		stack = append(stack, top.Content...)
	}
	return count
}

// nodeDeref follows a YAML alias to its anchored node.
func nodeDeref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxRefHops; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// get is a mapping's value for key (nil when n is not a mapping or has no
// such key).
func (d *specDoc) get(n *yaml.Node, key string) *yaml.Node {
	n = nodeDeref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := nodeDeref(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Value == key {
			return nodeDeref(n.Content[i+1])
		}
	}
	return nil
}

// nodeText is a scalar node's text ("" for anything else).
func nodeText(n *yaml.Node) string {
	if n = nodeDeref(n); n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// resolve follows n's "$ref"s to the node they name. Only references into
// the document itself ("#/...") are followed; any other is an error, as
// is one that names nothing or a chain longer than maxRefHops.
func (d *specDoc) resolve(n *yaml.Node) (*yaml.Node, error) {
	n = nodeDeref(n)
	for hops := 0; ; hops++ {
		ref := d.get(n, "$ref")
		if ref == nil {
			return n, nil
		}
		if hops == maxRefHops {
			return nil, invalidSpec("the reference chain at %q is longer than %d", ref.Value, maxRefHops)
		}
		target, err := d.pointer(nodeText(ref))
		if err != nil {
			return nil, err
		}
		n = target
	}
}

// pointer finds a local reference's node: "#/components/schemas/Order".
func (d *specDoc) pointer(ref string) (*yaml.Node, error) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, invalidSpec("the reference %q is not local to the document: only #/... references are read", clip(ref))
	}
	if unescaped, err := url.PathUnescape(frag); err == nil {
		frag = unescaped
	}
	n := d.root
	if frag == "" || frag == "/" {
		return n, nil
	}
	for _, token := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		switch n.Kind {
		case yaml.MappingNode:
			n = d.get(n, token)
		case yaml.SequenceNode:
			var i int
			if _, err := fmt.Sscanf(token, "%d", &i); err != nil || i < 0 || i >= len(n.Content) {
				return nil, invalidSpec("the reference %q names nothing in the document", clip(ref))
			}
			n = nodeDeref(n.Content[i])
		default:
			n = nil
		}
		if n == nil {
			return nil, invalidSpec("the reference %q names nothing in the document", clip(ref))
		}
	}
	return n, nil
}

// clip keeps a document's text short in an error message.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// httpMethods are the operations a path item may have.
var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true,
	"head": true, "patch": true, "trace": true}

// specOperation is one operation of the document, in document order.
type specOperation struct {
	path, method, operationID string
	op                        *yaml.Node
}

// operations lists the document's operations: paths in document order,
// each path's methods in the order they are written.
func (d *specDoc) operations() ([]specOperation, error) {
	paths := d.get(d.root, "paths")
	if paths == nil {
		return nil, nil
	}
	var out []specOperation
	for i := 0; i+1 < len(paths.Content); i += 2 {
		path := nodeText(paths.Content[i])
		item, err := d.resolve(paths.Content[i+1])
		if err != nil {
			return nil, err
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			method := strings.ToLower(nodeText(item.Content[j]))
			if !httpMethods[method] {
				continue
			}
			op, err := d.resolve(item.Content[j+1])
			if err != nil {
				return nil, err
			}
			if op == nil || op.Kind != yaml.MappingNode {
				return nil, invalidSpec("the operation %s %s is not an object", strings.ToUpper(method), clip(path))
			}
			out = append(out, specOperation{path: path, method: method, operationID: nodeText(d.get(op, "operationId")), op: op})
		}
	}
	return out, nil
}
