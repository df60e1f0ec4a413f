package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/crm/nethunttest"
)

// TestPutCRMChecksNetHunt: PUT crm with kind nethunt (and PUT crm_fields
// while NetHunt is the CRM) asks NetHunt whether the credentials, the
// folder and the mapped field names work, and answers 422 naming what does
// not — storing nothing — or 503 when NetHunt does not answer.
func TestPutCRMChecksNetHunt(t *testing.T) {
	t.Parallel()
	w := setup(t)
	nh := nethunttest.New(t)
	in := createIntegration(t, w.a, map[string]any{"name": "NetHunt setup"})
	crmPath, fieldsPath := integrationPath(in, "/config/crm"), integrationPath(in, "/config/crm_fields")
	good := map[string]any{"kind": "nethunt", "folder_id": nethunttest.Folder, "base_url": nh.BaseURL(),
		"status_values": map[string]any{"completed": "Called", "no_answer": "No answer"}, "call_log": true}
	with := func(k string, v any) map[string]any {
		out := map[string]any{}
		for key, val := range good {
			out[key] = val
		}
		out[k] = v
		return out
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if body := w.a.do(t, "GET", crmPath, nil).expect(t, http.StatusOK).body; !strings.Contains(string(body), `"kind":"none"`) {
			t.Fatalf("a refused PUT changed crm: %s", body)
		}
	}

	expectFieldError(t, w.a.do(t, "PUT", crmPath, good), http.StatusUnprocessableEntity, "NETHUNT_EMAIL")
	unchanged(t)
	addSecret(t, w.a, in, "credentials", "NETHUNT_EMAIL", nethunttest.Email)
	key := addSecret(t, w.a, in, "credentials", "NETHUNT_API_KEY", "stale-key")
	e := expectFieldError(t, w.a.do(t, "PUT", crmPath, good), http.StatusUnprocessableEntity, "NETHUNT_API_KEY")
	if strings.Contains(e.Message, "stale-key") || strings.Contains(e.Message, "Unauthorized") {
		t.Errorf("message %q echoes the key or NetHunt's answer", e.Message)
	}
	w.a.do(t, "PUT", integrationPath(in, "/credentials/", key.ID.String()),
		map[string]any{"key": "NETHUNT_API_KEY", "value": nethunttest.APIKey}).expect(t, http.StatusOK)

	expectFieldError(t, w.a.do(t, "PUT", crmPath, with("folder_id", "0000000000000000000000ff")), http.StatusUnprocessableEntity, "folder_id")
	expectFieldError(t, w.a.do(t, "PUT", crmPath, with("base_url", nh.URL+"/api/v2")), http.StatusUnprocessableEntity, "base_url")
	expectFieldError(t, w.a.do(t, "PUT", crmPath, with("status_values", map[string]any{"won": "Won"})),
		http.StatusUnprocessableEntity, "status_values.won")
	w.a.do(t, "PUT", fieldsPath, map[string]any{"status": "Статус"}).expect(t, http.StatusOK) // no NetHunt yet: not checked
	expectFieldError(t, w.a.do(t, "PUT", crmPath, good), http.StatusUnprocessableEntity, "crm_fields.status")
	unchanged(t)
	nh.SetStatus(http.StatusServiceUnavailable)
	w.a.do(t, "DELETE", fieldsPath, nil).expect(t, http.StatusOK)
	expectError(t, w.a.do(t, "PUT", crmPath, good), http.StatusServiceUnavailable)
	unchanged(t)
	nh.SetStatus(0)

	w.a.do(t, "PUT", crmPath, good).expect(t, http.StatusOK)
	// With NetHunt the CRM, a crm_fields the folder cannot hold is refused.
	expectFieldError(t, w.a.do(t, "PUT", fieldsPath, map[string]any{"company": "Компанія"}), http.StatusUnprocessableEntity, "crm_fields.company")
	w.a.do(t, "PUT", fieldsPath, map[string]any{"company": "Company", "email": "Email"}).expect(t, http.StatusOK)
}

// TestCRMFieldNames: GET crm/fields lists the NetHunt folder's field names
// with the stored crm config and secrets; another CRM is a 409, a missing
// secret or a folder NetHunt does not know a 422 naming it, and NetHunt
// down a 503 saying how without quoting NetHunt.
func TestCRMFieldNames(t *testing.T) {
	t.Parallel()
	w := setup(t)
	nh := nethunttest.New(t)
	in := createIntegration(t, w.a, map[string]any{"name": "NetHunt fields"})
	fieldsPath := integrationPath(in, "/crm/fields")

	expectFieldError(t, w.a.do(t, "GET", fieldsPath, nil), http.StatusConflict, "crm.kind")

	addSecret(t, w.a, in, "credentials", "NETHUNT_EMAIL", nethunttest.Email)
	key := addSecret(t, w.a, in, "credentials", "NETHUNT_API_KEY", nethunttest.APIKey)
	w.a.do(t, "PUT", integrationPath(in, "/config/crm"), map[string]any{"kind": "nethunt", "folder_id": nethunttest.Folder,
		"base_url": nh.BaseURL()}).expect(t, http.StatusOK)
	got := decodeAs[struct {
		Fields []string `json:"fields"`
	}](t, w.a.do(t, "GET", fieldsPath, nil).expect(t, http.StatusOK))
	var want []string
	for _, f := range nethunttest.DefaultFields {
		want = append(want, f.Name)
	}
	if strings.Join(got.Fields, ",") != strings.Join(want, ",") {
		t.Errorf("fields = %q, want %q", got.Fields, want)
	}

	w.a.do(t, "PUT", integrationPath(in, "/credentials/", key.ID.String()),
		map[string]any{"key": "NETHUNT_API_KEY", "value": "stale-key"}).expect(t, http.StatusOK)
	e := expectFieldError(t, w.a.do(t, "GET", fieldsPath, nil), http.StatusUnprocessableEntity, "NETHUNT_API_KEY")
	if strings.Contains(e.Message, "stale-key") || strings.Contains(e.Message, "Unauthorized") {
		t.Errorf("message %q echoes the key or NetHunt's answer", e.Message)
	}
	w.a.do(t, "DELETE", integrationPath(in, "/credentials/", key.ID.String()), nil).expect(t, http.StatusOK)
	expectFieldError(t, w.a.do(t, "GET", fieldsPath, nil), http.StatusUnprocessableEntity, "NETHUNT_API_KEY")
	addSecret(t, w.a, in, "credentials", "NETHUNT_API_KEY", nethunttest.APIKey)

	// A folder deleted in NetHunt after the crm config was stored.
	nh.Fail("triggers/folder-field", http.StatusNotFound, 1)
	expectFieldError(t, w.a.do(t, "GET", fieldsPath, nil), http.StatusUnprocessableEntity, "folder_id")

	nh.SetStatus(http.StatusServiceUnavailable)
	e = expectError(t, w.a.do(t, "GET", fieldsPath, nil), http.StatusServiceUnavailable)
	if !strings.Contains(e.Message, "bad status 503") || strings.Contains(e.Message, "Service Unavailable") {
		t.Errorf("message %q: want the kind of failure, not NetHunt's text", e.Message)
	}
	nh.SetStatus(0)
}
