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
	in, id := llmCallEnded(t, s, 60)
	post := ev(in.ID, id, callstate.Postcall, t0.Add(time.Minute))
	post.Postcall = &store.PostcallData{Analysis: json.RawMessage(`{"source":"elevenlabs","outcome":"failure"}`),
		Transcript: json.RawMessage(`[{"role":"user","message":"ні"}]`)}
	apply(t, s, post)
	if c := getCall(t, s, id); deref(c.Outcome) != callstate.OutcomeCompleted {
		t.Fatalf("outcome %q after the post-call, want completed", deref(c.Outcome))
	}
	job := analysisJob(t, s, id, t0.Add(2*time.Minute))
	if err := s.FinishAnalysis(t.Context(), t0.Add(3*time.Minute), job, store.Amendment{
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
