package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sony/gobreaker/v2"

	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// The tests in this file drive callqueue against the third-party services
// it calls — CRMs (the signed webhook kind and NetHunt), ElevenLabs as the
// dialler and an OpenAI-compatible LLM — each an httptest fake speaking
// the real wire format, with real Postgres and JetStream underneath.

// peerCall is GET /api/calls/{id}: the call, its history and its CRM updates.
type peerCall struct {
	store.Call
	Events []store.CallEventRow `json:"events"`
	CRM    []store.Delivery     `json:"crm"`
}

// peers is one test's world: a callqueue process, a fake VA and CRM, and
// one integration using both.
type peers struct {
	env   *servicetest.Env
	va    *servicetest.FakeVA
	crm   *servicetest.FakeCRM
	in    *servicetest.Instance
	admin *servicetest.Admin
	integ servicetest.Integration
	db    *pgxpool.Pool
}

// setupPeers starts a process with opt and an integration dialling the fake
// VA with callHandling, whose CRM is the fake's webhook kind.
func setupPeers(t *testing.T, opt servicetest.Options, callHandling map[string]any) *peers {
	t.Helper()
	p := &peers{env: servicetest.New(t), va: servicetest.NewFakeVA(t), crm: servicetest.NewFakeCRM(t)}
	p.in = p.env.Start(opt)
	p.admin = p.env.Admin(p.in, "owner-"+t.Name())
	p.integ = p.admin.CreateIntegration("Peers", p.va, callHandling)
	p.admin.UseWebhookCRM(p.integ, p.crm)
	db, err := pgxpool.New(context.Background(), p.env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	p.db = db
	return p
}

func (p *peers) key() string { return p.integ.ID.String() }

// originate posts call-originate and returns the call's id.
func originateOn(t *testing.T, in *servicetest.Instance, integ servicetest.Integration, body map[string]any) uuid.UUID {
	t.Helper()
	var resp struct {
		Success bool      `json:"success"`
		CallID  uuid.UUID `json:"callId"`
	}
	if code := servicetest.Webhook(t, in, integ, "call-originate", body, &resp); code != http.StatusAccepted || !resp.Success {
		t.Fatalf("call-originate: %d %+v", code, resp)
	}
	return resp.CallID
}

func getCall(t *testing.T, admin *servicetest.Admin, id uuid.UUID) peerCall {
	t.Helper()
	c, code := tryGetCall(t, admin, id)
	if code != http.StatusOK {
		t.Fatalf("get call %s: %d", id, code)
	}
	return c
}

func tryGetCall(t *testing.T, admin *servicetest.Admin, id uuid.UUID) (peerCall, int) {
	t.Helper()
	var c peerCall
	code := admin.Do("GET", "/api/calls/"+id.String(), nil, &c)
	return c, code
}

// awaitCall polls the call until cond holds. A call accepted by
// call-originate is stored shortly after; until then it is 404.
func awaitCall(t *testing.T, admin *servicetest.Admin, id uuid.UUID, what string, cond func(peerCall) bool) peerCall {
	t.Helper()
	var c peerCall
	deadline := time.Now().Add(15 * time.Second)
	for {
		var code int
		c, code = tryGetCall(t, admin, id)
		if code != http.StatusOK && code != http.StatusNotFound {
			t.Fatalf("get call %s: %d", id, code)
		}
		if code == http.StatusOK && cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s: timed out waiting for %s; it is %s (outcome %v), history %s, crm %+v",
				id, what, c.Status, deref(c.Outcome), kindsOf(c), c.CRM)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func awaitStatus(t *testing.T, admin *servicetest.Admin, id uuid.UUID, status string) peerCall {
	t.Helper()
	return awaitCall(t, admin, id, status, func(c peerCall) bool { return string(c.Status) == status })
}

// awaitDialled waits until the dialler's answer is recorded, so events
// that follow find the call initiated.
func awaitDialled(t *testing.T, admin *servicetest.Admin, id uuid.UUID) peerCall {
	t.Helper()
	return awaitCall(t, admin, id, "the dial accepted", func(c peerCall) bool {
		return c.Status == "initiated" && c.DialState == "accepted"
	})
}

func kindsOf(c peerCall) []string {
	var out []string
	for _, e := range c.Events {
		out = append(out, e.Kind)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// holdsFor fails the test if cond stops holding within d.
func holdsFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s: no longer holds", what)
		}
	}
}

// elAnalysis is ElevenLabs' own analysis of a conversation.
func elAnalysis(summary string, collected map[string]any) map[string]any {
	a := map[string]any{"call_successful": "success", "transcript_summary": summary, "evaluation_criteria_results": map[string]any{}}
	if collected != nil {
		results := map[string]any{}
		for k, v := range collected {
			results[k] = map[string]any{"data_collection_id": k, "value": v, "json_schema": map[string]any{"type": "string"},
				"rationale": "the client said so"}
		}
		a["data_collection_results"] = results
	}
	return a
}

// transcription is ElevenLabs' post_call_transcription webhook.
func transcription(conversationID string, durationSecs int, analysis map[string]any, vars map[string]any) map[string]any {
	return map[string]any{"type": "post_call_transcription", "event_timestamp": 1768999152, "data": map[string]any{
		"agent_id": "a1", "conversation_id": conversationID, "status": "done",
		"transcript": []map[string]any{
			{"role": "agent", "message": "Добрий день! Це Анна з ACME.", "time_in_call_secs": 0},
			{"role": "user", "message": "Так, слухаю. Бюджет у нас п'ять тисяч.", "time_in_call_secs": 4},
		},
		"metadata":                            map[string]any{"start_time_unix_secs": 1768999100, "call_duration_secs": durationSecs, "termination_reason": "user_ended_call"},
		"analysis":                            analysis,
		"conversation_initiation_client_data": map[string]any{"dynamic_variables": vars},
	}}
}

func postcall(t *testing.T, in *servicetest.Instance, integ servicetest.Integration, body map[string]any) {
	t.Helper()
	if code := servicetest.Webhook(t, in, integ, "agent-postcall", body, nil); code != http.StatusOK {
		t.Fatalf("agent-postcall: %d", code)
	}
}

func callEvent(t *testing.T, in *servicetest.Instance, integ servicetest.Integration, body map[string]any) {
	t.Helper()
	if code := servicetest.Webhook(t, in, integ, "call-events", body, nil); code != http.StatusAccepted {
		t.Fatalf("call-events %v: %d", body, code)
	}
}

// expectedUpdate is what the CRM should receive for a call.
type expectedUpdate struct {
	event, phone, record, status, outcome, summary string
	duration                                       float64
}

// driveCalls originates long calls that complete (call_end of 45 s, then
// the post-call transcription) and short ones that fail (max_attempts 1),
// all on in, and returns what each call's CRM update should say.
func (p *peers) driveCalls(t *testing.T, in *servicetest.Instance, long, short int) map[uuid.UUID]expectedUpdate {
	t.Helper()
	want := map[uuid.UUID]expectedUpdate{}
	var ids []uuid.UUID
	for i := range long + short {
		phone, record := fmt.Sprintf("+38067%07d", i), fmt.Sprintf("rec-%d", i)
		id := originateOn(t, in, p.integ, map[string]any{"phone_number": phone, "record_id": record,
			"dynamic_variables": map[string]any{"client_name": fmt.Sprintf("Клієнт %d", i)}})
		ids = append(ids, id)
		if i < long {
			want[id] = expectedUpdate{event: store.CRMEventCompleted, phone: phone, record: record, status: "completed",
				outcome: "completed", summary: fmt.Sprintf("Розмова %d: клієнт погодився", i), duration: 45}
		} else {
			want[id] = expectedUpdate{event: store.CRMEventFailed, phone: phone, record: record, status: "failed",
				outcome: "short_call", duration: 2}
		}
	}
	for _, id := range ids {
		awaitDialled(t, p.admin, id)
	}
	for _, id := range ids {
		callEvent(t, in, p.integ, map[string]any{"eventType": "call_end", "callId": id, "conversation_id": "conv-" + id.String(),
			"duration": want[id].duration})
	}
	for _, id := range ids {
		if want[id].status == "failed" {
			awaitStatus(t, p.admin, id, "failed")
			continue
		}
		awaitStatus(t, p.admin, id, "waiting_postcall")
		postcall(t, in, p.integ, transcription("conv-"+id.String(), 45, elAnalysis(want[id].summary, nil), nil))
	}
	for _, id := range ids {
		awaitStatus(t, p.admin, id, want[id].status)
	}
	return want
}

// outbox counts the CRM outbox's rows by status, and its due rows.
func (p *peers) outbox(t *testing.T) (byStatus map[string]int, due int, attempts int) {
	t.Helper()
	byStatus = map[string]int{}
	rows, err := p.db.Query(context.Background(), `SELECT status, count(*), count(*) FILTER (WHERE next_attempt_at <= $1),
		sum(attempts) FROM crm_outbox GROUP BY status`, p.env.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n, d, a int
		if err := rows.Scan(&status, &n, &d, &a); err != nil {
			t.Fatal(err)
		}
		byStatus[status] = n
		attempts += a
		if status == "pending" {
			due = d
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return byStatus, due, attempts
}

// pushOutbox makes every pending update due (the outbox waits on the
// service's clock) and wakes in's outbox.
func (p *peers) pushOutbox(in *servicetest.Instance) {
	p.env.Clock.Advance(time.Hour)
	in.Workers.Outbox.Kick()
}

// crmBreaker is in's CRM breaker for the integration.
func (p *peers) crmBreaker(in *servicetest.Instance) gobreaker.State {
	return in.CRM.Breakers().State(p.key())
}

type crmHealth struct {
	Status string `json:"status"`
	Checks struct {
		CRM struct {
			OK      bool   `json:"ok"`
			Kind    string `json:"kind"`
			Breaker string `json:"breaker"`
		} `json:"crm"`
	} `json:"checks"`
}

func (p *peers) health(t *testing.T, in *servicetest.Instance) (int, crmHealth) {
	t.Helper()
	var h crmHealth
	code := servicetest.Request(t, "GET", in.URL+"/"+p.integ.Slug+"/health", map[string]string{"X-Webhook-Token": p.integ.WebhookToken}, nil, &h)
	return code, h
}

// checkDeliveredOnce checks what the CRM received: every update exactly
// once answered 2xx, per (callId, event); every attempt of one update with
// the same Idempotency-Key, and different updates with different keys;
// every request validly signed; every body in the contract's shape.
func (p *peers) checkDeliveredOnce(t *testing.T, want map[uuid.UUID]expectedUpdate) {
	t.Helper()
	type group struct {
		keys      map[string]bool
		delivered int
		attempts  int
		body      map[string]any
	}
	groups := map[string]*group{}
	keyOwner := map[string]string{}
	for _, r := range p.crm.Updates() {
		if err := crm.VerifySignature(servicetest.FakeCRMSecret, r.Header.Get(crm.SignatureHeader), r.Body, r.At,
			crm.SignatureToleranceDefault); err != nil {
			t.Errorf("update %s: signature %q: %v", r.Body, r.Header.Get(crm.SignatureHeader), err)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("update Content-Type = %q", ct)
		}
		body := r.JSON(t)
		callID, _ := body["callId"].(string)
		event, _ := body["event"].(string)
		g := groups[callID+" "+event]
		if g == nil {
			g = &group{keys: map[string]bool{}}
			groups[callID+" "+event] = g
		}
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			t.Errorf("update for %s %s without Idempotency-Key", callID, event)
		}
		if owner, ok := keyOwner[key]; ok && owner != callID+" "+event {
			t.Errorf("Idempotency-Key %s used for %s and for %s %s", key, owner, callID, event)
		}
		keyOwner[key] = callID + " " + event
		g.keys[key] = true
		g.attempts++
		if r.Status >= 200 && r.Status < 300 {
			g.delivered++
			g.body = body
		}
	}
	if len(groups) != len(want) {
		t.Errorf("the CRM received updates for %d (call, event) pairs, want %d", len(groups), len(want))
	}
	for id, w := range want {
		g := groups[id.String()+" "+w.event]
		if g == nil {
			t.Errorf("call %s: no %s update received", id, w.event)
			continue
		}
		if g.delivered != 1 || len(g.keys) != 1 {
			t.Errorf("call %s %s: delivered %d times over %d attempts with keys %v, want once with one key",
				id, w.event, g.delivered, g.attempts, g.keys)
		}
		if g.body == nil {
			continue
		}
		for _, field := range []string{"event", "callId", "recordId", "phoneNumber", "status", "attempt", "durationSecs",
			"outcome", "summary", "analysis", "dynamicVariables"} {
			if _, ok := g.body[field]; !ok {
				t.Errorf("call %s: update body lacks %q: %v", id, field, g.body)
			}
		}
		vars, _ := g.body["dynamicVariables"].(map[string]any)
		if g.body["recordId"] != w.record || g.body["phoneNumber"] != w.phone || g.body["status"] != w.status ||
			g.body["outcome"] != w.outcome || g.body["durationSecs"] != w.duration || g.body["attempt"] != 1.0 ||
			(w.summary != "" && g.body["summary"] != w.summary) || vars["client_name"] == nil {
			t.Errorf("call %s: update body %v, want %+v", id, g.body, w)
		}
	}
	// Signed lookups too (over an empty body), so the CRM can trust them.
	for _, r := range p.crm.Lookups() {
		if err := crm.VerifySignature(servicetest.FakeCRMSecret, r.Header.Get(crm.SignatureHeader), nil, r.At, crm.SignatureToleranceDefault); err != nil {
			t.Errorf("lookup %s: signature: %v", r.Query, err)
		}
	}
}

// checkAllDelivered checks the API and /metrics once every update is
// delivered.
func (p *peers) checkAllDelivered(t *testing.T, in *servicetest.Instance, want map[uuid.UUID]expectedUpdate) {
	t.Helper()
	for id, w := range want {
		c := getCall(t, p.admin, id)
		if len(c.CRM) != 1 || c.CRM[0].Event != w.event || c.CRM[0].Status != "delivered" || c.CRM[0].DeliveredAt == nil ||
			c.CRM[0].NextAttempt != nil || c.CRM[0].Attempts < 1 {
			t.Errorf("call %s: crm %+v, want one delivered %s", id, c.CRM, w.event)
		}
	}
	if v := in.Metric(t, "callqueue_crm_outbox", `status="pending"`); v != 0 {
		t.Errorf(`callqueue_crm_outbox{status="pending"} = %v after delivery`, v)
	}
	servicetest.Eventually(t, 10*time.Second, "the CRM breaker closed and healthy", func() bool {
		code, h := p.health(t, in)
		return code == http.StatusOK && h.Checks.CRM.OK &&
			in.Metric(t, "callqueue_breaker_state", `integration_id="`+p.key()+`"`, `peer="crm"`) == 0
	})
}

// TestPeersCRMOutage: a CRM answering 503 opens the integration's CRM
// breaker; while it is open nothing is sent to the CRM, the updates wait
// pending (visible in the API, on /metrics and in the health check) without
// spending attempts; once the CRM is back every completion and every final
// failure reaches it exactly once, signed, under a stable Idempotency-Key.
func TestPeersCRMOutage(t *testing.T) {
	t.Parallel()
	// Long enough to look at everything while the breaker is open on a
	// loaded machine; the test re-opens it if a look takes longer.
	const openFor = 1500 * time.Millisecond
	p := setupPeers(t, servicetest.Options{BreakerOpenFor: openFor}, map[string]any{"concurrency_limit": 30, "max_attempts": 1})
	p.crm.SetStatus(http.StatusServiceUnavailable)

	want := p.driveCalls(t, p.in, 20, 3)

	// The updates wait, pending, and the API says so.
	servicetest.Eventually(t, 10*time.Second, "the CRM to see an update attempt", func() bool {
		p.pushOutbox(p.in)
		return len(p.crm.Updates()) >= 1
	})
	for id, w := range want {
		c := getCall(t, p.admin, id)
		if len(c.CRM) != 1 || c.CRM[0].Event != w.event || c.CRM[0].Status != "pending" || c.CRM[0].DeliveredAt != nil ||
			c.CRM[0].NextAttempt == nil {
			t.Fatalf("call %s during the outage: crm %+v, want one pending %s", id, c.CRM, w.event)
		}
		if c.CRM[0].Attempts > 0 && (c.CRM[0].LastError == nil || !strings.Contains(*c.CRM[0].LastError, "503")) {
			t.Errorf("call %s: attempted %d times, lastError %v", id, c.CRM[0].Attempts, deref(c.CRM[0].LastError))
		}
	}
	if byStatus, _, attempts := p.outbox(t); byStatus["pending"] != len(want) || attempts == 0 {
		t.Fatalf("outbox during the outage: %v, %d attempts", byStatus, attempts)
	}

	p.whileOpen(t, openFor)

	// The CRM recovers: everything is delivered once the breaker lets a
	// probe through.
	p.crm.SetStatus(0)
	servicetest.Eventually(t, 30*time.Second, "every update delivered", func() bool {
		p.pushOutbox(p.in)
		byStatus, _, _ := p.outbox(t)
		return byStatus["delivered"] == len(want)
	})
	// Nothing is sent again, however often the outbox looks.
	sent := len(p.crm.Updates())
	holdsFor(t, 500*time.Millisecond, "no update sent after delivery", func() bool {
		p.pushOutbox(p.in)
		return len(p.crm.Updates()) == sent
	})
	p.checkDeliveredOnce(t, want)
	p.checkAllDelivered(t, p.in, want)
}

// whileOpen checks one whole open period of the CRM breaker: with every
// update due, the outbox sends nothing and spends no attempt; /metrics and
// the health check show the breaker open.
//
// An open breaker lets nothing through for openFor from when it opened. The
// test sees it not open (half-open, waiting for a probe) at some instant,
// lets a probe fail, and sees it open: the period lasts at least until that
// instant plus openFor. Whatever is observed within it was observed while
// the breaker was open; a look that ends later proves nothing and is made
// again.
func (p *peers) whileOpen(t *testing.T, openFor time.Duration) {
	t.Helper()
	for try := 1; try <= 5; try++ {
		var notOpen time.Time
		servicetest.Eventually(t, 10*time.Second, "the CRM breaker to wait for a probe", func() bool {
			at := time.Now()
			if p.crmBreaker(p.in) != gobreaker.StateOpen {
				notOpen = at
				return true
			}
			return false
		})
		// Every update is due: the probe fails and the breaker opens again.
		p.pushOutbox(p.in)
		servicetest.Eventually(t, 10*time.Second, "the CRM breaker to open again", func() bool {
			at := time.Now()
			if p.crmBreaker(p.in) == gobreaker.StateOpen {
				return true
			}
			notOpen = at
			return false
		})
		openUntil := notOpen.Add(openFor)
		servicetest.Eventually(t, 10*time.Second, "the probe's round to finish", func() bool {
			_, due, _ := p.outbox(t)
			return due == 0 && p.crm.InFlight() == 0
		})
		sent := p.crm.Count()
		_, _, attempts := p.outbox(t)
		before := p.in.Workers.Outbox.Counts()

		// Every update due again, with the breaker open: the outbox looks
		// again and again, and claims none of them (no hot loop).
		p.pushOutbox(p.in)
		servicetest.Eventually(t, 10*time.Second, "the outbox to look at the due updates a few times", func() bool {
			p.in.Workers.Outbox.Kick()
			return p.in.Workers.Outbox.Counts().Passes >= before.Passes+5
		})
		metric := p.in.Metric(t, "callqueue_breaker_state", `integration_id="`+p.key()+`"`, `peer="crm"`)
		code, h := p.health(t, p.in)
		sentAfter := p.crm.Count()
		_, _, attemptsAfter := p.outbox(t)
		after := p.in.Workers.Outbox.Counts()
		if p.crmBreaker(p.in) != gobreaker.StateOpen || time.Now().After(openUntil) {
			t.Logf("try %d: the open period ended before the checks did; again", try)
			continue
		}
		if sentAfter != sent {
			t.Fatalf("%d CRM requests sent while the breaker was open", sentAfter-sent)
		}
		if attemptsAfter != attempts {
			t.Fatalf("attempts went from %d to %d while the breaker was open", attempts, attemptsAfter)
		}
		if after.Claimed != before.Claimed {
			t.Fatalf("%d updates claimed over %d passes while the breaker was open", after.Claimed-before.Claimed,
				after.Passes-before.Passes)
		}
		if metric != 2 {
			t.Errorf(`callqueue_breaker_state{peer="crm"} = %v while open, want 2`, metric)
		}
		if code != http.StatusServiceUnavailable || h.Checks.CRM.OK || h.Checks.CRM.Kind != "webhook" || h.Checks.CRM.Breaker != "open" {
			t.Errorf("health while the CRM breaker is open: %d %+v", code, h)
		}
		return
	}
	t.Fatal("could not look at a whole open period of the CRM breaker")
}

// TestPeersCRMOutageAcrossRestarts: updates pending while the CRM is down
// survive a graceful shutdown and a crash; the process that is running when
// the CRM recovers delivers each of them once, under the same key.
func TestPeersCRMOutageAcrossRestarts(t *testing.T) {
	t.Parallel()
	const openFor = 300 * time.Millisecond
	p := setupPeers(t, servicetest.Options{BreakerOpenFor: openFor}, map[string]any{"concurrency_limit": 10, "max_attempts": 1})
	p.crm.SetStatus(http.StatusServiceUnavailable)
	want := p.driveCalls(t, p.in, 5, 2)
	servicetest.Eventually(t, 20*time.Second, "every update attempted once", func() bool {
		p.pushOutbox(p.in)
		return len(p.crm.Updates()) >= len(want)
	})

	// A graceful stop while the CRM is down.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.in.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if byStatus, _, _ := p.outbox(t); byStatus["pending"] != len(want) {
		t.Fatalf("outbox after shutdown: %v", byStatus)
	}

	// The next process tries, the CRM is still down, and it crashes.
	second := p.env.Start(servicetest.Options{BreakerOpenFor: openFor})
	before := len(p.crm.Updates())
	servicetest.Eventually(t, 20*time.Second, "the second process to try", func() bool {
		p.pushOutbox(second)
		return len(p.crm.Updates()) >= before+2
	})
	second.Kill()

	// The third finds the CRM back.
	third := p.env.Start(servicetest.Options{BreakerOpenFor: openFor})
	admin := *p.admin
	admin.URL = third.URL
	p.admin = &admin
	p.crm.SetStatus(0)
	servicetest.Eventually(t, 30*time.Second, "every update delivered", func() bool {
		p.pushOutbox(third)
		byStatus, _, _ := p.outbox(t)
		return byStatus["delivered"] == len(want)
	})
	sent := len(p.crm.Updates())
	holdsFor(t, 500*time.Millisecond, "no update sent after delivery", func() bool {
		p.pushOutbox(third)
		return len(p.crm.Updates()) == sent
	})
	p.checkDeliveredOnce(t, want)
	p.checkAllDelivered(t, third, want)
}

// TestPeersCRMPermanentRejection: a 4xx from the CRM fails the update for
// good: it is not retried, it stays visible as failed with the CRM's reason,
// /metrics counts it, and it does not open the breaker (it says nothing
// about the CRM's health).
func TestPeersCRMPermanentRejection(t *testing.T) {
	t.Parallel()
	p := setupPeers(t, servicetest.Options{}, map[string]any{"max_attempts": 1})
	p.crm.SetUpdateStatus(http.StatusBadRequest)
	want := p.driveCalls(t, p.in, 1, 1)
	for id, w := range want {
		// lastError keeps the status, never the CRM's body ("unknown record").
		c := awaitCall(t, p.admin, id, "its CRM update failed", func(c peerCall) bool {
			return len(c.CRM) == 1 && c.CRM[0].Status == "failed"
		})
		d := c.CRM[0]
		if d.Event != w.event || d.Attempts != 1 || d.LastError == nil || !strings.Contains(*d.LastError, "400") ||
			strings.Contains(*d.LastError, "unknown record") || d.DeliveredAt != nil || d.NextAttempt != nil {
			t.Errorf("call %s: delivery %+v (lastError %s)", id, d, deref(d.LastError))
		}
	}
	sent := len(p.crm.Updates())
	if sent != len(want) {
		t.Fatalf("%d update requests for %d updates", sent, len(want))
	}
	holdsFor(t, 500*time.Millisecond, "a rejected update not retried", func() bool {
		p.pushOutbox(p.in)
		return len(p.crm.Updates()) == sent
	})
	if v := p.in.Metric(t, "callqueue_crm_outbox", `status="failed"`); v != float64(len(want)) {
		t.Errorf(`callqueue_crm_outbox{status="failed"} = %v, want %d`, v, len(want))
	}
	if v := p.in.Metric(t, "callqueue_crm_outbox", `status="pending"`); v != 0 {
		t.Errorf(`callqueue_crm_outbox{status="pending"} = %v, want 0`, v)
	}
	if v := p.in.Metric(t, "callqueue_integration_crm_deliveries_total", `integration_id="`+p.key()+`"`, `result="failed"`); v != float64(len(want)) {
		t.Errorf(`callqueue_crm_deliveries_total{result="failed"} = %v, want %d`, v, len(want))
	}
	if code, h := p.health(t, p.in); code != http.StatusOK || !h.Checks.CRM.OK || p.crmBreaker(p.in) != gobreaker.StateClosed {
		t.Errorf("a rejection moved the CRM breaker: health %d %+v", code, h)
	}
}

type agentInitAnswer struct {
	Type string         `json:"type"`
	Vars map[string]any `json:"dynamic_variables"`
}

// agentInit posts agent-init and returns its status, answer and how long
// it took.
func agentInit(t *testing.T, in *servicetest.Instance, integ servicetest.Integration, body map[string]any) (int, agentInitAnswer, time.Duration) {
	t.Helper()
	var a agentInitAnswer
	start := time.Now()
	code := servicetest.Webhook(t, in, integ, "agent-init", body, &a)
	return code, a, time.Since(start)
}

// checkDateVariables checks the date, time and weekday of the test clock
// (2026-01-21 12:39:12 UTC) in Kyiv.
func checkDateVariables(t *testing.T, a agentInitAnswer) {
	t.Helper()
	if a.Type != "conversation_initiation_client_data" || a.Vars["today_is"] != "21.01.2026" || a.Vars["time"] != "14:39:12" ||
		a.Vars["weekday"] != "Середа" {
		t.Errorf("agent-init answer %+v", a)
	}
}

// TestPeersAgentInitCRMHangs: agent-init answers within its deadline when
// the CRM hangs, with the date variables and the CRM variables empty; once the
// CRM's breaker is open it answers at once, without asking the CRM.
func TestPeersAgentInitCRMHangs(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	fake := servicetest.NewFakeCRM(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Agent init", nil, nil)
	admin.UseWebhookCRM(integ, fake)
	const deadline = 300 * time.Millisecond
	admin.PutConfig(integ, "agent", map[string]any{"timezone": "Europe/Kyiv", "locale": "uk-UA", "init_deadline_ms": deadline.Milliseconds()})
	fake.AddRecord("+380501000000", servicetest.CRMRecord{ID: "r-0", Fields: map[string]any{"Name": "Ігор", "Company": "ACME"}})
	fake.Hang()

	// ElevenLabs' own body for an inbound call; the CRM is asked, and hangs.
	// Each lookup that times out counts against the CRM's breaker, which
	// opens after five.
	key := integ.ID.String()
	for i := 0; in.CRM.Breakers().State(key) != gobreaker.StateOpen; i++ {
		if i == 20 {
			t.Fatalf("the CRM breaker still %s after %d agent-inits timed out on it", in.CRM.Breakers().State(key), i)
		}
		caller := fmt.Sprintf("+38050100000%d", i)
		code, a, took := agentInit(t, in, integ, map[string]any{"caller_id": caller, "agent_id": "a1",
			"called_number": "+380441112233", "call_sid": fmt.Sprintf("CA%d", i)})
		if code != http.StatusOK || took > time.Second {
			t.Fatalf("agent-init with a hanging CRM: %d after %s (deadline %s)", code, took, deadline)
		}
		checkDateVariables(t, a)
		if a.Vars["phone_number"] != caller {
			t.Errorf("phone_number = %v, want %s", a.Vars["phone_number"], caller)
		}
		// Every mapped variable is there, empty: ElevenLabs refuses a
		// conversation that lacks one its agent uses.
		for _, k := range []string{"client_name", "company", "lead_source"} {
			if v, ok := a.Vars[k]; !ok || v != "" {
				t.Errorf("CRM variable %s = %v (present %v) although the CRM never answered, want \"\": %+v", k, v, ok, a.Vars)
			}
		}
	}
	if n := len(fake.Lookups()); n < 5 {
		t.Fatalf("the breaker opened after %d lookups", n)
	}
	if v := in.Metric(t, "callqueue_breaker_state", `integration_id="`+key+`"`, `peer="crm"`); v != 2 {
		t.Errorf(`callqueue_breaker_state{peer="crm"} = %v with the breaker open`, v)
	}
	lookups := len(fake.Lookups())
	code, a, took := agentInit(t, in, integ, map[string]any{"phone_number": "+380509999999"})
	if code != http.StatusOK || took >= deadline {
		t.Fatalf("agent-init with the CRM breaker open: %d after %s, want 200 before the %s deadline", code, took, deadline)
	}
	checkDateVariables(t, a)
	if a.Vars["phone_number"] != "+380509999999" || a.Vars["client_name"] != "" {
		t.Errorf("answer with the breaker open: %+v", a.Vars)
	}
	if n := len(fake.Lookups()); n != lookups {
		t.Errorf("the CRM was asked %d times with its breaker open", n-lookups)
	}
}

// TestPeersAgentInitWarmed: an outbound call's caller is looked up in the
// CRM when it is dialled; its agent-init then makes no CRM request of its
// own — even when it comes while that lookup is still under way — and
// answers the CRM's fields through crm_fields, with the call's own
// variables.
func TestPeersAgentInitWarmed(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	fake := servicetest.NewFakeCRM(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Warm", va, nil)
	admin.UseWebhookCRM(integ, fake)
	admin.PutConfig(integ, "crm_fields", map[string]any{"phone": "Телефон", "name": "ПІБ", "company": "Компанія",
		"source": "Джерело", "status": "Статус", "budget": "Бюджет"})
	const phone = "+380931234567"
	fake.AddRecord(phone, servicetest.CRMRecord{ID: "r-1", Fields: map[string]any{"ПІБ": "Олена Петренко",
		"Компанія": "ACME", "Джерело": "Facebook", "Бюджет": "5000", "Name": "not mapped"}})
	// A CRM search takes a while; the callee may answer before it is done.
	fake.SetLookupDelay(400 * time.Millisecond)

	id := originateOn(t, in, integ, map[string]any{"phone_number": phone, "dynamic_variables": map[string]any{"campaign": "winter"}})
	if o := va.Next(t, 5*time.Second); o.Call() != id.String() {
		t.Fatalf("dialled %s, want %s", o.CallID, id)
	}
	servicetest.Eventually(t, 5*time.Second, "the lookup at dial time", func() bool { return len(fake.Lookups()) == 1 })
	if got := fake.Lookups()[0].Query.Get("phone"); got != phone {
		t.Fatalf("looked up %q, want %s", got, phone)
	}

	// ElevenLabs' body for an outbound call: caller_id is our line.
	for range 2 {
		code, a, _ := agentInit(t, in, integ, map[string]any{"caller_id": "+380441112233", "agent_id": "a1",
			"called_number": phone, "call_sid": "CA1"})
		if code != http.StatusOK {
			t.Fatalf("agent-init: %d", code)
		}
		checkDateVariables(t, a)
		wantVars := map[string]any{"client_name": "Олена Петренко", "company": "ACME", "lead_source": "Facebook", "budget": "5000",
			"campaign": "winter", "phone_number": phone, "call_id": id.String()}
		for k, v := range wantVars {
			if a.Vars[k] != v {
				t.Errorf("agent-init %s = %v, want %v (answer %+v)", k, a.Vars[k], v, a.Vars)
			}
		}
		if n := len(fake.Lookups()); n != 1 {
			t.Fatalf("agent-init made its own CRM lookup: %d lookups", n)
		}
	}
}

// TestPeersAgentInitOutboundCRMHangs: the agent-init of an outbound call
// whose CRM lookup (started at dial time) hangs still answers within its
// deadline with the call's own variables, asking the CRM nothing more —
// whichever of ElevenLabs' caller_id and called_number is the callee.
func TestPeersAgentInitOutboundCRMHangs(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	fake := servicetest.NewFakeCRM(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Agent init outbound", va, nil)
	admin.UseWebhookCRM(integ, fake)
	const deadline = 300 * time.Millisecond
	admin.PutConfig(integ, "agent", map[string]any{"timezone": "Europe/Kyiv", "locale": "uk-UA", "init_deadline_ms": deadline.Milliseconds()})
	const phone = "+380731234567"
	fake.AddRecord(phone, servicetest.CRMRecord{ID: "r-1", Fields: map[string]any{"Name": "Олена"}})
	fake.Hang()

	id := originateOn(t, in, integ, map[string]any{"phone_number": phone, "dynamic_variables": map[string]any{"campaign": "winter"}})
	va.Next(t, 5*time.Second)
	servicetest.Eventually(t, 5*time.Second, "the lookup at dial time", func() bool { return len(fake.Lookups()) == 1 })

	for _, body := range []map[string]any{
		{"caller_id": "+380441112233", "agent_id": "a1", "called_number": phone, "call_sid": "CA1"},
		{"caller_id": phone, "agent_id": "a1", "called_number": "+380441112233", "call_sid": "CA1"},
		{"phone_number": phone},
	} {
		code, a, took := agentInit(t, in, integ, body)
		if code != http.StatusOK || took > time.Second {
			t.Fatalf("agent-init %v with a hanging CRM: %d after %s (deadline %s)", body, code, took, deadline)
		}
		checkDateVariables(t, a)
		if a.Vars["call_id"] != id.String() || a.Vars["campaign"] != "winter" || a.Vars["phone_number"] != phone || a.Vars["client_name"] != "" {
			t.Errorf("agent-init %v: %+v, want the call's own variables and the CRM ones empty", body, a.Vars)
		}
	}
	if n := len(fake.Lookups()); n != 1 {
		t.Errorf("%d CRM lookups, want only the one made at dial time: %+v", n, fake.Lookups())
	}
}

// elevenLabsWorld is an integration dialling through the fake ElevenLabs
// (via twilio) with a limit of one call.
func elevenLabsWorld(t *testing.T) (*servicetest.Instance, *servicetest.Admin, servicetest.Integration, *servicetest.FakeElevenLabs) {
	t.Helper()
	env := servicetest.New(t)
	el := servicetest.NewFakeElevenLabs(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("ElevenLabs", nil, map[string]any{"concurrency_limit": 1, "retry_delays_secs": []int{600}})
	integ = admin.UseElevenLabs(integ, el, "twilio")
	if integ.Status != "active" {
		t.Fatalf("integration status = %s once the ElevenLabs voice config and key are set", integ.Status)
	}
	return in, admin, integ, el
}

// TestPeersInitiationFailure: ElevenLabs' call_initiation_failure (busy,
// no-answer) ends the attempt: the call is scheduled for a retry with that
// outcome, its history says why, and its slot goes to the next call at once.
func TestPeersInitiationFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ reason, outcome string }{{"busy", "busy"}, {"no-answer", "no_answer"}} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			in, admin, integ, el := elevenLabsWorld(t)
			first := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000001"})
			dialled := el.Next(t, 5*time.Second)
			if dialled.DynamicVariables["call_id"] != first.String()+".1" {
				t.Fatalf("first dial %+v", dialled)
			}
			awaitDialled(t, admin, first)
			second := originateOn(t, in, integ, map[string]any{"phone_number": "+380660000002"})
			awaitStatus(t, admin, second, "queued")
			holdsFor(t, 300*time.Millisecond, "the second call waiting for the slot", func() bool {
				return len(el.Calls()) == 1 && getCall(t, admin, second).Status == "queued"
			})

			start := time.Now()
			postcall(t, in, integ, map[string]any{"type": "call_initiation_failure", "event_timestamp": 1768999152, "data": map[string]any{
				"agent_id": "a1", "conversation_id": dialled.ConversationID, "failure_reason": tc.reason,
				"metadata": map[string]any{"type": "twilio", "body": map[string]any{"CallSid": dialled.CallSid,
					"CallStatus": tc.reason, "To": "+380660000001", "From": "+380441112233"}},
			}})
			c := awaitStatus(t, admin, first, "retry_scheduled")
			if deref(c.Outcome) != tc.outcome || c.NextRetryAt == nil || c.Attempt != 1 {
				t.Errorf("after %s: %+v, outcome %s", tc.reason, c.Call, deref(c.Outcome))
			}
			last := c.Events[len(c.Events)-1]
			var detail map[string]any
			_ = json.Unmarshal(last.Detail, &detail)
			if last.Kind != "initiation_failed" || detail["failureReason"] != tc.reason || detail["outcome"] != tc.outcome ||
				deref(last.ToStatus) != "retry_scheduled" {
				t.Errorf("last history entry %s %s", last.Kind, last.Detail)
			}
			next := el.Next(t, 5*time.Second)
			if next.DynamicVariables["call_id"] != second.String()+".1" {
				t.Fatalf("the freed slot dialled %+v, want %s", next, second)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the second call was dialled %s after the first failed", took)
			}
			awaitDialled(t, admin, second)
		})
	}
}

