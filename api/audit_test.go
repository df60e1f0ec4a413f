package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/internal/syncbuf"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

func auditPage(t testing.TB, c client, path string) ([]store.AuditEntry, int) {
	t.Helper()
	r := c.do(t, "GET", path, nil).expect(t, http.StatusOK)
	total, err := strconv.Atoi(r.header.Get("X-Total-Count"))
	if err != nil {
		t.Fatalf("%s: X-Total-Count %q", r.what, r.header.Get("X-Total-Count"))
	}
	return decodeAs[[]store.AuditEntry](t, r), total
}

// isNull reports an absent before or after as the API shows it.
func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// summary is an entry as "actor action resource", for comparing sequences.
func summary(e store.AuditEntry) string { return e.Actor + " " + e.Action + " " + e.Resource }

func TestAuditLogs(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Audited"})
	w.a.do(t, "PATCH", integrationPath(in), map[string]any{"name": "Audited 2"}).expect(t, http.StatusOK)
	w.a.do(t, "PATCH", integrationPath(in), map[string]any{"status": "paused"}).expect(t, http.StatusOK)
	w.a.do(t, "PUT", integrationPath(in), map[string]any{"name": "Audited 3", "agentPrompt": "hello"}).expect(t, http.StatusOK)
	w.a.do(t, "POST", integrationPath(in, "/rotate-webhook-token"), nil).expect(t, http.StatusOK)
	w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), map[string]any{"concurrency_limit": 2}).expect(t, http.StatusOK)
	w.a.do(t, "DELETE", integrationPath(in, "/config/call_handling"), nil).expect(t, http.StatusOK)
	sec := addSecret(t, w.a, in, "secrets", "LLM_API_KEY", "llm-value-000001")
	w.a.do(t, "PUT", integrationPath(in, "/secrets/", sec.ID.String()), map[string]any{"key": "LLM_API_KEY", "value": "llm-value-000002"}).
		expect(t, http.StatusOK)
	w.a.do(t, "DELETE", integrationPath(in, "/secrets/", sec.ID.String()), nil).expect(t, http.StatusOK)
	cred := addSecret(t, w.a, in, "credentials", "NETHUNT_EMAIL", "nethunt@example.com")
	w.a.do(t, "DELETE", integrationPath(in, "/credentials/", cred.ID.String()), nil).expect(t, http.StatusOK)
	w.a.do(t, "POST", "/api/core/secrets", map[string]any{"integration": in.Slug, "key": "CORE_KEY", "value": "core-value-000003"}).
		expect(t, http.StatusCreated)
	w.a.do(t, "POST", "/api/core/secrets", map[string]any{"integration": in.Slug, "key": "CORE_KEY", "value": "core-value-000004"}).
		expect(t, http.StatusCreated)
	// Refused requests record nothing.
	w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), map[string]any{"concurrency_limit": 0}).expect(t, http.StatusUnprocessableEntity)
	w.a.do(t, "POST", integrationPath(in, "/secrets"), map[string]any{"key": "CORE_KEY", "value": "x"}).expect(t, http.StatusConflict)

	all, total := auditPage(t, w.a, integrationPath(in, "/audit-logs"))
	want := []string{ // newest first
		"owner-a update secret", "owner-a create secret",
		"owner-a delete credential", "owner-a create credential",
		"owner-a delete secret", "owner-a update secret", "owner-a create secret",
		"owner-a delete config", "owner-a update config",
		"owner-a rotate webhook_token",
		"owner-a update integration", "owner-a update integration", "owner-a update integration",
		"owner-a create integration",
	}
	var got []string
	for _, e := range all {
		got = append(got, summary(e))
		if e.IntegrationID == nil || *e.IntegrationID != in.ID {
			t.Errorf("entry %d names integration %v", e.ID, e.IntegrationID)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || total != len(want) {
		t.Fatalf("audit log (total %d):\n%s\nwant:\n%s", total, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e := all[len(all)-3]; !jsonEqual(t, e.Before, `{"status": "not_configured"}`) || !jsonEqual(t, e.After, `{"status": "paused"}`) {
		t.Errorf("pause entry: before %s after %s", e.Before, e.After)
	}
	if e := all[0]; !jsonEqual(t, e.Before, `{"key": "CORE_KEY", "valuePreview": "co…03"}`) ||
		!jsonEqual(t, e.After, `{"key": "CORE_KEY", "valuePreview": "co…04"}`) {
		t.Errorf("core secret upsert entry: before %s after %s", e.Before, e.After)
	}
	if e := all[len(all)-5]; !isNull(e.Before) || !isNull(e.After) {
		t.Errorf("the rotation entry holds %s / %s, want nothing", e.Before, e.After)
	}

	// Pages, newest first, with the total on each.
	var paged []store.AuditEntry
	for offset := 0; offset < len(want)+3; offset += 4 {
		page, total := auditPage(t, w.a, integrationPath(in, fmt.Sprintf("/audit-logs?limit=4&offset=%d", offset)))
		if total != len(want) || len(page) > 4 {
			t.Fatalf("page at %d: %d entries, total %d", offset, len(page), total)
		}
		paged = append(paged, page...)
	}
	if len(paged) != len(all) {
		t.Fatalf("pages hold %d entries, want %d", len(paged), len(all))
	}
	for i := range paged {
		if paged[i].ID != all[i].ID {
			t.Fatalf("page entry %d is %d, want %d", i, paged[i].ID, all[i].ID)
		}
	}

	// Owner-scoped: B sees neither A's integration log nor A's entries in its own.
	expectError(t, w.b.do(t, "GET", integrationPath(in, "/audit-logs"), nil), http.StatusNotFound)
	bEntries, _ := auditPage(t, w.b, "/api/audit-logs")
	if raw, _ := json.Marshal(bEntries); bytes.Contains(raw, []byte(in.ID.String())) {
		t.Errorf("B's audit log shows A's integration: %s", raw)
	}

	// Each entry names the token and the client's address.
	for _, e := range all {
		if e.TokenID == nil || *e.TokenID != w.aTokenID || e.ClientIP == nil || *e.ClientIP != "127.0.0.1" {
			t.Fatalf("entry %d (%s) names token %v from %v, want %s from 127.0.0.1", e.ID, summary(e), e.TokenID, e.ClientIP, w.aTokenID)
		}
	}

	// The log is append-only: the integration's entries outlive it, read
	// with ?integrationId= from the owner's log, and only by the owner.
	w.a.do(t, "DELETE", integrationPath(in), nil).expect(t, http.StatusOK)
	expectError(t, w.a.do(t, "GET", integrationPath(in, "/audit-logs"), nil), http.StatusNotFound)
	kept, total := auditPage(t, w.a, "/api/audit-logs?integrationId="+in.ID.String())
	if total != len(want)+1 || len(kept) != len(want)+1 {
		t.Fatalf("after delete the owner reads %d entries (total %d) of the integration, want %d", len(kept), total, len(want)+1)
	}
	if summary(kept[0]) != "owner-a delete integration" || kept[0].IntegrationID == nil || *kept[0].IntegrationID != in.ID ||
		kept[0].ResourceID == nil || *kept[0].ResourceID != in.ID.String() || !isNull(kept[0].After) {
		t.Fatalf("newest entry after delete = %+v", kept[0])
	}
	for i, e := range kept[1:] {
		if e.ID != all[i].ID {
			t.Fatalf("entry %d after delete is %d, want %d", i, e.ID, all[i].ID)
		}
	}
	var deleted map[string]any
	if err := json.Unmarshal(kept[0].Before, &deleted); err != nil || deleted["name"] != "Audited 3" || deleted["webhookToken"] != nil {
		t.Errorf("deleted integration recorded as %s", kept[0].Before)
	}
	if other, total := auditPage(t, w.b, "/api/audit-logs?integrationId="+in.ID.String()); len(other) != 0 || total != 0 {
		t.Errorf("another owner reads %d entries (total %d) of the deleted integration", len(other), total)
	}
	expectFieldError(t, w.a.do(t, "GET", "/api/audit-logs?integrationId=nope", nil), http.StatusBadRequest, "integrationId")
}

// TestNoSecretValueInAuditOrLogs runs secrets through every path that
// writes them, the dialler using one against a failing VA included, with
// the service logging at debug level into a buffer; then looks for the
// values in that output and in the audit table.
func TestNoSecretValueInAuditOrLogs(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	logs := &syncbuf.Buffer{}
	env.Log = zerolog.New(logs).Level(zerolog.DebugLevel)
	w := &world{env: env, va: servicetest.NewFakeVA(t), inst: env.Start(servicetest.Options{})}
	w.a = client{base: w.inst.URL, token: env.Admin(w.inst, ownerA).Token}

	values := []string{servicetest.FakeVAToken}
	value := func() string {
		v := "sv-" + strings.ReplaceAll(uuid.NewString(), "-", "")
		values = append(values, v)
		return v
	}
	in := activeIntegration(t, w.a, w.va, "Secretive", nil)
	tokens := []string{in.WebhookToken}
	for _, kind := range secretKinds {
		s := addSecret(t, w.a, in, kind, "API_KEY", value())
		w.a.do(t, "PUT", integrationPath(in, "/"+kind+"/", s.ID.String()), map[string]any{"key": "API_KEY_2", "value": value()}).
			expect(t, http.StatusOK)
		// Refused writes carry values too.
		w.a.do(t, "POST", integrationPath(in, "/"+kind), map[string]any{"key": "API_KEY_2", "value": value()}).expect(t, http.StatusConflict)
		w.a.do(t, "POST", integrationPath(in, "/"+kind), map[string]any{"key": "BAD KEY", "value": value()}).
			expect(t, http.StatusUnprocessableEntity)
		w.a.do(t, "DELETE", integrationPath(in, "/"+kind+"/", s.ID.String()), nil).expect(t, http.StatusOK)
	}
	w.a.do(t, "POST", "/api/core/secrets", map[string]any{"integration": in.Slug, "key": "CORE", "value": value()}).expect(t, http.StatusCreated)
	rotated := decodeAs[store.Integration](t, w.a.do(t, "POST", integrationPath(in, "/rotate-webhook-token"), nil).expect(t, http.StatusOK))
	tokens = append(tokens, rotated.WebhookToken)

	// The dialler sends VA_AUTH_TOKEN; a failing VA makes it log.
	servicetest.Eventually(t, waitFor, "the rotated token to be accepted", func() bool {
		return servicetest.Webhook(t, w.inst, rotated, "call-originate", map[string]any{"phone_number": "+380991110001"}, nil) == http.StatusAccepted
	})
	w.va.Next(t, waitFor)
	w.va.SetStatus(http.StatusInternalServerError)
	servicetest.Webhook(t, w.inst, rotated, "call-originate", map[string]any{"phone_number": "+380991110002"}, nil)
	servicetest.Eventually(t, waitFor, "a failed dial to be logged", func() bool { return strings.Contains(logs.String(), "dial failed") })

	var audit string
	if err := env.Store.Pool().QueryRow(context.Background(), `SELECT string_agg(a::text, E'\n') FROM audit_logs a`).Scan(&audit); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(audit, "API_KEY_2") || !strings.Contains(logs.String(), "callqueue serving") {
		t.Fatal("the audit table or the log capture is empty: this test would prove nothing")
	}
	for _, v := range append(values, tokens...) {
		if strings.Contains(audit, v) {
			t.Errorf("the audit table holds %q", v)
		}
		if strings.Contains(logs.String(), v) {
			t.Errorf("the log holds %q", v)
		}
	}
}
