package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
)

// Overlay returns the call handling that overlay (a partial call_handling
// object, such as a campaign's {"retry_policy", "max_attempts",
// "calling_window"}) makes of c: each key the overlay names replaces c's
// value whole. c is unchanged, and every field CallHandling has works
// without code here.
func (c CallHandling) Overlay(overlay json.RawMessage) (CallHandling, error) {
	base, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(base, &fields); err != nil {
		return c, err
	}
	if len(bytes.TrimSpace(overlay)) > 0 {
		// Each key the overlay names replaces the base's value as a whole
		// (contract §6): decoding onto the base's pointers would merge a
		// campaign's window or retry policy field by field into the
		// integration's.
		var over map[string]json.RawMessage
		if err := json.Unmarshal(overlay, &over); err != nil {
			return c, fmt.Errorf("call handling overlay: %w", err)
		}
		maps.Copy(fields, over)
	}
	merged, err := json.Marshal(fields)
	if err != nil {
		return c, err
	}
	var out CallHandling
	if err := json.Unmarshal(merged, &out); err != nil {
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
