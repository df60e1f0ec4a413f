package admin_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
)

// TestConsoleCallsFilterAndKeyboard: the tabs answer the arrow keys; the
// calls list filters by phone, campaign and status (a campaign id typed
// halfway is not sent, a bad one is refused on its field), and a filter
// survives a reload of its deep link; a queued call is cancelled from its own page,
// whose timeline then shows the cancel.
func TestConsoleCallsFilterAndKeyboard(t *testing.T) {
	t.Parallel()
	c := setup(t)
	// Not configured: nothing is dialled, every call waits queued.
	in := c.admin.CreateIntegration("Filters", nil, nil)
	a, bCall, cCall := originate(t, c, in, "+380991230081"), originate(t, c, in, "+380991230082"), originate(t, c, in, "+380991230083")
	var campaign campaignJSON
	if code := c.admin.Do("POST", "/api/integrations/"+in.ID.String()+"/campaigns",
		map[string]any{"name": "One recipient", "recipients": []map[string]any{{"phoneNumber": "+380991230084"}}}, &campaign); code != http.StatusCreated {
		t.Fatalf("create campaign: %d", code)
	}
	for _, id := range []uuid.UUID{a, bCall, cCall} {
		waitStatus(t, c, id.String(), "queued")
	}

	b := c.b
	b.open("/admin/integrations/" + in.ID.String())
	b.signIn(c.admin.Token)
	// From the first tab to Calls with the arrow keys.
	b.until("the handlers tab", `document.querySelector('#tab-handlers[aria-selected="true"]')`)
	b.run("focus the tabs", chromedp.Focus(`#tab-handlers`, chromedp.ByQuery))
	for _, want := range []string{"secrets", "configuration", "calls"} {
		b.run("arrow right", chromedp.KeyEvent(kb.ArrowRight))
		b.until("the "+want+" tab focused", `document.activeElement?.id === 'tab-`+want+`' && location.search === '?tab=`+want+`'`)
	}
	rows := `document.querySelectorAll('#calls-list tbody tr')`
	b.until("four calls", rows+`.length === 4`)

	b.fill(`form.filters input[name="phone"]`, "+380991230082")
	b.click(`form.filters button[type="submit"]`)
	only := func(id uuid.UUID) string {
		return rows + fmt.Sprintf(`.length === 1 && document.querySelector('#calls-list tbody tr').dataset.call === %q`, id)
	}
	b.until("only the phone's call", only(bCall))
	if p := b.path(); p != "/admin/integrations/"+in.ID.String()+"?tab=calls&phone=%2B380991230082" {
		t.Fatalf("path %q: the filter belongs in the URL", p)
	}
	b.run("reload", chromedp.Reload())
	b.until("the filter kept", only(bCall)+` && document.querySelector('form.filters input[name="phone"]').value === '+380991230082'`)

	// A campaign id that is not one is refused on its field; the polls
	// go on with the filter last applied.
	b.fill(`form.filters input[name="campaignId"]`, "spring")
	b.click(`form.filters button[type="submit"]`)
	b.until("the campaign id refused", `document.querySelector('form.filters [data-field="campaignId"] .field-error:not([hidden])')?.textContent.includes('UUID') &&
		`+only(bCall))
	b.fill(`form.filters input[name="phone"]`, " ")
	b.fill(`form.filters input[name="campaignId"]`, campaign.ID.String())
	b.click(`form.filters button[type="submit"]`)
	b.until("only the campaign's call", rows+`.length === 1 && document.querySelector('#calls-list tbody tr a').textContent === '+380991230084'`)

	// Cancel from the call's own page.
	b.fill(`form.filters input[name="campaignId"]`, " ")
	b.click(`form.filters button[type="submit"]`)
	b.until("four calls again", rows+`.length === 4`)
	b.click(fmt.Sprintf(`tr[data-call=%q] a`, cCall))
	b.until("the call's page", `document.querySelector('h1')?.textContent.includes('+380991230083') && document.querySelector('.page-head button.danger')`)
	b.click(`.page-head button.danger`)
	b.until("cancelled, with the cancel in its timeline", `document.querySelector('h1 .badge')?.textContent === 'cancelled' &&
		!document.querySelector('.page-head button.danger') && document.querySelector('.timeline li[data-kind="cancel"]')`)
	// A timeline entry shows its trace id, linked to the trace viewer.
	b.until("the originate's trace id linked", `(() => { const a = document.querySelector('.timeline li[data-kind="queued"] .trace a');
		return a && a.textContent.length >= 16 && a.href === 'http://127.0.0.1:16686/trace/' + a.textContent; })()`)
	if call := waitStatus(t, c, cCall.String(), "cancelled"); call.Attempt != 0 {
		t.Fatalf("cancelled call %+v", call)
	}
	b.run("back", chromedp.NavigateBack())
	b.run("only the cancelled", chromedp.SetValue(`form.filters select[name="status"]`, "cancelled", chromedp.ByQuery))
	b.click(`form.filters button[type="submit"]`)
	b.until("only the cancelled call", only(cCall)+` && !document.querySelector('#calls-list tbody tr button')`)
}
