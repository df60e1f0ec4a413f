package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/crm/nethunttest"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestConsoleConfiguration: the Configuration tab's forms beyond call
// handling's limit — the agent (a bad time zone refused on its field and
// nothing saved, then saved with the integration's own fields), ElevenLabs'
// ring timeout (out of range refused on its field), a calling window and a retry
// policy (bad JSON caught before the API), the CRM and its field names, a
// key of its own as JSON, defaults restored, and the audit log's pages.
func TestConsoleConfiguration(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("Settings", nil, nil)
	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=configuration")
	b.signIn(c.admin.Token)
	b.until("the forms", `document.querySelector('#config-agent') && document.querySelector('form[aria-labelledby="config-add-h"]')`)

	agent := `#config-agent`
	b.fill(agent+` textarea[name="agentPrompt"]`, "Ти — ввічлива помічниця відділу продажів.")
	b.fill(agent+` input[name="saasAssistantName"]`, "Олена")
	b.fill(agent+` input[name="timezone"]`, "Mars/Olympus")
	b.click(agent + ` button[type="submit"]`)
	b.until("the 422 on the time zone", `document.querySelector('`+agent+` [data-field="timezone"] .field-error:not([hidden])')?.textContent !== '' &&
		document.querySelector('`+agent+` input[name="timezone"]').getAttribute('aria-invalid') === 'true'`)
	if got := configKey(t, c, in, "agent"); got["timezone"] != "Europe/Kyiv" {
		t.Fatalf("agent after a refused time zone: %v", got)
	}
	if got := c.admin.Refresh(in); got.AgentPrompt != nil && *got.AgentPrompt != "" {
		t.Fatalf("the prompt was saved with a refused time zone: %q", *got.AgentPrompt)
	}
	b.fill(agent+` input[name="timezone"]`, "America/New_York")
	b.click(agent + ` button[type="submit"]`)
	b.until("agent saved", `document.getElementById('status').textContent === 'Agent saved'`)
	if got := configKey(t, c, in, "agent"); got["timezone"] != "America/New_York" || got["locale"] != "uk-UA" {
		t.Fatalf("agent %v", got)
	}
	if got := c.admin.Refresh(in); got.AgentPrompt == nil || *got.AgentPrompt != "Ти — ввічлива помічниця відділу продажів." ||
		got.SaasAssistantName == nil || *got.SaasAssistantName != "Олена" {
		t.Fatalf("integration fields %+v", got)
	}

	// ElevenLabs as the dialler, with how long the phone rings: 700 s is
	// refused on its field, 30 s saved.
	vo := `#config-voice`
	b.run("ElevenLabs", chromedp.SetValue(vo+` select[name="provider"]`, "elevenlabs", chromedp.ByQuery))
	b.fill(vo+` input[name="agent_id"]`, "agent_01")
	b.fill(vo+` input[name="agent_phone_number_id"]`, "phnum_01")
	b.run("via Twilio", chromedp.SetValue(vo+` select[name="via"]`, "twilio", chromedp.ByQuery))
	b.fill(vo+` input[name="ring_timeout_secs"]`, "700")
	b.click(vo + ` button[type="submit"]`)
	b.until("the 422 on the ring timeout", `document.querySelector('`+vo+` [data-field="ring_timeout_secs"] .field-error:not([hidden])')?.textContent !== '' &&
		document.querySelector('`+vo+` input[name="ring_timeout_secs"]').getAttribute('aria-invalid') === 'true'`)
	b.fill(vo+` input[name="ring_timeout_secs"]`, "30")
	b.click(vo + ` button[type="submit"]`)
	b.until("voice saved", `document.getElementById('status').textContent === 'Voice saved'`)
	if got := configKey(t, c, in, "voice"); got["provider"] != "elevenlabs" || got["agent_id"] != "agent_01" || got["via"] != "twilio" ||
		got["ring_timeout_secs"] != 30.0 {
		t.Fatalf("voice %v", got)
	}

	// A pool of caller numbers (contract §9): a number given twice is
	// refused on its row's field; a row added and removed is not saved.
	row := func(i int, k string) string { return fmt.Sprintf(`%s .caller-id:nth-child(%d) [data-k=%q]`, vo, i, k) }
	for range 3 {
		b.click(vo + ` button.add-caller`)
	}
	b.fill(row(1, "number"), "+1 (415) 555-0100")
	b.fill(row(1, "agent_phone_number_id"), "phnum_sf")
	b.fill(row(1, "concurrency_limit"), "2")
	b.fill(row(1, "max_per_hour"), "60")
	b.fill(row(2, "number"), "+14155550100")
	b.fill(row(2, "per_second"), "0.5")
	b.fill(row(3, "number"), "+12125550100")
	b.run("round robin", chromedp.SetValue(vo+` select[name="caller_id_strategy"]`, "round_robin", chromedp.ByQuery))
	b.click(vo + ` input[name="rotate_on_retry"]`)
	b.click(vo + ` button[type="submit"]`)
	b.until("the 422 on the repeated number", `document.querySelector('`+vo+` [data-field="caller_ids[1].number"] .field-error:not([hidden])')?.textContent !== '' &&
		document.querySelector('`+row(2, "number")+`').getAttribute('aria-invalid') === 'true'`)
	b.fill(row(2, "number"), "+44 20 7946 0000")
	b.fill(row(2, "max_per_day"), "300")
	b.click(vo + ` .caller-id:nth-child(3) button.remove-caller`)
	b.run("forget the last status", chromedp.Evaluate(`document.getElementById('status').textContent = ''`, nil))
	b.click(vo + ` button[type="submit"]`)
	b.until("voice saved with its pool", `document.getElementById('status').textContent === 'Voice saved' &&
		!document.querySelector('`+vo+` [aria-invalid="true"]')`)
	wantPool := []any{
		map[string]any{"number": "+14155550100", "agent_phone_number_id": "phnum_sf", "concurrency_limit": 2.0, "max_per_hour": 60.0},
		map[string]any{"number": "+442079460000", "per_second": 0.5, "max_per_day": 300.0},
	}
	if got := configKey(t, c, in, "voice"); !reflect.DeepEqual(got["caller_ids"], wantPool) || got["caller_id_strategy"] != "round_robin" ||
		got["rotate_on_retry"] != true || got["agent_id"] != "agent_01" {
		t.Fatalf("voice with a pool %v", got)
	}
	b.tab("calls")
	b.tab("configuration")
	b.until("the pool shown", `document.querySelectorAll('`+vo+` .caller-id').length === 2 &&
		document.querySelector('`+row(1, "number")+`').value === '+14155550100' &&
		document.querySelector('`+row(1, "concurrency_limit")+`').value === '2' &&
		document.querySelector('`+row(2, "number")+`').value === '+442079460000' &&
		document.querySelector('`+row(2, "per_second")+`').value === '0.5' &&
		document.querySelector('`+vo+` select[name="caller_id_strategy"]').value === 'round_robin' &&
		document.querySelector('`+vo+` input[name="rotate_on_retry"]').checked`)

	// A calling window on weekdays but Friday, and a retry policy.
	ch := `#config-call_handling`
	b.click(ch + ` input[name="window_on"]`)
	b.fill(ch+` input[name="calling_window.start"]`, "10:00")
	b.fill(ch+` input[name="calling_window.end"]`, "18:00")
	b.run("no Friday", chromedp.Evaluate(`document.querySelector('`+ch+` input[name="day"][value="5"]').click()`, nil))
	b.fill(ch+` textarea[name="retry_policy"]`, `{"no_answer": {"max_attempts": 4,`)
	b.click(ch + ` button[type="submit"]`)
	b.until("the JSON error", `document.querySelector('`+ch+` [data-field="retry_policy"] .field-error:not([hidden])')?.textContent.startsWith('Not valid JSON')`)
	b.fill(ch+` textarea[name="retry_policy"]`, `{"no_answer": {"max_attempts": 4, "delays_secs": [1800, 7200]}}`)
	// Pacing rules (contract §9): a dial rate the API refuses names its field.
	b.fill(ch+` input[name="calling_window.exclude_dates"]`, "2026-12-25, 2027-01-01")
	b.fill(ch+` input[name="dial_rate.per_second"]`, "0.001")
	b.fill(ch+` input[name="dial_rate.burst"]`, "5")
	b.fill(ch+` input[name="contact_caps"]`, "7/7, 1/1")
	b.run("owner-wide caps", chromedp.SetValue(ch+` select[name="contact_caps_scope"]`, "owner", chromedp.ByQuery))
	b.click(ch + ` button[type="submit"]`)
	b.until("the 422 on the dial rate", `document.querySelector('`+ch+` [data-field="dial_rate.per_second"] .field-error:not([hidden])')?.textContent !== '' &&
		document.querySelector('`+ch+` input[name="dial_rate.per_second"]').getAttribute('aria-invalid') === 'true'`)
	b.fill(ch+` input[name="dial_rate.per_second"]`, "2.5")
	b.click(ch + ` button[type="submit"]`)
	b.until("call handling saved", `document.getElementById('status').textContent === 'Call handling saved'`)
	got := configKey(t, c, in, "call_handling")
	wantWindow := map[string]any{"timezone": "Europe/Kyiv", "start": "10:00", "end": "18:00", "days": []any{1.0, 2.0, 3.0, 4.0},
		"exclude_dates": []any{"2026-12-25", "2027-01-01"}}
	wantPolicy := map[string]any{"no_answer": map[string]any{"max_attempts": 4.0, "delays_secs": []any{1800.0, 7200.0}}}
	if !reflect.DeepEqual(got["calling_window"], wantWindow) || !reflect.DeepEqual(got["retry_policy"], wantPolicy) {
		t.Fatalf("call_handling %v", got)
	}
	wantCaps := []any{map[string]any{"max_dials": 7.0, "days": 7.0}, map[string]any{"max_dials": 1.0, "days": 1.0}}
	if !reflect.DeepEqual(got["dial_rate"], map[string]any{"per_second": 2.5, "burst": 5.0}) ||
		!reflect.DeepEqual(got["contact_caps"], wantCaps) || got["contact_caps_scope"] != "owner" {
		t.Fatalf("pacing rules %v", got)
	}
	// Shown as saved when the tab is drawn again.
	b.tab("calls")
	b.tab("configuration")
	b.until("the pacing rules shown", `document.querySelector('`+ch+` input[name="dial_rate.per_second"]')?.value === '2.5' &&
		document.querySelector('`+ch+` input[name="dial_rate.burst"]').value === '5' &&
		document.querySelector('`+ch+` input[name="contact_caps"]').value === '7/7, 1/1' &&
		document.querySelector('`+ch+` select[name="contact_caps_scope"]').value === 'owner' &&
		document.querySelector('`+ch+` input[name="calling_window.exclude_dates"]').value === '2026-12-25, 2027-01-01'`)

	// The CRM as a webhook, and its field names.
	crm := `#config-crm`
	b.run("a webhook CRM", chromedp.SetValue(crm+` select[name="kind"]`, "webhook", chromedp.ByQuery))
	b.fill(crm+` input[name="lookup_url"]`, "https://crm.example.com/lookup")
	b.fill(crm+` input[name="update_url"]`, "https://crm.example.com/update")
	b.fill(crm+` textarea[name="status_values"]`, `{"completed": "Подзвонили"}`)
	b.click(crm + ` input[name="call_log"]`)
	b.click(crm + ` button[type="submit"]`)
	b.until("CRM saved", `document.getElementById('status').textContent === 'CRM saved'`)
	if got := configKey(t, c, in, "crm"); got["kind"] != "webhook" || got["lookup_url"] != "https://crm.example.com/lookup" ||
		got["update_url"] != "https://crm.example.com/update" || got["call_log"] != true ||
		!reflect.DeepEqual(got["status_values"], map[string]any{"completed": "Подзвонили"}) {
		t.Fatalf("crm %v", got)
	}
	b.fill(`#config-crm_fields input[name="status"]`, "Стан дзвінка")
	b.click(`#config-crm_fields button[type="submit"]`)
	b.until("field names saved", `document.getElementById('status').textContent === 'CRM field names saved'`)
	if got := configKey(t, c, in, "crm_fields"); got["status"] != "Стан дзвінка" || got["phone"] != "Phone" {
		t.Fatalf("crm_fields %v", got)
	}

	// A key of its own, as JSON: it gets a form of its own.
	add := `form[aria-labelledby="config-add-h"]`
	b.fill(add+` input[name="key"]`, "predial")
	b.fill(add+` textarea[name="value"]`, `{"url": "https://predial.example.com/check", "timeout_ms": 1500}`)
	b.click(add + ` button[type="submit"]`)
	b.until("the predial form", `document.querySelector('#config-predial textarea')?.value.includes('predial.example.com')`)
	if got := configKey(t, c, in, "predial"); got["url"] != "https://predial.example.com/check" || got["timeout_ms"] != 1500.0 {
		t.Fatalf("predial %v", got)
	}

	// Defaults restored: the window and the policy are gone.
	b.click(ch + ` .actions button.secondary`)
	b.until("defaults restored", `document.getElementById('status').textContent === 'Call handling: defaults restored' &&
		!document.querySelector('`+ch+` input[name="window_on"]').checked`)
	if got := configKey(t, c, in, "call_handling"); got["calling_window"] != nil || got["retry_policy"] != nil || got["concurrency_limit"] != 3.0 {
		t.Fatalf("call_handling after restore %v", got)
	}

	// The audit log in pages of 20, newest first: the integration's
	// creation is on the last page.
	for i := range 20 {
		if code := c.admin.Do("PUT", "/api/integrations/"+in.ID.String()+"/config/notes", map[string]any{"n": i}, nil); code != http.StatusOK {
			t.Fatalf("put notes: %d", code)
		}
	}
	_, header, _ := servicetest.Send(t, http.DefaultClient, "GET", c.inst.URL+"/api/integrations/"+in.ID.String()+"/audit-logs?limit=1",
		map[string]string{"Authorization": "Bearer " + c.admin.Token}, nil)
	total, err := strconv.Atoi(header.Get("X-Total-Count"))
	if err != nil || total <= 20 || total > 40 {
		t.Fatalf("X-Total-Count %q", header.Get("X-Total-Count"))
	}
	b.tab("audit")
	pager := `nav[aria-label="Pages of the audit log"]`
	b.until("page 1 of 2", `document.querySelector('`+pager+` span')?.textContent === 'Page 1 of 2 · `+strconv.Itoa(total)+` changes' &&
		document.querySelectorAll('#audit-list > ol > li').length === 20 && document.querySelector('#audit-list li[data-resource="config"]')`)
	b.click(pager + ` button:last-child`)
	b.until("page 2", `document.querySelector('`+pager+` span')?.textContent.startsWith('Page 2 of 2') &&
		document.querySelectorAll('#audit-list > ol > li').length === `+strconv.Itoa(total-20)+` &&
		document.querySelector('#audit-list li[data-resource="integration"][data-action="create"]')`)
}

