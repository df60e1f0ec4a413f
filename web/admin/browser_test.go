package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// These tests drive the console in a real headless Chromium against a real
// callqueue process (servicetest: its own Postgres database and JetStream
// server), with the fake VA as the dialler.

// waitFor bounds every wait for the page; the machine may be busy.
const waitFor = 30 * time.Second

// chromiumPath finds the browser: $CALLQUEUE_CHROMIUM, else chromium on
// PATH (scripts/chromium.sh installs it; make test runs that first).
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("CALLQUEUE_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: scripts/chromium.sh installs it")
		}
		t.Skip("chromium is not installed (scripts/chromium.sh installs it)")
	}
	return p
}

// browser is one headless Chromium tab, with the page's script errors and
// security reports (CSP violations) collected so a test fails on them.
type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		// Newer Chromium sends DOM events this chromedp does not know.
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled node event") {
			t.Log(msg)
		}
	}))
	b := &browser{t: t, ctx: ctx, base: base}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.report("exception: " + ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.report("console.error: " + strings.Join(parts, " "))
			}
		case *log.EventEntryAdded:
			// Network errors are expected (a refused token is a 401);
			// security entries are CSP violations and are not.
			if ev.Entry.Source == log.SourceSecurity || (ev.Entry.Source == log.SourceJavascript && ev.Entry.Level == log.LevelError) {
				b.report(string(ev.Entry.Source) + ": " + ev.Entry.Text)
			}
		}
	})
	if err := chromedp.Run(ctx, log.Enable(), runtime.Enable()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("page error: %s", e)
		}
	})
	return b
}

func (b *browser) report(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

// run performs actions, each bounded by waitFor.
func (b *browser) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.text())
	}
}

// text is the page's visible text, for failure messages.
func (b *browser) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	var s string
	_ = chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ''`, &s))
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

// eval evaluates a JavaScript expression into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	b.run("evaluate "+expr, chromedp.Evaluate(expr, out))
}

// until polls a JavaScript condition until it holds.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		var ok bool
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate(`!!(`+expr+`)`, &ok))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (%s; last error %v)\npage: %s", what, expr, err, b.text())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// textOf is the text of the first element matching selector ("" if none).
func (b *browser) textOf(selector string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, selector), &s)
	return s
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+path))
}

func (b *browser) click(selector string) {
	b.t.Helper()
	b.run("click "+selector, chromedp.WaitVisible(selector, chromedp.ByQuery), chromedp.Click(selector, chromedp.ByQuery))
}

// fill replaces an input's value by typing, so input events fire.
func (b *browser) fill(selector, value string) {
	b.t.Helper()
	// chromedp.Clear empties the value attribute, not what the user typed.
	empty := fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = ''; el.dispatchEvent(new Event('input', {bubbles: true})); })()`, selector)
	b.run("fill "+selector, chromedp.WaitVisible(selector, chromedp.ByQuery), chromedp.Evaluate(empty, nil),
		chromedp.SendKeys(selector, value, chromedp.ByQuery))
}

// tab opens a tab of the integration page and waits until it is drawn
// (the tab has the focus once its panel has loaded).
func (b *browser) tab(name string) {
	b.t.Helper()
	b.click("#tab-" + name)
	b.until("the "+name+" tab", `document.activeElement && document.activeElement.id === 'tab-`+name+`'`)
}

// path is the page's path and query.
func (b *browser) path() string {
	var s string
	b.eval(`location.pathname + location.search`, &s)
	return s
}

// signIn signs in on the sign-in form that any page shows without a token.
func (b *browser) signIn(token string) {
	b.t.Helper()
	b.fill(`input[name="token"]`, token)
	b.click(`form button[type="submit"]`)
	b.until("signed in", `!document.querySelector('input[name="token"]') && !document.getElementById('nav').hidden`)
}

// console is one test's service, browser and owner.
type console struct {
	env   *servicetest.Env
	inst  *servicetest.Instance
	va    *servicetest.FakeVA
	admin *servicetest.Admin
	b     *browser
}

func setup(t *testing.T) *console {
	t.Helper()
	env := servicetest.New(t)
	inst := env.Start(servicetest.Options{})
	c := &console{env: env, inst: inst, va: servicetest.NewFakeVA(t), admin: env.Admin(inst, "console-owner")}
	c.b = newBrowser(t, inst.URL)
	return c
}

