package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/store"
)

type upload struct {
	Added      int `json:"added"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Row     int    `json:"row"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"rejected"`
}

func (c client) csv(t testing.TB, method, path, body string) response {
	t.Helper()
	return send(t, method, c.base+path, map[string]string{"Authorization": "Bearer " + c.token, "Content-Type": "text/csv"}, body)
}

// TestCampaignUpload: JSON and CSV uploads add valid rows, report each bad
// one by row and field, skip duplicates, refuse more than 10,000 rows with
// a 413 and change nothing then; numbers are stored in E.164.
func TestCampaignUpload(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Uploads"})
	camp := decodeAs[store.Campaign](t, w.a.do(t, "POST", integrationPath(in, "/campaigns"),
		map[string]any{"name": "Spring", "priority": 7, "concurrencyLimit": 3, "maxAttempts": 4,
			"callingWindow": map[string]any{"timezone": "recipient", "start": "09:00", "end": "20:00", "days": []int{1, 2, 3, 4, 5}}}).
		expect(t, http.StatusCreated))
	if camp.Status != "running" || camp.Priority != 7 || *camp.ConcurrencyLimit != 3 || *camp.MaxAttempts != 4 || camp.Progress.Total != 0 {
		t.Fatalf("created %+v", camp)
	}
	path := "/api/campaigns/" + camp.ID.String() + "/recipients"

	got := decodeAs[upload](t, w.a.do(t, "POST", path, []any{
		map[string]any{"phoneNumber": "099 123 45 67", "recordId": 17, "dynamicVariables": map[string]any{"name": "Ira"}},
		map[string]any{"phoneNumber": "+380991234567"},                          // the same number
		map[string]any{"phoneNumber": "+380501112233", "timezone": "Mars/Base"}, // bad zone
		map[string]any{"recordId": "r-9"},                                       // no number
		"not an object",
		map[string]any{"phoneNumber": "+12125550123", "externalId": "ny-1", "timezone": "America/New_York"},
	}).expect(t, http.StatusOK))
	if got.Added != 2 || got.Duplicates != 1 || len(got.Rejected) != 3 ||
		got.Rejected[0].Row != 3 || got.Rejected[0].Field != "timezone" || got.Rejected[1].Field != "phoneNumber" || got.Rejected[2].Row != 5 {
		t.Fatalf("JSON upload: %+v", got)
	}

	csvBody := "phone_number,record_id,timezone,company\n" +
		"+380671234567,r1,,Acme\n" +
		"0671234567,r1,,Acme\n" + // the same number, typed locally
		"abc,r2,,X\n" +
		"+380671234568,r3,Europe/Kyiv\n" + // one column short
		"+380671234569,r4,Asia/Tokyo,Umbrella\n"
	got = decodeAs[upload](t, w.a.csv(t, "POST", path, csvBody).expect(t, http.StatusOK))
	if got.Added != 2 || got.Duplicates != 1 || len(got.Rejected) != 2 || got.Rejected[0].Row != 3 || got.Rejected[0].Field != "phone_number" ||
		got.Rejected[1].Row != 4 {
		t.Fatalf("CSV upload: %+v", got)
	}
	expectFieldError(t, w.a.csv(t, "POST", path, "number,name\n+380671234567,x\n"), http.StatusUnprocessableEntity, "phone_number")

	var big strings.Builder
	big.WriteString("phone_number\n")
	for i := range 10001 {
		fmt.Fprintf(&big, "+38050%07d\n", i)
	}
	if e := expectError(t, w.a.csv(t, "POST", path, big.String()), http.StatusRequestEntityTooLarge); e.Code != "too_many_rows" {
		t.Fatalf("10,001 rows: %+v", e)
	}
	after := decodeAs[store.Campaign](t, w.a.do(t, "GET", "/api/campaigns/"+camp.ID.String(), nil).expect(t, http.StatusOK))
	if after.Progress.Total != 4 || after.Progress.Queued != 4 {
		t.Fatalf("progress %+v, want 4 queued", after.Progress)
	}
	calls := decodeAs[[]store.Call](t, w.a.do(t, "GET", "/api/calls?campaignId="+camp.ID.String(), nil).expect(t, http.StatusOK))
	phones := map[string]store.Call{}
	for _, c := range calls {
		phones[c.PhoneNumber] = c
	}
	if c, ok := phones["+380991234567"]; !ok || c.MaxAttempts != 4 || *c.RecordID != "17" || c.CampaignID == nil || *c.CampaignID != camp.ID {
		t.Fatalf("calls %+v", calls)
	}
	if c := phones["+12125550123"]; c.Timezone == nil || *c.Timezone != "America/New_York" {
		t.Fatalf("timezone not kept: %+v", c)
	}

	patched := decodeAs[store.Campaign](t, w.a.do(t, "PATCH", "/api/campaigns/"+camp.ID.String(),
		map[string]any{"callingWindow": nil, "concurrencyLimit": nil, "name": "Spring (2)"}).expect(t, http.StatusOK))
	if string(patched.CallingWindow) != "null" || patched.ConcurrencyLimit != nil || patched.Name != "Spring (2)" || *patched.MaxAttempts != 4 {
		t.Fatalf("patched %+v", patched)
	}
	list := decodeAs[[]store.Campaign](t, w.a.do(t, "GET", "/api/campaigns?integrationId="+in.ID.String()+"&status=running", nil).
		expect(t, http.StatusOK))
	if len(list) != 1 || list[0].Progress.Total != 4 {
		t.Fatalf("list %+v", list)
	}
	cancelled := decodeAs[store.Campaign](t, w.a.do(t, "POST", "/api/campaigns/"+camp.ID.String()+"/cancel", nil).expect(t, http.StatusOK))
	if cancelled.Status != "cancelled" || cancelled.Progress.Cancelled != 4 {
		t.Fatalf("cancelled %+v", cancelled)
	}
	expectError(t, w.a.do(t, "POST", "/api/campaigns/"+camp.ID.String()+"/resume", nil), http.StatusConflict)
	expectError(t, w.a.do(t, "POST", path, []any{map[string]any{"phoneNumber": "+380671234570"}}), http.StatusConflict)
}

// TestSuppressions: one entry, a list or CSV; the integration's list shows
// its own and the owner-wide entries; DELETE by number lifts one.
func TestSuppressions(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Suppressions"})
	base := integrationPath(in, "/suppressions")
	w.a.do(t, "POST", base, map[string]any{"phoneNumber": "0991112233", "reason": "asked by phone"}).expect(t, http.StatusCreated)
	expectFieldError(t, w.a.do(t, "POST", base, map[string]any{"phoneNumber": "nope"}), http.StatusUnprocessableEntity, "phoneNumber")
	expectFieldError(t, w.a.do(t, "POST", base, map[string]any{"phoneNumber": "+380991112233", "expiresAt": "soon"}),
		http.StatusUnprocessableEntity, "expiresAt")
	res := decodeAs[upload](t, w.a.csv(t, "POST", base, "phone_number,reason,expires_at\n+380991112244,complaint,2030-01-01T00:00:00Z\nbad,,\n").
		expect(t, http.StatusCreated))
	if res.Added != 1 || len(res.Rejected) != 1 {
		t.Fatalf("CSV: %+v", res)
	}
	w.a.do(t, "POST", "/api/suppressions", []any{map[string]any{"phoneNumber": "+12125550123"}}).expect(t, http.StatusCreated)
	list := decodeAs[[]store.Suppression](t, w.a.do(t, "GET", base, nil).expect(t, http.StatusOK))
	if len(list) != 3 {
		t.Fatalf("integration list %+v, want its 2 and the owner-wide one", list)
	}
	owned := decodeAs[[]store.Suppression](t, w.a.do(t, "GET", "/api/suppressions", nil).expect(t, http.StatusOK))
	if len(owned) != 1 || owned[0].IntegrationID != nil {
		t.Fatalf("owner-wide list %+v", owned)
	}
	w.a.do(t, "DELETE", base+"/"+url.PathEscape("+380991112233"), nil).expect(t, http.StatusOK)
	expectError(t, w.a.do(t, "DELETE", base+"/"+url.PathEscape("+380991112233"), nil), http.StatusNotFound)
	w.a.do(t, "DELETE", "/api/suppressions/"+url.PathEscape("+12125550123"), nil).expect(t, http.StatusOK)
	if list := decodeAs[[]store.Suppression](t, w.a.do(t, "GET", base, nil).expect(t, http.StatusOK)); len(list) != 1 {
		t.Fatalf("after deletes %+v", list)
	}
}