// TestPeersElevenLabsDialler: ElevenLabs dials; the call holds its slot
// until ElevenLabs' post-call webhook, matched by the conversation_id from
// the dial's answer, completes it; then the next call is dialled.
func TestPeersElevenLabsDialler(t *testing.T) {
	t.Parallel()
	in, admin, integ, el := elevenLabsWorld(t)
	first := originateOn(t, in, integ, map[string]any{"phone_number": "+380670000001", "dynamic_variables": map[string]any{
		"client_name": "Іван", "visits": 3, "tags": []string{"vip"}}})
	dialled := el.Next(t, 5*time.Second)
	// (The test's clock stands still: calls queued together are equals.)
	second := originateOn(t, in, integ, map[string]any{"phone_number": "+380670000002"})
	if dialled.Route != "twilio" || dialled.AgentID != "a1" || dialled.AgentPhoneNumberID != "p1" || dialled.ToNumber != "+380670000001" {
		t.Errorf("outbound call %+v", dialled)
	}
	if v := dialled.DynamicVariables; v["call_id"] != first.String()+".1" || v["phone_number"] != "+380670000001" ||
		v["client_name"] != "Іван" || v["visits"] != 3.0 || v["tags"] != `["vip"]` {
		t.Errorf("dynamic variables %+v", v)
	}
	c := awaitDialled(t, admin, first)
	awaitStatus(t, admin, second, "queued")
	if deref(c.ConversationID) != dialled.ConversationID || deref(c.ExternalCallID) != dialled.CallSid {
		t.Errorf("dialled call: conversation %s, external id %s; ElevenLabs answered %s, %s",
			deref(c.ConversationID), deref(c.ExternalCallID), dialled.ConversationID, dialled.CallSid)
	}
	holdsFor(t, 300*time.Millisecond, "the second call waiting for the slot", func() bool {
		return len(el.Calls()) == 1 && getCall(t, admin, second).Status == "queued"
	})
	var stats store.Stats
	admin.Do("GET", "/api/integrations/"+integ.ID.String()+"/stats", nil, &stats)
	if stats.Active != 1 || stats.Queued != 1 || stats.Limit != 1 {
		t.Errorf("stats while the first call holds the slot: %+v", stats)
	}

	// No VA events: ElevenLabs' post-call ends the call. It carries no
	// call_id, so the conversation_id is what links it.
	postcall(t, in, integ, transcription(dialled.ConversationID, 52, elAnalysis("Іван підтвердив запис", nil), nil))
	c = awaitStatus(t, admin, first, "completed")
	if deref(c.Summary) != "Іван підтвердив запис" || deref(c.Outcome) != "completed" || verdictOf(c) != "success" {
		t.Errorf("completed call %+v", c.Call)
	}
	next := el.Next(t, 5*time.Second)
	if next.DynamicVariables["call_id"] != second.String()+".1" {
		t.Fatalf("the freed slot dialled %+v, want %s", next, second)
	}
	awaitDialled(t, admin, second)
}

