// Package jsonhttp holds what the webhooks and the admin API share about
// speaking JSON over HTTP: the error shape of the contract, bounded body
// reading, and strict decoding that names the field at fault.
package jsonhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is the contract's error body: {"error": {code, message, field}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf builds an Error.
func Errorf(status int, code, field, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Common errors.
var (
	ErrUnauthorized = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "missing or invalid credentials"}
	ErrNotFound     = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}
)

// Invalid is a 422 for a valid JSON body with a bad value.
func Invalid(field, format string, args ...any) *Error {
	return Errorf(http.StatusUnprocessableEntity, "invalid_value", field, format, args...)
}

// BadRequest is a 400 for a body that is not what the endpoint reads.
func BadRequest(field, format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "bad_request", field, format, args...)
}

// Unavailable is a 503 for a dependency that is down.
func Unavailable(what string) *Error {
	return Errorf(http.StatusServiceUnavailable, "unavailable", "", "%s is unavailable; retry later", what)
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// WriteError writes err in the contract's shape; errors that are not an
// *Error are 500s whose detail is not shown.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	WriteJSON(w, e.Status, map[string]*Error{"error": e})
}

// ReadBody reads at most limit bytes, answering 413 beyond.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "", "body exceeds %d bytes", limit)
	}
	if err != nil {
		return nil, BadRequest("", "could not read body: %v", err)
	}
	return body, nil
}

// Decode decodes a JSON object into dst strictly: unknown fields, wrong
// types and trailing data are 400s naming the field; text Postgres cannot
// store is a 422 naming it (CheckText).
func Decode(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return BadRequest("", "body must be a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return decodeError(err)
	}
	// Token, not More: More misses a trailing '}' or ']'.
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return BadRequest("", "body must hold a single JSON object")
	}
	return CheckText(body)
}

// DecodeLenient is Decode that ignores unknown fields (peers' payloads
// grow fields over time). It still refuses text Postgres cannot store, in
// unknown fields too: they may be kept whole (metadata, raw bodies).
func DecodeLenient(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return BadRequest("", "body must be a JSON object")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return decodeError(err)
	}
	return CheckText(body)
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return BadRequest("", "body must be a JSON object")
		}
		return BadRequest(typeErr.Field, "%s has the wrong type (%s)", typeErr.Field, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return BadRequest("", "body is not valid JSON: %v", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest(field, "unknown field %q", field)
	}
	return BadRequest("", "body is not valid JSON: %v", err)
}
