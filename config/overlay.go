package config

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Overlay returns the call handling that overlay (a partial call_handling
// object, such as a campaign's {"retry_policy", "max_attempts",
// "calling_window"}) makes of c. It decodes onto a deep copy, so c is
// unchanged, and every field CallHandling has works without code here.
func (c CallHandling) Overlay(overlay json.RawMessage) (CallHandling, error) {
	base, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	var out CallHandling
	if err := json.Unmarshal(base, &out); err != nil {
		return c, err
	}
	if len(bytes.TrimSpace(overlay)) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(overlay, &out); err != nil {
		return c, fmt.Errorf("call handling overlay: %w", err)
	}
	return out, nil
}

// ValidateCallHandling checks a complete call handling as PUT
// /config/call_handling does; the *FieldError names the field at fault.
func ValidateCallHandling(c CallHandling) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = Normalize(KeyCallHandling, raw)
	return err
}