// TestConsoleNetHuntFieldNames: with NetHunt the CRM, the field names
// form loads the folder's own field names from NetHunt and offers them to
// each input; a refused key is shown on the form, not NetHunt's words.
func TestConsoleNetHuntFieldNames(t *testing.T) {
	t.Parallel()
	c := setup(t)
	nh := nethunttest.New(t)
	in := c.admin.CreateIntegration("NetHunt names", nil, nil)
	path := "/api/integrations/" + in.ID.String()
	var key store.Secret
	for name, value := range map[string]string{"NETHUNT_EMAIL": nethunttest.Email, "NETHUNT_API_KEY": "stale-key"} {
		var s store.Secret
		if code := c.admin.Do("POST", path+"/credentials", map[string]any{"key": name, "value": value}, &s); code != http.StatusCreated {
			t.Fatalf("post credential %s: %d", name, code)
		}
		if name == "NETHUNT_API_KEY" {
			key = s
		}
	}
	setKey := func(value string) {
		t.Helper()
		if code := c.admin.Do("PUT", path+"/credentials/"+key.ID.String(), map[string]any{"key": "NETHUNT_API_KEY", "value": value}, nil); code != http.StatusOK {
			t.Fatalf("put key: %d", code)
		}
	}
	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=configuration")
	b.signIn(c.admin.Token)
	b.until("the field names form", `document.querySelector('#config-crm_fields')`)
	var offered bool
	b.eval(`[...document.querySelectorAll('#config-crm_fields button')].some((x) => x.textContent === 'Load field names')`, &offered)
	if offered {
		t.Fatal("Load field names is offered without NetHunt as the CRM")
	}

	// NetHunt with a key it refuses (the check on saving is passed with
	// the right one first).
	setKey(nethunttest.APIKey)
	c.admin.PutConfig(in, "crm", map[string]any{"kind": "nethunt", "folder_id": nethunttest.Folder, "base_url": nh.BaseURL()})
	setKey("stale-key")
	b.tab("audit")
	b.tab("configuration")
	load := `[...document.querySelectorAll('#config-crm_fields button')].find((x) => x.textContent === 'Load field names')`
	b.until("the load button", load)
	b.run("load", chromedp.Evaluate(load+`.click()`, nil))
	b.until("the refusal", `document.querySelector('#config-crm_fields .form-error:not([hidden])')?.textContent.startsWith('NETHUNT_API_KEY:')`)
	if msg := b.textOf(`#config-crm_fields .form-error`); strings.Contains(msg, "stale-key") || strings.Contains(msg, "Unauthorized") {
		t.Fatalf("the refusal %q echoes the key or NetHunt's answer", msg)
	}

	setKey(nethunttest.APIKey)
	b.run("load again", chromedp.Evaluate(load+`.click()`, nil))
	var want []string
	for _, f := range nethunttest.DefaultFields {
		want = append(want, f.Name)
	}
	b.until("the folder's names offered to every input", `(() => {
		const form = document.querySelector('#config-crm_fields');
		const inputs = [...form.querySelectorAll('input[name]')];
		const list = document.getElementById(inputs[0].getAttribute('list'));
		return list && inputs.every((i) => i.list === list) &&
			JSON.stringify([...list.options].map((o) => o.value)) === `+jsonString(mustJSON(t, want))+` &&
			form.querySelector('.form-error')?.hidden !== false;
	})()`)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// configKey reads one config key through the API.
func configKey(t *testing.T, c *console, in store.Integration, key string) map[string]any {
	t.Helper()
	var raw json.RawMessage
	if code := c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/config/"+key, nil, &raw); code != http.StatusOK {
		t.Fatalf("get config %s: %d", key, code)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("config %s %s: %v", key, raw, err)
	}
	return out
}

