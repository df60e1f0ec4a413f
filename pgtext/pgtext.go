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
// decoder reports that). Invalid UTF-8 needs no search: decoding JSON
// replaces it.
func FindInJSON(data []byte) (path string, found bool) {
	if !bytes.Contains(data, nulEscape) || !json.Valid(data) {
		return "", false
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	path, found, _ = findIn(d, "")
	return path, found
}

// findIn walks the value d is at; path names it.
func findIn(d *json.Decoder, path string) (string, bool, error) {
	tok, err := d.Token()
	if err != nil {
		return "", false, err
	}
	switch t := tok.(type) {
	case string:
		return path, !Valid(t), nil
	case json.Delim:
		switch t {
		case '{':
			for d.More() {
				key, err := d.Token()
				if err != nil {
					return "", false, err
				}
				name, _ := key.(string)
				member := join(path, name)
				if !Valid(name) {
					return member, true, nil
				}
				if p, found, err := findIn(d, member); found || err != nil {
					return p, found, err
				}
			}
		case '[':
			for i := 0; d.More(); i++ {
				if p, found, err := findIn(d, path+"["+strconv.Itoa(i)+"]"); found || err != nil {
					return p, found, err
				}
			}
		}
		_, err := d.Token() // the closing delimiter
		return "", false, err
	}
	return "", false, nil
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
// storable by Clean. A document that needs no change, or is not valid
// JSON, is returned as it is; a changed one is re-encoded (members in
// name order, numbers as they were written).
func CleanJSON(data []byte) []byte {
	if !bytes.Contains(data, nulEscape) {
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