// TestPeersLLMAnalysis: with an LLM configured, a completed call's outcome,
// summary and extracted fields are the LLM's, and the CRM update carries
// them; when the LLM fails, ElevenLabs' own analysis is used instead.
func TestPeersLLMAnalysis(t *testing.T) {
	t.Parallel()
	p := setupPeers(t, servicetest.Options{}, nil)
	llm := servicetest.NewFakeLLM(t)
	p.admin.PutConfig(p.integ, "analysis", map[string]any{"base_url": llm.BaseURL(), "model": "m", "prompt": "p", "fields": []string{"budget"}})
	p.admin.AddSecret(p.integ, "LLM_API_KEY", servicetest.FakeLLMKey)

	complete := func(i int) (uuid.UUID, peerCall, map[string]any) {
		t.Helper()
		id := originateOn(t, p.in, p.integ, map[string]any{"phone_number": fmt.Sprintf("+38063000000%d", i)})
		awaitDialled(t, p.admin, id)
		conv := fmt.Sprintf("conv-llm-%d", i)
		callEvent(t, p.in, p.integ, map[string]any{"eventType": "call_end", "callId": id, "conversation_id": conv, "duration": 30})
		awaitStatus(t, p.admin, id, "waiting_postcall")
		postcall(t, p.in, p.integ, transcription(conv, 30, elAnalysis("Підсумок від ElevenLabs", map[string]any{"budget": "100"}), nil))
		c := awaitCall(t, p.admin, id, "completed and its CRM update delivered", func(c peerCall) bool {
			return c.Status == "completed" && len(c.CRM) == 1 && c.CRM[0].Status == "delivered"
		})
		updates := p.crm.Where(func(r servicetest.CRMRequest) bool {
			return r.Path == "/update" && strings.Contains(string(r.Body), id.String())
		})
		if len(updates) != 1 {
			t.Fatalf("call %s: %d CRM updates", id, len(updates))
		}
		return id, c, updates[0].JSON(t)
	}
	analysisOf := func(c peerCall) map[string]any {
		var a map[string]any
		if err := json.Unmarshal(c.Analysis, &a); err != nil {
			t.Fatalf("analysis %s: %v", c.Analysis, err)
		}
		return a
	}

	llm.SetContent(t, map[string]any{"outcome": "interested", "summary": "Клієнт зацікавлений, бюджет 5000", "budget": 5000, "other": "x"})
	_, c, update := complete(1)
	if deref(c.Outcome) != "completed" || verdictOf(c) != "interested" || deref(c.Summary) != "Клієнт зацікавлений, бюджет 5000" {
		t.Errorf("call analysed by the LLM: outcome %s, verdict %s, summary %s", deref(c.Outcome), verdictOf(c), deref(c.Summary))
	}
	if a := analysisOf(c); a["source"] != "llm" || !jsonEqual(a["extracted"], map[string]any{"budget": 5000}) {
		t.Errorf("stored analysis %s", c.Analysis)
	}
	if update["outcome"] != "completed" || updateVerdict(update) != "interested" || update["summary"] != "Клієнт зацікавлений, бюджет 5000" ||
		!jsonEqual(update["extracted"], map[string]any{"budget": 5000}) {
		t.Errorf("CRM update %v", update)
	}
	reqs := llm.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d LLM requests", len(reqs))
	}
	r := reqs[0]
	if r.Model != "m" || r.Authorization != "Bearer "+servicetest.FakeLLMKey || r.ResponseFormat.Type != "json_object" || len(r.Messages) != 2 ||
		r.Messages[0].Role != "system" || !strings.HasPrefix(r.Messages[0].Content, "p") || !strings.Contains(r.Messages[0].Content, `["budget"]`) ||
		r.Messages[1].Role != "user" || !strings.Contains(r.Messages[1].Content, "user: Так, слухаю. Бюджет у нас п'ять тисяч.") {
		t.Errorf("LLM request %+v", r)
	}

	// The LLM is down: ElevenLabs' analysis stands.
	llm.SetStatus(http.StatusInternalServerError)
	_, c, update = complete(2)
	if n := len(llm.Requests()); n != 2 {
		t.Fatalf("the LLM was asked %d times, want 2", n)
	}
	if deref(c.Outcome) != "completed" || verdictOf(c) != "success" || deref(c.Summary) != "Підсумок від ElevenLabs" {
		t.Errorf("call with the LLM down: outcome %s, verdict %s, summary %s", deref(c.Outcome), verdictOf(c), deref(c.Summary))
	}
	if a := analysisOf(c); a["source"] != "elevenlabs" || !jsonEqual(a["extracted"], map[string]any{"budget": "100"}) {
		t.Errorf("stored analysis %s", c.Analysis)
	}
	if update["outcome"] != "completed" || updateVerdict(update) != "success" || update["summary"] != "Підсумок від ElevenLabs" ||
		!jsonEqual(update["extracted"], map[string]any{"budget": "100"}) {
		t.Errorf("CRM update %v", update)
	}
}

func jsonEqual(a, b any) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return slices.Equal(ra, rb)
}
