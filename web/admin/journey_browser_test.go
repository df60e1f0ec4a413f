package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestConsoleJourney is seed 000's flow in the console: create an
// integration (a field error first), add a secret and see only its
// preview, create and invoke a handler, cancel the queued call, refuse a
// bad call-handling value on its field, configure the dialler, watch calls
// queued through the webhook move through the live view to
// waiting_postcall, open a call's timeline, read the audit log, and sign
// out; a revoked token returns to sign-in.
func TestConsoleJourney(t *testing.T) {
	t.Parallel()
	c := setup(t)
	b := c.b
	b.open("/admin/")
	b.signIn(c.admin.Token)
	b.until("the list", `location.pathname === '/admin/integrations'`)

	// Create, with the API's field error shown on the field first.
	b.click(`a[href="/admin/integrations/new"]`)
	b.fill(`input[name="name"]`, "Kyiv sales")
	b.fill(`input[name="slug"]`, "Kyiv Sales!")
	b.click(`form button[type="submit"]`)
	b.until("the slug's error", `document.querySelector('[data-field="slug"] .field-error:not([hidden])')?.textContent.includes('slug') &&
		document.querySelector('input[name="slug"]').getAttribute('aria-invalid') === 'true'`)
	b.fill(`input[name="slug"]`, "kyiv-sales")
	b.click(`form button[type="submit"]`)
	b.until("the integration page", `/^\/admin\/integrations\/[0-9a-f-]{36}$/.test(location.pathname)`)
	id := uuid.MustParse(strings.TrimPrefix(b.path(), "/admin/integrations/"))
	var in store.Integration
	if code := c.admin.Do("GET", "/api/integrations/"+id.String(), nil, &in); code != http.StatusOK || in.Slug != "kyiv-sales" {
		t.Fatalf("created integration: %d %+v", code, in)
	}
	b.until("status and webhooks", `document.querySelector('h1').textContent.includes('not configured') &&
		document.querySelector('.urls').textContent.includes('/kyiv-sales/webhook/call-originate')`)

	// A secret: only its preview is ever on the page.
	b.tab("secrets")
	b.fill(`#tabpanel form[aria-label="Add secret"] input[name="key"]`, "VA_AUTH_TOKEN")
	b.fill(`#tabpanel form[aria-label="Add secret"] input[name="value"]`, servicetest.FakeVAToken)
	b.click(`#tabpanel form[aria-label="Add secret"] button[type="submit"]`)
	b.until("the secret listed", `document.querySelector('#secrets-table')?.textContent.includes('VA_AUTH_TOKEN')`)
	var secrets []store.Secret
	c.admin.Do("GET", "/api/integrations/"+id.String()+"/secrets", nil, &secrets)
	if len(secrets) != 1 || !strings.Contains(b.textOf(`#secrets-table`), secrets[0].ValuePreview) {
		t.Fatalf("secrets %+v; table %q", secrets, b.textOf(`#secrets-table`))
	}
	var leaked bool
	b.eval(`document.documentElement.outerHTML.includes(`+jsonString(servicetest.FakeVAToken)+`) ||
		[...document.querySelectorAll('input')].some((i) => i.value === `+jsonString(servicetest.FakeVAToken)+`)`, &leaked)
	if leaked {
		t.Fatal("the secret's value is still on the page")
	}

	// A handler: defaultArgs checked as JSON while typing, then invoked.
	b.tab("handlers")
	b.click(`#tabpanel .page-head button.primary`)
	b.fill(`form[aria-label="New handler"] input[name="name"]`, "call-originate")
	b.fill(`form[aria-label="New handler"] textarea[name="defaultArgs"]`, `{"retries": 2,`)
	b.until("the JSON error", `document.querySelector('[data-field="defaultArgs"] .field-error:not([hidden])')?.textContent.includes('Not valid JSON') &&
		document.querySelector('form[aria-label="New handler"] button[type="submit"]').disabled`)
	b.fill(`form[aria-label="New handler"] textarea[name="defaultArgs"]`,
		`{"retries": 2, "timeout": 5000, "dynamic_variables": {"lead_source": "console"}}`)
	b.until("valid JSON", `!document.querySelector('form[aria-label="New handler"] button[type="submit"]').disabled`)
	b.click(`form[aria-label="New handler"] button[type="submit"]`)
	b.until("the handler listed", `[...document.querySelectorAll('#tabpanel tbody code')].some((c) => c.textContent === 'call-originate')`)
	b.click(`#tabpanel tbody button.small:not(.secondary):not(.danger)`)
	b.fill(`form[aria-label="Invoke call-originate"] textarea[name="args"]`, `{"phone_number": "+380991110000"}`)
	b.click(`form[aria-label="Invoke call-originate"] button[type="submit"]`)
	b.until("the result", `document.querySelector('#invoke-result')?.textContent.includes('"callId"')`)
	var result struct {
		Result struct {
			CallID uuid.UUID `json:"callId"`
		} `json:"result"`
	}
	var raw string
	b.eval(`document.querySelector('#invoke-result').textContent`, &raw)
	if err := json.Unmarshal([]byte(raw), &result); err != nil || result.Result.CallID == uuid.Nil {
		t.Fatalf("invoke result %q: %v", raw, err)
	}
	invoked := result.Result.CallID

	// The invoked call waits (nothing dials for a not_configured
	// integration): cancel it from the calls list.
	b.tab("calls")
	row := fmt.Sprintf(`tr[data-call=%q]`, invoked)
	b.until("the queued call", `document.querySelector('`+row+`')?.dataset.status === 'queued' &&
		document.querySelector('[data-stat="queued"] .n')?.textContent === '1'`)
	b.click(row + ` button.danger`)
	b.until("the call cancelled", `document.querySelector('`+row+`')?.dataset.status === 'cancelled'`)
	var call store.Call
	if c.admin.Do("GET", "/api/calls/"+invoked.String(), nil, &call); call.Status != "cancelled" {
		t.Fatalf("call after cancel: %s", call.Status)
	}

	// Call handling: a value out of bounds is refused on its field.
	b.tab("configuration")
	form := `#config-call_handling`
	b.fill(form+` input[name="concurrency_limit"]`, "0")
	b.click(form + ` button[type="submit"]`)
	b.until("the 422 on concurrency_limit", `document.querySelector('`+form+` [data-field="concurrency_limit"] .field-error:not([hidden])')?.textContent.includes('between 1 and 1000') &&
		document.querySelector('`+form+` input[name="concurrency_limit"]').getAttribute('aria-invalid') === 'true'`)
	var ch struct {
		ConcurrencyLimit int `json:"concurrency_limit"`
	}
	if c.admin.Do("GET", "/api/integrations/"+id.String()+"/config/call_handling", nil, &ch); ch.ConcurrencyLimit != 3 {
		t.Fatalf("concurrency_limit %d after a refused change, want the default 3", ch.ConcurrencyLimit)
	}
	b.fill(form+` input[name="concurrency_limit"]`, "2")
	b.click(form + ` button[type="submit"]`)
	b.until("saved", `document.getElementById('status').textContent.includes('Call handling saved')`)
	if c.admin.Do("GET", "/api/integrations/"+id.String()+"/config/call_handling", nil, &ch); ch.ConcurrencyLimit != 2 {
		t.Fatalf("concurrency_limit %d, want 2", ch.ConcurrencyLimit)
	}
	// The dialler: with the secret above it makes the integration active.
	b.fill(`#config-voice input[name="base_url"]`, c.va.URL)
	b.fill(`#config-voice input[name="sip_id"]`, "sip-1")
	b.fill(`#config-voice input[name="assistant_id"]`, "asst-1")
	b.click(`#config-voice button[type="submit"]`)
	b.until("voice saved", `document.getElementById('status').textContent.includes('Voice saved')`)
	servicetest.Eventually(t, waitFor, "the integration active", func() bool {
		c.admin.Do("GET", "/api/integrations/"+id.String(), nil, &in)
		return in.Status == store.StatusActive
	})

	// Three calls through the webhook: two dialled (the limit), one queued.
	b.tab("calls")
	var calls []uuid.UUID
	for i := range 3 {
		var out struct {
			CallID uuid.UUID `json:"callId"`
		}
		if code := servicetest.Webhook(t, c.inst, in, "call-originate", map[string]any{"phone_number": fmt.Sprintf("+38099222000%d", i)}, &out); code != http.StatusAccepted {
			t.Fatalf("call-originate: %d", code)
		}
		calls = append(calls, out.CallID)
	}
	b.until("two live, one queued", `document.querySelector('[data-stat="active"]')?.textContent === '2 / 2' &&
		document.querySelector('[data-stat="queued"] .n').textContent === '1' &&
		document.querySelectorAll('tr[data-status="initiated"]').length === 2`)
	// The picture of the live view in docs/console.md.
	if dir := os.Getenv("CALLQUEUE_SCREENSHOT_DIR"); dir != "" {
		var png []byte
		// Without the last toast, which would cover a corner of the list.
		b.run("screenshot", chromedp.Evaluate(`document.getElementById('status').hidden = true; window.scrollTo(0, document.querySelector('.tabs').offsetTop - 10)`, nil),
			chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile(filepath.Join(dir, "console-calls.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The VA reports each dialled call started and ended; a freed slot
	// dials the queued one, which the VA then ends too.
	ended := map[string]bool{}
	for len(ended) < 3 {
		o := c.va.Next(t, waitFor)
		if ended[o.CallID] {
			continue
		}
		for _, ev := range []map[string]any{{"eventType": "call_start", "callId": o.CallID}, {"eventType": "call_end", "callId": o.CallID, "duration": 42, "reason": "completed"}} {
			if code := servicetest.Webhook(t, c.inst, in, "call-events", ev, nil); code != http.StatusAccepted {
				t.Fatalf("call-events: %d", code)
			}
		}
		ended[o.CallID] = true
	}
	b.until("all three waiting for the post-call", `document.querySelector('[data-stat="waitingPostcall"] .n')?.textContent === '3' &&
		document.querySelectorAll('tr[data-status="waiting_postcall"]').length === 3 && document.querySelector('[data-stat="active"]').textContent === '0 / 2'`)
	// A call's timeline, and back to the list. (call_start and call_end are
	// stored together and may be applied in either order: a call_start
	// after the end changes nothing, so the test does not look for it.)
	b.click(fmt.Sprintf(`tr[data-call=%q] a`, calls[0]))
	b.until("the timeline", `document.querySelector('h1')?.textContent.includes('+380992220000') &&
		['dial', 'dial_accepted', 'call_end'].every((k) => document.querySelector('.timeline li[data-kind="' + k + '"]')) &&
		[...document.querySelectorAll('.attempt h3')].some((h) => h.textContent === 'Attempt 1')`)
	b.run("back", chromedp.NavigateBack())
	b.until("the calls tab again", `location.search === '?tab=calls' || location.search.startsWith('?tab=calls&')`)

	// The audit log shows the call-handling change as a diff, and never a
	// secret's value.
	b.tab("audit")
	b.until("the config change", `[...document.querySelectorAll('#audit-list li')].some((li) => li.dataset.resource === 'config' &&
		[...li.querySelectorAll('tbody tr')].some((tr) => tr.querySelector('th').textContent === 'concurrency_limit' &&
			tr.querySelector('td.before').textContent === 'default' && tr.querySelector('td.after').textContent === '2'))`)
	b.until("the secret entry", `document.querySelector('#audit-list li[data-resource="secret"]')`)
	if strings.Contains(b.textOf(`#audit-list`), servicetest.FakeVAToken) {
		t.Fatal("the audit log shows a secret's value")
	}

	// Sign out: the token is gone from the tab.
	b.click(`#sign-out`)
	b.until("the sign-in form", `document.querySelector('input[name="token"]') && sessionStorage.length === 0`)

	// A token revoked while the console is open returns it to sign-in.
	second, secondToken, err := c.env.Store.CreateToken(context.Background(), "console-owner", store.ActorCLI, "second")
	if err != nil {
		t.Fatal(err)
	}
	b.signIn(secondToken)
	b.tab("calls") // its live view polls the API
	b.until("the live view", `document.querySelector('#live [data-stat="active"]')`)
	if code := c.admin.Do("DELETE", "/api/tokens/"+second.ID.String(), nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	b.until("back at sign-in", `document.querySelector('input[name="token"]') &&
		document.querySelector('.form-error:not([hidden])')?.textContent.includes('session has ended')`)
}
