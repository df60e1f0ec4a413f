package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

// secretKinds are the two collections that behave alike.
var secretKinds = []string{"secrets", "credentials"}

// storeKind is the kind column value of a collection.
func storeKind(collection string) string { return strings.TrimSuffix(collection, "s") }

// expectHidden fails when body shows any of values, or a part of one longer
// than what a preview shows.
func expectHidden(t testing.TB, r response, values ...string) {
	t.Helper()
	for _, v := range values {
		inner := []rune(v)[3 : len([]rune(v))-2] // what a preview never shows
		if bytes.Contains(r.body, []byte(v)) || bytes.Contains(r.body, []byte(string(inner))) {
			t.Errorf("%s shows a secret value: %s", r.what, r.body)
		}
	}
}

// storedSecret is a secret row as Postgres holds it.
func storedSecret(t testing.TB, w *world, integrationID uuid.UUID, kind, key string) (valueEnc []byte, row string) {
	t.Helper()
	err := w.env.Store.Pool().QueryRow(context.Background(), `SELECT value_enc, s::text FROM secrets s
		WHERE integration_id = $1 AND kind = $2 AND key = $3`, integrationID, kind, key).Scan(&valueEnc, &row)
	if err != nil {
		t.Fatalf("secret %s/%s in Postgres: %v", kind, key, err)
	}
	return valueEnc, row
}

func TestSecretValuesAreNeverShown(t *testing.T) {
	t.Parallel()
	w := setup(t)
	for _, kind := range secretKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			in := createIntegration(t, w.a, map[string]any{"name": "Hidden " + kind})
			first := "sk-" + kind + "-Zq9xW7vU5tS3r1p89"
			second := "xo-" + kind + "-Ab8Cd7Ef6Gh5Ij76"
			wantKeys := []string{"createdAt", "id", "key", "updatedAt", "valuePreview"}

			r := w.a.do(t, "POST", integrationPath(in, "/"+kind), map[string]any{"key": "API_TOKEN", "value": first}).expect(t, http.StatusCreated)
			expectHidden(t, r, first)
			if got := keysOf(t, r.body); !slices.Equal(got, wantKeys) {
				t.Errorf("secret JSON keys = %v, want %v", got, wantKeys)
			}
			created := decodeAs[store.Secret](t, r)
			if created.Key != "API_TOKEN" || created.ValuePreview != "sk…89" || created.ID == uuid.Nil {
				t.Errorf("created = %+v, want preview sk…89", created)
			}

			r = w.a.do(t, "GET", integrationPath(in, "/"+kind), nil).expect(t, http.StatusOK)
			expectHidden(t, r, first)
			if list := decodeAs[[]store.Secret](t, r); len(list) != 1 || list[0].ID != created.ID || list[0].Key != created.Key ||
				list[0].ValuePreview != created.ValuePreview {
				t.Errorf("list = %+v, want [%+v]", list, created)
			}

			r = w.a.do(t, "PUT", integrationPath(in, "/"+kind+"/", created.ID.String()), map[string]any{"key": "API_TOKEN", "value": second}).
				expect(t, http.StatusOK)
			expectHidden(t, r, first, second)
			updated := decodeAs[store.Secret](t, r)
			if updated.ID != created.ID || updated.ValuePreview != "xo…76" || !updated.CreatedAt.Equal(created.CreatedAt) ||
				updated.UpdatedAt.Before(created.UpdatedAt) {
				t.Errorf("updated = %+v (created %+v)", updated, created)
			}

			// Nothing else the owner can read shows it either.
			paths := []string{integrationPath(in), integrationPath(in, "/config"), integrationPath(in, "/"+kind),
				"/api/integrations", "/api/core/secrets?integration=" + url.QueryEscape(in.Slug)}
			for _, path := range paths {
				expectHidden(t, w.a.do(t, "GET", path, nil).expect(t, http.StatusOK), first, second)
			}

			// At rest: encrypted, and the row as a whole holds no plaintext.
			enc, row := storedSecret(t, w, in.ID, storeKind(kind), "API_TOKEN")
			for _, v := range []string{first, second} {
				if bytes.Contains(enc, []byte(v)) || strings.Contains(row, v) || strings.Contains(row, v[3:len(v)-2]) {
					t.Errorf("Postgres holds %q in plain text: %s", v, row)
				}
			}
			if len(enc) <= len(second) {
				t.Errorf("value_enc is %d bytes, too short to be sealed", len(enc))
			}
			// ...but it is really there: the service can read it back.
			if got, err := w.env.Store.SecretValue(context.Background(), in.ID, "API_TOKEN"); err != nil || got != second {
				t.Errorf("stored value = %q, %v; want %q", got, err, second)
			}
		})
	}
}

