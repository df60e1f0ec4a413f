package service_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// hostileStrings are values a hostile client sends in any text slot.
var hostileStrings = []string{
	"A\x00B", "\x00", "tab\tnew\nline\r\x01\x1f\x7f", "caf\xe9", "\xff\xfe", "' OR 1=1 --", "%00", "{{x}}", "../../etc",
	"Олена", "😀", " ", "-1", "0", "1e309", "NaN", "null", "true", "[]", "{}",
}

// fuzzPhones are numbers the service may dial: they reach only the fake VA.
var fuzzPhones = []string{"+380991234567", "+380501112233", "0671234567"}

// longString is a 70 KB value, beyond every bound the contract sets on
// text; in a URL 8 KB, as the server refuses request lines and headers
// over 64 KiB before any route sees them (a plain 431 of net/http).
func (f *fuzzer) longString(inURL bool) string {
	n := 70 << 10
	if inURL {
		n = 8 << 10
	}
	return strings.Repeat(string(rune('a'+f.rnd.IntN(26))), n)
}

func (f *fuzzer) hostileString() string { return f.hostileText(false) }

func (f *fuzzer) hostileText(inURL bool) string {
	if f.rnd.IntN(8) == 0 {
		return f.longString(inURL)
	}
	return hostileStrings[f.rnd.IntN(len(hostileStrings))]
}

// pathValue is a value for path parameter name of op: one that names
// something that exists most of the time, else a random id or text.
func (f *fuzzer) pathValue(op fuzzOp, name string) string {
	var valid []string
	switch name {
	case "slug":
		valid = []string{f.integ.Slug}
	case "secretId":
		valid = f.ids["secret"]
	case "handlerId":
		valid = f.ids["handler"]
	case "key":
		valid = []string{"call_handling", "agent", "crm_fields", "notes", "predial"}
	case "phone":
		valid = fuzzPhones
	case "id":
		for _, kind := range []string{"integration", "call", "campaign", "handler", "token"} {
			if strings.HasPrefix(op.prefix+op.path, "/api/"+kind+"s/") {
				valid = f.ids[kind]
			}
		}
		if strings.HasPrefix(op.prefix+op.path, "/api/integrations/{id}") && op.method == "delete" && strings.Count(op.path, "/") == 3 {
			valid = f.ids["integration"][1:] // deleting the spare leaves the fuzzer's own
		}
	}
	switch n := f.rnd.IntN(10); {
	case n < 6 && len(valid) > 0:
		return valid[f.rnd.IntN(len(valid))]
	case n < 8:
		return uuid.NewString()
	}
	s := f.hostileText(true)
	if s == "" || strings.Trim(s, ".") == "" || strings.Contains(s, "..") {
		return "x" // an empty or dot segment would be another route
	}
	return s
}

// queryValue is a value for a query parameter of schema: valid or not.
func (f *fuzzer) queryValue(schema map[string]any) string {
	if f.rnd.IntN(2) == 0 {
		return f.hostileText(true)
	}
	if enum, ok := schema["enum"].([]any); ok && len(enum) > 0 {
		return fmt.Sprint(enum[f.rnd.IntN(len(enum))])
	}
	switch schema["type"] {
	case "integer", "number":
		return fmt.Sprint([]int{0, 1, 2, 50, 1000, 1001, -1, 1 << 40}[f.rnd.IntN(8)])
	case "boolean":
		return []string{"true", "false"}[f.rnd.IntN(2)]
	}
	if schema["format"] == "uuid" {
		return slices.Concat(f.ids["integration"], f.ids["campaign"], []string{uuid.NewString()})[f.rnd.IntN(2)]
	}
	return []string{"+380991234567", "queued", "Fuzz", "a"}[f.rnd.IntN(4)]
}

// headerValue is a header's value: headers cannot carry control
// characters, but may carry bytes that are not UTF-8.
func (f *fuzzer) headerValue() string {
	return []string{"key-1", "key-2", strings.Repeat("k", 201), "ключ", uuid.NewString(), "req-\xff\xfe"}[f.rnd.IntN(6)]
}

// body is a request body for op, valid (its example) or mutated, and its
// content type ("" for none).
func (f *fuzzer) body(op fuzzOp) ([]byte, string) {
	rb, _ := resolve(op.doc, op.op["requestBody"]).(map[string]any)
	content, _ := rb["content"].(map[string]any)
	if len(content) == 0 {
		if f.rnd.IntN(4) == 0 {
			return []byte(`{"unexpected":"\u0000"}`), "application/json"
		}
		return nil, ""
	}
	if _, csv := content["text/csv"]; csv && f.rnd.IntN(3) == 0 {
		return f.csvBody(), "text/csv"
	}
	media, _ := content["application/json"].(map[string]any)
	schema, _ := resolve(op.doc, media["schema"]).(map[string]any)
	var value any
	if ex, ok := media["example"]; ok {
		value = deepCopy(ex)
	} else {
		value = f.example(op.doc, schema, 0)
	}
	value = loopbackURLs(value)
	switch f.rnd.IntN(12) {
	case 0:
		return nil, "application/json"
	case 1:
		return []byte([]string{"not json", `{"a":`, "<xml/>", `{"a":1}}`, "\x00", `[`}[f.rnd.IntN(6)]), "application/json"
	case 2:
		depth := 20000
		return []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth)), "application/json"
	case 3:
		value = []any{value}
	case 4:
		raw, err := json.Marshal(withNUL(value))
		if err != nil {
			panic(err)
		}
		if f.rnd.IntN(2) == 0 {
			// Raw bytes that are not UTF-8 instead: json.Marshal would
			// replace them, a json.RawMessage on the server keeps them.
			raw = bytes.ReplaceAll(raw, []byte(`\u0000`), []byte{0xe9})
		}
		return raw, "application/json"
	case 5:
		// valid: the documented example
	default:
		value = f.mutate(op.doc, value, schema)
	}
	raw, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return raw, "application/json"
}

