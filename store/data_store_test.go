package store_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// Personal details a finished call's content carries in these tests.
const (
	secretName       = "Oksana Secretname"
	secretTranscript = "my card number is 4111"
	secretSummary    = "Wants the premium plan"
)

// finishCall takes a queued call of integ through a long answered attempt
// to its post-call with a transcript, a summary and an analysis that asks
// for do_not_call.
func finishCall(t *testing.T, s *store.Store, integ uuid.UUID, at time.Time) uuid.UUID {
	t.Helper()
	c := newCall(integ, at)
	c.DynamicVariables = json.RawMessage(`{"client_name": "` + secretName + `"}`)
	insert(t, s, at, c)
	if got := claim(t, s, integ, at); len(got) != 1 {
		t.Fatalf("claimed %v", got)
	}
	apply(t, s, ev(integ, c.ID, callstate.CallStart, at.Add(time.Second)), callEnd(integ, c.ID, 90, at.Add(time.Minute)))
	post := ev(integ, c.ID, callstate.Postcall, at.Add(2*time.Minute))
	post.Postcall = &store.PostcallData{
		Transcript: json.RawMessage(`[{"role": "user", "message": "` + secretTranscript + `"}]`),
		Analysis:   json.RawMessage(`{"source": "elevenlabs", "extracted": {"do_not_call": true, "plan": "premium"}}`),
		Metadata:   json.RawMessage(`{"call_duration_secs": 90}`),
		Summary:    secretSummary,
	}
	if out := apply(t, s, post); !out[0].Decision.Changed {
		t.Fatalf("post-call not applied: %+v", out[0])
	}
	return c.ID
}

// TestStorageModes: each data.store mode keeps on the call only what the
// contract lets it keep, while the CRM update (built before the content is
// dropped) and do_not_call still get all of it; the call names its mode; a
// minimal call's CRM update gives up the content once delivered.
func TestStorageModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{config.StoreEverything, config.StoreNoContent, config.StoreMinimal} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			in := activeIntegration(t, s, nil)
			putConfig(t, s, in.ID, config.KeyCRM, map[string]any{"kind": "webhook", "update_url": "http://127.0.0.1:1/update"})
			putConfig(t, s, in.ID, config.KeyData, map[string]any{"store": mode})
			id := finishCall(t, s, in.ID, t0)

			c := getCall(t, s, id)
			if c.Status != callstate.Completed || c.DataStore != mode {
				t.Fatalf("call %s stored under %q, want completed under %q", c.Status, c.DataStore, mode)
			}
			has := func(raw []byte, text string) bool { return strings.Contains(string(raw), text) }
			if got, want := has(c.Transcript, secretTranscript), mode == config.StoreEverything; got != want {
				t.Errorf("transcript kept = %v, want %v (%s)", got, want, c.Transcript)
			}
			if got, want := c.Summary != nil && *c.Summary == secretSummary, mode != config.StoreMinimal; got != want {
				t.Errorf("summary kept = %v, want %v", got, want)
			}
			if got, want := has(c.Analysis, "premium"), mode != config.StoreMinimal; got != want {
				t.Errorf("analysis kept = %v, want %v (%s)", got, want, c.Analysis)
			}
			if got, want := has(c.DynamicVariables, secretName), mode != config.StoreMinimal; got != want {
				t.Errorf("dynamic variables kept = %v, want %v (%s)", got, want, c.DynamicVariables)
			}
			if c.Outcome == nil || c.DurationSecs == nil || *c.DurationSecs != 90 {
				t.Errorf("outcome %v, duration %v: a minimal call still keeps them", c.Outcome, c.DurationSecs)
			}

			// The content served the CRM update and the suppression first.
			var payload json.RawMessage
			var outboxID uuid.UUID
			if err := s.Pool().QueryRow(t.Context(), `SELECT id, payload FROM crm_outbox WHERE call_id = $1`, id).
				Scan(&outboxID, &payload); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{secretSummary, secretName, "premium"} {
				if !has(payload, want) {
					t.Errorf("CRM update %s lacks %q", payload, want)
				}
			}
			list, err := s.ListSuppressions(t.Context(), "owner-a", in.ID, 10, 0)
			if err != nil || len(list) != 1 || list[0].PhoneNumber != c.PhoneNumber {
				t.Fatalf("suppressions %+v, %v: do_not_call must suppress the number in every mode", list, err)
			}

			items, err := s.ClaimOutbox(t.Context(), store.OutboxClaim{Now: t0.Add(time.Hour), Lease: time.Minute, Limit: 10, PerIntegration: 10})
			if err != nil || len(items) != 1 {
				t.Fatalf("claim outbox: %v, %v", items, err)
			}
			if err := s.FinishOutbox(t.Context(), t0.Add(time.Hour), []store.OutboxResult{
				{ID: items[0].ID, LeaseToken: items[0].LeaseToken, Delivered: true, Attempted: true}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Pool().QueryRow(t.Context(), `SELECT payload FROM crm_outbox WHERE id = $1`, outboxID).Scan(&payload); err != nil {
				t.Fatal(err)
			}
			if got, want := has(payload, secretName) || has(payload, secretSummary), mode != config.StoreMinimal; got != want {
				t.Errorf("delivered update keeps content = %v, want %v: %s", got, want, payload)
			}
		})
	}
}

// TestStorageModeHoldsContentForTheLLM: where the call keeps no transcript,
// its LLM analysis still gets it (held with the pending analysis, gone once
// settled), and a minimal call's amended analysis is not stored.
func TestStorageModeHoldsContentForTheLLM(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	putConfig(t, s, in.ID, config.KeyCRM, map[string]any{"kind": "webhook", "update_url": "http://127.0.0.1:1/update"})
	putConfig(t, s, in.ID, "analysis", map[string]any{"base_url": "http://127.0.0.1:1/v1", "model": "m"})
	putConfig(t, s, in.ID, config.KeyData, map[string]any{"store": config.StoreMinimal})
	id := finishCall(t, s, in.ID, t0)

	jobs, err := s.ClaimAnalyses(t.Context(), store.AnalysisClaim{Now: t0.Add(3 * time.Minute), Lease: time.Minute, Limit: 5, PerIntegration: 5})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim analyses: %v, %v", jobs, err)
	}
	if !strings.Contains(string(jobs[0].Transcript), secretTranscript) || !strings.Contains(string(jobs[0].Analysis), "premium") {
		t.Fatalf("the LLM gets transcript %s and agent analysis %s", jobs[0].Transcript, jobs[0].Analysis)
	}
	if err := s.FinishAnalysis(t.Context(), t0.Add(4*time.Minute), jobs[0], store.Amendment{
		Analysis: json.RawMessage(`{"source": "llm", "extracted": {"plan": "basic"}}`), Summary: "LLM summary"}); err != nil {
		t.Fatal(err)
	}
	c := getCall(t, s, id)
	if c.Summary != nil || len(c.Analysis) > 0 || len(c.Transcript) > 0 {
		t.Fatalf("minimal call keeps summary %v, analysis %s, transcript %s", c.Summary, c.Analysis, c.Transcript)
	}
	var held int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pending_analyses WHERE call_id = $1`, id).Scan(&held); err != nil || held != 0 {
		t.Fatalf("pending analyses left: %d, %v", held, err)
	}
	var payload string
	if err := s.Pool().QueryRow(t.Context(), `SELECT payload::text FROM crm_outbox WHERE call_id = $1`, id).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(payload, "LLM summary") || !strings.Contains(payload, "basic") || !strings.Contains(payload, secretName) {
		t.Fatalf("held CRM update %s: want the LLM's analysis and the call's variables", payload)
	}
}
