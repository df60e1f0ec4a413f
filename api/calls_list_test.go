package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestCallListsLeaveOutTranscripts stores calls with megabyte transcripts
// and analyses: the lists (calls, a campaign's calls) stay small and hold
// neither; the detail has both.
func TestCallListsLeaveOutTranscripts(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Talkative"})
	var ids []uuid.UUID
	for _, phone := range []string{"+380990000011", "+380990000012", "+380990000013"} {
		ids = append(ids, w.originate(t, w.a, in, phone))
	}
	campaign := decodeAs[struct {
		ID uuid.UUID `json:"id"`
	}](t, w.a.do(t, "POST", integrationPath(in, "/campaigns"), map[string]any{"name": "Talkative campaign",
		"recipients": []any{map[string]any{"phoneNumber": "+380990000014"}}}).expect(t, http.StatusCreated))

	// What a long post-call leaves on a call: a transcript and an analysis
	// of a megabyte each, a summary and metadata.
	const marker = "TRANSCRIPT-TEXT-"
	big := strings.Repeat(marker, (1<<20)/len(marker))
	transcript, _ := json.Marshal([]any{map[string]any{"role": "agent", "message": big}})
	analysis, _ := json.Marshal(map[string]any{"transcript_summary": big})
	if _, err := w.env.Store.Pool().Exec(t.Context(), `UPDATE calls SET transcript = $2, analysis = $3, summary = $4,
		call_metadata = $3 WHERE integration_id = $1`, in.ID, transcript, analysis, big); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"/api/calls?limit=1000", "/api/calls?limit=1000&integrationId=" + in.ID.String(),
		"/api/calls?campaignId=" + campaign.ID.String()} {
		r := w.a.do(t, "GET", path, nil).expect(t, http.StatusOK)
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &list); err != nil || len(list) == 0 {
			t.Fatalf("%s: %d calls, %v", path, len(list), err)
		}
		for _, c := range list {
			for _, key := range []string{"transcript", "analysis", "summary", "metadata"} {
				if _, ok := c[key]; ok {
					t.Errorf("%s: a listed call has %q", path, key)
				}
			}
		}
		if len(r.body) > 4096 || bytes.Contains(r.body, []byte(marker)) {
			t.Errorf("%s: %d bytes for %d calls", path, len(r.body), len(list))
		}
	}
	csv := w.a.do(t, "GET", "/api/campaigns/"+campaign.ID.String()+"/calls.csv", nil).expect(t, http.StatusOK)
	if bytes.Contains(csv.body, []byte(marker)) || len(csv.body) > 4096 {
		t.Errorf("the campaign's CSV holds %d bytes", len(csv.body))
	}

	detail := getCall(t, w.a, ids[0])
	if !bytes.Contains(detail.Transcript, []byte(marker)) || !bytes.Contains(detail.Analysis, []byte(marker)) {
		t.Fatalf("the detail lacks the transcript (%d bytes) or the analysis (%d bytes)", len(detail.Transcript), len(detail.Analysis))
	}
}
