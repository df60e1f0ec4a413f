// Package pgtext decides which text the service keeps. Postgres stores
// neither U+0000 (in text: "invalid byte sequence for encoding UTF8: 0x00";
// in jsonb: "unsupported Unicode escape sequence") nor invalid UTF-8, so a
// value holding either can never be written. Input we are handed by a
// client is refused at the edge with the field named (Valid, FindInJSON);
// text we receive from peers and must keep whatever they put in it (CRM
// answers, post-call transcripts, LLM answers) is cleaned instead (Clean,
// CleanJSON), always the same way.
package pgtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// nulEscape is the only way valid JSON can carry U+0000: a raw control
// character is a syntax error.
var nulEscape = []byte(`\u0000`)

// Valid reports whether Postgres can store s: valid UTF-8 without U+0000.
func Valid(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// Clean makes s storable: U+0000 is dropped and each invalid UTF-8
// sequence becomes U+FFFD (what encoding/json does to invalid bytes).
func Clean(s string) string {
	if Valid(s) {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// FindInJSON finds the first string of the JSON document data, member
// name or value, that Postgres cannot store, and names where it is as a
// field path ("dynamic_variables.client_name", "recipients[2]"). found is
// false for a storable document and for one that is not valid JSON (its
// decoder reports that). Bytes that are not UTF-8 count though decoding
// into a Go string would replace them: a json.RawMessage keeps them.
func FindInJSON(data []byte) (path string, found bool) {
	if (!bytes.Contains(data, nulEscape) && utf8.Valid(data)) || !json.Valid(data) {
		return "", false
	}
	w := walker{data: data, d: json.NewDecoder(bytes.NewReader(data))}
	w.d.UseNumber()
	path, found, _ = w.find("")
	return path, found
}

// walker reads a JSON document token by token, knowing each token's
// bytes as written.
type walker struct {
	data []byte
	d    *json.Decoder
}

// token is the next token and whether Postgres can store it as written.
func (w *walker) token() (json.Token, bool, error) {
	start := w.d.InputOffset()
	tok, err := w.d.Token()
	if err != nil {
		return nil, false, err
	}
	s, _ := tok.(string)
	return tok, Valid(s) && utf8.Valid(w.data[start:w.d.InputOffset()]), nil
}

// find walks the value the decoder is at; path names it.
func (w *walker) find(path string) (string, bool, error) {
	tok, storable, err := w.token()
	if err != nil || !storable {
		return path, !storable && err == nil, err
	}
	switch tok {
	case json.Delim('{'):
		for w.d.More() {
			key, storable, err := w.token()
			if err != nil {
				return "", false, err
			}
			name, _ := key.(string)
			member := join(path, name)
			if !storable {
				return member, true, nil
			}
			if p, found, err := w.find(member); found || err != nil {
				return p, found, err
			}
		}
	case json.Delim('['):
		for i := 0; w.d.More(); i++ {
			if p, found, err := w.find(path + "[" + strconv.Itoa(i) + "]"); found || err != nil {
				return p, found, err
			}
		}
	default:
		return "", false, nil
	}
	_, _, err = w.token() // the closing delimiter
	return "", false, err
}

// join names a member of the object at path.
func join(path, name string) string {
	name = Clean(name)
	if path == "" {
		return name
	}
	return path + "." + name
}

// CleanJSON returns data with every string, member names included, made
// storable by Clean (bytes that are not UTF-8 become U+FFFD). A document that needs no change, or is not valid
// JSON, is returned as it is; a changed one is re-encoded (members in
// name order, numbers as they were written).
func CleanJSON(data []byte) []byte {
	if !bytes.Contains(data, nulEscape) && utf8.Valid(data) {
		return data
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return data
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return data
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cleanValue(v)); err != nil {
		return data
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// CleanValue is Clean applied to every string of a decoded JSON value
// (string, []any, map[string]any at any depth); other values are returned
// as they are.
func CleanValue(v any) any { return cleanValue(v) }

func cleanValue(v any) any {
	switch t := v.(type) {
	case string:
		return Clean(t)
	case []any:
		for i := range t {
			t[i] = cleanValue(t[i])
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			name := Clean(k)
			if _, taken := out[name]; taken && name != k {
				continue // a member already named so keeps its value
			}
			out[name] = cleanValue(e)
		}
		return out
	}
	return v
}