// TestConsoleCallerIDHold: with a pool of one caller number that takes one
// live call, a second call waits for it; its timeline names the hold, and
// the first call's summary shows the number it was dialled from.
func TestConsoleCallerIDHold(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("One number", c.va, map[string]any{"concurrency_limit": 5})
	c.admin.PutConfig(in, "voice", map[string]any{"provider": "va", "base_url": c.va.URL, "sip_id": "sip-1", "assistant_id": "asst-1",
		"caller_ids": []map[string]any{{"number": "+14155550100", "concurrency_limit": 1}}})
	first := originate(t, c, in, "+14155550123")
	waitStatus(t, c, first.String(), "initiated")
	second := originate(t, c, in, "+14155550124")

	b := c.b
	b.open("/admin/calls/" + second.String())
	b.signIn(c.admin.Token)
	b.until("the caller_id hold in the timeline", `[...document.querySelectorAll('.timeline li[data-kind="deferred"]')].some((li) =>
		li.querySelector('strong').textContent === 'Held by a pacing rule: every caller number at a limit' && li.textContent.includes('caller_id'))`)
	b.open("/admin/calls/" + first.String())
	b.until("the caller number in the summary", `[...document.querySelectorAll('.facts dt')].some((dt) =>
		dt.textContent === 'Caller number' && dt.nextElementSibling.textContent === '+14155550100')`)
}
