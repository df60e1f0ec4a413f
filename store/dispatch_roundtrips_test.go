package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// TestDispatchRoundTrips counts the statements, each a round trip to
// Postgres, that stand between a call's end and the originate of the call
// taking its slot: the call_end's transaction, the claim of the freed slot
// (which reads the dialler's secret too) and the originate's confirmation. The
// integration has ten running campaigns, every slot busy, as in the
// campaign_dispatch benchmark; plain, with a pool of caller numbers, and
// with every pacing rule at once. The counts are held to what they are, so
// that a statement added to this path is a decision.
func TestDispatchRoundTrips(t *testing.T) {
	t.Parallel()
	pool := make([]map[string]any, 10)
	for i := range pool {
		pool[i] = map[string]any{"number": fmt.Sprintf("+3804%d%07d", 1+i%7, i), "sip_id": fmt.Sprintf("sip-%d", i),
			"concurrency_limit": 2, "per_second": 100, "max_per_hour": 10000, "max_per_day": 100000}
	}
	pooled := map[string]any{"provider": "va", "base_url": "http://127.0.0.1:1", "sip_id": "sip-1", "assistant_id": "a-1",
		"caller_ids": pool, "caller_id_strategy": "local"}
	for _, tc := range []struct {
		name     string
		handling map[string]any
		voice    map[string]any
		// The most statements each step may take.
		end, claim, secret, confirm int
	}{
		{"plain", map[string]any{"concurrency_limit": 4}, nil, 5, 5, 0, 1},
		{"caller_ids", map[string]any{"concurrency_limit": 4}, pooled, 5, 6, 0, 4},
		{"paced", map[string]any{"concurrency_limit": 4, "dial_rate": map[string]any{"per_second": 500, "burst": 100},
			"contact_caps": []map[string]any{{"max_dials": 7, "days": 7}, {"max_dials": 3, "days": 1}}}, pooled, 5, 7, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, counter := countingStore(t)
			in := activeIntegration(t, s, tc.handling)
			if tc.voice != nil {
				putConfig(t, s, in.ID, config.KeyVoice, tc.voice)
			}
			now := time.Now()
			for c := range 10 {
				camp, err := s.CreateCampaign(t.Context(), "owner-a", in.ID, store.CampaignSpec{Name: fmt.Sprintf("c%d", c), Priority: 5}, now)
				if err != nil {
					t.Fatal(err)
				}
				recipients := make([]store.Recipient, 20)
				for i := range recipients {
					recipients[i] = store.Recipient{PhoneNumber: fmt.Sprintf("+3806%d%07d", c, i)}
				}
				if _, _, err := s.AddRecipients(t.Context(), "owner-a", camp.ID, recipients, now); err != nil {
					t.Fatal(err)
				}
			}
			// Every slot dialled and its call answered.
			first, err := s.Claim(t.Context(), in.ID, now, nil)
			if err != nil || len(first.Calls) != 4 {
				t.Fatalf("first claim: %d calls, %v", len(first.Calls), err)
			}
			for _, c := range first.Calls {
				if v, _, _, err := s.ConfirmDial(t.Context(), c, now, 2*time.Minute); err != nil || v != store.DialGo {
					t.Fatalf("confirm: %s, %v", v, err)
				}
				apply(t, s, store.CallEvent{IntegrationID: in.ID, CallID: c.Call.ID, Attempt: c.Call.Attempt, Claim: c.Claim,
					Event: callstate.Event{Kind: callstate.DialAccepted}, At: now},
					store.CallEvent{IntegrationID: in.ID, ExternalCallID: c.Call.ID.String(), Event: callstate.Event{Kind: callstate.CallStart},
						Key: "start:" + c.Call.ID.String(), At: now})
			}
			for i, ended := range first.Calls {
				at := now.Add(time.Duration(i+1) * time.Second)
				counter.n.Store(0)
				apply(t, s, store.CallEvent{IntegrationID: in.ID, ExternalCallID: ended.Call.ID.String(),
					Event: callstate.Event{Kind: callstate.CallEnd, DurationSecs: 30}, Key: "end:" + ended.Call.ID.String(), At: at})
				end := counter.n.Swap(0)
				next, err := s.Claim(t.Context(), in.ID, at, nil)
				if err != nil || len(next.Calls) != 1 {
					t.Fatalf("claim of the freed slot: %d calls, %v", len(next.Calls), err)
				}
				claim := counter.n.Swap(0)
				if secret, err := s.DiallerSecret(next.Calls[0]); err != nil || secret != "va-token-123456" {
					t.Fatalf("the dialler's secret = %q, %v", secret, err)
				}
				secret := counter.n.Swap(0)
				if v, _, _, err := s.ConfirmDial(t.Context(), next.Calls[0], at, 2*time.Minute); err != nil || v != store.DialGo {
					t.Fatalf("confirm: %s, %v", v, err)
				}
				confirm := counter.n.Swap(0)
				t.Logf("slot %d: call_end %d, claim %d, secret %d, confirm %d: %d statements", i, end, claim, secret, confirm,
					end+claim+secret+confirm)
				for _, step := range []struct {
					name    string
					got     int64
					allowed int
				}{{"call_end", end, tc.end}, {"claim", claim, tc.claim}, {"secret", secret, tc.secret}, {"confirm", confirm, tc.confirm}} {
					if step.got > int64(step.allowed) {
						t.Errorf("%s took %d statements, want at most %d", step.name, step.got, step.allowed)
					}
				}
			}
		})
	}
}
