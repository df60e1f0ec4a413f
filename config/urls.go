package config

import (
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
)

// urlFields names, per key, the fields holding a URL that callqueue will
// call on the integration's behalf (analysis and predial included, though
// their values are read by their own packages).
var urlFields = map[string][]string{
	KeyVoice:   {"base_url"},
	KeyCRM:     {"base_url", "lookup_url", "update_url"},
	"analysis": {"base_url"},
	"predial":  {"url"},
}

// credentialParam matches query parameter names that carry credentials.
var credentialParam = regexp.MustCompile(`(?i)(token|secret|passw|^pass$|pwd|api[_-]?key|apikey|access[_-]?key|[_-]key$|^key$|` +
	`auth|signature|^sig$|credential|session|jwt|bearer)`)

// ErrCredentialsInURL refuses a URL with a user, password or credential-like
// query parameter: config values are stored, shown and logged in plain
// text, and secrets are not.
var ErrCredentialsInURL = errors.New("must not carry credentials (user, password, token or key parameters): store them as secrets")

// CheckURLs checks every URL field of a key's value: no credentials in it,
// and check (the egress policy) passes. The error names the field.
func CheckURLs(key string, value json.RawMessage, check func(raw string) error) error {
	fields, ok := urlFields[key]
	if !ok {
		return nil
	}
	var obj map[string]any
	if json.Unmarshal(value, &obj) != nil {
		return nil //nolint:nilerr // the key's own validation reports the shape
	}
	for _, f := range fields {
		raw, _ := obj[f].(string)
		if raw == "" {
			continue
		}
		if err := credentialsInURL(raw); err != nil {
			return &FieldError{Field: f, Message: err.Error()}
		}
		if check != nil {
			if err := check(raw); err != nil {
				return &FieldError{Field: f, Message: err.Error()}
			}
		}
	}
	return nil
}

// credentialsInURL refuses a user or password, and credential-like
// parameters in the query or in a fragment written as one
// (#access_token=...: never sent, but stored and shown all the same).
func credentialsInURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errUnreadableURL
	}
	if u.User != nil {
		return ErrCredentialsInURL
	}
	fragment, _ := url.ParseQuery(u.Fragment) // what parses is checked
	for _, params := range []url.Values{u.Query(), fragment} {
		for name := range params {
			if credentialParam.MatchString(name) {
				return ErrCredentialsInURL
			}
		}
	}
	return nil
}

// errUnreadableURL refuses what cannot be parsed, since whether it
// carries credentials cannot be told.
var errUnreadableURL = errors.New("must be a valid URL")
