package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// StatusValueOutcomes are what crm.status_values may map: the outcomes of
// contract §3, and "failed", the call status that stands in for an update
// without an outcome.
var StatusValueOutcomes = []string{"answered", "short_call", "no_answer", "busy", "voicemail", "dial_error", "timeout",
	"dial_lost", "completed", "cancelled", "suppressed", "ineligible", "failed"}

// Bounds of crm: a status label is at most StatusLabelMaxLen characters,
// and folder_id at most FolderIDMaxLen.
const (
	StatusLabelMaxLen = 255
	FolderIDMaxLen    = 128
)

func validateCRM(v CRM) error {
	if err := validateStatusValues(v.StatusValues); err != nil {
		return err
	}
	switch v.Kind {
	case "none":
		return nil
	case "nethunt":
		if strings.TrimSpace(v.FolderID) == "" {
			return &FieldError{Field: "folder_id", Message: "is required"}
		}
		if len(v.FolderID) > FolderIDMaxLen || strings.ContainsFunc(v.FolderID, unicode.IsSpace) {
			return &FieldError{Field: "folder_id", Message: fmt.Sprintf("must be a NetHunt folder id (at most %d characters, no spaces)", FolderIDMaxLen)}
		}
		return validateURL("base_url", v.BaseURL, false)
	case "webhook":
		if err := validateURL("lookup_url", v.LookupURL, false); err != nil {
			return err
		}
		return validateURL("update_url", v.UpdateURL, true)
	}
	return &FieldError{Field: "kind", Message: `must be "none", "nethunt" or "webhook"`}
}

// validateStatusValues names the first entry that is not an outcome
// mapped to a printable label.
func validateStatusValues(m map[string]string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field := "status_values." + k
		if !slices.Contains(StatusValueOutcomes, k) {
			return &FieldError{Field: field, Message: "must be an outcome: " + strings.Join(StatusValueOutcomes, ", ")}
		}
		label := m[k]
		if strings.TrimSpace(label) == "" || utf8.RuneCountInString(label) > StatusLabelMaxLen ||
			strings.ContainsFunc(label, unicode.IsControl) {
			return &FieldError{Field: field, Message: fmt.Sprintf("must be a label of 1 to %d characters, without control characters", StatusLabelMaxLen)}
		}
	}
	return nil
}
