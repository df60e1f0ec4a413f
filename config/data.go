package config

import (
	"bytes"
	"encoding/json"
)

// KeyData configures what is kept of the people called and for how long
// (contract §11).
const KeyData = "data"

// Storage modes of data.store: what a call keeps of its content.
const (
	// StoreEverything keeps transcripts, summaries, analysis, dynamic
	// variables and audio notes.
	StoreEverything = "everything"
	// StoreNoContent never keeps a transcript or audio; the summary and the
	// extracted fields stay.
	StoreNoContent = "no_content"
	// StoreMinimal keeps statuses, attempts, outcomes, durations and ids only.
	StoreMinimal = "minimal"
)

// Bounds of data.retention_days.
const (
	RetentionDaysMin = 1
	RetentionDaysMax = 3650
)

// Data is the integration's personal-data policy.
type Data struct {
	Store string `json:"store"`
	// RetentionDays, when set, is how long a finished call is kept after
	// its last change; nil keeps calls forever.
	RetentionDays *int `json:"retention_days"`
}

// KeepsTranscript reports whether transcripts and audio notes are stored.
func (d Data) KeepsTranscript() bool { return d.Store == StoreEverything }

// KeepsAnalysis reports whether summaries, analyses and extracted fields
// are stored.
func (d Data) KeepsAnalysis() bool { return d.Store != StoreMinimal }

// Data is the integration's data policy; the default keeps everything
// forever. A stored value that no longer reads keeps everything too.
func (c Integration) Data() Data {
	d := Data{Store: StoreEverything}
	if raw, ok := c.Raw[KeyData]; ok {
		var stored Data
		if json.Unmarshal(raw, &stored) == nil && validStore(stored.Store) {
			d.Store = stored.Store
			if r := stored.RetentionDays; r != nil && *r >= RetentionDaysMin && *r <= RetentionDaysMax {
				d.RetentionDays = r
			}
		}
	}
	return d
}

func validStore(mode string) bool {
	return mode == StoreEverything || mode == StoreNoContent || mode == StoreMinimal
}

// normalizeData validates a data value as PUT /config/data gets it.
func normalizeData(raw json.RawMessage) (json.RawMessage, error) {
	if err := checkSingleValue(raw); err != nil {
		return nil, err
	}
	d := Data{Store: StoreEverything}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, decodeFieldError(err)
	}
	if !validStore(d.Store) {
		return nil, &FieldError{Field: "store", Message: `must be "everything", "no_content" or "minimal"`}
	}
	if r := d.RetentionDays; r != nil && (*r < RetentionDaysMin || *r > RetentionDaysMax) {
		return nil, &FieldError{Field: "retention_days", Message: "must be between 1 and 3650 (or null: keep forever)"}
	}
	return json.Marshal(d)
}
