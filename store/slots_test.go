package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestCancelledLiveCallsHoldTheirSlotEverywhere: a call cancelled while
// live keeps its slot until its call_end, so everything that counts slots
// counts it: the integration's stats and gauge, the campaign's progress and
// limit, and the watchdog's list of integrations to look at (otherwise a
// call_end that never comes would leak the slot for good).
func TestCancelledLiveCallsHoldTheirSlotEverywhere(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 3})
	webhookCall := queueCalls(t, s, in.ID, 1, t0)[0]
	if got := claim(t, s, in.ID, t0); !slices.Equal(got, []uuid.UUID{webhookCall}) {
		t.Fatalf("claimed %v", got)
	}
	campaign := createCampaign(t, s, in, store.CampaignSpec{ConcurrencyLimit: ptr(1)}, t0)
	addRecipients(t, s, campaign, t0, numbered(0, 2)...)
	got := claimed(t, s, in.ID, t0)
	if len(got) != 1 || got[0].Call.CampaignID == nil {
		t.Fatalf("claimed %+v, want one campaign call (its limit is 1)", got)
	}
	campaignCall := got[0].Call.ID

	for _, id := range []uuid.UUID{webhookCall, campaignCall} {
		if c, _, err := s.CancelCall(ctx, "owner-a", id, "", t0.Add(time.Second)); err != nil || c.SlotTakenAt == nil {
			t.Fatalf("cancel %s: %+v, %v; want cancelled holding its slot", id, c, err)
		}
	}

	st, err := s.IntegrationStats(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != 2 || st.Cancelled != 2 || st.Limit != 3 {
		t.Errorf("stats = %+v, want both cancelled calls active", st)
	}
	gauges, err := s.Gauges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The integration's gauges are split by running campaign: together
	// they count both calls, and the campaign's row its own.
	active, campaignActive := 0, 0
	for _, g := range gauges {
		if g.IntegrationID != in.ID {
			continue
		}
		active += g.Active
		if g.CampaignID == campaign.ID {
			campaignActive = g.Active
		}
	}
	if active != 2 || campaignActive != 1 {
		t.Errorf("gauges = %+v, want 2 active of which 1 in the campaign", gauges)
	}
	if c, err := s.GetCampaign(ctx, "owner-a", campaign.ID); err != nil || c.Progress.Active != 1 {
		t.Errorf("campaign progress = %+v, %v; want 1 active", c.Progress, err)
	}
	// The campaign's one slot is still taken: its second recipient waits
	// although the integration has a free slot.
	if got := claimed(t, s, in.ID, t0.Add(2*time.Second)); len(got) != 0 {
		t.Errorf("claimed %d call(s) above the campaign's limit", len(got))
	}
	holding, err := s.IntegrationsHoldingSlots(ctx)
	if err != nil || !slices.Contains(holding, in.ID) {
		t.Errorf("IntegrationsHoldingSlots = %v, %v; want the integration for the watchdog", holding, err)
	}

	for _, id := range []uuid.UUID{webhookCall, campaignCall} {
		end := webhookEvent(in.ID, callstate.AttemptCallID(id, 1), callstate.CallEnd, "call_end", "end-"+id.String(), t0.Add(time.Minute))
		end.Event.DurationSecs = 30
		if out := apply(t, s, end); !out[0].FreesSlot() {
			t.Fatalf("call_end of cancelled %s = %+v, want the slot freed", id, out[0])
		}
	}
	if st, err := s.IntegrationStats(ctx, in.ID); err != nil || st.Active != 0 || st.Cancelled != 2 {
		t.Errorf("stats after the call_ends = %+v, %v", st, err)
	}
	if holding, err := s.IntegrationsHoldingSlots(ctx); err != nil || slices.Contains(holding, in.ID) {
		t.Errorf("IntegrationsHoldingSlots after the call_ends = %v, %v", holding, err)
	}
}
