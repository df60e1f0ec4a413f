package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

func isQuota(err error) bool {
	var q *store.QuotaError
	return errors.As(err, &q)
}

func TestSecretQuota(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Many secrets")
	other := createIntegration(t, s, "owner-a", "Other")
	for i := range store.MaxSecretsPerIntegration {
		kind := []string{store.KindSecret, store.KindCredential}[i%2]
		if _, err := s.PutSecret(ctx, "t", in.ID, kind, fmt.Sprintf("KEY_%d", i), "value-0001", false); err != nil {
			t.Fatalf("secret %d: %v", i, err)
		}
	}
	if _, err := s.PutSecret(ctx, "t", in.ID, store.KindSecret, "ONE_MORE", "value-0002", false); !isQuota(err) {
		t.Fatalf("secret beyond the quota: %v, want a QuotaError", err)
	}
	// Replacing a value adds nothing; another integration has its own quota.
	if _, err := s.PutSecret(ctx, "t", in.ID, store.KindSecret, "KEY_0", "value-0003", true); err != nil {
		t.Fatalf("replacing a value at the quota: %v", err)
	}
	if _, err := s.PutSecret(ctx, "t", other.ID, store.KindSecret, "ONE_MORE", "value-0004", false); err != nil {
		t.Fatalf("another integration's secret: %v", err)
	}
}

func TestHandlerQuota(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := createIntegration(t, s, "owner-a", "Many handlers")
	var specs []store.HandlerSpec
	for i := range store.MaxHandlersPerIntegration - 1 {
		specs = append(specs, store.HandlerSpec{Name: fmt.Sprintf("h%d", i), DefaultArgs: json.RawMessage(`{}`)})
	}
	if _, err := s.SyncHandlers(ctx, "owner-a", "t", in.ID, specs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateHandler(ctx, "owner-a", "t", in.ID, "last", nil); err != nil {
		t.Fatalf("the last handler within the quota: %v", err)
	}
	if _, err := s.CreateHandler(ctx, "owner-a", "t", in.ID, "one-more", nil); !isQuota(err) {
		t.Fatalf("handler beyond the quota: %v, want a QuotaError", err)
	}
	// A sync that updates what exists fits; one that adds is refused whole.
	if _, err := s.SyncHandlers(ctx, "owner-a", "t", in.ID, specs[:3]); err != nil {
		t.Fatalf("sync of existing handlers at the quota: %v", err)
	}
	more := []store.HandlerSpec{specs[0], {Name: "new-one", DefaultArgs: json.RawMessage(`{"x": 1}`)}}
	if _, err := s.SyncHandlers(ctx, "owner-a", "t", in.ID, more); !isQuota(err) {
		t.Fatalf("sync beyond the quota: %v, want a QuotaError", err)
	}
	list, err := s.ListHandlers(ctx, "owner-a", in.ID)
	if err != nil || len(list) != store.MaxHandlersPerIntegration {
		t.Fatalf("%d handlers after the refused sync, %v; want %d", len(list), err, store.MaxHandlersPerIntegration)
	}
}

// TestParkedEventQuota floods one integration with events naming dialler
// ids that never come: it keeps its newest MaxParkedPerIntegration, the
// drop is reported, and another integration's parked event is untouched.
func TestParkedEventQuota(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	other := createIntegration(t, s, "owner-b", "Quiet")
	at := time.Now()
	quiet := webhookEvent(other.ID, "va-quiet", callstate.CallStart, "call_start", "quiet", at)
	if out, err := s.ApplyEvents(t.Context(), []store.CallEvent{quiet}); err != nil || len(out) != 1 || !out[0].Parked {
		t.Fatalf("the quiet integration's event: %+v, %v", out, err)
	}
	const extra = 25
	var flood []store.CallEvent
	for i := range store.MaxParkedPerIntegration + extra {
		flood = append(flood, webhookEvent(in.ID, fmt.Sprintf("va-junk-%d", i), callstate.CallStart, "call_start",
			fmt.Sprintf("junk-%d", i), at.Add(time.Duration(i)*time.Millisecond)))
	}
	dropped := 0
	for start := 0; start < len(flood); start += 200 {
		out, err := s.ApplyEvents(t.Context(), flood[start:min(start+200, len(flood))])
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range out {
			dropped += a.ParkedDropped
		}
	}
	if dropped != extra {
		t.Errorf("%d parked events reported dropped, want %d", dropped, extra)
	}
	var kept, oldest int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*), min(substr(external_call_id, 9)::int) FROM parked_events
		WHERE integration_id = $1`, in.ID).Scan(&kept, &oldest); err != nil {
		t.Fatal(err)
	}
	if kept != store.MaxParkedPerIntegration || oldest != extra {
		t.Errorf("%d parked kept from va-junk-%d, want %d from va-junk-%d (the oldest dropped)", kept, oldest,
			store.MaxParkedPerIntegration, extra)
	}
	var quietKept int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM parked_events WHERE integration_id = $1`, other.ID).
		Scan(&quietKept); err != nil || quietKept != 1 {
		t.Errorf("the quiet integration has %d parked events, %v; want its 1", quietKept, err)
	}
}
