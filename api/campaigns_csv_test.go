package api_test

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestCampaignCSVDefusesFormulas: cells a spreadsheet would run as a
// formula (=, +, -, @, a tab or a carriage return first) are exported with
// a leading apostrophe; an E.164 phone number is left as it is.
func TestCampaignCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Formulas"})
	// (A leading tab or carriage return is trimmed at upload; spreadsheetCell's
	// own test covers them.)
	hostile := []string{`=HYPERLINK("http://127.0.0.1/x","y")`, "+1+1", "-2+3", "@SUM(A1)"}
	var recipients []any
	for i, id := range hostile {
		recipients = append(recipients, map[string]any{"phoneNumber": "+38099000010" + string(rune('0'+i)), "recordId": id,
			"externalId": id})
	}
	camp := decodeAs[struct {
		ID uuid.UUID `json:"id"`
	}](t, w.a.do(t, "POST", integrationPath(in, "/campaigns"), map[string]any{"name": "Hostile", "recipients": recipients}).
		expect(t, http.StatusCreated))
	r := w.a.do(t, "GET", "/api/campaigns/"+camp.ID.String()+"/calls.csv", nil).expect(t, http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(rows) != len(hostile)+1 {
		t.Fatalf("CSV: %d rows, %v", len(rows), err)
	}
	for _, row := range rows[1:] {
		if !strings.HasPrefix(row[0], "+380") {
			t.Errorf("phone number %q changed", row[0])
		}
		for _, cell := range row[1:3] {
			if !strings.HasPrefix(cell, "'") {
				t.Errorf("cell %q exported without its apostrophe", cell)
			}
		}
	}
}
