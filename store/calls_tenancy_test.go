package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestEventsResolvedWithinPostingIntegration: integration B posts a
// call_end naming A's call as we sent it to the dialler (<uuid>.<n>) to
// its own endpoint. Nothing of A's call changes, and A's own call_end,
// arriving after, is not taken for a duplicate: it ends the call and
// frees its slot.
func TestEventsResolvedWithinPostingIntegration(t *testing.T) {
	t.Parallel()
	s, a, b, id, ref := twoTenants(t)

	forged := apply(t, s, webhookEvent(b.ID, ref, callstate.CallEnd, "call_end", "forged", t0.Add(time.Minute)))
	if forged[0].Found || forged[0].Decision.Changed {
		t.Fatalf("B's event about A's call: %+v", forged[0])
	}
	if c := getCall(t, s, id); c.Status != callstate.Initiated {
		t.Fatalf("A's call is %s after B's event, want initiated", c.Status)
	}

	own := apply(t, s, webhookEvent(a.ID, ref, callstate.CallEnd, "call_end", "real", t0.Add(2*time.Minute)))
	if own[0].Duplicate || !own[0].Decision.Changed {
		t.Fatalf("A's own call_end after B's: duplicate %v, changed %v (%s)", own[0].Duplicate, own[0].Decision.Changed, own[0].Decision.Why)
	}
	if c := getCall(t, s, id); c.SlotTakenAt != nil {
		t.Errorf("A's call (%s) still holds its slot", c.Status)
	}
}

// TestForeignEventInTheSameBatch: B's forged event and A's real one are
// applied in one batch, B's first; A's is applied, B's is not.
func TestForeignEventInTheSameBatch(t *testing.T) {
	t.Parallel()
	s, a, b, id, ref := twoTenants(t)
	out := apply(t, s, webhookEvent(b.ID, ref, callstate.CallEnd, "call_end", "forged", t0.Add(time.Minute)),
		webhookEvent(a.ID, ref, callstate.CallEnd, "call_end", "real", t0.Add(time.Minute)))
	if out[0].Found || out[0].Decision.Changed {
		t.Errorf("B's event about A's call: %+v", out[0])
	}
	if out[1].Duplicate || !out[1].Decision.Changed || out[1].CallID != id {
		t.Errorf("A's call_end beside B's: duplicate %v, changed %v, call %s", out[1].Duplicate, out[1].Decision.Changed, out[1].CallID)
	}
}

// twoTenants is integrations A and B, and A's call dialled and accepted,
// with the id it was dialled under (<uuid>.1).
func twoTenants(t *testing.T) (s *store.Store, a, b store.Integration, id uuid.UUID, ref string) {
	t.Helper()
	s = newStore(t)
	a, b = activeIntegration(t, s, nil), activeIntegration(t, s, nil)
	id = queueCalls(t, s, a.ID, 1, t0)[0]
	claim(t, s, a.ID, t0)
	accept(t, s, a.ID, id, "", "", t0)
	return s, a, b, id, callstate.AttemptCallID(id, 1)
}
