package service_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/internal/syncbuf"
	"github.com/callqueue/callqueue/service/servicetest"
)

// TestLogsCarryNoPersonalData runs calls through originate, dial, agent-init
// with a CRM lookup, post-call with a transcript, CRM update, the failure
// paths (a refused originate, a failing CRM, a short call, unknown calls and
// bad input), retention and erasure, with every log level on, and scans
// the log for the numbers, names and words used: none may appear
// (contract §11).
func TestLogsCarryNoPersonalData(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	logs := &syncbuf.Buffer{}
	env.Log = zerolog.New(logs).Level(zerolog.TraceLevel)
	va, fakeCRM := servicetest.NewFakeVA(t), servicetest.NewFakeCRM(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-logs")
	integ := admin.CreateIntegration("Logs", va, map[string]any{"max_attempts": 2, "retry_delays_secs": []int{0}})
	admin.UseWebhookCRM(integ, fakeCRM)

	const (
		completedPhone = "+380931234567"
		shortPhone     = "+380937654321"
		refusedPhone   = "+380501112299"
		clientName     = "Ярослава Приватна"
		crmName        = "Богдан Потайний"
		transcriptText = "мій пароль ластівка сімнадцять"
		summaryText    = "Клієнтка просить передзвонити ввечері"
		recordID       = "rec-private-7731"
	)
	fakeCRM.AddRecord(completedPhone, servicetest.CRMRecord{ID: recordID, Name: crmName, Fields: map[string]any{"Name": crmName}})

	completed := originateOn(t, in, integ, map[string]any{"phone_number": completedPhone, "record_id": recordID,
		"dynamic_variables": map[string]any{"client_name": clientName}})
	awaitDialled(t, admin, completed)
	if code := servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": completedPhone}, nil); code != http.StatusOK {
		t.Fatalf("agent-init: %d", code)
	}
	callEvent(t, in, integ, map[string]any{"eventType": "call_start", "callId": completed, "conversation_id": "conv-logs"})
	// The CRM fails the first update (its answer is logged as an error).
	fakeCRM.SetUpdateStatus(http.StatusInternalServerError)
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": completed, "duration": 60})
	awaitStatus(t, admin, completed, "waiting_postcall")
	body := transcription("conv-logs", 60, elAnalysis(summaryText, map[string]any{"do_not_call": "true"}),
		map[string]any{"phone_number": completedPhone, "client_name": clientName})
	body["data"].(map[string]any)["transcript"] = []map[string]any{{"role": "user", "message": transcriptText, "time_in_call_secs": 3}}
	postcall(t, in, integ, body)
	awaitStatus(t, admin, completed, "completed")
	servicetest.Eventually(t, 15*time.Second, "a failed CRM delivery", func() bool { return len(fakeCRM.Updates()) > 0 })
	fakeCRM.SetUpdateStatus(0)
	servicetest.Eventually(t, 30*time.Second, "the CRM update delivered", func() bool {
		env.Clock.Advance(time.Minute)
		in.Workers.Outbox.Kick()
		c := getCall(t, admin, completed)
		return len(c.CRM) == 1 && c.CRM[0].Status == "delivered"
	})

	// A short call, retried and failed; a refused originate.
	short := originateOn(t, in, integ, map[string]any{"phone_number": shortPhone, "dynamic_variables": map[string]any{"client_name": clientName}})
	for attempt := 1; attempt <= 2; attempt++ {
		awaitCall(t, admin, short, "dialled", func(c peerCall) bool { return c.Attempt == attempt && c.DialState == "accepted" })
		callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": short, "duration": attempt, "reason": "completed"})
	}
	awaitStatus(t, admin, short, "failed")
	va.SetStatus(http.StatusBadRequest)
	refused := originateOn(t, in, integ, map[string]any{"phone_number": refusedPhone, "dynamic_variables": map[string]any{"client_name": clientName}})
	awaitStatus(t, admin, refused, "failed")

	// The CRM's lookups fail: with an error status, and by not answering
	// within agent-init's deadline.
	fakeCRM.SetStatus(http.StatusInternalServerError)
	servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": "+380671230001"}, nil)
	fakeCRM.SetStatus(0)
	fakeCRM.Hang()
	servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": "+380671230002"}, nil)
	fakeCRM.Release()

	// Unknown calls and bad input.
	servicetest.Webhook(t, in, integ, "agent-init", map[string]any{"phone_number": "+380671239876"}, nil)
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "not a number " + clientName}, nil)
	postcall(t, in, integ, transcription("conv-unknown", 30, elAnalysis(summaryText, nil), map[string]any{"phone_number": "+380671239876"}))
	admin.Do("GET", "/api/people/"+completedPhone, nil, nil)
	admin.Do("GET", "/api/people/"+clientName, nil, nil)

	// Retention and erasure.
	if code := admin.Do("PUT", "/api/integrations/"+integ.ID.String()+"/config/data", map[string]any{"retention_days": 1}, nil); code != http.StatusOK {
		t.Fatalf("put data: %d", code)
	}
	env.Clock.Advance(72 * time.Hour)
	removed, err := in.Workers.Scheduler.RunRetention(t.Context())
	if err != nil || removed.Calls != 3 {
		t.Fatalf("retention removed %+v, %v; want the three finished calls", removed, err)
	}
	if n := in.Metric(t, "callqueue_retention_deleted_rows_total", `table="calls"`); n != 3 {
		t.Errorf("retention metric for calls = %v, want 3", n)
	}
	if !strings.Contains(logs.String(), `"message":"retention run"`) {
		t.Error("the retention run wrote no log line")
	}
	if code := admin.Do("DELETE", "/api/people/"+completedPhone, nil, nil); code != http.StatusOK {
		t.Fatalf("erase: %d", code)
	}

	log := logs.String()
	if !strings.Contains(log, completed.String()) {
		t.Fatalf("the log never names the call %s: it is not being scanned (%d bytes)", completed, len(log))
	}
	for _, secret := range []string{completedPhone, shortPhone, refusedPhone, "+380671239876",
		completedPhone[1:], shortPhone[1:], refusedPhone[1:], "380671239876", completedPhone[4:], shortPhone[4:], refusedPhone[4:],
		"380671230001", "380671230002", clientName, crmName, transcriptText, summaryText, recordID, "Ярослава", "Потайний", "ластівка"} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("the log carries %q: %s", secret, line)
				break
			}
		}
	}
}
