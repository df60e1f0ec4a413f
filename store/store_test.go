package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

func TestMain(m *testing.M) {
	// storetest closes every pool in t.Cleanup, which also stops pgxpool's
	// background health checks: nothing may outlive the tests.
	goleak.VerifyTestMain(m)
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, _ := storetest.NewStore(t)
	return s
}

func ptr[T any](v T) *T { return &v }

func createIntegration(t *testing.T, s *store.Store, owner, name string) store.Integration {
	t.Helper()
	in, err := s.CreateIntegration(t.Context(), owner, "test", store.IntegrationFields{Name: &name})
	if err != nil {
		t.Fatalf("create integration %q: %v", name, err)
	}
	return in
}

// putConfig validates value as config key and stores it.
func putConfig(t *testing.T, s *store.Store, id uuid.UUID, key string, value any) {
	t.Helper()
	raw, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	norm, err := config.Normalize(key, raw)
	if err != nil {
		t.Fatalf("config %s %s: %v", key, raw, err)
	}
	if err := s.PutConfig(t.Context(), "test", id, key, norm); err != nil {
		t.Fatalf("put config %s: %v", key, err)
	}
}

var vaVoice = map[string]any{"provider": "va", "base_url": "http://va.test", "sip_id": "sip-1", "assistant_id": "asst-1"}

// activate completes an integration's dialler configuration (voice and its
// secret), which makes it active.
func activate(t *testing.T, s *store.Store, id uuid.UUID) {
	t.Helper()
	putConfig(t, s, id, config.KeyVoice, vaVoice)
	if _, err := s.PutSecret(t.Context(), "test", id, store.KindSecret, "VA_AUTH_TOKEN", "va-token-123456", true); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, id); st != store.StatusActive {
		t.Fatalf("integration is %s after voice config and secret, want active", st)
	}
}

func status(t *testing.T, s *store.Store, id uuid.UUID) string {
	t.Helper()
	in, err := s.IntegrationByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in.Status
}

