package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// deadLetterOriginate stores a call-originate message of integ in the
// dead-letter stream (as an outage dead-lettered them before outages
// stopped counting) and returns its call id.
func deadLetterOriginate(t *testing.T, w *world, integ store.Integration, originSeq int) uuid.UUID {
	t.Helper()
	return w.env.DeadLetterOriginate(t, integ.ID, "+380991110000",
		"insert calls: dial tcp 127.0.0.1:5432: connect: connection refused", originSeq)
}

type deadLetterView struct {
	Seq           uint64    `json:"seq"`
	IntegrationID uuid.UUID `json:"integrationId"`
	OriginStream  string    `json:"originStream"`
	Reason        string    `json:"reason"`
}

// TestDeadLetterReplayRoute: an owner lists only the dead letters of their
// integrations and replays them; the replayed originate becomes its call
// once, replaying it again is a 404 that changes nothing, and another
// owner can neither see nor replay it.
func TestDeadLetterReplayRoute(t *testing.T) {
	t.Parallel()
	w := setup(t)
	integA := createIntegration(t, w.a, map[string]any{"name": "Dead letters A"})
	integB := createIntegration(t, w.b, map[string]any{"name": "Dead letters B"})
	callA := deadLetterOriginate(t, w, integA, 1)
	callB := deadLetterOriginate(t, w, integB, 2)

	var listA []deadLetterView
	if err := json.Unmarshal(w.a.do(t, "GET", "/api/dead-letters", nil).expect(t, http.StatusOK).body, &listA); err != nil {
		t.Fatal(err)
	}
	if len(listA) != 1 || listA[0].IntegrationID != integA.ID || listA[0].OriginStream != "CALLQUEUE_ORIGINATE" || listA[0].Reason == "" {
		t.Fatalf("owner A's dead letters = %+v", listA)
	}
	seqA := listA[0].Seq
	// B cannot replay A's dead letter, and A's call does not exist yet.
	expectError(t, w.b.do(t, "POST", "/api/dead-letters/replay", map[string]any{"seq": seqA}), http.StatusNotFound)
	expectError(t, w.a.do(t, "GET", "/api/calls/"+callA.String(), nil), http.StatusNotFound)

	var out struct {
		Replayed []deadLetterView `json:"replayed"`
		Count    int              `json:"count"`
	}
	if err := json.Unmarshal(w.a.do(t, "POST", "/api/dead-letters/replay", map[string]any{"seq": seqA}).expect(t, http.StatusOK).body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Count != 1 || out.Replayed[0].Seq != seqA {
		t.Fatalf("replay answered %+v", out)
	}
	servicetest.Eventually(t, waitFor, "the replayed call stored", func() bool {
		return w.a.do(t, "GET", "/api/calls/"+callA.String(), nil).status == http.StatusOK
	})
	before := string(w.a.do(t, "GET", "/api/calls/"+callA.String(), nil).expect(t, http.StatusOK).body)

	// Twice: nothing left to replay, nothing changes.
	expectError(t, w.a.do(t, "POST", "/api/dead-letters/replay", map[string]any{"seq": seqA}), http.StatusNotFound)
	if err := json.Unmarshal(w.a.do(t, "POST", "/api/dead-letters/replay", map[string]any{"all": true}).expect(t, http.StatusOK).body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Count != 0 {
		t.Errorf("replay all after the replay: %+v", out)
	}
	if after := string(w.a.do(t, "GET", "/api/calls/"+callA.String(), nil).expect(t, http.StatusOK).body); after != before {
		t.Errorf("the second replay changed the call:\n%s\nwas\n%s", after, before)
	}
	if string(w.a.do(t, "GET", "/api/dead-letters", nil).expect(t, http.StatusOK).body) != "[]\n" {
		t.Error("A's replayed dead letter is still listed")
	}
	// B's dead letter is B's alone: still there, never replayed by A's "all".
	var listB []deadLetterView
	if err := json.Unmarshal(w.b.do(t, "GET", "/api/dead-letters?stream=originate", nil).expect(t, http.StatusOK).body, &listB); err != nil {
		t.Fatal(err)
	}
	if len(listB) != 1 || listB[0].IntegrationID != integB.ID {
		t.Errorf("owner B's dead letters = %+v", listB)
	}
	expectError(t, w.b.do(t, "GET", "/api/calls/"+callB.String(), nil), http.StatusNotFound)
}
