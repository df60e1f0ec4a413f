package service_test

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/callqueue/callqueue/crm/nethunttest"
	"github.com/callqueue/callqueue/service/servicetest"
)

// TestPeersNetHunt: with NetHunt as the CRM (records as people typed them,
// a tokenised search), a finished call writes its outcome's label, its
// summary and its call log on the one record whose phone is the call's —
// or on its record_id — with HTTP Basic auth and the field names of
// crm_fields. A phone that no record holds, or that several do, is a
// visible no_record: nothing is written, nothing retried, the breaker stays
// closed, and agent-init answers without CRM variables.
func TestPeersNetHunt(t *testing.T) {
	t.Parallel()
	const folder = "5f1b2c3d4e5f6a7b8c9d0eaa"
	env, in, admin, integ, nh := netHuntPeers(t, map[string]any{"max_attempts": 1}, folder, nethunttest.Field{Name: "ПІБ"},
		nethunttest.Field{Name: "Телефон", Multi: true}, nethunttest.Field{Name: "Статус угоди"},
		nethunttest.Field{Name: "Компанія"}, nethunttest.Field{Name: "Джерело"})
	admin.PutConfig(integ, "crm_fields", map[string]any{"phone": "Телефон", "status": "Статус угоди", "name": "ПІБ",
		"company": "Компанія", "source": "Джерело"})
	labels := map[string]string{"completed": "Подзвонили", "no_answer": "Не відповів"}
	admin.PutConfig(integ, "crm", map[string]any{"kind": "nethunt", "folder_id": folder, "base_url": nh.BaseURL(),
		"status_values": labels, "call_log": true})
	record := func(name, typed string) string {
		return nh.AddRecord(folder, map[string]any{"ПІБ": name, "Телефон": typed, "Компанія": "ТОВ " + name})
	}
	olena := record("Олена", "+380 67 100 00 01")
	petro := record("Петро", "067 100 0002")
	other := record("Інший", "+380 67 100 00 021") // listed first for Петро's number, not his
	twins := []string{record("Іван", "+380671000003"), record("Іван (дубль)", "067 100 00 03")}
	oldCard := record("Стара картка", "+380 50 000 00 00")

	// The lookup picks the one person, as typed; several is none.
	if code, a, _ := agentInit(t, in, integ, map[string]any{"phone_number": "+380671000002"}); code != http.StatusOK ||
		a.Vars["client_name"] != "Петро" || a.Vars["company"] != "ТОВ Петро" {
		t.Errorf("agent-init for Петро: %d %v", code, a.Vars)
	}
	if code, a, _ := agentInit(t, in, integ, map[string]any{"phone_number": "+380671000003"}); code != http.StatusOK ||
		cmp.Or(a.Vars["client_name"], any("")) != "" {
		t.Errorf("agent-init for an ambiguous phone: %d %v", code, a.Vars)
	}

	calls := []struct {
		phone, record, target, summary, reason string
	}{
		{"+380671000001", oldCard, oldCard, "Олена погодилась на зустріч", ""}, // record_id wins over the lookup
		{"+380671000002", "", petro, "Петро передзвонить", ""},                 // found by phone, as typed
		{"+380671000003", "", "", "Іван щось сказав", ""},                      // two records: no_record
		{"+380671000009", "", "", "Хтось невідомий", ""},                       // no record: no_record
		{"+380671000001", "", olena, "", "no_answer"},                          // failed: Олена gets "Не відповів"
	}
	for i, c := range calls {
		body := map[string]any{"phone_number": c.phone}
		if c.record != "" {
			body["record_id"] = c.record
		}
		id := originateOn(t, in, integ, body)
		awaitDialled(t, admin, id)
		conv := fmt.Sprintf("conv-nh-%d", i)
		if c.reason != "" {
			callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": id, "conversation_id": conv, "reason": c.reason})
		} else {
			callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": id, "conversation_id": conv, "duration": 60})
			awaitStatus(t, admin, id, "waiting_postcall")
			postcall(t, in, integ, transcription(conv, 60, elAnalysis(c.summary, nil), nil))
		}
		want := "delivered"
		if c.target == "" {
			want = "no_record"
		}
		got := awaitCall(t, admin, id, "its NetHunt update "+want, func(pc peerCall) bool {
			return len(pc.CRM) == 1 && pc.CRM[0].Status == want
		})
		if c.target == "" {
			if d := got.CRM[0]; d.Attempts != 1 || d.NextAttempt != nil || d.LastError == nil || strings.Contains(*d.LastError, c.phone) {
				t.Errorf("%s: delivery %+v (lastError %s)", c.phone, d, deref(d.LastError))
			}
			continue
		}
		rec, _ := nh.Record(c.target)
		outcome := deref(got.Outcome)
		if label := cmp.Or(labels[outcome], outcome); rec.Fields["Статус угоди"] != label {
			t.Errorf("%s: record %s status %v, want %q (outcome %q)", c.phone, c.target, rec.Fields["Статус угоди"], label, outcome)
		}
		if comments := nh.Comments(c.target); c.summary != "" && (len(comments) != 1 || comments[0].Text != c.summary) {
			t.Errorf("%s: comments %+v", c.phone, comments)
		}
		if logs := nh.CallLogs(c.target); len(logs) != 1 || !strings.HasPrefix(logs[0].Text, cmp.Or(labels[outcome], outcome)) {
			t.Errorf("%s: call logs %+v", c.phone, logs)
		}
	}
	for _, untouched := range append([]string{other}, twins...) {
		if r, _ := nh.Record(untouched); r.Fields["Статус угоди"] != nil || len(nh.Comments(untouched)) != 0 {
			t.Errorf("record %s (%v) was written to", untouched, r.Fields["ПІБ"])
		}
	}
	for _, r := range nh.Requests() {
		if r.Status == http.StatusUnauthorized {
			t.Errorf("%s %s refused: %s", r.Method, r.Path, r.Body)
		}
	}
	writes := len(nh.Writes())
	holdsFor(t, 300*time.Millisecond, "no_record updates not retried", func() bool {
		env.Clock.Advance(time.Hour)
		in.Workers.Outbox.Kick()
		return len(nh.Writes()) == writes
	})
	if in.CRM.Breakers().State(integ.ID.String()) != gobreaker.StateClosed {
		t.Error("misses moved the CRM breaker")
	}
	if v := in.Metric(t, "callqueue_integration_crm_deliveries_total", `integration_id="`+integ.ID.String()+`"`, `result="no_record"`); v != 2 {
		t.Errorf(`callqueue_crm_deliveries_total{result="no_record"} = %v, want 2`, v)
	}
	if v := in.Metric(t, "callqueue_integration_crm_ambiguous_lookups_total", `integration_id="`+integ.ID.String()+`"`); v < 2 {
		t.Errorf("callqueue_crm_ambiguous_lookups_total = %v, want at least 2 (agent-init and the update)", v)
	}
}

