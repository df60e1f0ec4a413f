package pgtext_test

import (
	"encoding/json"
	"testing"

	"github.com/callqueue/callqueue/pgtext"
)

func TestValidAndClean(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in    string
		valid bool
		clean string
	}{
		{"", true, ""},
		{"Олена", true, "Олена"},
		{"tab\tand\nnewline", true, "tab\tand\nnewline"},
		{"A\x00B", false, "AB"},
		{"\x00", false, ""},
		{"caf\xe9", false, "caf\uFFFD"},
		{"\xff\x00\xfe", false, "\uFFFD"},
	} {
		if got := pgtext.Valid(c.in); got != c.valid {
			t.Errorf("Valid(%q) = %v, want %v", c.in, got, c.valid)
		}
		if got := pgtext.Clean(c.in); got != c.clean {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.clean)
		}
		if got := pgtext.Clean(c.in); !pgtext.Valid(got) {
			t.Errorf("Clean(%q) = %q is not storable", c.in, got)
		}
	}
}

func TestFindInJSON(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		doc   string
		path  string
		found bool
	}{
		{`{"a": "b"}`, "", false},
		{`{"a": "\\u0000"}`, "", false}, // an escaped backslash, then text
		{`{"a": "x\u0000"}`, "a", true},
		{`"\u0000"`, "", true},
		{`{"dynamic_variables": {"client": {"name": ["ok", "A\u0000B"]}}}`, "dynamic_variables.client.name[1]", true},
		{`{"vars": {"k\u0000": 1}}`, "vars.k", true},
		{`[{"phone": "1"}, {"n": 1.5e3, "t": true, "z": null, "s": "\u0000"}]`, "[1].s", true},
		{`{"a": "\u0000"`, "", false},                                    // not JSON: the decoder says so
		{"{\"ok\": \"café\", \"a\": {\"b\": \"caf\xe9\"}}", "a.b", true}, // not UTF-8: a RawMessage keeps it
		{"{\"k\xff\": 1}", "k\uFFFD", true},
	} {
		path, found := pgtext.FindInJSON([]byte(c.doc))
		if path != c.path || found != c.found {
			t.Errorf("FindInJSON(%s) = %q, %v; want %q, %v", c.doc, path, found, c.path, c.found)
		}
	}
}

func TestCleanJSON(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ doc, want string }{
		{`{"b": "x", "a": 1}`, `{"b": "x", "a": 1}`}, // untouched, order kept
		{`{"t": "<a\u0000b>", "n": 12345678901234567890, "l": ["\u0000", "c"]}`,
			`{"l":["","c"],"n":12345678901234567890,"t":"<ab>"}`},
		{`{"k\u0000": "dirty", "k": "clean"}`, `{"k":"clean"}`},
		{"{\"t\": \"caf\xe9\"}", `{"t":"caf�"}`},
		{`{"a": "\u0000"} trailing`, `{"a": "\u0000"} trailing`}, // not one JSON document: left for its reader to refuse
	} {
		got := pgtext.CleanJSON([]byte(c.doc))
		if string(got) != c.want {
			t.Errorf("CleanJSON(%s) = %s, want %s", c.doc, got, c.want)
		}
		if json.Valid([]byte(c.doc)) {
			if _, found := pgtext.FindInJSON(got); found {
				t.Errorf("CleanJSON(%s) = %s still holds U+0000", c.doc, got)
			}
		}
	}
}
