package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
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
	// A page that redraws between the wait and the click leaves chromedp
	// holding a node that is gone: look it up again, as a user would.
	for range 2 {
		ctx, cancel := context.WithTimeout(b.ctx, waitFor)
		err := chromedp.Run(ctx, chromedp.WaitVisible(selector, chromedp.ByQuery), chromedp.Click(selector, chromedp.ByQuery))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "Could not find node") {
			if err != nil {
				b.t.Fatalf("click %s: %v\npage: %s", selector, err, b.text())
			}
			return
		}
	}
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
	inst := env.Start(servicetest.Options{TraceURLTemplate: traceURLTemplate})
	c := &console{env: env, inst: inst, va: servicetest.NewFakeVA(t), admin: env.Admin(inst, "console-owner")}
	c.b = newBrowser(t, inst.URL)
	return c
}

// traceURLTemplate points the console's trace links at a local trace viewer.
const traceURLTemplate = "http://127.0.0.1:16686/trace/{traceId}"

func jsonString(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
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

// originate queues a call through the call-originate webhook.
func originate(t *testing.T, c *console, in store.Integration, number string) uuid.UUID {
	t.Helper()
	var out struct {
		CallID uuid.UUID `json:"callId"`
	}
	if code := servicetest.Webhook(t, c.inst, in, "call-originate", map[string]any{"phone_number": number}, &out); code != http.StatusAccepted {
		t.Fatalf("call-originate %s: %d", number, code)
	}
	return out.CallID
}
