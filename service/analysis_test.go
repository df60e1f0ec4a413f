package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// finishCall originates a call on integ, dials it, ends it and posts its
// ElevenLabs transcription with the agent's own analysis.
func finishCall(t *testing.T, admin *servicetest.Admin, in *servicetest.Instance, integ servicetest.Integration, phone string) uuid.UUID {
	t.Helper()
	id := originateOn(t, in, integ, map[string]any{"phone_number": phone})
	awaitDialled(t, admin, id)
	conv := "conv-" + id.String()
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": id, "conversation_id": conv, "duration": 40})
	awaitStatus(t, admin, id, "waiting_postcall")
	postcall(t, in, integ, transcription(conv, 40, elAnalysis("Підсумок агента", nil), nil))
	return id
}

// crmUpdatesOf are the CRM's update requests about a call.
// verdictOf is what a call achieved: its analysis' outcome (the call's own
// outcome is one of the enumerated outcomes).
func verdictOf(c peerCall) string {
	var a struct {
		Outcome string `json:"outcome"`
	}
	_ = json.Unmarshal(c.Analysis, &a)
	return a.Outcome
}

// updateVerdict is the verdict a CRM update carries in its analysis.
func updateVerdict(update map[string]any) any {
	a, _ := update["analysis"].(map[string]any)
	return a["outcome"]
}

func crmUpdatesOf(p *peers, id uuid.UUID) []servicetest.CRMRequest {
	return p.crm.Where(func(r servicetest.CRMRequest) bool {
		return r.Path == "/update" && strings.Contains(string(r.Body), id.String())
	})
}

// TestLLMHangsForOneTenant: tenant A's LLM hangs. A's calls still complete
// at once with the agent's analysis, their CRM updates held for the LLM's;
// A's LLM sees at most its share of requests; tenant B's post-call
// completes, is analysed by B's LLM and reaches B's CRM within seconds. A
// process crash with A's analyses in flight loses none: the next process
// runs them once A's LLM recovers, amends the calls, and each CRM update is
// sent once, with the LLM's analysis.
func TestLLMHangsForOneTenant(t *testing.T) {
	t.Parallel()
	p := setupPeers(t, servicetest.Options{}, map[string]any{"concurrency_limit": 10})
	tenantA := p.integ
	llmA, llmB := servicetest.NewFakeLLM(t), servicetest.NewFakeLLM(t)
	p.admin.PutConfig(tenantA, "analysis", map[string]any{"base_url": llmA.BaseURL(), "model": "m"})
	p.admin.AddSecret(tenantA, "LLM_API_KEY", servicetest.FakeLLMKey)
	adminB := p.env.Admin(p.in, "owner-b-"+t.Name())
	tenantB := adminB.CreateIntegration("Tenant B", p.va, nil)
	adminB.UseWebhookCRM(tenantB, p.crm)
	adminB.PutConfig(tenantB, "analysis", map[string]any{"base_url": llmB.BaseURL(), "model": "m"})
	adminB.AddSecret(tenantB, "LLM_API_KEY", servicetest.FakeLLMKey)
	llmB.SetContent(t, map[string]any{"outcome": "callback", "summary": "Передзвонити завтра"})
	llmA.Hang()

	// A's calls complete with the agent's analysis while A's LLM hangs.
	var callsA []uuid.UUID
	for i := range 3 {
		callsA = append(callsA, finishCall(t, p.admin, p.in, tenantA, fmt.Sprintf("+38050100000%d", i)))
	}
	for _, id := range callsA {
		c := awaitStatus(t, p.admin, id, "completed")
		if deref(c.Outcome) != "completed" || verdictOf(c) != "success" || deref(c.Summary) != "Підсумок агента" || len(c.CRM) != 1 ||
			c.CRM[0].Status != "pending" {
			t.Fatalf("A's call %s while its LLM hangs: outcome %s, verdict %s, summary %s, crm %+v; want the agent's analysis and a held update",
				id, deref(c.Outcome), verdictOf(c), deref(c.Summary), c.CRM)
		}
	}
	servicetest.Eventually(t, 10*time.Second, "A's LLM asked", func() bool { return llmA.InFlight() == 2 })
	holdsFor(t, 300*time.Millisecond, "A's LLM asked at most its share at once", func() bool { return len(llmA.Requests()) == 2 })

	// B is not held up by A's LLM.
	callB := finishCall(t, adminB, p.in, tenantB, "+380502000000")
	servicetest.Eventually(t, 10*time.Second, "B's call analysed by B's LLM and its update at B's CRM", func() bool {
		c, code := tryGetCall(t, adminB, callB)
		return code == http.StatusOK && c.Status == "completed" && deref(c.Outcome) == "completed" && verdictOf(c) == "callback" &&
			len(c.CRM) == 1 && c.CRM[0].Status == "delivered"
	})
	if ups := crmUpdatesOf(p, callB); len(ups) != 1 || updateVerdict(ups[0].JSON(t)) != "callback" || ups[0].JSON(t)["outcome"] != "completed" {
		t.Fatalf("B's CRM updates %d, want one with the LLM's outcome", len(ups))
	}
	for _, id := range callsA {
		if n := len(crmUpdatesOf(p, id)); n != 0 {
			t.Fatalf("A's call %s: %d CRM updates sent before its analysis", id, n)
		}
	}

	// A crash with A's analyses in flight; A's LLM recovers; the next
	// process finds them once their lease ends.
	p.in.Kill()
	servicetest.Eventually(t, 10*time.Second, "A's cut requests gone", func() bool { return llmA.InFlight() == 0 })
	llmA.SetContent(t, map[string]any{"outcome": "interested", "summary": "Клієнт зацікавлений"})
	llmA.Release()
	next := p.env.Start(servicetest.Options{})
	p.admin.URL = next.URL
	p.env.Clock.Advance(3 * time.Minute)
	for _, id := range callsA {
		awaitCall(t, p.admin, id, "the LLM's analysis applied and the update delivered", func(c peerCall) bool {
			return verdictOf(c) == "interested" && len(c.CRM) == 1 && c.CRM[0].Status == "delivered"
		})
		ups := crmUpdatesOf(p, id)
		if len(ups) != 1 || updateVerdict(ups[0].JSON(t)) != "interested" || ups[0].JSON(t)["summary"] != "Клієнт зацікавлений" {
			t.Errorf("A's call %s: %d CRM updates, want one with the LLM's analysis", id, len(ups))
		}
	}
	if n, err := p.env.Store.AnalysisBacklog(context.Background()); err != nil || n.Pending != 0 {
		t.Errorf("pending analyses after recovery: %d, %v", n.Pending, err)
	}
}
