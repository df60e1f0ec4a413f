package config

import (
	"bytes"
	"encoding/json"
	"time"
)

// KeyPredial configures the pre-dial check (contract §7).
const KeyPredial = "predial"

// Predial is the endpoint asked before every dial whether the call may go
// ahead.
type Predial struct {
	URL       string `json:"url"`
	TimeoutMS int    `json:"timeout_ms,omitempty"`
}

// PredialTimeoutDefault bounds a pre-dial check when timeout_ms is not set.
const PredialTimeoutDefault = 1500 * time.Millisecond

// Timeout is the pre-dial check's deadline.
func (p Predial) Timeout() time.Duration {
	if p.TimeoutMS <= 0 {
		return PredialTimeoutDefault
	}
	return time.Duration(p.TimeoutMS) * time.Millisecond
}

// Predial is the integration's pre-dial check, if one is configured.
func (c Integration) Predial() (Predial, bool) {
	raw, ok := c.Raw[KeyPredial]
	if !ok {
		return Predial{}, false
	}
	var p Predial
	if json.Unmarshal(raw, &p) != nil || p.URL == "" {
		return Predial{}, false
	}
	return p, true
}

// normalizePredial validates a predial value as PUT /config/predial gets it.
func normalizePredial(raw json.RawMessage) (json.RawMessage, error) {
	if err := checkSingleValue(raw); err != nil {
		return nil, err
	}
	var p Predial
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, decodeFieldError(err)
	}
	if err := validateURL("url", p.URL, true); err != nil {
		return nil, err
	}
	if p.TimeoutMS < 0 || p.TimeoutMS > 10000 {
		return nil, &FieldError{Field: "timeout_ms", Message: "must be between 0 and 10000"}
	}
	return json.Marshal(p)
}
