package admin_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/store"
)

// TestConsoleSuppressions: pause the integration from its page, queue a
// call, suppress its number on the Suppressions tab and resume: the call
// ends suppressed and the VA never sees it, while a later call to another
// number is dialled. Removing the number lets the next call to it through.
// An owner-wide entry is listed and removed owner-wide; a CSV import adds
// the good rows and reports the bad one. The audit log shows the changes.
func TestConsoleSuppressions(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("Do not call", c.va, map[string]any{"concurrency_limit": 1})
	const number = "+380991230050"
	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=suppressions")
	b.signIn(c.admin.Token)
	b.until("an empty list", `document.querySelector('#suppressions-list')?.textContent.includes('No suppressed numbers')`)

	// Paused from the page head: calls are accepted and wait.
	b.click(`.page-head .actions button`)
	b.until("paused", `document.querySelector('h1 .badge')?.textContent === 'paused' &&
		document.querySelector('.page-head .actions button').textContent === 'Resume'`)
	if got := c.admin.Refresh(in); got.Status != store.StatusPaused {
		t.Fatalf("integration %s after pause", got.Status)
	}
	queued := originate(t, c, in, number)
	waitStatus(t, c, queued.String(), "queued")

	add := `form[aria-labelledby="suppress-add-h"]`
	b.fill(add+` input[name="phoneNumber"]`, number)
	b.fill(add+` input[name="reason"]`, "asked not to be called")
	b.click(add + ` button[type="submit"]`)
	b.until("the number listed", `[...document.querySelectorAll('#suppressions-list tbody tr')].some((tr) =>
		tr.cells[0].textContent === '`+number+`' && tr.cells[1].textContent === 'asked not to be called')`)
	var list []store.Suppression
	if c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/suppressions", nil, &list); len(list) != 1 || list[0].PhoneNumber != number {
		t.Fatalf("suppressions %+v", list)
	}

	// Another number queued behind it, then resume: the suppressed call
	// is passed over, the other one is the VA's first dial.
	other := originate(t, c, in, "+380991230051")
	b.click(`.page-head .actions button`)
	b.until("active", `document.querySelector('h1 .badge')?.textContent === 'active'`)
	if next := c.va.Next(t, waitFor); next.Call() != other.String() {
		t.Fatalf("dial %s, want the unsuppressed call %s", next.CallID, other)
	}
	if call := waitStatus(t, c, queued.String(), "cancelled"); call.Outcome == nil || *call.Outcome != "suppressed" {
		t.Fatalf("suppressed call: %+v", call)
	}
	if n := c.va.CountFor(queued.String()); n != 0 {
		t.Fatalf("the suppressed number was dialled %d times", n)
	}

	// Removed (after a confirmation), the number is dialled again.
	b.click(`#suppressions-list tbody tr button.danger`)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("the list empty", `document.querySelector('#suppressions-list')?.textContent.includes('No suppressed numbers')`)
	if c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/suppressions", nil, &list); len(list) != 0 {
		t.Fatalf("suppressions after removal %+v", list)
	}
	again := originate(t, c, in, number)
	endCall(t, c, in, other.String()+".1")
	if next := c.va.Next(t, waitFor); next.Call() != again.String() {
		t.Fatalf("dial %s, want the call to the number no longer suppressed %s", next.CallID, again)
	}

	// An owner-wide entry is listed here too, and removed owner-wide.
	b.fill(add+` input[name="phoneNumber"]`, "+380991230052")
	b.run("every integration", chromedp.SetValue(add+` select[name="scope"]`, "owner", chromedp.ByQuery))
	b.click(add + ` button[type="submit"]`)
	b.until("the owner-wide entry", `document.querySelector('#suppressions-list tbody tr[data-scope="owner"]')?.cells[0].textContent === '+380991230052'`)
	if c.admin.Do("GET", "/api/suppressions", nil, &list); len(list) != 1 || list[0].IntegrationID != nil {
		t.Fatalf("owner-wide suppressions %+v", list)
	}
	b.click(`#suppressions-list tbody tr[data-scope="owner"] button.danger`)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("the list empty again", `document.querySelector('#suppressions-list')?.textContent.includes('No suppressed numbers')`)
	if c.admin.Do("GET", "/api/suppressions", nil, &list); len(list) != 0 {
		t.Fatalf("owner-wide suppressions after removal %+v", list)
	}

	// A CSV import: good rows added, a bad one reported by row.
	imported := filepath.Join(t.TempDir(), "suppressions.csv")
	if err := os.WriteFile(imported, []byte("phone_number,reason,expires_at\n+380991230060,opted out,\nnot-a-phone,,\n+380991230061,,2099-01-01T00:00:00Z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	form := `form[aria-labelledby="suppress-import-h"]`
	b.run("choose the CSV", chromedp.SetUploadFiles(form+` input[type="file"]`, []string{imported}, chromedp.ByQuery))
	b.click(form + ` button[type="submit"]`)
	b.until("the import's counts", `document.querySelector('#import-result')?.textContent.startsWith('Added 2, rejected 1.') &&
		document.querySelector('#import-result li')?.textContent.startsWith('row 2: phone_number')`)
	b.until("both listed", `['+380991230060', '+380991230061'].every((n) =>
		[...document.querySelectorAll('#suppressions-list tbody tr')].some((tr) => tr.cells[0].textContent === n))`)
	if c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/suppressions", nil, &list); len(list) != 2 {
		t.Fatalf("suppressions after the import %+v", list)
	}

	b.tab("audit")
	b.until("the suppression added and removed", `document.querySelector('#audit-list li[data-resource="suppression"][data-action="create"]') &&
		document.querySelector('#audit-list li[data-resource="suppression"][data-action="delete"]')`)
}
