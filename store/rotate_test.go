package store_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// randomSealer seals with a fresh random key.
func randomSealer(t *testing.T) *store.Sealer {
	t.Helper()
	return newSealer(t, (rand.Text() + rand.Text())[:32])
}

// rotationFixture is two owners' integrations with secrets and credentials,
// all sealed with storetest.SecretKey.
type rotationFixture struct {
	s            *store.Store
	integrations []store.Integration
	values       map[uuid.UUID]map[string]string // integration → key → value
	sealed       int
}

func newRotationFixture(t *testing.T) *rotationFixture {
	t.Helper()
	fx := &rotationFixture{s: newStore(t), values: map[uuid.UUID]map[string]string{}}
	for i, owner := range []string{"owner-a", "owner-a", "owner-b"} {
		in := createIntegration(t, fx.s, owner, fmt.Sprintf("Rotate %d", i))
		fx.integrations = append(fx.integrations, in)
		fx.values[in.ID] = map[string]string{}
		fx.sealed++
		for j, kind := range []string{store.KindSecret, store.KindSecret, store.KindCredential} {
			key := fmt.Sprintf("KEY_%d_%s", j, kind)
			value := fmt.Sprintf("value-%d-%d-%s", i, j, uuid.NewString())
			if _, err := fx.s.PutSecret(t.Context(), "test", in.ID, kind, key, value, false); err != nil {
				t.Fatal(err)
			}
			fx.values[in.ID][key] = value
			fx.sealed++
		}
	}
	return fx
}

// sealedState is every sealed column, to tell whether anything changed.
func (fx *rotationFixture) sealedState(t *testing.T) string {
	t.Helper()
	var state string
	err := fx.s.Pool().QueryRow(t.Context(), `SELECT
		(SELECT string_agg(encode(webhook_token_enc, 'hex') || updated_at::text, ',' ORDER BY id) FROM integrations) ||
		(SELECT string_agg(encode(value_enc, 'hex') || updated_at::text, ',' ORDER BY id) FROM secrets)`).Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// check reads every value through a store sealed with key and reports
// whether each decrypts to what was stored.
func (fx *rotationFixture) check(t *testing.T, key *store.Sealer, wantReadable bool) {
	t.Helper()
	st := store.New(fx.s.Pool(), key)
	for _, in := range fx.integrations {
		got, err := st.IntegrationBySlug(t.Context(), in.Slug)
		readable := err == nil && store.TokenMatches(got.WebhookToken, in.WebhookToken)
		if readable != wantReadable {
			t.Errorf("webhook token of %s readable = %v (%v), want %v", in.Slug, readable, err, wantReadable)
		}
		if !wantReadable && !errors.Is(err, store.ErrDecrypt) {
			t.Errorf("webhook token of %s under the wrong key: %v, want ErrDecrypt", in.Slug, err)
		}
		for key, value := range fx.values[in.ID] {
			got, err := st.SecretValue(t.Context(), in.ID, key)
			if readable := err == nil && got == value; readable != wantReadable {
				t.Errorf("%s of %s readable = %v (%v), want %v", key, in.Slug, readable, err, wantReadable)
			}
		}
	}
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	fx := newRotationFixture(t)
	oldKey, err := store.NewSealer(storetest.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	newKey := randomSealer(t)
	before := fx.sealedState(t)

	n, err := fx.s.RotateKey(t.Context(), oldKey, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if n != fx.sealed {
		t.Errorf("RotateKey re-encrypted %d values, want %d", n, fx.sealed)
	}
	if after := fx.sealedState(t); after == before {
		t.Fatal("nothing was re-encrypted")
	}
	fx.check(t, newKey, true)
	fx.check(t, oldKey, false)

	// Rotating again from the key that is no longer in use changes nothing,
	// and says the values are under the new key already.
	before = fx.sealedState(t)
	n, err = fx.s.RotateKey(t.Context(), oldKey, newKey)
	var kre *store.KeyRotationError
	if !errors.As(err, &kre) || !errors.Is(err, store.ErrDecrypt) || n != 0 {
		t.Fatalf("second rotation = %d, %v; want a KeyRotationError", n, err)
	}
	if kre.Failed != fx.sealed || kre.Total != fx.sealed || kre.AlreadyNew != fx.sealed {
		t.Errorf("second rotation: %+v", kre)
	}
	if after := fx.sealedState(t); after != before {
		t.Error("a failed rotation changed sealed values")
	}
}

func TestRotateKeyIsAllOrNothing(t *testing.T) {
	t.Parallel()
	fx := newRotationFixture(t)
	oldKey, err := store.NewSealer(storetest.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	// One secret and one webhook token were written under some other key.
	stray := randomSealer(t)
	strayIn, err := store.New(fx.s.Pool(), stray).CreateIntegration(t.Context(), "owner-c", "test", store.IntegrationFields{Name: ptr("Stray")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.New(fx.s.Pool(), stray).PutSecret(t.Context(), "test", fx.integrations[1].ID, store.KindSecret, "STRAY",
		"stray-value-0001", false); err != nil {
		t.Fatal(err)
	}
	before := fx.sealedState(t)

	n, err := fx.s.RotateKey(t.Context(), oldKey, randomSealer(t))
	var kre *store.KeyRotationError
	if !errors.As(err, &kre) || n != 0 {
		t.Fatalf("RotateKey = %d, %v; want a KeyRotationError", n, err)
	}
	if kre.Failed != 2 || kre.Total != fx.sealed+2 || kre.AlreadyNew != 0 {
		t.Errorf("KeyRotationError = %+v, want 2 of %d failed", kre, fx.sealed+2)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("2 of %d", fx.sealed+2), "webhook token of integration " + strayIn.ID.String(),
		"secret STRAY of integration " + fx.integrations[1].ID.String(), "nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "stray-value") || strings.Contains(msg, strayIn.WebhookToken) {
		t.Errorf("error %q shows a value", msg)
	}
	if after := fx.sealedState(t); after != before {
		t.Fatal("a failed rotation changed sealed values")
	}
	fx.check(t, oldKey, true)
}
