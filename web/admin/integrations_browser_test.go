package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/store"
)

// TestConsoleIntegrationsList: deep link before sign-in, a refused token,
// search, sort, paging figures from X-Total-Count, delete with a
// confirmation, back/forward; the token only in sessionStorage; every tab
// fits a phone's width and labels its controls.
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

	// A change whose value is one long unbroken string (a URL, an id) is
	// in the audit log: it wraps too.
	zeta := strings.TrimPrefix(b.path(), "/admin/integrations/")
	long := "https://crm.example.com/hooks/" + strings.Repeat("0123456789abcdef", 12)
	if code := c.admin.Do("PUT", "/api/integrations/"+zeta+"/config/notes", map[string]any{"endpoint": long}, nil); code != http.StatusOK {
		t.Fatalf("put a free-form config key: %d", code)
	}

	// On a phone's width nothing makes the page scroll sideways (wide
	// tables scroll inside their own box).
	// Every control of every tab has a name a screen reader can say.
	b.run("phone viewport", chromedp.EmulateViewport(390, 844))
	for _, tab := range []string{"handlers", "secrets", "configuration", "calls", "campaigns", "suppressions", "audit"} {
		b.tab(tab)
		if tab == "audit" {
			b.until("the long value in the audit log", `document.querySelector('main').textContent.includes(`+jsonString(long)+`)`)
		}
		var widths struct{ Page, View int }
		b.eval(`({Page: document.documentElement.scrollWidth, View: window.innerWidth})`, &widths)
		if widths.Page > widths.View {
			t.Errorf("%s tab on a phone: page %dpx wide in a %dpx viewport", tab, widths.Page, widths.View)
		}
		var unnamed []string
		b.eval(unnamedControls, &unnamed)
		if len(unnamed) > 0 {
			t.Errorf("%s tab: controls without a label: %q", tab, unnamed)
		}
	}
}

// unnamedControls lists the page's form controls and buttons that have no
// accessible name (no label, aria-label, aria-labelledby or text).
const unnamedControls = `[...document.querySelectorAll('input:not([type="hidden"]), select, textarea, button')].filter((el) => {
	if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
	if (el.tagName === 'BUTTON') return !el.textContent.trim();
	return !(el.labels && [...el.labels].some((l) => l.textContent.trim()));
}).map((el) => el.outerHTML.slice(0, 120))`
