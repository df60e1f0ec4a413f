package store_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

const doNotCallAnalysis = `{"source":"elevenlabs","extracted":{"do_not_call":true}}`

func doNotCallPostcall(integ, call uuid.UUID, analysis string, at time.Time) store.CallEvent {
	post := ev(integ, call, callstate.Postcall, at)
	post.Postcall = &store.PostcallData{Analysis: json.RawMessage(analysis),
		Transcript: json.RawMessage(`[{"role":"user","message":"не дзвоніть мені більше"}]`)}
	return post
}

// llmCallEnded is a claimed call of a new integration that has an LLM
// configured, ended by a call_end of secs seconds.
func llmCallEnded(t *testing.T, s *store.Store, secs float64) (store.Integration, uuid.UUID) {
	t.Helper()
	in := activeIntegration(t, s, nil)
	putConfig(t, s, in.ID, "analysis", map[string]any{"base_url": "http://127.0.0.1:1/v1", "model": "m", "prompt": "p"})
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	apply(t, s, callEnd(in.ID, id, secs, t0))
	return in, id
}

// analysisJob claims the pending LLM analyses at and returns the call's.
func analysisJob(t *testing.T, s *store.Store, id uuid.UUID, at time.Time) store.AnalysisJob {
	t.Helper()
	jobs, err := s.ClaimAnalyses(t.Context(), store.AnalysisClaim{Now: at, Lease: time.Minute, Limit: 10, PerIntegration: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.CallID == id {
			return j
		}
	}
	t.Fatalf("no LLM analysis queued for call %s (claimed %d)", id, len(jobs))
	return store.AnalysisJob{}
}

func suppressedFor(t *testing.T, s *store.Store, integ uuid.UUID, phone string) bool {
	t.Helper()
	return countRows(t, s, `SELECT count(*) FROM suppressions WHERE integration_id = $1 AND phone_number = $2
		AND reason = 'requested_in_call'`, integ, phone) == 1
}

// TestDoNotCallInAnyPostcall: a post-call asking not to be called
// suppresses the number whatever state its call is in, and a call still
// waiting for another attempt is cancelled (outcome suppressed), not
// dialled again.
func TestDoNotCallInAnyPostcall(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cases := []struct {
		name string
		// settle brings the claimed call to the state the post-call finds.
		settle     func(t *testing.T, integ, id uuid.UUID)
		wantStatus callstate.Status
		wantOut    string
	}{
		{"short call waiting for its retry", func(t *testing.T, integ, id uuid.UUID) {
			apply(t, s, callEnd(integ, id, 3, t0))
		}, callstate.Cancelled, callstate.OutcomeSuppressed},
		{"retry already due and queued", func(t *testing.T, integ, id uuid.UUID) {
			apply(t, s, callEnd(integ, id, 3, t0), ev(integ, id, callstate.RetryDue, t0.Add(time.Hour)))
		}, callstate.Cancelled, callstate.OutcomeSuppressed},
		{"failed call", func(t *testing.T, integ, id uuid.UUID) {
			e := ev(integ, id, callstate.InitiationFailed, t0)
			e.Event.Reason = callstate.OutcomeDialError
			for range 3 {
				apply(t, s, e)
				if getCall(t, s, id).Status == callstate.Failed {
					return
				}
				apply(t, s, ev(integ, id, callstate.RetryDue, t0))
				claim(t, s, integ, t0)
			}
		}, callstate.Failed, callstate.OutcomeDialError},
		{"completed after postcall_timeout", func(t *testing.T, integ, id uuid.UUID) {
			apply(t, s, callEnd(integ, id, 60, t0), ev(integ, id, callstate.PostcallTimeout, t0.Add(time.Hour)))
		}, callstate.Completed, callstate.OutcomeCompleted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := activeIntegration(t, s, nil)
			id := queueCalls(t, s, in.ID, 1, t0)[0]
			claim(t, s, in.ID, t0)
			tc.settle(t, in.ID, id)
			apply(t, s, doNotCallPostcall(in.ID, id, doNotCallAnalysis, t0.Add(2*time.Hour)))
			c := getCall(t, s, id)
			if !suppressedFor(t, s, in.ID, c.PhoneNumber) {
				t.Errorf("number %s not suppressed", c.PhoneNumber)
			}
			if c.Status != tc.wantStatus || deref(c.Outcome) != tc.wantOut || c.NextRetryAt != nil {
				t.Errorf("call %s/%s next retry %v, want %s/%s and no retry", c.Status, deref(c.Outcome), c.NextRetryAt,
					tc.wantStatus, tc.wantOut)
			}
			if got := claim(t, s, in.ID, t0.Add(3*time.Hour)); len(got) != 0 {
				t.Errorf("claimed %v after do_not_call", got)
			}
		})
	}
}