// TestPeersNetHuntRetryAfter: a 429 from NetHunt — here to the caller's
// lookup when the call is dialled — holds all of the integration's CRM
// traffic for its Retry-After: the call's update waits without an attempt,
// nothing is sent before, and it is delivered once after.
func TestPeersNetHuntRetryAfter(t *testing.T) {
	t.Parallel()
	const folder = "5f1b2c3d4e5f6a7b8c9d0ebb" // its Status is free text: any outcome's name fits
	env, in, admin, integ, nh := netHuntPeers(t, nil, folder, nethunttest.Field{Name: "Name"},
		nethunttest.Field{Name: "Phone", Multi: true}, nethunttest.Field{Name: "Status"},
		nethunttest.Field{Name: "Company"}, nethunttest.Field{Name: "Source"})
	admin.PutConfig(integ, "crm", map[string]any{"kind": "nethunt", "folder_id": folder, "base_url": nh.BaseURL()})
	rec := nh.AddRecord(folder, map[string]any{"Name": "Олена", "Phone": "+380 67 100 00 01"})

	nh.RateLimit(1, "600")
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380671000001", "record_id": rec})
	awaitDialled(t, admin, id)
	callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": id, "conversation_id": "conv-429", "duration": 60})
	awaitStatus(t, admin, id, "waiting_postcall")
	postcall(t, in, integ, transcription("conv-429", 60, elAnalysis("Олена передзвонить", nil), nil))
	held := awaitCall(t, admin, id, "its update held", func(c peerCall) bool {
		return len(c.CRM) == 1 && c.CRM[0].NextAttempt != nil && !c.CRM[0].NextAttempt.Before(env.Clock.Now().Add(599*time.Second))
	})
	if d := held.CRM[0]; d.Status != "pending" || d.Attempts != 0 {
		t.Fatalf("held update: %+v", d)
	}
	if reqs := nh.Requests(); reqs[len(reqs)-1].Status != http.StatusTooManyRequests || !strings.Contains(reqs[len(reqs)-1].Path, "find-record") {
		t.Fatalf("last request %+v, want the dial's lookup answered 429 and nothing after", reqs[len(reqs)-1])
	}
	if w := nh.Writes(); len(w) != 0 {
		t.Fatalf("%d writes during Retry-After", len(w))
	}
	sent := len(nh.Requests())
	env.Clock.Advance(5 * time.Minute)
	holdsFor(t, 300*time.Millisecond, "nothing sent during Retry-After", func() bool {
		in.Workers.Outbox.Kick()
		return len(nh.Requests()) == sent
	})
	env.Clock.Advance(5*time.Minute + time.Second)
	in.Workers.Outbox.Kick()
	done := awaitCall(t, admin, id, "its update delivered after Retry-After", func(c peerCall) bool {
		return len(c.CRM) == 1 && c.CRM[0].Status == "delivered" && c.CRM[0].Attempts == 1
	})
	if r, _ := nh.Record(rec); r.Fields["Status"] != deref(done.Outcome) || len(nh.Comments(rec)) != 1 {
		t.Errorf("record after the pause: %v, comments %v", r.Fields, nh.Comments(rec))
	}
}

// netHuntPeers starts a process with an integration dialling a fake VA
// (with callHandling) and a fake NetHunt holding folder with fields, whose
// credentials the integration has (its crm config is the test's).
func netHuntPeers(t *testing.T, callHandling map[string]any, folder string, fields ...nethunttest.Field) (
	*servicetest.Env, *servicetest.Instance, *servicetest.Admin, servicetest.Integration, *nethunttest.Server,
) {
	t.Helper()
	env := servicetest.New(t)
	nh := nethunttest.New(t)
	nh.AddFolder(folder, fields...)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("NetHunt", servicetest.NewFakeVA(t), callHandling)
	admin.AddSecret(integ, "NETHUNT_EMAIL", nethunttest.Email)
	admin.AddSecret(integ, "NETHUNT_API_KEY", nethunttest.APIKey)
	return env, in, admin, integ, nh
}