func TestTokens(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()

	tok, plain, err := s.CreateToken(ctx, "owner-a", "test", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, "cq_") || len(plain) < 40 || tok.OwnerID != "owner-a" || tok.Name != "ci" || tok.CreatedAt.IsZero() {
		t.Fatalf("CreateToken = %+v, %q", tok, plain)
	}
	_, plain2, err := s.CreateToken(ctx, "owner-a", "test", "second")
	if err != nil {
		t.Fatal(err)
	}
	if plain2 == plain {
		t.Fatal("two tokens are equal")
	}
	if _, _, err := s.CreateToken(ctx, "owner-b", "test", ""); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM access_tokens WHERE position($1::bytea IN token_hash) > 0`,
		[]byte(plain)).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the plain token is stored (%d rows, %v)", stored, err)
	}

	list, err := s.ListTokens(ctx, "owner-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "second" || list[1].ID != tok.ID {
		t.Fatalf("ListTokens(owner-a) = %+v, want second then ci", list)
	}
	if list[1].LastUsedAt != nil {
		t.Fatal("last_used_at set before any use")
	}
	if all, err := s.ListAllTokens(ctx); err != nil || len(all) != 3 {
		t.Fatalf("ListAllTokens = %d tokens, %v; want 3", len(all), err)
	}

	bearer, err := s.Authenticate(ctx, plain)
	if err != nil || bearer.Owner != "owner-a" || bearer.TokenID != tok.ID {
		t.Fatalf("Authenticate = %+v, %v; want owner-a with token %s", bearer, err, tok.ID)
	}
	list, _ = s.ListTokens(ctx, "owner-a")
	if list[1].LastUsedAt == nil || list[1].LastUsedAt.Before(tok.CreatedAt) {
		t.Fatalf("last_used_at = %v after use", list[1].LastUsedAt)
	}
	if list[0].LastUsedAt != nil {
		t.Fatal("using one token marked another as used")
	}

	for _, bad := range []string{"", "cq_nope", plain + "x", strings.ToUpper(plain)} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Authenticate(%q) = %v, want ErrNotFound", bad, err)
		}
	}

	if err := s.RevokeToken(ctx, "owner-b", "test", tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another owner revoked the token: %v", err)
	}
	if err := s.RevokeToken(ctx, "owner-a", "test", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, plain); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Authenticate(revoked) = %v, want ErrNotFound", err)
	}
	if err := s.RevokeToken(ctx, "owner-a", "test", tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice = %v, want ErrNotFound", err)
	}
	if bearer, err := s.Authenticate(ctx, plain2); err != nil || bearer.Owner != "owner-a" {
		t.Fatalf("the other token stopped working: %+v, %v", bearer, err)
	}
	list, _ = s.ListTokens(ctx, "owner-a")
	if list[1].RevokedAt == nil || list[0].RevokedAt != nil {
		t.Fatalf("revoked_at after revoking ci: %v / %v", list[1].RevokedAt, list[0].RevokedAt)
	}
}

func TestCreateIntegrationSlugs(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()

	tests := []struct {
		owner, name string
		slug        *string
		want        string // a slug pattern, or "" for a slug conflict
	}{
		{"owner-a", "Acme Sales", nil, "acme-sales"},
		{"owner-a", "Acme Sales", nil, "acme-sales-[a-z0-9]{6}"},
		{"owner-b", "ACME  sales!", nil, "acme-sales-[a-z0-9]{6}"}, // slugs are unique across owners
		{"owner-a", "Other", ptr("acme-sales"), ""},
		{"owner-a", "Other", ptr("acme-main"), "acme-main"},
		{"owner-a", "Other", ptr("acme-main"), ""},
		{"owner-a", "API", nil, "api-[a-z0-9]{6}"}, // would shadow /api
		{"owner-a", "Продажі", nil, "prodazhi"},
		{"owner-a", "東京", nil, "integration-[a-z0-9]{6}"},
		{"owner-a", strings.Repeat("long name ", 10), nil, strings.TrimRight(strings.Repeat("long-name-", 6)[:56], "-")},
	}
	for _, tt := range tests {
		in, err := s.CreateIntegration(ctx, tt.owner, "test", store.IntegrationFields{Name: &tt.name, Slug: tt.slug})
		if tt.want == "" {
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.Field != "slug" || !errors.Is(err, store.ErrConflict) {
				t.Errorf("create %q with slug %q = %+v, %v; want a slug ConflictError", tt.name, *tt.slug, in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("create %q: %v", tt.name, err)
			continue
		}
		if !regexp.MustCompile("^"+tt.want+"$").MatchString(in.Slug) || in.OwnerID != tt.owner || in.Name != tt.name ||
			in.Status != store.StatusNotConfigured {
			t.Errorf("create %q = slug %q owner %q status %q; want slug %s", tt.name, in.Slug, in.OwnerID, in.Status, tt.want)
		}
		if !store.SlugPattern.MatchString(in.Slug) {
			t.Errorf("slug %q does not match the slug pattern", in.Slug)
		}
	}
}

func TestIntegrationOwnership(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Mine")

	if got, err := s.GetIntegration(ctx, "owner-a", in.ID); err != nil || got.ID != in.ID || got.WebhookToken != in.WebhookToken {
		t.Fatalf("GetIntegration(owner) = %+v, %v", got, err)
	}
	if got, err := s.IntegrationByID(ctx, in.ID); err != nil || got.ID != in.ID {
		t.Fatalf("GetIntegration(any owner) = %+v, %v", got, err)
	}
	if got, err := s.IntegrationBySlug(ctx, in.Slug); err != nil || got.ID != in.ID {
		t.Fatalf("IntegrationBySlug = %+v, %v", got, err)
	}
	notFound := []struct {
		name string
		call func() error
	}{
		{"get by another owner", func() error { _, err := s.GetIntegration(ctx, "owner-b", in.ID); return err }},
		{"get unknown id", func() error { _, err := s.GetIntegration(ctx, "owner-a", uuid.New()); return err }},
		{"unknown slug", func() error { _, err := s.IntegrationBySlug(ctx, "nope"); return err }},
		{"update by another owner", func() error {
			_, err := s.UpdateIntegration(ctx, "owner-b", "test", in.ID, store.IntegrationFields{Name: ptr("stolen")}, false)
			return err
		}},
		{"rotate by another owner", func() error { _, err := s.RotateWebhookToken(ctx, "owner-b", "test", in.ID); return err }},
		{"delete by another owner", func() error { return s.DeleteIntegration(ctx, "owner-b", "test", in.ID) }},
	}
	for _, tt := range notFound {
		if err := tt.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
		}
	}
	if got, _ := s.GetIntegration(ctx, "owner-a", in.ID); got.Name != "Mine" {
		t.Fatalf("another owner's update changed the name to %q", got.Name)
	}
	if err := s.DeleteIntegration(ctx, "owner-a", "test", in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IntegrationByID(ctx, in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetIntegration after delete = %v", err)
	}
}

func TestWebhookToken(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	a := createIntegration(t, s, "owner-a", "A")
	b := createIntegration(t, s, "owner-a", "B")
	if !strings.HasPrefix(a.WebhookToken, "wh_") || len(a.WebhookToken) < 30 || a.WebhookToken == b.WebhookToken {
		t.Fatalf("webhook tokens %q and %q", a.WebhookToken, b.WebhookToken)
	}
	var enc []byte
	if err := s.Pool().QueryRow(ctx, `SELECT webhook_token_enc FROM integrations WHERE id = $1`, a.ID).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte(a.WebhookToken)) {
		t.Fatal("webhook token stored in plain text")
	}
	if got, _ := s.IntegrationBySlug(ctx, a.Slug); got.WebhookToken != a.WebhookToken || !store.TokenMatches(got.WebhookToken, a.WebhookToken) {
		t.Fatalf("stored token decrypts to %q, want %q", got.WebhookToken, a.WebhookToken)
	}

	rotated, err := s.RotateWebhookToken(ctx, "owner-a", "test", a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.WebhookToken == a.WebhookToken || !strings.HasPrefix(rotated.WebhookToken, "wh_") {
		t.Fatalf("rotated token %q (was %q)", rotated.WebhookToken, a.WebhookToken)
	}
	got, _ := s.GetIntegration(ctx, "owner-a", a.ID)
	if got.WebhookToken != rotated.WebhookToken || store.TokenMatches(got.WebhookToken, a.WebhookToken) {
		t.Fatalf("after rotation the token is %q, want %q", got.WebhookToken, rotated.WebhookToken)
	}
	if got, _ := s.GetIntegration(ctx, "owner-a", b.ID); got.WebhookToken != b.WebhookToken {
		t.Fatal("rotating A changed B's token")
	}

	// A's ciphertext copied onto B's row does not decrypt: it is bound to A.
	if _, err := s.Pool().Exec(ctx, `UPDATE integrations SET webhook_token_enc = (SELECT webhook_token_enc FROM integrations
		WHERE id = $1) WHERE id = $2`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetIntegration(ctx, "owner-a", b.ID); !errors.Is(err, store.ErrDecrypt) {
		t.Fatalf("B with A's token ciphertext: %v, want ErrDecrypt", err)
	}
}

func TestTokenMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		want, got string
		ok        bool
	}{
		{"wh_abc", "wh_abc", true},
		{"wh_abc", "wh_abd", false},
		{"wh_abc", "wh_ab", false},
		{"", "", false}, // an integration without a token accepts nothing
	}
	for _, tt := range tests {
		if ok := store.TokenMatches(tt.want, tt.got); ok != tt.ok {
			t.Errorf("TokenMatches(%q, %q) = %v", tt.want, tt.got, ok)
		}
	}
}

func TestUpdateIntegration(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	a, err := s.CreateIntegration(ctx, "owner-a", "test", store.IntegrationFields{Name: ptr("A"), PhoneNumber: ptr("+380441234567"),
		AgentPrompt: ptr("be nice")})
	if err != nil {
		t.Fatal(err)
	}
	b := createIntegration(t, s, "owner-a", "B")

	patched, err := s.UpdateIntegration(ctx, "owner-a", "test", a.ID, store.IntegrationFields{Name: ptr("A2")}, false)
	if err != nil {
		t.Fatal(err)
	}
	if patched.Name != "A2" || patched.Slug != a.Slug || patched.PhoneNumber == nil || *patched.PhoneNumber != "+380441234567" {
		t.Fatalf("PATCH name = %+v: other fields must be kept", patched)
	}
	replaced, err := s.UpdateIntegration(ctx, "owner-a", "test", a.ID, store.IntegrationFields{Name: ptr("A3"), AgentPrompt: ptr("be brief")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.PhoneNumber != nil || replaced.AgentPrompt == nil || *replaced.AgentPrompt != "be brief" {
		t.Fatalf("PUT = %+v: fields not given must be cleared", replaced)
	}

	_, err = s.UpdateIntegration(ctx, "owner-a", "test", a.ID, store.IntegrationFields{Slug: &b.Slug}, false)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Field != "slug" {
		t.Fatalf("update to a taken slug = %v, want a slug ConflictError", err)
	}
	if got, _ := s.IntegrationByID(ctx, a.ID); got.Slug != a.Slug {
		t.Fatalf("failed update changed the slug to %q", got.Slug)
	}
}

// TestIntegrationStatus walks an integration between not_configured and
// active as its voice config and the dialler's secret come and go, and
// checks that paused is left alone until it is cleared.
func TestIntegrationStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Status")
	var secretID uuid.UUID

	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"created", func() error { return nil }, store.StatusNotConfigured},
		{"incomplete voice", func() error {
			putConfig(t, s, in.ID, config.KeyVoice, map[string]any{"provider": "va", "base_url": "http://va.test"})
			return nil
		}, store.StatusNotConfigured},
		{"complete voice, no secret", func() error { putConfig(t, s, in.ID, config.KeyVoice, vaVoice); return nil }, store.StatusNotConfigured},
		{"another secret", func() error {
			_, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "LLM_API_KEY", "llm-key-123", false)
			return err
		}, store.StatusNotConfigured},
		{"empty VA_AUTH_TOKEN", func() error {
			_, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "VA_AUTH_TOKEN", "", false)
			return err
		}, store.StatusNotConfigured},
		{"VA_AUTH_TOKEN", func() error {
			sec, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "VA_AUTH_TOKEN", "va-token-123456", true)
			secretID = sec.ID
			return err
		}, store.StatusActive},
		{"voice config deleted", func() error { return s.DeleteConfig(ctx, "test", in.ID, config.KeyVoice) }, store.StatusNotConfigured},
		{"voice config back", func() error { putConfig(t, s, in.ID, config.KeyVoice, vaVoice); return nil }, store.StatusActive},
		{"secret deleted", func() error { return s.DeleteSecret(ctx, "test", in.ID, store.KindSecret, secretID) }, store.StatusNotConfigured},
		{"secret as a credential", func() error {
			sec, err := s.PutSecret(ctx, "test", in.ID, store.KindCredential, "VA_AUTH_TOKEN", "va-token-123456", false)
			secretID = sec.ID
			return err
		}, store.StatusActive},
		{"switch to elevenlabs without its key", func() error {
			putConfig(t, s, in.ID, config.KeyVoice, map[string]any{"provider": "elevenlabs", "base_url": "https://api.elevenlabs.io",
				"agent_id": "agent-1", "agent_phone_number_id": "phone-1"})
			return nil
		}, store.StatusNotConfigured},
		{"ELEVENLABS_API_KEY", func() error {
			_, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "ELEVENLABS_API_KEY", "xi-key-123456", false)
			return err
		}, store.StatusActive},
		{"paused", func() error {
			_, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Status: ptr(store.StatusPaused)}, false)
			return err
		}, store.StatusPaused},
		{"paused: voice config deleted", func() error { return s.DeleteConfig(ctx, "test", in.ID, config.KeyVoice) }, store.StatusPaused},
		{"paused: voice config back", func() error { putConfig(t, s, in.ID, config.KeyVoice, vaVoice); return nil }, store.StatusPaused},
		{"paused: secret deleted", func() error { return s.DeleteSecret(ctx, "test", in.ID, store.KindCredential, secretID) }, store.StatusPaused},
		{"paused: rename", func() error {
			_, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Name: ptr("Renamed")}, false)
			return err
		}, store.StatusPaused},
		{"resumed while incomplete", func() error {
			_, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Status: ptr(store.StatusActive)}, false)
			return err
		}, store.StatusNotConfigured},
		{"secret back", func() error {
			_, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "VA_AUTH_TOKEN", "va-token-123456", false)
			return err
		}, store.StatusActive},
		{"paused again", func() error {
			_, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Status: ptr(store.StatusPaused)}, false)
			return err
		}, store.StatusPaused},
		{"resumed while complete", func() error {
			_, err := s.UpdateIntegration(ctx, "owner-a", "test", in.ID, store.IntegrationFields{Status: ptr(store.StatusActive)}, false)
			return err
		}, store.StatusActive},
		{"health: has_errors", func() error { return s.SetIntegrationHealth(ctx, in.ID, store.StatusHasErrors) }, store.StatusHasErrors},
		{"has_errors: config change", func() error { putConfig(t, s, in.ID, config.KeyVoice, vaVoice); return nil }, store.StatusHasErrors},
		{"health: active", func() error { return s.SetIntegrationHealth(ctx, in.ID, store.StatusActive) }, store.StatusActive},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := status(t, s, in.ID); got != step.want {
			t.Fatalf("%s: status %s, want %s", step.name, got, step.want)
		}
	}

	// Health changes leave paused and not_configured integrations alone.
	other := createIntegration(t, s, "owner-a", "Other")
	if err := s.SetIntegrationHealth(ctx, other.ID, store.StatusFailed); err != nil {
		t.Fatal(err)
	}
	if got := status(t, s, other.ID); got != store.StatusNotConfigured {
		t.Fatalf("health change moved a not_configured integration to %s", got)
	}
}

func TestConfigPutDelete(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Config")

	cfg, err := s.Config(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CallHandling.ConcurrencyLimit != 3 || cfg.CallHandling.MaxAttempts != 3 || cfg.Voice.Provider != "va" {
		t.Fatalf("defaults = %+v", cfg.CallHandling)
	}
	putConfig(t, s, in.ID, config.KeyCallHandling, map[string]any{"concurrency_limit": 7})
	if err := s.PutConfig(ctx, "test", in.ID, "custom.key", json.RawMessage(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	cfg, _ = s.Config(ctx, in.ID)
	if cfg.CallHandling.ConcurrencyLimit != 7 || cfg.CallHandling.MaxAttempts != 3 {
		t.Fatalf("after PUT call_handling = %+v", cfg.CallHandling)
	}
	if string(cfg.Raw["custom.key"]) != `{"a": 1}` {
		t.Fatalf("free-form key = %s", cfg.Raw["custom.key"])
	}
	if err := s.DeleteConfig(ctx, "test", in.ID, config.KeyCallHandling); err != nil {
		t.Fatal(err)
	}
	cfg, _ = s.Config(ctx, in.ID)
	if cfg.CallHandling.ConcurrencyLimit != 3 {
		t.Fatalf("DELETE did not restore the default: %+v", cfg.CallHandling)
	}
	if _, ok := cfg.Raw["custom.key"]; !ok {
		t.Fatal("deleting one key removed another")
	}
	if err := s.PutConfig(ctx, "test", uuid.New(), config.KeyCRM, json.RawMessage(`{"kind":"none"}`)); err == nil {
		t.Fatal("PutConfig for an unknown integration succeeded")
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Secrets")

	first, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "NETHUNT_API_KEY", "sk-first-value-01", false)
	if err != nil {
		t.Fatal(err)
	}
	if first.Key != "NETHUNT_API_KEY" || first.ValuePreview != "sk…01" {
		t.Fatalf("PutSecret = %+v", first)
	}
	_, err = s.PutSecret(ctx, "test", in.ID, store.KindSecret, "NETHUNT_API_KEY", "sk-other-value-02", false)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Field != "key" || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutSecret on an existing key = %v, want a key ConflictError", err)
	}
	if v, _ := s.SecretValue(ctx, in.ID, "NETHUNT_API_KEY"); v != "sk-first-value-01" {
		t.Fatalf("a refused put changed the value to %q", v)
	}
	upserted, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "NETHUNT_API_KEY", "sk-new-value-03", true)
	if err != nil {
		t.Fatal(err)
	}
	if upserted.ID != first.ID || upserted.ValuePreview != "…" || !upserted.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("upsert = %+v, want the same secret (%v) with a new value", upserted, first.ID)
	}
	if v, err := s.SecretValue(ctx, in.ID, "NETHUNT_API_KEY"); err != nil || v != "sk-new-value-03" {
		t.Fatalf("SecretValue after upsert = %q, %v", v, err)
	}

	// The same key as a credential is another entry.
	if _, err := s.PutSecret(ctx, "test", in.ID, store.KindCredential, "NETHUNT_API_KEY", "cred-value-04", false); err != nil {
		t.Fatalf("credential with a secret's key: %v", err)
	}
	list, err := s.ListSecrets(ctx, in.ID, store.KindSecret)
	if err != nil || len(list) != 1 || list[0].ValuePreview != "…" {
		t.Fatalf("ListSecrets(secret) = %+v, %v", list, err)
	}
	creds, err := s.ListSecrets(ctx, in.ID, store.KindCredential)
	if err != nil || len(creds) != 1 || creds[0].ValuePreview != "…" {
		t.Fatalf("ListSecrets(credential) = %+v, %v", creds, err)
	}
	var enc [][]byte
	rows, _ := s.Pool().Query(ctx, `SELECT value_enc FROM secrets WHERE integration_id = $1`, in.ID)
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		enc = append(enc, b)
	}
	if rows.Err() != nil || len(enc) != 2 {
		t.Fatalf("%d stored secrets, %v", len(enc), rows.Err())
	}
	for _, b := range enc {
		if bytes.Contains(b, []byte("sk-new-value-03")) || bytes.Contains(b, []byte("cred-value-04")) {
			t.Fatal("a secret is stored in plain text")
		}
	}

	// Renaming onto an existing key conflicts; onto a free one works.
	other, err := s.PutSecret(ctx, "test", in.ID, store.KindSecret, "OTHER", "other-value-05", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSecret(ctx, "test", in.ID, store.KindSecret, other.ID, "NETHUNT_API_KEY", "x-value-06"); !errors.As(err, &ce) {
		t.Fatalf("UpdateSecret onto a taken key = %v, want ConflictError", err)
	}
	if _, err := s.UpdateSecret(ctx, "test", in.ID, store.KindSecret, other.ID, "RENAMED", "renamed-value-07"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.SecretValue(ctx, in.ID, "RENAMED"); err != nil || v != "renamed-value-07" {
		t.Fatalf("renamed secret = %q, %v", v, err)
	}
	if _, err := s.UpdateSecret(ctx, "test", in.ID, store.KindCredential, other.ID, "X", "y"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateSecret of the wrong kind = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSecret(ctx, "test", in.ID, store.KindSecret, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteSecret(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.SecretValue(ctx, in.ID, "MISSING"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SecretValue(missing) = %v, want ErrNotFound", err)
	}
	// Another integration's secrets are out of reach.
	b := createIntegration(t, s, "owner-a", "Other")
	if _, err := s.SecretValue(ctx, b.ID, "NETHUNT_API_KEY"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SecretValue of another integration = %v, want ErrNotFound", err)
	}
}

// TestSecretValuePrefersSecret checks that a secret wins over a credential
// with the same key, whichever was stored first.
func TestSecretValuePrefersSecret(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	orders := [][]string{{store.KindCredential, store.KindSecret}, {store.KindSecret, store.KindCredential}}
	for _, order := range orders {
		in := createIntegration(t, s, "owner-a", strings.Join(order, " then "))
		for _, kind := range order {
			if _, err := s.PutSecret(ctx, "test", in.ID, kind, "VA_AUTH_TOKEN", kind+"-value-123", false); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := s.SecretValue(ctx, in.ID, "VA_AUTH_TOKEN"); err != nil || v != "secret-value-123" {
			t.Errorf("%v: SecretValue = %q, %v; want the secret's value", order, v, err)
		}
		secrets, _ := s.ListSecrets(ctx, in.ID, store.KindSecret)
		if err := s.DeleteSecret(ctx, "test", in.ID, store.KindSecret, secrets[0].ID); err != nil {
			t.Fatal(err)
		}
		if v, err := s.SecretValue(ctx, in.ID, "VA_AUTH_TOKEN"); err != nil || v != "credential-value-123" {
			t.Errorf("%v: SecretValue without the secret = %q, %v; want the credential's value", order, v, err)
		}
	}
}

func TestListIntegrations(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"Charlie", "alpha", "Bravo", "Alpha Two"} {
		createIntegration(t, s, "owner-a", name)
	}
	createIntegration(t, s, "owner-b", "Alpha of B")

	names := func(list []store.Integration) []string {
		var out []string
		for _, in := range list {
			out = append(out, in.Name)
		}
		return out
	}
	tests := []struct {
		opt   store.ListOptions
		want  []string
		total int
	}{
		{store.ListOptions{Limit: 10}, []string{"Charlie", "alpha", "Bravo", "Alpha Two"}, 4},
		{store.ListOptions{Order: "name", Limit: 10}, []string{"alpha", "Alpha Two", "Bravo", "Charlie"}, 4},
		{store.ListOptions{Order: "-name", Limit: 2}, []string{"Charlie", "Bravo"}, 4},
		{store.ListOptions{Order: "-createdAt", Limit: 2, Offset: 1}, []string{"Bravo", "alpha"}, 4},
		{store.ListOptions{Search: "ALPHA", Order: "name", Limit: 10}, []string{"alpha", "Alpha Two"}, 2},
		{store.ListOptions{Search: "%", Limit: 10}, nil, 0},
		{store.ListOptions{Order: "name", Limit: 10, Offset: 10}, nil, 4},
	}
	for _, tt := range tests {
		list, total, err := s.ListIntegrations(ctx, "owner-a", tt.opt)
		if err != nil {
			t.Errorf("%+v: %v", tt.opt, err)
			continue
		}
		if got := names(list); !slices.Equal(got, tt.want) || total != tt.total {
			t.Errorf("%+v = %v (total %d), want %v (total %d)", tt.opt, got, total, tt.want, tt.total)
		}
	}
	if _, _, err := s.ListIntegrations(ctx, "owner-a", store.ListOptions{Order: "slug"}); err == nil {
		t.Error("unknown order accepted")
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{store.ErrNotFound, false},
		{&store.ConflictError{Field: "slug"}, false},
		{&pgconn.PgError{Code: "40001"}, true},  // serialization failure
		{&pgconn.PgError{Code: "40P01"}, true},  // deadlock
		{&pgconn.PgError{Code: "08006"}, true},  // connection failure
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "57P02"}, true},  // crash shutdown
		{&pgconn.PgError{Code: "57P03"}, true},  // cannot connect now
		{&pgconn.PgError{Code: "25006"}, true},  // read-only transaction: a standby after failover
		{&pgconn.PgError{Code: "53300"}, true},  // too many connections
		{&pgconn.PgError{Code: "08001"}, true},  // cannot establish connection
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table: a bug, not an outage
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "23514"}, false},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "40001"}), true},
		{errors.New("connection reset by peer"), true},
	}
	for _, tt := range tests {
		if got := store.IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	for code, want := range map[string]bool{"25006": true, "57P01": true, "57P03": true, "40001": false, "08006": false} {
		if got := store.IsFailover(&pgconn.PgError{Code: code}); got != want {
			t.Errorf("IsFailover(%s) = %v, want %v", code, got, want)
		}
	}
}
