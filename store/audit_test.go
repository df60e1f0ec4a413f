package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// auditLog returns an integration's entries oldest first.
func auditLog(t *testing.T, s *store.Store, id uuid.UUID) []store.AuditEntry {
	t.Helper()
	entries, total, err := s.AuditLog(t.Context(), id, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(entries) {
		t.Fatalf("AuditLog total %d, %d entries", total, len(entries))
	}
	slices.Reverse(entries)
	return entries
}

// jsonIs reports whether raw holds the same JSON as want ("" for SQL NULL).
func jsonIs(t *testing.T, raw json.RawMessage, want string) bool {
	t.Helper()
	if want == "" || raw == nil {
		return want == "" && raw == nil
	}
	var got, exp any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("entry JSON %s: %v", raw, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	return reflect.DeepEqual(got, exp)
}

// wantEntry is what one audit entry must say; before and after are JSON,
// "" for none.
type wantEntry struct {
	actor, action, resource, resourceID string
	before, after                       string
}

func checkEntries(t *testing.T, got []store.AuditEntry, want []wantEntry) {
	t.Helper()
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("entry %s %s %s %v %s -> %s", e.Actor, e.Action, e.Resource, deref(e.ResourceID), e.Before, e.After)
		}
		t.Fatalf("%d audit entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Actor != w.actor || e.Action != w.action || e.Resource != w.resource || deref(e.ResourceID) != w.resourceID ||
			!jsonIs(t, e.Before, w.before) || !jsonIs(t, e.After, w.after) || e.CreatedAt.IsZero() {
			t.Errorf("entry %d = %s %s %s %q before %s after %s\nwant %s %s %s %q before %s after %s", i,
				e.Actor, e.Action, e.Resource, deref(e.ResourceID), e.Before, e.After,
				w.actor, w.action, w.resource, w.resourceID, orNull(w.before), orNull(w.after))
		}
	}
}

func orNull(s string) string {
	if s == "" {
		return "NULL"
	}
	return s
}

// auditTableText is every audit row as Postgres prints it.
func auditTableText(t *testing.T, s *store.Store) string {
	t.Helper()
	var text string
	if err := s.Pool().QueryRow(t.Context(), `SELECT coalesce(string_agg(a::text, E'\n'), '') FROM audit_logs a`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	return text
}

func TestAuditRecordsEveryChange(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	const actor = "owner-a"

	in, err := s.CreateIntegration(ctx, "owner-a", actor, store.IntegrationFields{Name: ptr("Sales"), PhoneNumber: ptr("+380441234567")})
	if err != nil {
		t.Fatal(err)
	}
	id := in.ID.String()
	tokens := []string{in.WebhookToken}
	if _, err := s.UpdateIntegration(ctx, "owner-a", actor, in.ID, store.IntegrationFields{Name: ptr("Sales 2"), AgentPrompt: ptr("be brief")}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateIntegration(ctx, "owner-a", actor, in.ID, store.IntegrationFields{Status: ptr(store.StatusPaused)}, false); err != nil {
		t.Fatal(err)
	}
	// PUT clears what it leaves out.
	if _, err := s.UpdateIntegration(ctx, "owner-a", actor, in.ID, store.IntegrationFields{Name: ptr("Sales 3")}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateIntegration(ctx, "owner-a", actor, in.ID, store.IntegrationFields{Status: ptr(store.StatusActive)}, false); err != nil {
		t.Fatal(err)
	}
	rotated, err := s.RotateWebhookToken(ctx, "owner-a", actor, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, rotated.WebhookToken)

	voice, _ := config.Normalize(config.KeyVoice, json.RawMessage(`{"base_url": "http://va.test", "sip_id": "sip-1", "assistant_id": "asst-1"}`))
	must(t, s.PutConfig(ctx, actor, in.ID, config.KeyCallHandling, json.RawMessage(`{"concurrency_limit": 2}`)))
	must(t, s.PutConfig(ctx, actor, in.ID, config.KeyCallHandling, json.RawMessage(`{"concurrency_limit": 4}`)))
	must(t, s.DeleteConfig(ctx, actor, in.ID, config.KeyCallHandling))
	must(t, s.DeleteConfig(ctx, actor, in.ID, config.KeyCRM)) // had its default: no change, no entry
	must(t, s.PutConfig(ctx, actor, in.ID, config.KeyVoice, voice))

	values := []string{"va-token-first-0001", "va-token-second-0002", "cred-value-0003", "cred-renamed-0004"}
	va, err := s.PutSecret(ctx, actor, in.ID, store.KindSecret, "VA_AUTH_TOKEN", values[0], false) // completes the dialler
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSecret(ctx, actor, in.ID, store.KindSecret, "VA_AUTH_TOKEN", values[1], true); err != nil {
		t.Fatal(err)
	}
	cred, err := s.PutSecret(ctx, actor, in.ID, store.KindCredential, "NETHUNT_EMAIL", values[2], false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSecret(ctx, actor, in.ID, store.KindCredential, cred.ID, "NETHUNT_LOGIN", values[3]); err != nil {
		t.Fatal(err)
	}
	must(t, s.DeleteSecret(ctx, actor, in.ID, store.KindCredential, cred.ID))
	must(t, s.DeleteSecret(ctx, actor, in.ID, store.KindSecret, va.ID)) // the dialler is incomplete again

	integ := func(before, after string) wantEntry {
		return wantEntry{actor, "update", "integration", id, before, after}
	}
	pv := func(key, value string) string {
		return fmt.Sprintf(`{"key": %q, "valuePreview": %q}`, key, store.Preview(value))
	}
	checkEntries(t, auditLog(t, s, in.ID), []wantEntry{
		{actor, "create", "integration", id, "", fmt.Sprintf(`{"id": %q, "name": "Sales", "slug": "sales", "status": "not_configured",
			"agentPrompt": null, "elevenLabsAgentId": null, "saasAssistantName": null, "phoneNumber": "+380441234567",
			"voiceAssistantSipId": null}`, id)},
		integ(`{"name": "Sales", "agentPrompt": null}`, `{"name": "Sales 2", "agentPrompt": "be brief"}`),
		integ(`{"status": "not_configured"}`, `{"status": "paused"}`),
		integ(`{"name": "Sales 2", "agentPrompt": "be brief", "phoneNumber": "+380441234567"}`,
			`{"name": "Sales 3", "agentPrompt": null, "phoneNumber": null}`),
		integ(`{"status": "paused"}`, `{"status": "not_configured"}`),
		{actor, "rotate", "webhook_token", id, "", ""},
		{actor, "update", "config", "call_handling", "", `{"concurrency_limit": 2}`},
		{actor, "update", "config", "call_handling", `{"concurrency_limit": 2}`, `{"concurrency_limit": 4}`},
		{actor, "delete", "config", "call_handling", `{"concurrency_limit": 4}`, ""},
		{actor, "update", "config", "voice", "", string(voice)},
		{actor, "create", "secret", va.ID.String(), "", pv("VA_AUTH_TOKEN", values[0])},
		integ(`{"status": "not_configured"}`, `{"status": "active"}`),
		{actor, "update", "secret", va.ID.String(), pv("VA_AUTH_TOKEN", values[0]), pv("VA_AUTH_TOKEN", values[1])},
		{actor, "create", "credential", cred.ID.String(), "", pv("NETHUNT_EMAIL", values[2])},
		{actor, "update", "credential", cred.ID.String(), pv("NETHUNT_EMAIL", values[2]), pv("NETHUNT_LOGIN", values[3])},
		{actor, "delete", "credential", cred.ID.String(), pv("NETHUNT_LOGIN", values[3]), ""},
		{actor, "delete", "secret", va.ID.String(), pv("VA_AUTH_TOKEN", values[1]), ""},
		integ(`{"status": "active"}`, `{"status": "not_configured"}`),
	})
	for _, e := range auditLog(t, s, in.ID) {
		if e.IntegrationID == nil || *e.IntegrationID != in.ID {
			t.Errorf("entry %d names integration %v", e.ID, e.IntegrationID)
		}
	}

	// The log is append-only: the integration's history and its deletion
	// outlive it, read by integration id from the owner's log only.
	history := auditLog(t, s, in.ID)
	must(t, s.DeleteIntegration(ctx, "owner-a", actor, in.ID))
	kept := auditLog(t, s, in.ID)
	if len(kept) != len(history)+1 {
		t.Fatalf("%d entries name the deleted integration, want its %d and the deletion", len(kept), len(history))
	}
	owned, total, err := s.OwnerAuditLog(ctx, "owner-a", in.ID, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(kept) || len(owned) != 1 || owned[0].IntegrationID == nil || *owned[0].IntegrationID != in.ID {
		t.Fatalf("owner log of the deleted integration = %d entries (total %d): %+v", len(owned), total, owned)
	}
	checkEntries(t, owned, []wantEntry{{actor, "delete", "integration", id, fmt.Sprintf(`{"id": %q, "name": "Sales 3",
		"slug": "sales", "status": "not_configured", "agentPrompt": null, "elevenLabsAgentId": null,
		"saasAssistantName": null, "phoneNumber": null, "voiceAssistantSipId": null}`, id), ""}})
	if other, total, err := s.OwnerAuditLog(ctx, "owner-b", in.ID, 100, 0); err != nil || total != 0 || len(other) != 0 {
		t.Errorf("another owner reads %d entries (total %d) of the deleted integration, %v", len(other), total, err)
	}

	text := auditTableText(t, s)
	for _, v := range append(values, tokens...) {
		if strings.Contains(text, v) {
			t.Errorf("the audit table holds the value %q", v)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditTokens(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tok, plain, err := s.CreateToken(ctx, "owner-a", store.ActorCLI, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, "owner-b", store.ActorCLI, "other"); err != nil {
		t.Fatal(err)
	}
	must(t, s.RevokeToken(ctx, "owner-a", "owner-a", tok.ID))
	entries, total, err := s.OwnerAuditLog(ctx, "owner-a", uuid.Nil, 10, 0)
	if err != nil || total != 2 {
		t.Fatalf("OwnerAuditLog = %d, %v", total, err)
	}
	list, _ := s.ListTokens(ctx, "owner-a")
	revokedAt, _ := json.Marshal(list[0].RevokedAt)
	slices.Reverse(entries)
	checkEntries(t, entries, []wantEntry{
		{"cli", "create", "token", tok.ID.String(), "", `{"name": "ci", "revokedAt": null}`},
		{"owner-a", "revoke", "token", tok.ID.String(), `{"name": "ci", "revokedAt": null}`,
			fmt.Sprintf(`{"name": "ci", "revokedAt": %s}`, revokedAt)},
	})
	if strings.Contains(auditTableText(t, s), plain) {
		t.Error("the audit table holds a plain token")
	}
}

// TestAuditSharesTheChangesTransaction makes every audit insert fail and
// checks that each change then fails whole; and that a change that fails
// on its own records nothing.
func TestAuditSharesTheChangesTransaction(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Atomic")
	other := createIntegration(t, s, "owner-a", "Other")
	putConfig(t, s, in.ID, config.KeyCallHandling, map[string]any{"concurrency_limit": 2})
	sec, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "LLM_API_KEY", "llm-value-0001", false)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.CreateToken(ctx, "owner-a", "test", "ci")
	if err != nil {
		t.Fatal(err)
	}

	// Failing on its own: a taken slug, an existing key.
	before := auditTableText(t, s)
	if _, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Slug: &other.Slug}, false); err == nil {
		t.Fatal("slug clash accepted")
	}
	if _, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "LLM_API_KEY", "llm-value-0002", false); err == nil {
		t.Fatal("existing key accepted")
	}
	if _, err := s.CreateIntegration(ctx, "owner-a", "test", store.IntegrationFields{Name: ptr("x"), Slug: &other.Slug}); err == nil {
		t.Fatal("taken slug accepted")
	}
	if after := auditTableText(t, s); after != before {
		t.Fatalf("failed changes were recorded:\n%s", strings.TrimPrefix(after, before))
	}

	state := func() string {
		var b strings.Builder
		for _, q := range []string{
			`SELECT string_agg(i::text, ',' ORDER BY id) FROM integrations i`,
			`SELECT string_agg(c::text, ',' ORDER BY key) FROM integration_config c`,
			`SELECT string_agg(s::text, ',' ORDER BY key) FROM secrets s`,
			`SELECT string_agg(a::text, ',' ORDER BY id) FROM access_tokens a`,
			`SELECT count(*)::text FROM audit_logs`,
		} {
			var v *string
			must(t, s.Pool().QueryRow(ctx, q).Scan(&v))
			b.WriteString(deref(v) + "\n")
		}
		return b.String()
	}
	_, err = s.Pool().Exec(ctx, `CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused'; END $$`)
	must(t, err)
	_, err = s.Pool().Exec(ctx, `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION refuse_audit()`)
	must(t, err)
	was := state()
	changes := map[string]func() error{
		"create integration": func() error {
			_, err := s.CreateIntegration(ctx, "owner-a", "test", store.IntegrationFields{Name: ptr("New")})
			return err
		},
		"update integration": func() error {
			_, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Name: ptr("Renamed")}, false)
			return err
		},
		"delete integration": func() error { return s.DeleteIntegration(ctx, "owner-a", "test", in.ID) },
		"rotate webhook token": func() error {
			_, err := s.RotateWebhookToken(ctx, "owner-a", "test", in.ID)
			return err
		},
		"put config": func() error {
			return s.PutConfig(ctx, "test", in.ID, config.KeyCallHandling, json.RawMessage(`{"concurrency_limit": 5}`))
		},
		"delete config": func() error { return s.DeleteConfig(ctx, "test", in.ID, config.KeyCallHandling) },
		"create secret": func() error {
			_, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "NEW_KEY", "new-value-0003", false)
			return err
		},
		"upsert secret": func() error {
			_, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "LLM_API_KEY", "new-value-0004", true)
			return err
		},
		"update secret": func() error {
			_, err := s.UpdateSecret(ctx, "test", in.ID, store.KindSecret, sec.ID, "LLM_API_KEY", "new-value-0005")
			return err
		},
		"delete secret": func() error { return s.DeleteSecret(ctx, "test", in.ID, store.KindSecret, sec.ID) },
		"create token": func() error {
			_, _, err := s.CreateToken(ctx, "owner-a", "test", "new")
			return err
		},
		"revoke token": func() error { return s.RevokeToken(ctx, "owner-a", "test", tok.ID) },
	}
	for name, change := range changes {
		if err := change(); err == nil || !strings.Contains(err.Error(), "audit refused") {
			t.Errorf("%s with a failing audit insert: %v", name, err)
		}
		if now := state(); now != was {
			t.Errorf("%s changed the data although its audit entry failed:\n%s\nwas\n%s", name, now, was)
		}
	}
}

// TestAuditBeforeIsWhatWasReplaced races writers of one config key: each
// entry's before must be the previous entry's after.
func TestAuditBeforeIsWhatWasReplaced(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := createIntegration(t, s, "owner-a", "Race")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := s.PutConfig(context.Background(), "test", in.ID, "custom.key", json.RawMessage(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	entries := auditLog(t, s, in.ID)[1:] // after the integration's creation
	if len(entries) != 8 || entries[0].Before != nil {
		t.Fatalf("%d entries, first before %s", len(entries), entries[0].Before)
	}
	for i := 1; i < len(entries); i++ {
		if string(entries[i].Before) != string(entries[i-1].After) {
			t.Errorf("entry %d replaced %s, but the value before it was %s", i, entries[i].Before, entries[i-1].After)
		}
	}
}

func TestAuditLogPages(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	a := createIntegration(t, s, "owner-a", "Paged")
	b := createIntegration(t, s, "owner-b", "Elsewhere")
	for i := range 6 {
		must(t, s.PutConfig(ctx, "owner-a", a.ID, "custom.key", json.RawMessage(fmt.Sprint(i))))
		must(t, s.PutConfig(ctx, "owner-b", b.ID, "custom.key", json.RawMessage(fmt.Sprint(i))))
	}
	var seen []string
	for offset := 0; ; offset += 3 {
		page, total, err := s.AuditLog(ctx, a.ID, 3, offset)
		if err != nil || total != 7 {
			t.Fatalf("AuditLog(offset %d) total %d, %v", offset, total, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			seen = append(seen, e.Action+":"+string(e.After))
		}
	}
	want := []string{"update:5", "update:4", "update:3", "update:2", "update:1", "update:0", "create:"}
	if len(seen) != len(want) || !slices.Equal(seen[:6], want[:6]) || !strings.HasPrefix(seen[6], "create:") {
		t.Fatalf("pages = %v, want newest first %v", seen, want)
	}
}

// TestAuditRecordsTokenAndClient: a change made under an audit source
// records its token and address; one from the command line records none.
func TestAuditRecordsTokenAndClient(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tok, _, err := s.CreateToken(t.Context(), "owner-a", store.ActorCLI, "ci")
	if err != nil {
		t.Fatal(err)
	}
	ctx := store.WithAuditSource(t.Context(), store.AuditSource{TokenID: tok.ID, ClientIP: netip.MustParseAddr("::ffff:203.0.113.7")})
	in, err := s.CreateIntegration(ctx, "owner-a", "owner-a", store.IntegrationFields{Name: ptr("Traced")})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.PutConfig(ctx, "owner-a", in.ID, "custom.key", json.RawMessage(`1`)))
	entries := auditLog(t, s, in.ID)
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2", len(entries))
	}
	for _, e := range entries {
		if e.TokenID == nil || *e.TokenID != tok.ID || e.ClientIP == nil || *e.ClientIP != "203.0.113.7" {
			t.Errorf("%s %s recorded token %v from %v, want %s from 203.0.113.7", e.Action, e.Resource, e.TokenID, e.ClientIP, tok.ID)
		}
	}
	cli, _, err := s.OwnerAuditLog(t.Context(), "owner-a", uuid.Nil, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e := cli[len(cli)-1]; e.Resource != "token" || e.TokenID != nil || e.ClientIP != nil {
		t.Errorf("the command line's entry %+v names a token or an address", e)
	}
}