func TestSecretPreview(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Previews"})
	tests := []struct{ value, preview string }{
		{"abc", "…"},
		{"abcdef", "…"},
		{"abcdefghijkl", "…"},         // 12 characters: none of it shown
		{"sk-1234567889", "…"},        // 13
		{"abcdefghijklmno", "…"},      // 15
		{"abcdefghijklmnop", "ab…op"}, // 16: four characters at most
		{"sk-live-1234567889", "sk…89"},
		{"пароль-секрет-ключ", "па…юч"},
	}
	for i, tt := range tests {
		key := "PREVIEW_" + string(rune('A'+i))
		sec := addSecret(t, w.a, in, "secrets", key, tt.value)
		if sec.ValuePreview != tt.preview {
			t.Errorf("preview of %q = %q, want %q", tt.value, sec.ValuePreview, tt.preview)
		}
	}
}

func TestSecretConflictsAndLifecycle(t *testing.T) {
	t.Parallel()
	w := setup(t)
	for _, kind := range secretKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			in := createIntegration(t, w.a, map[string]any{"name": "Conflicts " + kind})
			a := addSecret(t, w.a, in, kind, "KEY_A", "value-a-000001")
			b := addSecret(t, w.a, in, kind, "KEY_B", "value-b-000002")
			value := func(key string) string {
				t.Helper()
				enc, _ := storedSecret(t, w, in.ID, storeKind(kind), key)
				if len(enc) == 0 {
					t.Fatalf("%s has no value", key)
				}
				v, err := w.env.Store.SecretValue(context.Background(), in.ID, key)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}

			// An existing key is a conflict and keeps its value.
			r := w.a.do(t, "POST", integrationPath(in, "/"+kind), map[string]any{"key": "KEY_A", "value": "value-a-replaced"})
			expectFieldError(t, r, http.StatusConflict, "key")
			expectHidden(t, r, "value-a-replaced", "value-a-000001")
			if got := value("KEY_A"); got != "value-a-000001" {
				t.Errorf("KEY_A = %q after a refused POST", got)
			}
			// Renaming onto another key is a conflict too.
			expectFieldError(t, w.a.do(t, "PUT", integrationPath(in, "/"+kind+"/", b.ID.String()), map[string]any{"key": "KEY_A", "value": "x-value-x"}),
				http.StatusConflict, "key")
			if got := value("KEY_B"); got != "value-b-000002" {
				t.Errorf("KEY_B = %q after a refused rename", got)
			}
			// A rename keeps the id and moves the value under the new key.
			renamed := decodeAs[store.Secret](t, w.a.do(t, "PUT", integrationPath(in, "/"+kind+"/", b.ID.String()),
				map[string]any{"key": "KEY_C", "value": "value-c-000003"}).expect(t, http.StatusOK))
			if renamed.ID != b.ID || renamed.Key != "KEY_C" || value("KEY_C") != "value-c-000003" {
				t.Errorf("renamed = %+v", renamed)
			}

			r = w.a.do(t, "DELETE", integrationPath(in, "/"+kind+"/", a.ID.String()), nil).expect(t, http.StatusOK)
			if got := decodeAs[map[string]any](t, r); len(got) != 1 || got["success"] != true {
				t.Errorf("DELETE answered %s", r.body)
			}
			expectError(t, w.a.do(t, "DELETE", integrationPath(in, "/"+kind+"/", a.ID.String()), nil), http.StatusNotFound)
			expectError(t, w.a.do(t, "PUT", integrationPath(in, "/"+kind+"/", a.ID.String()), map[string]any{"key": "KEY_A", "value": "v"}),
				http.StatusNotFound)
			list := decodeAs[[]store.Secret](t, w.a.do(t, "GET", integrationPath(in, "/"+kind), nil).expect(t, http.StatusOK))
			if len(list) != 1 || list[0].Key != "KEY_C" {
				t.Errorf("list after delete = %+v", list)
			}
			// The deleted key can be created again.
			addSecret(t, w.a, in, kind, "KEY_A", "value-a-again")
		})
	}

	t.Run("secrets and credentials are separate collections", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Two collections"})
		sec := addSecret(t, w.a, in, "secrets", "SHARED", "secret-value-1")
		cred := addSecret(t, w.a, in, "credentials", "SHARED", "credential-value-2")
		if sec.ID == cred.ID {
			t.Fatal("a secret and a credential share an id")
		}
		for kind, want := range map[string]uuid.UUID{"secrets": sec.ID, "credentials": cred.ID} {
			list := decodeAs[[]store.Secret](t, w.a.do(t, "GET", integrationPath(in, "/"+kind), nil).expect(t, http.StatusOK))
			if len(list) != 1 || list[0].ID != want {
				t.Errorf("%s = %+v", kind, list)
			}
		}
		// A secret's id does not address a credential, nor the other way round.
		expectError(t, w.a.do(t, "DELETE", integrationPath(in, "/credentials/", sec.ID.String()), nil), http.StatusNotFound)
		expectError(t, w.a.do(t, "PUT", integrationPath(in, "/secrets/", cred.ID.String()), map[string]any{"key": "SHARED", "value": "v"}),
			http.StatusNotFound)
	})
}

