package store_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

// TestEmptyOwnerOwnsNothing: every owner-scoped read and change treats an
// empty owner as an owner with nothing, never as "every owner"; and
// nothing can be created without an owner.
func TestEmptyOwnerOwnsNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Scoped")
	h, err := s.CreateHandler(ctx, "owner-a", "owner-a", in.ID, "hook", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.CreateToken(ctx, "owner-a", store.ActorCLI, "ci")
	if err != nil {
		t.Fatal(err)
	}
	call := queueCalls(t, s, in.ID, 1, time.Now())[0]

	notFound := map[string]func() error{
		"GetIntegration": func() error { _, err := s.GetIntegration(ctx, "", in.ID); return err },
		"UpdateIntegration": func() error {
			_, err := s.UpdateIntegration(ctx, "", "x", in.ID, store.IntegrationFields{Name: ptr("Taken over")}, false)
			return err
		},
		"RotateWebhookToken": func() error { _, err := s.RotateWebhookToken(ctx, "", "x", in.ID); return err },
		"DeleteIntegration":  func() error { return s.DeleteIntegration(ctx, "", "x", in.ID) },
		"ListHandlers":       func() error { _, err := s.ListHandlers(ctx, "", in.ID); return err },
		"GetHandler":         func() error { _, err := s.GetHandler(ctx, "", uuid.Nil, h.ID); return err },
		"CreateHandler": func() error {
			_, err := s.CreateHandler(ctx, "", "x", in.ID, "other", json.RawMessage(`{}`))
			return err
		},
		"UpdateHandler": func() error {
			_, err := s.UpdateHandler(ctx, "", "x", uuid.Nil, h.ID, store.HandlerFields{Name: ptr("renamed")})
			return err
		},
		"DeleteHandler": func() error { return s.DeleteHandler(ctx, "", "x", uuid.Nil, h.ID) },
		"GetCall":       func() error { _, err := s.GetCall(ctx, "", call); return err },
		"CancelCall":    func() error { _, _, err := s.CancelCall(ctx, "", call, "", time.Now()); return err },
		"RevokeToken":   func() error { return s.RevokeToken(ctx, "", "x", tok.ID) },
	}
	for name, op := range notFound {
		if err := op(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with an empty owner = %v, want ErrNotFound", name, err)
		}
	}
	if list, err := s.ListHandlers(ctx, "", uuid.Nil); err != nil || len(list) != 0 {
		t.Errorf("ListHandlers of every integration with an empty owner = %d handlers, %v", len(list), err)
	}
	if list, err := s.ListTokens(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("ListTokens with an empty owner = %d tokens, %v", len(list), err)
	}
	if list, err := s.ListCalls(ctx, "", store.CallFilter{Limit: 100}); err != nil || len(list) != 0 {
		t.Errorf("ListCalls with an empty owner = %d calls, %v", len(list), err)
	}
	if _, err := s.CreateIntegration(ctx, "", "x", store.IntegrationFields{Name: ptr("Ownerless")}); !errors.Is(err, store.ErrNoOwner) {
		t.Errorf("CreateIntegration without an owner = %v, want ErrNoOwner", err)
	}
	if _, _, err := s.CreateToken(ctx, "", "x", "ownerless"); !errors.Is(err, store.ErrNoOwner) {
		t.Errorf("CreateToken without an owner = %v, want ErrNoOwner", err)
	}

	// Nothing changed, and the owner still has it all.
	got, err := s.GetIntegration(ctx, "owner-a", in.ID)
	if err != nil || got.Name != "Scoped" || got.WebhookToken != in.WebhookToken {
		t.Fatalf("owner-a's integration after the attempts = %+v, %v", got, err)
	}
	if list, err := s.ListTokens(ctx, "owner-a"); err != nil || len(list) != 1 || list[0].RevokedAt != nil {
		t.Fatalf("owner-a's tokens after the attempts = %+v, %v", list, err)
	}
	if c, err := s.GetCall(ctx, "owner-a", call); err != nil || c.Status == "cancelled" {
		t.Fatalf("owner-a's call after the attempts = %s, %v", c.Status, err)
	}
}
