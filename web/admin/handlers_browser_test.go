package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/callqueue/callqueue/store"
)

// bridgeSpec is another service's OpenAPI document: a lead webhook with a
// body example and a health check.
const bridgeSpec = `{"openapi":"3.0.3","info":{"title":"crm bridge","version":"1"},"paths":{
"/leads":{"post":{"requestBody":{"content":{"application/json":{"example":{"phone_number":"+380991112233"}}}}}},
"/health":{"get":{"responses":{"200":{"description":"ok"}}}}}}`

// TestConsoleHandlerSync: sync handlers from another service's OpenAPI
// document (the counts and the handlers shown; a second sync updates), a
// spec that cannot be fetched shown on the form, edit a handler's
// defaultArgs, and delete one after a confirmation.
func TestConsoleHandlerSync(t *testing.T) {
	t.Parallel()
	c := setup(t)
	var fetched atomic.Int32
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/crm-bridge/openapi.json" {
			http.NotFound(w, r)
			return
		}
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(bridgeSpec))
	}))
	t.Cleanup(peer.Close)
	in := c.admin.CreateIntegration("Bridge", nil, nil)
	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=handlers")
	b.signIn(c.admin.Token)
	b.until("no handlers", `document.querySelector('#tabpanel')?.textContent.includes('No handlers yet')`)

	sync := `form[aria-label="Sync from OpenAPI"]`
	b.fill(sync+` input[name="integrationName"]`, "crm-bridge")
	b.fill(sync+` input[name="baseUrl"]`, peer.URL)
	b.click(sync + ` button[type="submit"]`)
	b.until("two created", `document.querySelector('#sync-result')?.textContent === 'Created 2, updated 0.' &&
		document.querySelector('tr[data-handler="leads"]') && document.querySelector('tr[data-handler="health"]')`)
	if got := handlerArgs(t, c, in)["leads"]; got["method"] != "POST" || got["url"] != "crm-bridge/leads" {
		t.Fatalf("synced leads %v", got)
	}
	b.click(sync + ` button[type="submit"]`)
	b.until("two updated", `document.querySelector('#sync-result')?.textContent === 'Created 0, updated 2.'`)
	if n := fetched.Load(); n != 2 {
		t.Fatalf("the spec was fetched %d times, want 2", n)
	}

	// A spec that is not there: the API's error on the form, no change.
	b.fill(sync+` input[name="integrationName"]`, "missing")
	b.click(sync + ` button[type="submit"]`)
	b.until("the error on the base URL", `document.querySelector('`+sync+` [data-field="baseUrl"] .field-error:not([hidden])')?.textContent.includes('404') &&
		document.querySelector('`+sync+` input[name="baseUrl"]').getAttribute('aria-invalid') === 'true'`)
	if n := len(handlerArgs(t, c, in)); n != 2 {
		t.Fatalf("%d handlers after a failed sync, want 2", n)
	}

	// Edit: the new defaultArgs are checked as JSON and saved.
	b.click(`tr[data-handler="leads"] button[data-action="edit"]`)
	edit := `form[aria-label="Edit handler leads"]`
	b.fill(edit+` textarea[name="defaultArgs"]`, `{"method": "POST", "url": "crm-bridge/leads", "body": {"phone_number": "+380991112244"}, "timeout": 3000}`)
	b.click(edit + ` button[type="submit"]`)
	b.until("saved", `!document.querySelector('`+edit+`') &&
		document.querySelector('tr[data-handler="leads"] pre').textContent.includes('+380991112244')`)
	got := handlerArgs(t, c, in)["leads"]
	if body, _ := got["body"].(map[string]any); body["phone_number"] != "+380991112244" || got["timeout"] != 3000.0 {
		t.Fatalf("edited leads %v", got)
	}

	// Delete health, after a confirmation.
	b.click(`tr[data-handler="health"] button[data-action="delete"]`)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("health gone", `!document.querySelector('tr[data-handler="health"]') && document.querySelector('tr[data-handler="leads"]')`)
	if names := handlerArgs(t, c, in); len(names) != 1 || names["leads"] == nil {
		t.Fatalf("handlers after delete %v", names)
	}

	b.tab("audit")
	b.until("the handler changes", `['sync', 'update', 'delete'].every((a) => document.querySelector('#audit-list li[data-resource="handler"][data-action="' + a + '"]'))`)
}

// handlerArgs reads the integration's handlers: name → defaultArgs.
func handlerArgs(t *testing.T, c *console, in store.Integration) map[string]map[string]any {
	t.Helper()
	var list []struct {
		Name        string          `json:"name"`
		DefaultArgs json.RawMessage `json:"defaultArgs"`
	}
	if code := c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/handlers", nil, &list); code != http.StatusOK {
		t.Fatalf("list handlers: %d", code)
	}
	out := map[string]map[string]any{}
	for _, h := range list {
		var args map[string]any
		if err := json.Unmarshal(h.DefaultArgs, &args); err != nil {
			t.Fatalf("%s defaultArgs %s: %v", h.Name, h.DefaultArgs, err)
		}
		out[h.Name] = args
	}
	return out
}
