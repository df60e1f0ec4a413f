package config_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/callqueue/callqueue/config"
)

// TestDataConfig: data is validated and bounded on the way in, and a stored
// value read back leniently (anything unreadable keeps everything forever).
func TestDataConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		field string // "" when valid
		want  string
	}{
		{`{}`, "", `{"store":"everything","retention_days":null}`},
		{`{"store": "minimal", "retention_days": 1}`, "", `{"store":"minimal","retention_days":1}`},
		{`{"store": "no_content", "retention_days": 3650}`, "", `{"store":"no_content","retention_days":3650}`},
		{`{"store": "none"}`, "store", ""},
		{`{"retention_days": 0}`, "retention_days", ""},
		{`{"retention_days": 3651}`, "retention_days", ""},
		{`{"retention_days": -5}`, "retention_days", ""},
		{`{"retention_days": 1.5}`, "retention_days", ""},
		{`{"keep": "all"}`, "keep", ""},
		{`{} {}`, "", ""},
	} {
		got, err := config.Normalize(config.KeyData, json.RawMessage(tc.in))
		var fe *config.FieldError
		switch {
		case tc.want == "" && !errors.As(err, &fe):
			t.Errorf("%s: accepted as %s, want an error", tc.in, got)
		case tc.want == "" && fe.Field != tc.field:
			t.Errorf("%s: error on %q (%v), want on %q", tc.in, fe.Field, err, tc.field)
		case tc.want != "" && (err != nil || string(got) != tc.want):
			t.Errorf("%s: %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for raw, want := range map[string]config.Data{
		``: {Store: config.StoreEverything},
		`{"store": "minimal", "retention_days": 30}`:   {Store: config.StoreMinimal, RetentionDays: new(30)},
		`{"store": "bogus", "retention_days": 30}`:     {Store: config.StoreEverything},
		`{"store": "no_content", "retention_days": 0}`: {Store: config.StoreNoContent},
	} {
		stored := map[string]json.RawMessage{}
		if raw != "" {
			stored[config.KeyData] = json.RawMessage(raw)
		}
		got := config.Decode(stored).Data()
		if got.Store != want.Store || (got.RetentionDays == nil) != (want.RetentionDays == nil) ||
			(got.RetentionDays != nil && *got.RetentionDays != *want.RetentionDays) {
			t.Errorf("stored %s reads as %+v, want %+v", raw, got, want)
		}
	}
}
