package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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

func TestExplodingSpecIsRefused(t *testing.T) {
	t.Parallel()
	raw := explodingSpec(50, 6)
	_, err := handlersFromSpec(raw, "bomb")
	var e *jsonhttp.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
		t.Fatalf("handlersFromSpec(%d-byte bomb) = %v, want a 422", len(raw), err)
	}
	// A modest nested spec still builds its example.
	specs, err := handlersFromSpec(explodingSpec(3, 3), "small")
	if err != nil || len(specs) != 1 {
		t.Fatalf("small nested spec: %v, %v", specs, err)
	}
}

func FuzzHandlersFromSpec(f *testing.F) {
	f.Add(explodingSpec(3, 3))
	f.Add(explodingSpec(8, 6))
	f.Add([]byte(`{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}`))
	f.Add([]byte(`openapi: 3.1.0`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		specs, err := handlersFromSpec(raw, "fuzz")
		if err != nil {
			return
		}
		for _, s := range specs {
			if len(s.DefaultArgs) > MaxExampleBytes+4096 {
				t.Fatalf("handler %s has %d bytes of default args", s.Name, len(s.DefaultArgs))
			}
		}
	})
}
