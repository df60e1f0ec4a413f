package admin_test

import (
	"net/http"
	"strings"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// clipboard is what the page's clipboard holds.
func (b *browser) clipboard() string {
	b.t.Helper()
	var s string
	b.run("read the clipboard", chromedp.Evaluate(`navigator.clipboard.readText()`, &s,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	return s
}

// copyInto clicks a copy button and waits until the clipboard holds want.
func (b *browser) copyInto(button, want string) {
	b.t.Helper()
	// Another value first, so the wait sees this click's copy.
	b.run("clear the clipboard", chromedp.Evaluate(`navigator.clipboard.writeText('-')`, nil,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	b.click(button)
	b.until("the copy", `document.getElementById('status').textContent === 'Copied'`)
	if got := b.clipboard(); got != want {
		b.t.Fatalf("%s copied %q, want %q", button, got, want)
	}
}

// TestConsoleWebhooksAndSecrets: the copy buttons put a webhook URL and
// the token on the clipboard; rotating the token (after a confirmation)
// shows and copies the new one, and the old one stops working; replacing a
// secret's value changes its preview while neither value reaches the page;
// a credential is added and deleted beside the secrets.
func TestConsoleWebhooksAndSecrets(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("Copy and rotate", c.va, nil)
	b := c.b
	b.run("allow the clipboard", cdpbrowser.GrantPermissions([]cdpbrowser.PermissionType{
		cdpbrowser.PermissionTypeClipboardReadWrite, cdpbrowser.PermissionTypeClipboardSanitizedWrite}).WithOrigin(c.inst.URL))
	b.open("/admin/integrations/" + in.ID.String())
	b.signIn(c.admin.Token)
	b.until("the webhooks", `document.querySelector('#webhook-token')`)
	// ElevenLabs drops a post-call answered 503 unless its retries are on:
	// the panel says so beside the agent-postcall URL.
	if note := b.textOf(`#hooks-h ~ ul.urls li:has(button[aria-label="Copy the agent-postcall URL"]) #postcall-note`); !strings.Contains(note, "retries on") ||
		!strings.Contains(note, "503") || !strings.Contains(note, "JSON transcript format") {
		t.Errorf("agent-postcall note %q", note)
	}

	b.copyInto(`button[aria-label="Copy the call-originate URL"]`, c.inst.URL+"/"+in.Slug+"/webhook/call-originate")
	b.copyInto(`button[aria-label="Copy the webhook token"]`, in.WebhookToken)

	// Rotation asks first; cancelled, nothing changes.
	rotate := `#hooks-h ~ .inline button.danger`
	b.click(rotate)
	b.click(`dialog[open] button[value="cancel"]`)
	b.until("the dialog gone", `!document.querySelector('dialog')`)
	if got := c.admin.Refresh(in); got.WebhookToken != in.WebhookToken {
		t.Fatal("a cancelled rotation changed the token")
	}
	b.click(rotate)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("a new token", `document.querySelector('#webhook-token').value !== `+jsonString(in.WebhookToken))
	rotated := c.admin.Refresh(in)
	var shown string
	b.eval(`document.querySelector('#webhook-token').value`, &shown)
	if rotated.WebhookToken == in.WebhookToken || shown != rotated.WebhookToken {
		t.Fatalf("token shown %q, API %q, old %q", shown, rotated.WebhookToken, in.WebhookToken)
	}
	b.copyInto(`button[aria-label="Copy the webhook token"]`, rotated.WebhookToken)
	if code := servicetest.Webhook(t, c.inst, in, "call-originate", map[string]any{"phone_number": "+380991230070"}, nil); code != http.StatusUnauthorized {
		t.Fatalf("the old token: %d, want 401", code)
	}
	if code := servicetest.Webhook(t, c.inst, rotated, "call-originate", map[string]any{"phone_number": "+380991230070"}, nil); code != http.StatusAccepted {
		t.Fatalf("the new token: %d, want 202", code)
	}

	// Replacing a secret's value: a new preview, no value on the page.
	const newValue = "va-rotated-token-4815162342"
	b.tab("secrets")
	b.until("the secret's preview", `document.querySelector('#secrets-table code.preview')`)
	before := b.textOf(`#secrets-table code.preview`)
	b.click(`#secrets-table tbody tr button.secondary`)
	b.fill(`#secrets-table form.inline input[name="value"]`, newValue)
	b.click(`#secrets-table form.inline button[type="submit"]`)
	b.until("a new preview", `!document.querySelector('#secrets-table form.inline') &&
		document.querySelector('#secrets-table code.preview').textContent !== `+jsonString(before))
	var secrets []store.Secret
	c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/secrets", nil, &secrets)
	if len(secrets) != 1 || secrets[0].ValuePreview == before || b.textOf(`#secrets-table code.preview`) != secrets[0].ValuePreview {
		t.Fatalf("secrets %+v, preview shown %q, before %q", secrets, b.textOf(`#secrets-table code.preview`), before)
	}
	for _, v := range []string{servicetest.FakeVAToken, newValue} {
		var leaked bool
		b.eval(`document.documentElement.outerHTML.includes(`+jsonString(v)+`) ||
			[...document.querySelectorAll('input, textarea')].some((i) => i.value.includes(`+jsonString(v)+`))`, &leaked)
		if leaked {
			t.Fatalf("the secret value %q is on the page", v)
		}
	}
	// A credential beside the secrets, then deleted after a confirmation.
	const credential = "crm-user@example.com"
	add := `#tabpanel form[aria-label="Add credential"]`
	b.fill(add+` input[name="key"]`, "CRM_USER")
	b.fill(add+` input[name="value"]`, credential)
	b.click(add + ` button[type="submit"]`)
	b.until("the credential listed", `document.querySelector('#credentials-table')?.textContent.includes('CRM_USER')`)
	var leaked bool
	b.eval(`document.documentElement.outerHTML.includes(`+jsonString(credential)+`)`, &leaked)
	if leaked {
		t.Fatal("the credential's value is on the page")
	}
	b.click(`#credentials-table tbody tr button.danger`)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("no credentials", `!document.querySelector('#credentials-table') && document.querySelector('#tabpanel').textContent.includes('No credentials yet')`)
	var credentials []store.Secret
	if c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/credentials", nil, &credentials); len(credentials) != 0 {
		t.Fatalf("credentials after delete %+v", credentials)
	}
	if c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/secrets", nil, &secrets); len(secrets) != 1 {
		t.Fatalf("secrets after deleting a credential %+v", secrets)
	}

	b.tab("audit")
	b.until("the rotation and the replaced secret", `document.querySelector('#audit-list li[data-resource="webhook_token"]') &&
		document.querySelector('#audit-list li[data-resource="secret"][data-action="update"]')`)
	if strings.Contains(b.textOf(`#audit-list`), newValue) || strings.Contains(b.textOf(`#audit-list`), rotated.WebhookToken) {
		t.Fatal("the audit log shows a secret or the token")
	}
}
