package jsonhttp

import (
	"cmp"

	"github.com/callqueue/callqueue/pgtext"
)

// CheckText refuses (422, the field named) a JSON document holding a
// string Postgres cannot store (U+0000 or bytes that are not UTF-8), at
// any depth, names included.
// Decode and DecodeLenient apply it; a handler that reads a body another
// way calls it before it keeps anything.
func CheckText(body []byte) error {
	if path, found := pgtext.FindInJSON(body); found {
		return Invalid(path, "%s must be UTF-8 text without the character U+0000", cmp.Or(path, "the body"))
	}
	return nil
}

// CheckString refuses (422) a value given outside a JSON body (a query or
// path parameter, a CSV cell) that Postgres cannot store: U+0000 or
// invalid UTF-8.
func CheckString(field, value string) error {
	if !pgtext.Valid(value) {
		return Invalid(field, "%s must be UTF-8 text without the character U+0000", cmp.Or(field, "the value"))
	}
	return nil
}