func TestCoreSecrets(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Core Name", "slug": "core-slug"})
	theirs := createIntegration(t, w.b, map[string]any{"name": "Their Core", "slug": "their-core"})
	addSecret(t, w.b, theirs, "secrets", "THEIR_KEY", "their-value-1")
	post := func(c client, integration, key, value string) response {
		t.Helper()
		return c.do(t, "POST", "/api/core/secrets", map[string]any{"integration": integration, "key": key, "value": value})
	}
	list := func(c client, integration string) response {
		t.Helper()
		return c.do(t, "GET", "/api/core/secrets?integration="+url.QueryEscape(integration), nil)
	}

	r := post(w.a, "core-slug", "CORE_KEY", "core-value-0001").expect(t, http.StatusCreated)
	expectHidden(t, r, "core-value-0001")
	first := decodeAs[store.Secret](t, r)
	// POST again upserts: same secret, new value (under 16 characters: no preview).
	if r = post(w.a, "Core Name", "CORE_KEY", "core-value-0002"); r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("upsert: %d %s", r.status, r.body)
	}
	expectHidden(t, r, "core-value-0001", "core-value-0002")
	second := decodeAs[store.Secret](t, r)
	if second.ID != first.ID || second.ValuePreview != "…" || second.UpdatedAt.Before(first.UpdatedAt) {
		t.Errorf("upsert = %+v, first %+v", second, first)
	}
	if got, err := w.env.Store.SecretValue(context.Background(), in.ID, "CORE_KEY"); err != nil || got != "core-value-0002" {
		t.Errorf("CORE_KEY = %q, %v", got, err)
	}

	for _, name := range []string{"core-slug", "Core Name"} {
		r := list(w.a, name).expect(t, http.StatusOK)
		expectHidden(t, r, "core-value-0002")
		if got := decodeAs[[]store.Secret](t, r); len(got) != 1 || got[0].ID != first.ID || got[0].Key != "CORE_KEY" {
			t.Errorf("core list by %q = %s", name, r.body)
		}
	}
	// The nested API sees the same secret.
	nested := decodeAs[[]store.Secret](t, w.a.do(t, "GET", integrationPath(in, "/secrets"), nil).expect(t, http.StatusOK))
	if len(nested) != 1 || nested[0].ID != first.ID {
		t.Errorf("nested list = %+v", nested)
	}

	// Another owner's integration, by slug or by name, is not found.
	for _, name := range []string{"their-core", "Their Core"} {
		expectFieldError(t, post(w.a, name, "THEIR_KEY", "stolen-value-9"), http.StatusNotFound, "integration")
		expectFieldError(t, list(w.a, name), http.StatusNotFound, "integration")
	}
	expectFieldError(t, post(w.a, "no-such-integration", "K", "v"), http.StatusNotFound, "integration")
	if got, err := w.env.Store.SecretValue(context.Background(), theirs.ID, "THEIR_KEY"); err != nil || got != "their-value-1" {
		t.Errorf("B's secret = %q, %v after A's attempts", got, err)
	}
	expectFieldError(t, w.a.do(t, "GET", "/api/core/secrets", nil), http.StatusBadRequest, "integration")
	expectFieldError(t, post(w.a, "", "K", "v"), http.StatusUnprocessableEntity, "integration")
}

func TestSecretsOfAnotherOwner(t *testing.T) {
	t.Parallel()
	w := setup(t)
	theirs := createIntegration(t, w.b, map[string]any{"name": "Theirs"})
	mine := createIntegration(t, w.a, map[string]any{"name": "Mine"})
	for _, kind := range secretKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			key := "PRIVATE_" + strings.ToUpper(kind)
			sec := addSecret(t, w.b, theirs, kind, key, "private-value-1")
			before := w.b.do(t, "GET", integrationPath(theirs, "/"+kind), nil).expect(t, http.StatusOK).body
			base := integrationPath(theirs, "/"+kind)
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{"GET", base, nil},
				{"POST", base, map[string]any{"key": "INJECTED", "value": "v"}},
				{"PUT", base + "/" + sec.ID.String(), map[string]any{"key": key, "value": "overwritten"}},
				{"DELETE", base + "/" + sec.ID.String(), nil},
				// B's secret id under A's own integration is not B's secret.
				{"PUT", integrationPath(mine, "/"+kind+"/", sec.ID.String()), map[string]any{"key": key, "value": "overwritten"}},
				{"DELETE", integrationPath(mine, "/"+kind+"/", sec.ID.String()), nil},
			} {
				r := w.a.do(t, req.method, req.path, req.body)
				if e := expectError(t, r, http.StatusNotFound); e.Code != "not_found" {
					t.Errorf("%s: code %q", r.what, e.Code)
				}
				if bytes.Contains(r.body, []byte(key)) {
					t.Errorf("%s leaks the key: %s", r.what, r.body)
				}
			}
			if after := w.b.do(t, "GET", integrationPath(theirs, "/"+kind), nil).expect(t, http.StatusOK).body; !bytes.Equal(after, before) {
				t.Errorf("B's %s changed: %s, was %s", kind, after, before)
			}
			v, err := w.env.Store.SecretValue(context.Background(), theirs.ID, key)
			if err != nil || v != "private-value-1" {
				t.Errorf("B's value = %q, %v", v, err)
			}
		})
	}
}