// TestDoNotCallFromTheLLMAfterShortCall: with an LLM configured, the
// post-call of a short call waiting for its retry is analysed too; the
// LLM's do_not_call suppresses the number and cancels the retry.
func TestDoNotCallFromTheLLMAfterShortCall(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in, id := llmCallEnded(t, s, 3)
	apply(t, s, doNotCallPostcall(in.ID, id, `{"source":"elevenlabs"}`, t0.Add(time.Minute)))
	if c := getCall(t, s, id); c.Status != callstate.RetryScheduled || len(c.Transcript) == 0 {
		t.Fatalf("after the post-call: %s, transcript %q; want retry_scheduled with the transcript kept", c.Status, c.Transcript)
	}
	job := analysisJob(t, s, id, t0.Add(2*time.Minute))
	if err := s.FinishAnalysis(t.Context(), t0.Add(3*time.Minute), job, store.Amendment{
		Analysis: json.RawMessage(`{"source":"llm","extracted":{"do_not_call":true}}`)}); err != nil {
		t.Fatal(err)
	}
	c := getCall(t, s, id)
	if c.Status != callstate.Cancelled || deref(c.Outcome) != callstate.OutcomeSuppressed || !suppressedFor(t, s, in.ID, c.PhoneNumber) {
		t.Errorf("after the LLM's do_not_call: %s/%s, suppressed %v", c.Status, deref(c.Outcome), suppressedFor(t, s, in.ID, c.PhoneNumber))
	}
}

// TestLaterAttemptsAnalysisReplacesAWaitingOne: the analysis of a short
// first attempt still waits (or is leased) when the retry's post-call
// comes; the retry's is the one analysed, and the worker holding the first
// loses its lease instead of amending the call with the wrong attempt.
func TestLaterAttemptsAnalysisReplacesAWaitingOne(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in, id := llmCallEnded(t, s, 3)
	apply(t, s, doNotCallPostcall(in.ID, id, `{"source":"elevenlabs"}`, t0.Add(time.Minute)))
	first := analysisJob(t, s, id, t0.Add(2*time.Minute)) // leased, not finished

	retryAt := t0.Add(24 * time.Hour)
	if _, err := dbClockAt(s, retryAt).RequeueDue(t.Context(), uuid.Nil, 10); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, in.ID, retryAt); len(got) != 1 || got[0] != id {
		t.Fatalf("retry claimed %v, want %s", got, id)
	}
	end := callEnd(in.ID, id, 90, retryAt.Add(2*time.Minute))
	end.Attempt = 2
	apply(t, s, end)
	post := doNotCallPostcall(in.ID, id, `{"source":"elevenlabs"}`, retryAt.Add(3*time.Minute))
	post.Attempt = 2
	apply(t, s, post)

	if err := s.FinishAnalysis(t.Context(), retryAt.Add(4*time.Minute), first, store.Amendment{
		Analysis: json.RawMessage(`{"source":"llm"}`)}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("finishing the first attempt's analysis: %v, want ErrLeaseLost", err)
	}
	second := analysisJob(t, s, id, retryAt.Add(5*time.Minute))
	if second.Attempt != 2 {
		t.Errorf("the analysis waiting is attempt %d's, want the retry's (2)", second.Attempt)
	}
}