// TestConsoleIntegrationsList: deep link before sign-in, a refused token,
// search, sort, paging figures from X-Total-Count, delete with a
// confirmation, back/forward; the token only in sessionStorage.
func TestConsoleIntegrationsList(t *testing.T) {
	t.Parallel()
	c := setup(t)
	for _, name := range []string{"Alpha sales", "Beta support", "Zeta leads"} {
		if code := c.admin.Do("POST", "/api/integrations", map[string]any{"name": name}, nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", name, code)
		}
	}
	b := c.b
	b.open("/admin/integrations?search=a")
	b.fill(`input[name="token"]`, "cq_not-a-token")
	b.click(`form button[type="submit"]`)
	b.until("the refusal", `document.querySelector('.form-error:not([hidden])')?.textContent.includes('not accepted')`)
	b.signIn(c.admin.Token)

	var stored struct {
		Session, Local int
		Href           string
		HasToken       bool
	}
	b.eval(`({Session: sessionStorage.length, Local: localStorage.length, Href: location.href, HasToken: sessionStorage.getItem('callqueue.adminToken') === `+
		jsonString(c.admin.Token)+`})`, &stored)
	if !stored.HasToken || stored.Local != 0 || strings.Contains(stored.Href, c.admin.Token) {
		t.Fatalf("token storage %+v", stored)
	}
	// The deep link's search survived sign-in; every name has an "a".
	b.until("three rows", `document.querySelectorAll('tbody tr').length === 3`)
	if got := b.textOf(`p.muted[aria-live]`); got != "1–3 of 3" {
		t.Errorf("summary %q, want the X-Total-Count figures", got)
	}
	b.fill(`input[name="search"]`, "zeta")
	b.until("only Zeta", `document.querySelectorAll('tbody tr').length === 1 && document.querySelector('tbody').textContent.includes('Zeta leads')`)
	if p := b.path(); p != "/admin/integrations?search=zeta" {
		t.Errorf("path %q: the search belongs in the URL", p)
	}
	b.fill(`input[name="search"]`, " ")
	b.until("all three", `document.querySelectorAll('tbody tr').length === 3`)
	// Sort by name, descending.
	b.click(`th button.sort`)
	b.until("sorted descending", `document.querySelector('tbody tr td a').textContent === 'Zeta leads'`)
	// Delete Beta, cancelling once.
	del := `tbody tr:nth-child(2) button.danger`
	b.until("Beta second", `document.querySelector('tbody tr:nth-child(2) td a').textContent === 'Beta support'`)
	b.click(del)
	b.click(`dialog[open] button[value="cancel"]`)
	b.until("still three", `!document.querySelector('dialog') && document.querySelectorAll('tbody tr').length === 3`)
	b.click(del)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("two left", `document.querySelectorAll('tbody tr').length === 2 && !document.querySelector('tbody').textContent.includes('Beta')`)
	var list []store.Integration
	if c.admin.Do("GET", "/api/integrations", nil, &list); len(list) != 2 {
		t.Fatalf("%d integrations after the delete, want 2", len(list))
	}
	// Into an integration and back, then forward again.
	b.click(`tbody tr td a`)
	b.until("the integration page", `document.querySelector('h1')?.textContent.startsWith('Zeta leads')`)
	b.run("back", chromedp.NavigateBack())
	b.until("the list again", `document.querySelector('h1')?.textContent === 'Integrations' && document.querySelectorAll('tbody tr').length === 2`)
	b.run("forward", chromedp.NavigateForward())
	b.until("the integration again", `document.querySelector('h1')?.textContent.startsWith('Zeta leads')`)

	// On a phone's width nothing makes the page scroll sideways (wide
	// tables scroll inside their own box).
	b.run("phone viewport", chromedp.EmulateViewport(390, 844))
	for _, tab := range []string{"handlers", "configuration", "calls"} {
		b.tab(tab)
		var widths struct{ Page, View int }
		b.eval(`({Page: document.documentElement.scrollWidth, View: window.innerWidth})`, &widths)
		if widths.Page > widths.View {
			t.Errorf("%s tab on a phone: page %dpx wide in a %dpx viewport", tab, widths.Page, widths.View)
		}
	}
}

func jsonString(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}

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
	// The README's picture of the live view.
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

// endCall reports an attempt started and ended (42 s, completed) through
// the call-events webhook, as the VA would.
func endCall(t *testing.T, c *console, in store.Integration, attemptCallID string) {
	t.Helper()
	for _, ev := range []map[string]any{{"eventType": "call_start", "callId": attemptCallID},
		{"eventType": "call_end", "callId": attemptCallID, "duration": 42, "reason": "completed"}} {
		if code := servicetest.Webhook(t, c.inst, in, "call-events", ev, nil); code != http.StatusAccepted {
			t.Fatalf("call-events: %d", code)
		}
	}
	c.va.End(attemptCallID)
}

// waitStatus polls the API until the call has status.
func waitStatus(t *testing.T, c *console, callID, status string) store.Call {
	t.Helper()
	var call store.Call
	servicetest.Eventually(t, waitFor, "call "+callID+" "+status, func() bool {
		c.admin.Do("GET", "/api/calls/"+callID, nil, &call)
		return string(call.Status) == status
	})
	return call
}