// mutate changes one member of an object body (at any depth): removes
// it, nulls it, gives it the wrong type or hostile text, or nests deeply.
func (f *fuzzer) mutate(doc map[string]any, value any, schema map[string]any) any {
	obj, ok := value.(map[string]any)
	if !ok {
		return f.hostileValue()
	}
	names := slices.Sorted(mapsKeys(obj))
	if props, ok := schema["properties"].(map[string]any); ok {
		for name := range props {
			if _, there := obj[name]; !there {
				names = append(names, name)
			}
		}
		slices.Sort(names)
	}
	if len(names) == 0 {
		obj["unexpected"] = f.hostileValue()
		return obj
	}
	name := names[f.rnd.IntN(len(names))]
	sub, _ := resolve(doc, propertySchema(schema, name)).(map[string]any)
	switch n := f.rnd.IntN(6); {
	case n == 0:
		delete(obj, name)
	case n == 1:
		obj[name] = nil
	case n == 2 && obj[name] != nil:
		if _, isObj := obj[name].(map[string]any); isObj && f.rnd.IntN(2) == 0 {
			obj[name] = f.mutate(doc, obj[name], sub)
			break
		}
		fallthrough
	default:
		obj[name] = f.hostileValue()
	}
	return obj
}

func propertySchema(schema map[string]any, name string) any {
	props, _ := schema["properties"].(map[string]any)
	return props[name]
}

// hostileValue is a JSON value of any type, often the wrong one.
func (f *fuzzer) hostileValue() any {
	switch f.rnd.IntN(8) {
	case 0:
		return 1e300
	case 1:
		return -1
	case 2:
		return true
	case 3:
		return []any{f.hostileString(), nil, 3}
	case 4:
		var nested any = f.hostileString()
		for range 200 {
			nested = map[string]any{"n": nested}
		}
		return nested
	case 5:
		return map[string]any{"k\x00": "v", "deep": map[string]any{"text": f.hostileString()}}
	}
	return f.hostileString()
}

// example builds a value from a schema when the document gives none.
func (f *fuzzer) example(doc map[string]any, schema map[string]any, depth int) any {
	if ex, ok := schema["example"]; ok {
		return deepCopy(ex)
	}
	if enum, ok := schema["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	switch schema["type"] {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		for _, name := range slices.Sorted(mapsKeys(props)) {
			if depth < 4 {
				sub, _ := resolve(doc, props[name]).(map[string]any)
				out[name] = f.example(doc, sub, depth+1)
			}
		}
		return out
	case "array":
		return []any{}
	case "integer", "number":
		return 1
	case "boolean":
		return true
	}
	return "fuzz"
}

// csvBody is a CSV upload with hostile cells.
func (f *fuzzer) csvBody() []byte {
	var b strings.Builder
	b.WriteString("phone_number,record_id,company\n")
	for range 1 + f.rnd.IntN(4) {
		fmt.Fprintf(&b, "%s,r%d,%q\n", fuzzPhones[f.rnd.IntN(len(fuzzPhones))], f.rnd.IntN(100),
			strings.ReplaceAll(f.hostileString(), `"`, ""))
	}
	if f.rnd.IntN(4) == 0 {
		b.WriteString("\"unterminated,\x00\n")
	}
	return []byte(b.String())
}

// loopbackURLs points every URL of a documented example at a closed
// loopback port: a fuzzed request must never make the service resolve or
// call a host elsewhere.
func loopbackURLs(v any) any {
	switch t := v.(type) {
	case string:
		if strings.Contains(t, "://") {
			return "http://127.0.0.1:9/fuzz"
		}
	case []any:
		for i := range t {
			t[i] = loopbackURLs(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = loopbackURLs(t[k])
		}
	}
	return v
}

// withNUL puts U+0000 into every string of v, at any depth.
func withNUL(v any) any {
	switch t := v.(type) {
	case string:
		return t + "\x00"
	case []any:
		for i := range t {
			t[i] = withNUL(t[i])
		}
	case map[string]any:
		for k, e := range t {
			t[k] = withNUL(e)
		}
	}
	return v
}

func deepCopy(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}
