package admin_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// campaignJSON is the part of a campaign the tests read back from the API.
type campaignJSON struct {
	ID       uuid.UUID      `json:"id"`
	Status   string         `json:"status"`
	Progress map[string]int `json:"progress"`
}

// TestConsoleCampaign: create a campaign on the Campaigns tab (bad JSON and
// a refused priority shown on their fields first), upload a
// CSV with a bad row and a duplicate (the counts and the rejected row with
// its reason are shown), watch its progress in the list, pause it (the VA
// gets no new dial while a free slot waits), resume it (dials go on) and
// cancel it (the recipient not yet dialled is cancelled, the live call
// stays), and export its calls as CSV.
func TestConsoleCampaign(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("Outbound", c.va, map[string]any{"concurrency_limit": 1})
	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=campaigns")
	b.signIn(c.admin.Token)
	b.until("an empty list", `document.querySelector('#campaigns-list')?.textContent.includes('No campaigns yet')`)

	// Bad JSON is caught on its field, a value the API refuses on its own.
	create := `form[aria-labelledby="new-campaign-h"]`
	b.fill(create+` input[name="name"]`, "Spring leads")
	b.fill(create+` textarea[name="callingWindow"]`, `{"start": "09:00",`)
	b.click(create + ` button[type="submit"]`)
	b.until("the JSON error", `document.querySelector('`+create+` [data-field="callingWindow"] .field-error:not([hidden])')?.textContent.startsWith('Not valid JSON')`)
	b.fill(create+` textarea[name="callingWindow"]`, " ")
	b.fill(create+` input[name="priority"]`, "11")
	b.click(create + ` button[type="submit"]`)
	b.until("the 422 on priority", `document.querySelector('`+create+` [data-field="priority"] .field-error:not([hidden])')?.textContent.includes('from 1 to 10') &&
		document.querySelector('`+create+` input[name="priority"]').getAttribute('aria-invalid') === 'true'`)
	var none []campaignJSON
	if c.admin.Do("GET", "/api/campaigns?integrationId="+in.ID.String(), nil, &none); len(none) != 0 {
		t.Fatalf("campaigns after refused creates: %+v", none)
	}
	b.fill(create+` input[name="priority"]`, "5")
	b.click(create + ` button[type="submit"]`)
	b.until("the campaign's page", `/^\/admin\/campaigns\/[0-9a-f-]{36}$/.test(location.pathname) && document.querySelector('h1')?.textContent.includes('Spring leads')`)
	id := uuid.MustParse(strings.TrimPrefix(b.path(), "/admin/campaigns/"))
	// What the campaign leaves to the integration is shown as in force (effective).
	b.until("the integration's settings in force", `document.querySelector('dl.facts')?.textContent.includes('(the integration’s)')`)

	// Three good rows, a bad phone number (row 3) and the first row again.
	recipients := filepath.Join(t.TempDir(), "recipients.csv")
	rows := "phone_number,record_id,first_name\n+380991230001,r1,Olena\n+380991230002,r2,Taras\nnot-a-phone,r3,Bad\n+380991230001,r1,Olena\n+380991230003,r4,Ivan\n"
	if err := os.WriteFile(recipients, []byte(rows), 0o600); err != nil {
		t.Fatal(err)
	}
	upload := `form[aria-labelledby="upload-h"]`
	b.run("choose the CSV", chromedp.SetUploadFiles(upload+` input[type="file"]`, []string{recipients}, chromedp.ByQuery))
	b.click(upload + ` button[type="submit"]`)
	b.until("the upload's counts", `document.querySelector('#upload-result')?.textContent.includes('Added 3, duplicates 1, rejected 1.')`)
	var rejected [][]string
	b.eval(`[...document.querySelectorAll('#rejected-rows tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent))`, &rejected)
	if len(rejected) != 1 || rejected[0][0] != "3" || rejected[0][1] != "phone_number" || rejected[0][2] == "" {
		t.Fatalf("rejected rows %q, want row 3 on phone_number with its reason", rejected)
	}
	var calls []store.Call
	c.admin.Do("GET", "/api/calls?campaignId="+id.String(), nil, &calls)
	if len(calls) != 3 {
		t.Fatalf("%d calls for the campaign, want 3", len(calls))
	}
	campaignCalls := map[string]bool{}
	for _, call := range calls {
		campaignCalls[call.ID.String()] = true
	}

	// The limit of one dials one recipient; the list shows the progress.
	first := c.va.Next(t, waitFor)
	if !campaignCalls[first.Call()] {
		t.Fatalf("first dial %s is not the campaign's", first.CallID)
	}
	b.click(`.crumbs a`)
	row := fmt.Sprintf(`document.querySelector('tr[data-campaign=%q]')`, id)
	b.until("the campaign running with one live call", row+`?.dataset.status === 'running' &&
		`+row+`.textContent.includes('0 of 3 done') && `+row+`.textContent.includes('active 1') && `+row+`.textContent.includes('queued 2')`)

	// Paused, a free slot goes to nobody in the campaign: a webhook call
	// queued after the slot was freed is the next dial.
	b.click(fmt.Sprintf(`tr[data-campaign=%q] button[data-action="pause"]`, id))
	b.until("paused", row+`?.dataset.status === 'paused' && `+row+`.querySelector('button[data-action="resume"]')`)
	if got := campaignStatus(t, c, id); got.Status != "paused" {
		t.Fatalf("campaign %s after pause", got.Status)
	}
	endCall(t, c, in, first.CallID)
	waitStatus(t, c, first.Call(), "waiting_postcall")
	var probe struct {
		CallID uuid.UUID `json:"callId"`
	}
	if code := servicetest.Webhook(t, c.inst, in, "call-originate", map[string]any{"phone_number": "+380991239999"}, &probe); code != http.StatusAccepted {
		t.Fatalf("call-originate: %d", code)
	}
	if next := c.va.Next(t, waitFor); next.Call() != probe.CallID.String() {
		t.Fatalf("dial %s while the campaign was paused, want the webhook call %s", next.CallID, probe.CallID)
	}
	endCall(t, c, in, probe.CallID.String()+".1")
	waitStatus(t, c, probe.CallID.String(), "waiting_postcall")
	if n := len(c.va.Requests()); n != 2 {
		t.Fatalf("the VA got %d dials, want 2 (one recipient, one webhook call)", n)
	}
	b.until("two still queued", row+`?.textContent.includes('queued 2') && `+row+`.textContent.includes('waiting post-call 1')`)

	// Resumed, the next recipient is dialled.
	b.click(fmt.Sprintf(`tr[data-campaign=%q] button[data-action="resume"]`, id))
	second := c.va.Next(t, waitFor)
	if !campaignCalls[second.Call()] || second.Call() == first.Call() {
		t.Fatalf("dial %s after resume, want another recipient", second.CallID)
	}
	b.until("running again", row+`?.dataset.status === 'running' && `+row+`.textContent.includes('active 1') && `+row+`.textContent.includes('queued 1')`)

	// Cancelled, the last recipient is never dialled; the live call is
	// cancelled too but keeps its slot until it ends (no hang-up).
	b.click(fmt.Sprintf(`tr[data-campaign=%q] button[data-action="cancel"]`, id))
	b.until("cancelled", row+`?.dataset.status === 'cancelled' && !`+row+`.querySelector('button[data-action]') &&
		`+row+`.textContent.includes('cancelled 2')`)
	got := campaignStatus(t, c, id)
	if got.Status != "cancelled" || got.Progress["cancelled"] != 2 || got.Progress["active"] != 1 || got.Progress["queued"] != 0 {
		t.Fatalf("campaign after cancel: %+v", got)
	}
	var live store.Call
	c.admin.Do("GET", "/api/calls/"+second.Call(), nil, &live)
	if live.Status != "cancelled" || live.SlotTakenAt == nil {
		t.Fatalf("the live call is %s (slot %v) after the cancel, want cancelled holding its slot", live.Status, live.SlotTakenAt)
	}
	if n := len(c.va.Requests()); n != 3 {
		t.Fatalf("the VA got %d dials, want 3", n)
	}
	var dialled []string
	for _, r := range c.va.Requests() {
		dialled = append(dialled, r.Call())
	}
	for callID := range campaignCalls {
		if !slices.Contains(dialled, callID) {
			waitStatus(t, c, callID, "cancelled")
		}
	}

	// The export, from the campaign's page: one row per recipient.
	downloads := t.TempDir()
	b.run("allow downloads", cdpbrowser.SetDownloadBehavior(cdpbrowser.SetDownloadBehaviorBehaviorAllow).WithDownloadPath(downloads))
	b.click(fmt.Sprintf(`tr[data-campaign=%q] a`, id))
	b.click(`.page-head button[data-action="export"]`)
	file := filepath.Join(downloads, "campaign-"+id.String()+".csv")
	var exported [][]string
	servicetest.Eventually(t, waitFor, "the export", func() bool {
		raw, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		exported, err = csv.NewReader(bytes.NewReader(raw)).ReadAll()
		return err == nil
	})
	statuses := map[string]string{}
	for _, r := range exported[1:] {
		statuses[r[0]] = r[3]
	}
	if len(exported) != 4 || exported[0][0] != "phone_number" || exported[0][3] != "status" || len(statuses) != 3 ||
		statuses[live.PhoneNumber] != "cancelled" || statuses[first.PhoneNumber] != "waiting_postcall" {
		t.Fatalf("exported %q", exported)
	}

	// Its calls: the calls tab filtered by the campaign.
	b.click(`.page-head a.button`)
	b.until("the campaign's calls", `location.search.includes('campaignId=`+id.String()+`') &&
		document.querySelectorAll('#calls-list tbody tr').length === 3 && !document.querySelector('#calls-list').textContent.includes('+380991239999')`)
}

// campaignStatus reads a campaign through the API.
func campaignStatus(t *testing.T, c *console, id uuid.UUID) campaignJSON {
	t.Helper()
	var out campaignJSON
	if code := c.admin.Do("GET", "/api/campaigns/"+id.String(), nil, &out); code != http.StatusOK {
		t.Fatalf("get campaign: %d", code)
	}
	return out
}
