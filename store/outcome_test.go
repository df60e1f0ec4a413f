package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// TestOutcomeStaysEnumerated: an answered, processed call's outcome is
// completed whatever the analysis concluded; the verdict (ElevenLabs'
// call_successful, the LLM's) is the analysis' outcome.
func TestOutcomeStaysEnumerated(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	putConfig(t, s, in.ID, "analysis", map[string]any{"base_url": "http://127.0.0.1:1/v1", "model": "m", "prompt": "p"})
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	apply(t, s, callEnd(in.ID, id, 60, t0))
	post := ev(in.ID, id, callstate.Postcall, t0.Add(time.Minute))
	post.Postcall = &store.PostcallData{Analysis: json.RawMessage(`{"source":"elevenlabs","outcome":"failure"}`),
		Transcript: json.RawMessage(`[{"role":"user","message":"ні"}]`)}
	apply(t, s, post)
	if c := getCall(t, s, id); deref(c.Outcome) != callstate.OutcomeCompleted {
		t.Fatalf("outcome %q after the post-call, want completed", deref(c.Outcome))
	}
	jobs, err := s.ClaimAnalyses(t.Context(), store.AnalysisClaim{Now: t0.Add(2 * time.Minute), Lease: time.Minute, Limit: 10, PerIntegration: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("analyses: %d %v", len(jobs), err)
	}
	if err := s.FinishAnalysis(t.Context(), t0.Add(3*time.Minute), jobs[0], store.Amendment{
		Analysis: json.RawMessage(`{"source":"llm","outcome":"interested, call back in May"}`)}); err != nil {
		t.Fatal(err)
	}
	c := getCall(t, s, id)
	var a struct {
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal(c.Analysis, &a); err != nil {
		t.Fatal(err)
	}
	if deref(c.Outcome) != callstate.OutcomeCompleted || a.Outcome != "interested, call back in May" {
		t.Errorf("after the LLM: outcome %q, analysis.outcome %q; want completed and the LLM's verdict", deref(c.Outcome), a.Outcome)
	}
}
