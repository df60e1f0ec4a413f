package store_test

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

func handlerNames(list []store.Handler) []string {
	out := []string{}
	for _, h := range list {
		out = append(out, h.Name)
	}
	return out
}

// auditOf lists an integration's audit entries as "action resource".
func auditOf(t *testing.T, s *store.Store, id uuid.UUID) []string {
	t.Helper()
	entries, _, err := s.AuditLog(t.Context(), id, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(entries) {
		out = append(out, e.Action+" "+e.Resource)
	}
	return out
}

func TestHandlersCRUD(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	a := createIntegration(t, s, "owner-a", "Handlers A")
	b := createIntegration(t, s, "owner-b", "Handlers B")
	auditBefore := len(auditOf(t, s, a.ID))

	h, err := s.CreateHandler(ctx, "owner-a", "owner-a", a.ID, "call-originate", json.RawMessage(`{"retries": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.IntegrationID != a.ID || h.Name != "call-originate" || string(h.DefaultArgs) != `{"retries": 3}` || h.CreatedAt.IsZero() {
		t.Fatalf("created %+v", h)
	}
	noArgs, err := s.CreateHandler(ctx, "owner-a", "owner-a", a.ID, "health", nil)
	if err != nil || string(noArgs.DefaultArgs) != "{}" {
		t.Fatalf("handler without args: %+v, %v", noArgs, err)
	}
	if _, err := s.CreateHandler(ctx, "owner-a", "owner-a", a.ID, "call-originate", nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate name: %v, want a conflict", err)
	}
	// Another owner can neither add to A's integration nor see or change A's handlers.
	if _, err := s.CreateHandler(ctx, "owner-b", "owner-b", a.ID, "x", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B creating on A's integration: %v", err)
	}
	if _, err := s.ListHandlers(ctx, "owner-b", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B listing A's integration: %v", err)
	}
	if _, err := s.GetHandler(ctx, "owner-b", uuid.Nil, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B getting A's handler: %v", err)
	}
	if _, err := s.UpdateHandler(ctx, "owner-b", "owner-b", uuid.Nil, h.ID, store.HandlerFields{Name: ptr("stolen")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B updating A's handler: %v", err)
	}
	if err := s.DeleteHandler(ctx, "owner-b", "owner-b", uuid.Nil, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B deleting A's handler: %v", err)
	}
	// Scoped to another integration, the handler is not found either.
	if _, err := s.GetHandler(ctx, "owner-a", b.ID, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("A's handler under B's integration: %v", err)
	}

	all, err := s.ListHandlers(ctx, "owner-a", uuid.Nil)
	if err != nil || !slices.Equal(handlerNames(all), []string{"call-originate", "health"}) {
		t.Fatalf("A's handlers: %v, %v", handlerNames(all), err)
	}
	if list, err := s.ListHandlers(ctx, "owner-b", uuid.Nil); err != nil || len(list) != 0 {
		t.Fatalf("B's handlers: %v, %v", handlerNames(list), err)
	}

	up, err := s.UpdateHandler(ctx, "owner-a", "owner-a", a.ID, h.ID, store.HandlerFields{DefaultArgs: json.RawMessage(`{"priority": 5}`)})
	if err != nil || up.Name != "call-originate" || string(up.DefaultArgs) != `{"priority": 5}` || !up.UpdatedAt.After(h.UpdatedAt) {
		t.Fatalf("update args: %+v, %v", up, err)
	}
	if _, err := s.UpdateHandler(ctx, "owner-a", "owner-a", uuid.Nil, h.ID, store.HandlerFields{Name: ptr("health")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rename onto another handler: %v", err)
	}
	up, err = s.UpdateHandler(ctx, "owner-a", "owner-a", uuid.Nil, h.ID, store.HandlerFields{Name: ptr("originate")})
	if err != nil || up.Name != "originate" || string(up.DefaultArgs) != `{"priority": 5}` {
		t.Fatalf("rename: %+v, %v", up, err)
	}
	if err := s.DeleteHandler(ctx, "owner-a", "owner-a", a.ID, h.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHandler(ctx, "owner-a", "owner-a", a.ID, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	want := []string{"create handler", "create handler", "update handler", "update handler", "delete handler"}
	if got := auditOf(t, s, a.ID)[auditBefore:]; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v (refused changes leave no entry)", got, want)
	}
}

func TestSyncHandlersIsAllOrNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Sync")
	kept, err := s.CreateHandler(ctx, "owner-a", "owner-a", in.ID, "setup", json.RawMessage(`{"old": true}`))
	if err != nil {
		t.Fatal(err)
	}
	specs := []store.HandlerSpec{
		{Name: "call-originate", DefaultArgs: json.RawMessage(`{"method": "POST", "url": "x/webhook/call-originate", "body": {"phone_number": "+380991234567"}}`)},
		{Name: "setup", DefaultArgs: json.RawMessage(`{"method": "POST", "url": "x/setup", "body": null}`)},
		{Name: "health", DefaultArgs: json.RawMessage(`{"method": "GET", "url": "x/health", "body": null}`)},
	}
	synced, err := s.SyncHandlers(ctx, "owner-a", "owner-a", in.ID, specs)
	if err != nil {
		t.Fatal(err)
	}
	var created []bool
	for _, h := range synced {
		created = append(created, h.Created)
	}
	if !slices.Equal(created, []bool{true, false, true}) || synced[1].Handler.ID != kept.ID {
		t.Fatalf("sync created %v; setup kept its id: %v", created, synced[1].Handler.ID == kept.ID)
	}
	list, err := s.ListHandlers(ctx, "owner-a", in.ID)
	if err != nil || !slices.Equal(handlerNames(list), []string{"setup", "call-originate", "health"}) {
		t.Fatalf("list after sync %v, %v (created in spec order after the existing one)", handlerNames(list), err)
	}

	// A spec that fails half-way changes nothing: the second name is invalid
	// for the schema (empty), after the first was written.
	bad := []store.HandlerSpec{{Name: "retry", DefaultArgs: json.RawMessage(`{}`)}, {Name: "", DefaultArgs: json.RawMessage(`{}`)}}
	if _, err := s.SyncHandlers(ctx, "owner-a", "owner-a", in.ID, bad); err == nil {
		t.Fatal("a sync with an empty name succeeded")
	}
	after, _ := s.ListHandlers(ctx, "owner-a", in.ID)
	if !slices.Equal(handlerNames(after), handlerNames(list)) {
		t.Fatalf("a failed sync left %v, want %v", handlerNames(after), handlerNames(list))
	}
	if _, err := s.SyncHandlers(ctx, "owner-b", "owner-b", in.ID, specs); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another owner's sync: %v", err)
	}
}

func TestSetupIntegration(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Setup")
	putConfig(t, s, in.ID, "call_handling", map[string]any{"concurrency_limit": 7})
	if _, err := s.PutSecret(ctx, "owner-a", in.ID, store.KindCredential, "LLM_API_KEY", "sk-llm-123456", false); err != nil {
		t.Fatal(err)
	}

	res, err := s.SetupIntegration(ctx, "webhook", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config:voice", "config:crm_fields", "config:crm", "config:agent", "secret:VA_AUTH_TOKEN", "secret:ELEVENLABS_WEBHOOK_SECRET"}
	if !slices.Equal(res.Created, want) || res.Status != store.StatusNotConfigured {
		t.Fatalf("setup = %+v, want created %v (call_handling and LLM_API_KEY exist) and not_configured", res, want)
	}
	cfg, err := s.Config(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CallHandling.ConcurrencyLimit != 7 || cfg.Voice.Provider != "va" || cfg.CRM.Kind != "none" || len(cfg.Raw) != 5 {
		t.Fatalf("config after setup: %+v (stored keys %d)", cfg, len(cfg.Raw))
	}
	secrets, err := s.ListSecrets(ctx, in.ID, store.KindSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		if sec.ValuePreview != "" {
			t.Errorf("placeholder %s has preview %q", sec.Key, sec.ValuePreview)
		}
		if v, err := s.SecretValue(ctx, in.ID, sec.Key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("placeholder %s = %q, %v; want unset (ErrNotFound)", sec.Key, v, err)
		}
	}
	if len(secrets) != 2 {
		t.Fatalf("secrets after setup: %+v", secrets)
	}

	// Idempotent, also when run concurrently.
	var wg sync.WaitGroup
	results := make([]store.SetupResult, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = s.SetupIntegration(ctx, "webhook", in.ID) })
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || len(results[i].Created) != 0 {
			t.Fatalf("setup again: %+v, %v", results[i], errs[i])
		}
	}
	if got := auditOf(t, s, in.ID); slices.Index(got, "setup integration") < 0 || len(slices.DeleteFunc(got, func(e string) bool { return e != "setup integration" })) != 1 {
		t.Fatalf("audit %v: want one setup entry (runs that create nothing are not changes)", auditOf(t, s, in.ID))
	}

	// An empty placeholder does not make the dialler configured; a real value does.
	putConfig(t, s, in.ID, "voice", vaVoice)
	if got, _ := s.IntegrationByID(ctx, in.ID); got.Status != store.StatusNotConfigured {
		t.Fatalf("status with an empty VA_AUTH_TOKEN = %s", got.Status)
	}
	if _, err := s.PutSecret(ctx, "owner-a", in.ID, store.KindSecret, "VA_AUTH_TOKEN", "va-token-123", true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.IntegrationByID(ctx, in.ID); got.Status != store.StatusActive {
		t.Fatalf("status with VA_AUTH_TOKEN set = %s", got.Status)
	}
	// A credential of a placeholder's key is not hidden by the empty secret.
	if _, err := s.PutSecret(ctx, "owner-a", in.ID, store.KindCredential, "ELEVENLABS_WEBHOOK_SECRET", "wsec-credential-9", false); err != nil {
		t.Fatal(err)
	}
	if v, err := s.SecretValue(ctx, in.ID, "ELEVENLABS_WEBHOOK_SECRET"); err != nil || v != "wsec-credential-9" {
		t.Fatalf("ELEVENLABS_WEBHOOK_SECRET behind an empty placeholder = %q, %v; want the credential", v, err)
	}
	// A secret with a value still comes before the credential.
	if _, err := s.PutSecret(ctx, "owner-a", in.ID, store.KindSecret, "ELEVENLABS_WEBHOOK_SECRET", "wsec-secret-10", true); err != nil {
		t.Fatal(err)
	}
	if v, err := s.SecretValue(ctx, in.ID, "ELEVENLABS_WEBHOOK_SECRET"); err != nil || v != "wsec-secret-10" {
		t.Fatalf("ELEVENLABS_WEBHOOK_SECRET with both set = %q, %v; want the secret", v, err)
	}
	if _, err := s.SetupIntegration(ctx, "webhook", uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("setup of a missing integration: %v", err)
	}
}
