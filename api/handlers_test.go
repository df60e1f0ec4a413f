package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/callqueue/callqueue/api"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/webhooks"
)

func handlersOf(t testing.TB, c client, in store.Integration) []store.Handler {
	t.Helper()
	return decodeAs[[]store.Handler](t, c.do(t, "GET", "/api/handlers?integrationId="+in.ID.String(), nil).expect(t, http.StatusOK))
}

func handlerNames(list []store.Handler) []string {
	out := []string{}
	for _, h := range list {
		out = append(out, h.Name)
	}
	return out
}

type invokeAnswer struct {
	Success bool            `json:"success"`
	Handler string          `json:"handler"`
	Result  json.RawMessage `json:"result"`
}

func invoke(t testing.TB, c client, id uuid.UUID, args any) invokeAnswer {
	t.Helper()
	a := decodeAs[invokeAnswer](t, c.do(t, "POST", "/api/handlers/"+id.String()+"/invoke", map[string]any{"args": args}).expect(t, http.StatusOK))
	if !a.Success {
		t.Fatalf("invoke %s: %+v", id, a)
	}
	return a
}

func createHandler(t testing.TB, c client, in store.Integration, name string, args any) store.Handler {
	t.Helper()
	return decodeAs[store.Handler](t, c.do(t, "POST", "/api/handlers",
		map[string]any{"integrationId": in.ID, "name": name, "defaultArgs": args}).expect(t, http.StatusCreated))
}

// TestSeedIntegrationFlow is seed 000's "full example" with the seed's
// field names and status codes: create an integration, read it, add
// secrets through /api/core/secrets, list them, create a handler, list
// handlers, invoke it (a call is really queued and dialled), update the
// integration and delete it.
func TestSeedIntegrationFlow(t *testing.T) {
	t.Parallel()
	w := setup(t)
	// 1. Create.
	created := w.a.do(t, "POST", "/api/integrations", map[string]any{"name": "telegram"}).expect(t, http.StatusCreated)
	if keys := keysOf(t, created.body); !slices.Contains(keys, "ownerId") || !slices.Contains(keys, "agentPrompt") ||
		!slices.Contains(keys, "voiceAssistantSipId") || !slices.Contains(keys, "createdAt") {
		t.Fatalf("integration fields %v", keys)
	}
	integ := decodeAs[store.Integration](t, created)
	// 2. Read.
	if got := getIntegration(t, w.a, integ); got.Name != "telegram" || got.OwnerID != ownerA {
		t.Fatalf("get = %+v", got)
	}
	// 3. Secrets by integration name; VA_AUTH_TOKEN makes the dialler whole.
	putVoice(t, w.a, integ, w.va)
	for key, value := range map[string]string{"bot_token": "your-bot-token", "api_id": "your-api-id", "VA_AUTH_TOKEN": servicetest.FakeVAToken} {
		w.a.do(t, "POST", "/api/core/secrets", map[string]any{"integration": integ.Name, "key": key, "value": value}).expect(t, http.StatusCreated)
	}
	// 4. List them.
	secrets := decodeAs[[]store.Secret](t, w.a.do(t, "GET", "/api/core/secrets?integration="+integ.Name, nil).expect(t, http.StatusOK))
	if len(secrets) != 3 || strings.Contains(string(w.a.do(t, "GET", "/api/core/secrets?integration="+integ.Name, nil).body), "your-bot-token") {
		t.Fatalf("secrets %+v", secrets)
	}
	// 5. A handler named after a built-in, with seed 000's handler options
	// (retries, timeout in ms) beside the payload.
	hr := w.a.do(t, "POST", "/api/handlers", map[string]any{"integrationId": integ.ID, "name": "call-originate",
		"defaultArgs": map[string]any{"priority": 3, "dynamic_variables": map[string]any{"lead_source": "Facebook"},
			"retries": 3, "timeout": 5000}}).expect(t, http.StatusCreated)
	if keys := keysOf(t, hr.body); !slices.Equal(keys, []string{"createdAt", "defaultArgs", "id", "integrationId", "name", "updatedAt"}) {
		t.Fatalf("handler fields %v", keys)
	}
	handler := decodeAs[store.Handler](t, hr)
	// 6. List handlers.
	if list := handlersOf(t, w.a, integ); len(list) != 1 || list[0].ID != handler.ID || !jsonEqual(t, list[0].DefaultArgs,
		`{"priority": 3, "dynamic_variables": {"lead_source": "Facebook"}, "retries": 3, "timeout": 5000}`) {
		t.Fatalf("handlers %+v", list)
	}
	// 7. Invoke: args overlay defaultArgs, objects merge; the options steer
	// the run and are not part of the call-originate body (which refuses
	// unknown fields).
	a := invoke(t, w.a, handler.ID, map[string]any{"phone_number": "+380991234567", "dynamic_variables": map[string]any{"client_name": "Іван"}})
	var res struct {
		Success bool      `json:"success"`
		CallID  uuid.UUID `json:"callId"`
	}
	if err := json.Unmarshal(a.Result, &res); err != nil || a.Handler != "call-originate" || !res.Success || res.CallID == uuid.Nil {
		t.Fatalf("invoke answer %+v (%s)", a, a.Result)
	}
	var listed []store.Call
	servicetest.Eventually(t, waitFor, "the invoked call in GET /api/calls", func() bool {
		listed = decodeAs[[]store.Call](t, w.a.do(t, "GET", "/api/calls?integrationId="+integ.ID.String(), nil).expect(t, http.StatusOK))
		return len(listed) == 1
	})
	if listed[0].ID != res.CallID || listed[0].PhoneNumber != "+380991234567" || listed[0].Priority != 3 ||
		!jsonEqual(t, listed[0].DynamicVariables, `{"lead_source": "Facebook", "client_name": "Іван"}`) {
		t.Fatalf("queued call %+v", listed[0])
	}
	dial := w.va.Next(t, waitFor)
	if dial.Call() != res.CallID.String() || dial.DynamicVariables["lead_source"] != "Facebook" {
		t.Fatalf("dial %+v", dial)
	}
	// 8. Update the integration.
	if up := decodeAs[store.Integration](t, w.a.do(t, "PATCH", integrationPath(integ), map[string]any{"name": "telegram-prod"}).
		expect(t, http.StatusOK)); up.Name != "telegram-prod" {
		t.Fatalf("updated %+v", up)
	}
	// 9. Delete it, and its handlers with it.
	if !jsonEqual(t, w.a.do(t, "DELETE", integrationPath(integ), nil).expect(t, http.StatusOK).body, `{"success": true}`) {
		t.Fatal("delete answer")
	}
	expectError(t, w.a.do(t, "GET", "/api/handlers/"+handler.ID.String(), nil), http.StatusNotFound)
	expectFieldError(t, w.a.do(t, "GET", "/api/handlers?integrationId="+integ.ID.String(), nil), http.StatusNotFound, "integrationId")
}

// TestHandlersRegistry covers the nested aliases, names the registry
// accepts and refuses, conflicts, ownership and the audit log.
func TestHandlersRegistry(t *testing.T) {
	t.Parallel()
	w := setup(t)
	one := createIntegration(t, w.a, map[string]any{"name": "Registry one"})
	two := createIntegration(t, w.a, map[string]any{"name": "Registry two"})
	theirs := createIntegration(t, w.b, map[string]any{"name": "Registry theirs"})

	// Seed names, built-in or not, are accepted.
	for _, name := range []string{"message.received", "order-created", "health"} {
		createHandler(t, w.a, one, name, nil)
	}
	nested := decodeAs[store.Handler](t, w.a.do(t, "POST", integrationPath(one, "/handlers"),
		map[string]any{"name": "call-originate", "defaultArgs": map[string]any{"timeout": 5000}}).expect(t, http.StatusCreated))
	if nested.IntegrationID != one.ID {
		t.Fatalf("nested create: %+v", nested)
	}
	expectFieldError(t, w.a.do(t, "POST", integrationPath(one, "/handlers"), map[string]any{"name": "health"}), http.StatusConflict, "name")
	createHandler(t, w.a, two, "health", map[string]any{}) // another integration may use the name

	if got := handlerNames(decodeAs[[]store.Handler](t, w.a.do(t, "GET", integrationPath(one, "/handlers"), nil).expect(t, http.StatusOK))); !slices.Equal(got,
		[]string{"message.received", "order-created", "health", "call-originate"}) {
		t.Fatalf("nested list %v", got)
	}
	if all := decodeAs[[]store.Handler](t, w.a.do(t, "GET", "/api/handlers", nil).expect(t, http.StatusOK)); len(all) != 5 {
		t.Fatalf("all of A's handlers: %v", handlerNames(all))
	}
	if all := decodeAs[[]store.Handler](t, w.b.do(t, "GET", "/api/handlers", nil).expect(t, http.StatusOK)); len(all) != 0 {
		t.Fatalf("B sees %v", handlerNames(all))
	}

	// PATCH replaces defaultArgs; PUT (nested) likewise; a GET's echo is accepted.
	got := decodeAs[store.Handler](t, w.a.do(t, "GET", "/api/handlers/"+nested.ID.String(), nil).expect(t, http.StatusOK))
	var echo map[string]any
	_ = json.Unmarshal(w.a.do(t, "GET", "/api/handlers/"+nested.ID.String(), nil).body, &echo)
	echo["defaultArgs"] = map[string]any{"retries": 3}
	up := decodeAs[store.Handler](t, w.a.do(t, "PATCH", "/api/handlers/"+nested.ID.String(), echo).expect(t, http.StatusOK))
	if !jsonEqual(t, up.DefaultArgs, `{"retries": 3}`) || up.Name != got.Name || !up.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("patched %+v", up)
	}
	up = decodeAs[store.Handler](t, w.a.do(t, "PUT", integrationPath(one, "/handlers/", nested.ID.String()),
		map[string]any{"name": "originate"}).expect(t, http.StatusOK))
	if up.Name != "originate" || !jsonEqual(t, up.DefaultArgs, `{"retries": 3}`) {
		t.Fatalf("put %+v", up)
	}
	up = decodeAs[store.Handler](t, w.a.do(t, "PATCH", "/api/handlers/"+nested.ID.String(), map[string]any{"defaultArgs": nil}).expect(t, http.StatusOK))
	if !jsonEqual(t, up.DefaultArgs, `{}`) {
		t.Fatalf("defaultArgs null = %s, want {}", up.DefaultArgs)
	}
	expectFieldError(t, w.a.do(t, "PATCH", "/api/handlers/"+nested.ID.String(), map[string]any{"integrationId": two.ID}),
		http.StatusUnprocessableEntity, "integrationId")
	expectFieldError(t, w.a.do(t, "PATCH", "/api/handlers/"+nested.ID.String(), map[string]any{"name": "health"}), http.StatusConflict, "name")
	// The nested routes need the handler to be the integration's.
	expectError(t, w.a.do(t, "PUT", integrationPath(two, "/handlers/", nested.ID.String()), map[string]any{"name": "x"}), http.StatusNotFound)
	expectError(t, w.a.do(t, "DELETE", integrationPath(two, "/handlers/", nested.ID.String()), nil), http.StatusNotFound)
	// Another owner's integration is a 404, however addressed.
	expectFieldError(t, w.a.do(t, "POST", "/api/handlers", map[string]any{"integrationId": theirs.ID, "name": "x"}), http.StatusNotFound, "integrationId")
	expectError(t, w.a.do(t, "POST", integrationPath(theirs, "/handlers"), map[string]any{"name": "x"}), http.StatusNotFound)

	w.a.do(t, "DELETE", integrationPath(one, "/handlers/", nested.ID.String()), nil).expect(t, http.StatusOK)
	expectError(t, w.a.do(t, "DELETE", "/api/handlers/"+nested.ID.String(), nil), http.StatusNotFound)

	// The audit log names every change of a handler.
	entries := decodeAs[[]store.AuditEntry](t, w.a.do(t, "GET", integrationPath(one, "/audit-logs?limit=100"), nil).expect(t, http.StatusOK))
	var handlerChanges []string
	for _, e := range slices.Backward(entries) {
		if e.Resource == "handler" && e.ResourceID != nil && *e.ResourceID == nested.ID.String() {
			handlerChanges = append(handlerChanges, e.Action)
			if e.Actor != ownerA {
				t.Errorf("audit actor %q", e.Actor)
			}
		}
	}
	if !slices.Equal(handlerChanges, []string{"create", "update", "update", "update", "delete"}) {
		t.Fatalf("audit of the handler: %v", handlerChanges)
	}
}

// TestInvokeBuiltins runs each built-in through invoke against a real
// process and checks what it did.
func TestInvokeBuiltins(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := activeIntegration(t, w.a, w.va, "Invoke", map[string]any{"concurrency_limit": 1})
	handlers := map[string]store.Handler{}
	for _, name := range webhooks.Builtins {
		handlers[name] = createHandler(t, w.a, in, name, nil)
	}

	// call-originate, with the Idempotency-Key header passed through.
	var calls [2]uuid.UUID
	for i := range calls {
		req, _ := http.NewRequest("POST", w.inst.URL+"/api/handlers/"+handlers["call-originate"].ID.String()+"/invoke",
			strings.NewReader(`{"args": {"phone_number": "+380991110002"}}`))
		req.Header.Set("Authorization", "Bearer "+w.a.token)
		req.Header.Set("Idempotency-Key", "invoke-key-1")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var a invokeAnswer
		var res struct {
			CallID uuid.UUID `json:"callId"`
		}
		if json.NewDecoder(resp.Body).Decode(&a) != nil || json.Unmarshal(a.Result, &res) != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("invoke with Idempotency-Key: %d %+v", resp.StatusCode, a)
		}
		_ = resp.Body.Close()
		calls[i] = res.CallID
	}
	if calls[0] != calls[1] {
		t.Fatalf("the same Idempotency-Key made two calls: %v", calls)
	}
	// The first originate holds the only slot.
	first := w.va.Next(t, waitFor)

	// call-events moves the dialled call on, addressed by the VA's id.
	a := invoke(t, w.a, handlers["call-events"].ID, map[string]any{"eventType": "call_start", "callId": first.CallID, "conversation_id": "conv-invoke"})
	if !jsonEqual(t, a.Result, `{"success": true}`) {
		t.Fatalf("call-events result %s", a.Result)
	}
	id := uuid.MustParse(first.Call())
	waitCallStatus(t, w.a, id, "in_progress")

	// agent-init answers with the caller's context.
	a = invoke(t, w.a, handlers["agent-init"].ID, map[string]any{"phone_number": getCall(t, w.a, id).PhoneNumber})
	var clientData struct {
		Type string         `json:"type"`
		Vars map[string]any `json:"dynamic_variables"`
	}
	if json.Unmarshal(a.Result, &clientData) != nil || clientData.Type != "conversation_initiation_client_data" ||
		clientData.Vars["call_id"] != first.Call() || clientData.Vars["weekday"] != "Середа" {
		t.Fatalf("agent-init result %s", a.Result)
	}

	// call-events ends it; agent-postcall completes it.
	w.va.End(first.CallID)
	invoke(t, w.a, handlers["call-events"].ID, map[string]any{"eventType": "call_end", "callId": first.CallID, "duration": 42})
	waitCallStatus(t, w.a, id, "waiting_postcall")
	a = invoke(t, w.a, handlers["agent-postcall"].ID, map[string]any{"type": "post_call_transcription", "event_timestamp": 1705845552,
		"data": map[string]any{"agent_id": "agent_abc123", "conversation_id": "conv-invoke", "status": "done",
			"transcript": []any{map[string]any{"role": "agent", "message": "Привіт!", "time_in_call_secs": 0}},
			"metadata":   map[string]any{"call_duration_secs": 42, "termination_reason": "user_ended_call"},
			"analysis":   map[string]any{"call_successful": "success", "transcript_summary": "Клієнт погодився"}}})
	if !jsonEqual(t, a.Result, `{"success": true}`) {
		t.Fatalf("agent-postcall result %s", a.Result)
	}
	waitCallStatus(t, w.a, id, "completed")

	// retry: a call due for retry goes back to the queue.
	a = invoke(t, w.a, handlers["retry"].ID, nil)
	if !jsonEqual(t, a.Result, `{"success": true, "processed": 0}`) {
		t.Fatalf("retry result %s", a.Result)
	}
	// setup fills what is missing (the test helper set call_handling and voice).
	a = invoke(t, w.a, handlers["setup"].ID, nil)
	var setupRes struct {
		Created []string `json:"created"`
		Status  string   `json:"status"`
	}
	if json.Unmarshal(a.Result, &setupRes) != nil || !slices.Equal(setupRes.Created, []string{"config:crm_fields", "config:crm", "config:agent",
		"secret:ELEVENLABS_WEBHOOK_SECRET", "secret:LLM_API_KEY"}) || setupRes.Status != store.StatusActive {
		t.Fatalf("setup result %s", a.Result)
	}
	// health reports the checks, whatever their state.
	a = invoke(t, w.a, handlers["health"].ID, nil)
	var health struct {
		Status string                    `json:"status"`
		Checks map[string]map[string]any `json:"checks"`
	}
	if json.Unmarshal(a.Result, &health) != nil || health.Status != "ok" || health.Checks["voice"]["ok"] != true {
		t.Fatalf("health result %s", a.Result)
	}

	// A name that is not a built-in is in the registry but cannot run.
	other := createHandler(t, w.a, in, "message.received", map[string]any{"retries": 3})
	e := expectError(t, w.a.do(t, "POST", "/api/handlers/"+other.ID.String()+"/invoke", map[string]any{"args": map[string]any{}}),
		http.StatusUnprocessableEntity)
	if e.Code != "unknown_handler" || !strings.Contains(e.Message, "call-originate") {
		t.Fatalf("unknown handler error %+v", e)
	}
	// Another owner cannot run A's handler.
	expectError(t, w.b.do(t, "POST", "/api/handlers/"+handlers["retry"].ID.String()+"/invoke", map[string]any{}), http.StatusNotFound)
}

// foreignSpec is another service's OpenAPI 3.0 document that exercises
// seed 000's three example priorities, a $ref, a parameterised path and
// two methods on one path, minified onto one line.
const foreignSpec = `{"openapi":"3.0.3","info":{"title":"sofa","version":"1"},"paths":{
"/webhook/webinar-agent-init":{"post":{"requestBody":{"content":{"application/json":{
  "example":{"phone_number":"+380991234567"},
  "schema":{"type":"object","example":{"phone_number":"not this"},"properties":{"phone_number":{"type":"string","example":"nor this"}}}}}}}},
"/webhook/webinar-call-events":{"post":{"requestBody":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/CallEvent"}}}}}},
"/webhook/webinar-postcall":{"post":{"requestBody":{"content":{"application/json":{"schema":{"type":"object",
  "example":{"conversation_id":"conv-1","ok":true},"properties":{"conversation_id":{"type":"string","example":"not this"}}}}}}}},
"/orders/{orderId}":{"patch":{"operationId":"updateOrder","requestBody":{"content":{"application/json":{"schema":{"type":"object",
  "properties":{"status":{"type":"string","enum":["paid","sent"]},"items":{"type":"array"},"meta":{"type":"object","properties":{"source":{"type":"string","default":"crm"}}}}}}}}},
  "get":{"operationId":"getOrder"}},
"/setup":{"post":{"responses":{"200":{"description":"ok"}}}},
"/health":{"get":{"responses":{"200":{"description":"ok"}}}}},
"components":{"schemas":{"CallEvent":{"type":"object","properties":{
  "event_type":{"type":"string"},"call_id":{"type":"string"},"duration":{"type":"integer","default":0},"test":{"type":"boolean","example":true}}}}}}`

type syncAnswer struct {
	Success  bool `json:"success"`
	Created  int  `json:"created"`
	Updated  int  `json:"updated"`
	Handlers []struct {
		ID     uuid.UUID       `json:"id"`
		Name   string          `json:"name"`
		Method string          `json:"method"`
		URL    string          `json:"url"`
		Body   json.RawMessage `json:"body"`
		Order  int             `json:"order"`
	} `json:"handlers"`
}

// TestSyncHandlersForeignSpec syncs from another service (httptest) and
// checks names, methods, urls, order and the body example priorities.
func TestSyncHandlersForeignSpec(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Sync foreign"})
	spec := foreignSpec
	var fetched []string
	peer := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fetched = append(fetched, r.URL.Path)
		switch r.URL.Path {
		case "/sofa/openapi.json":
			rw.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(rw, spec)
		case "/broken/openapi.json":
			_, _ = io.WriteString(rw, `{"openapi": "3.1.0", "paths": {`)
		case "/swagger/openapi.json":
			_, _ = io.WriteString(rw, `{"swagger": "2.0", "info": {"title": "x", "version": "1"}, "paths": {}}`)
		case "/notjson/openapi.json":
			_, _ = io.WriteString(rw, `<html>not a spec</html>`)
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(peer.Close)
	existing := createHandler(t, w.a, in, "health", map[string]any{"kept": "id"})

	r := w.a.do(t, "POST", integrationPath(in, "/sync-handlers"), map[string]any{"integrationName": "sofa", "baseUrl": peer.URL + "/"})
	ans := decodeAs[syncAnswer](t, r.expect(t, http.StatusOK))
	if !ans.Success || ans.Created != 6 || ans.Updated != 1 {
		t.Fatalf("sync: %s", r.body)
	}
	want := []struct{ name, method, url, body string }{
		{"webinar-agent-init", "POST", "sofa/webhook/webinar-agent-init", `{"phone_number": "+380991234567"}`}, // (1) media example
		{"webinar-call-events", "POST", "sofa/webhook/webinar-call-events",
			`{"event_type": "string", "call_id": "string", "duration": 0, "test": true}`}, // (3) from properties, via $ref
		{"webinar-postcall", "POST", "sofa/webhook/webinar-postcall", `{"conversation_id": "conv-1", "ok": true}`}, // (2) schema example
		{"updateOrder", "PATCH", "sofa/orders/{orderId}", `{"status": "paid", "items": [], "meta": {"source": "crm"}}`},
		{"getOrder", "GET", "sofa/orders/{orderId}", `null`},
		{"setup", "POST", "sofa/setup", `null`},
		{"health", "GET", "sofa/health", `null`},
	}
	if len(ans.Handlers) != len(want) {
		t.Fatalf("handlers %s", r.body)
	}
	for i, h := range ans.Handlers {
		wh := want[i]
		if h.Name != wh.name || h.Method != wh.method || h.URL != wh.url || h.Order != i || !jsonEqual(t, h.Body, wh.body) {
			t.Errorf("handler %d = %s %s %s %s (order %d), want %+v", i, h.Name, h.Method, h.URL, h.Body, h.Order, wh)
		}
	}
	if ans.Handlers[6].ID != existing.ID {
		t.Errorf("health was recreated, not updated")
	}
	// The handlers hold the request they describe.
	stored := handlersOf(t, w.a, in)
	if len(stored) != 7 || !jsonEqual(t, stored[1].DefaultArgs,
		`{"method": "POST", "url": "sofa/webhook/webinar-agent-init", "body": {"phone_number": "+380991234567"}}`) {
		t.Fatalf("stored %v / %s", handlerNames(stored), stored[1].DefaultArgs)
	}
	// Syncing again updates, creates nothing.
	again := decodeAs[syncAnswer](t, w.a.do(t, "POST", integrationPath(in, "/sync-handlers"),
		map[string]any{"integrationName": "sofa", "baseUrl": peer.URL}).expect(t, http.StatusOK))
	if again.Created != 0 || again.Updated != 7 || again.Handlers[0].ID != ans.Handlers[0].ID {
		t.Fatalf("second sync %+v", again)
	}

	// What cannot be fetched is a 502, what cannot be read a 422; neither changes anything.
	before := string(w.a.do(t, "GET", integrationPath(in, "/handlers"), nil).body)
	audit := string(w.a.do(t, "GET", integrationPath(in, "/audit-logs"), nil).body)
	spec = strings.Replace(foreignSpec, `"/setup"`, `"/setup-changed"`, 1) // would change something if it were read
	for _, c := range []struct {
		name, base string
		status     int
	}{
		{"missing", "nothing-here", http.StatusBadGateway},
		{"unparseable", "broken", http.StatusUnprocessableEntity},
		{"swagger 2", "swagger", http.StatusUnprocessableEntity},
		{"not json", "notjson", http.StatusUnprocessableEntity},
	} {
		e := expectError(t, w.a.do(t, "POST", integrationPath(in, "/sync-handlers"), map[string]any{"integrationName": c.base, "baseUrl": peer.URL}), c.status)
		if c.status == http.StatusBadGateway && e.Code != "spec_unavailable" || c.status == 422 && e.Code != "invalid_spec" {
			t.Errorf("%s: code %q", c.name, e.Code)
		}
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	expectError(t, w.a.do(t, "POST", integrationPath(in, "/sync-handlers"), map[string]any{"integrationName": "sofa", "baseUrl": closed.URL}),
		http.StatusBadGateway)
	if after := string(w.a.do(t, "GET", integrationPath(in, "/handlers"), nil).body); after != before {
		t.Fatalf("a failed sync changed the handlers:\n%s\nwas\n%s", after, before)
	}
	if after := string(w.a.do(t, "GET", integrationPath(in, "/audit-logs"), nil).body); after != audit {
		t.Fatal("a failed sync wrote the audit log")
	}
	if !slices.Contains(fetched, "/broken/openapi.json") || !slices.Contains(fetched, "/nothing-here/openapi.json") {
		t.Fatalf("fetched %v", fetched)
	}
}

// TestSyncHandlersOwnSpec syncs from callqueue's own /{slug}/openapi.json
// (the default baseUrl is the request's), then invokes a synced handler:
// its body example, overlaid by args, queues a call.
func TestSyncHandlersOwnSpec(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Sync own"})
	r := w.a.do(t, "POST", integrationPath(in, "/sync-handlers"), map[string]any{"integrationName": in.Slug})
	ans := decodeAs[syncAnswer](t, r.expect(t, http.StatusOK))
	var got []string
	for _, h := range ans.Handlers {
		got = append(got, h.Method+" "+h.Name+" "+h.URL)
	}
	s := in.Slug
	want := []string{"POST call-originate " + s + "/webhook/call-originate", "POST call-events " + s + "/webhook/call-events",
		"POST agent-init " + s + "/webhook/agent-init", "POST agent-postcall " + s + "/webhook/agent-postcall",
		"POST setup " + s + "/setup", "GET health " + s + "/health", "POST trigger " + s + "/cron/trigger",
		"GET openapi.json " + s + "/openapi.json", "GET docs " + s + "/docs"}
	if !slices.Equal(got, want) || ans.Created != 9 || ans.Updated != 0 {
		t.Fatalf("synced %v (%d created, %d updated), want %v", got, ans.Created, ans.Updated, want)
	}
	var example map[string]any
	if err := json.Unmarshal(ans.Handlers[0].Body, &example); err != nil || example["phone_number"] != "+380994829573" {
		t.Fatalf("call-originate body %s", ans.Handlers[0].Body)
	}
	if string(ans.Handlers[5].Body) != "null" {
		t.Fatalf("health body %s", ans.Handlers[5].Body)
	}

	// Invoking the synced call-originate: args overlay the example body.
	a := invoke(t, w.a, ans.Handlers[0].ID, map[string]any{"phone_number": "+380990001122", "record_id": nil})
	var res struct {
		CallID uuid.UUID `json:"callId"`
	}
	if err := json.Unmarshal(a.Result, &res); err != nil {
		t.Fatal(err)
	}
	var c store.Call
	servicetest.Eventually(t, waitFor, "the synced handler's call", func() bool {
		r := w.a.do(t, "GET", "/api/calls/"+res.CallID.String(), nil)
		if r.status != http.StatusOK {
			return false
		}
		c = decodeAs[store.Call](t, r)
		return true
	})
	if c.PhoneNumber != "+380990001122" || c.RecordID != nil || !strings.Contains(string(c.DynamicVariables), "Іван") {
		t.Fatalf("call from the synced handler %+v %s", c, c.DynamicVariables)
	}
	// A body error names its place in args.
	expectFieldError(t, w.a.do(t, "POST", "/api/handlers/"+ans.Handlers[0].ID.String()+"/invoke",
		map[string]any{"args": map[string]any{"body": map[string]any{"phone_number": "x"}}}), http.StatusUnprocessableEntity, "args.body.phone_number")
	expectFieldError(t, w.a.do(t, "POST", "/api/handlers/"+ans.Handlers[0].ID.String()+"/invoke",
		map[string]any{"args": map[string]any{"phone_number": "x"}}), http.StatusUnprocessableEntity, "args.phone_number")
}

// validateOpenAPI checks a document against the OpenAPI schema and its
// examples against their schemas.
func validateOpenAPI(t *testing.T, raw []byte) (libopenapi.Document, *v3.Document) {
	t.Helper()
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("invalid OpenAPI: %s: %s %v", e.Message, e.Reason, e.SchemaValidationErrors)
		}
		t.FailNow()
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	sv := schema_validation.NewSchemaValidator(config.WithFormatAssertions())
	check := func(where string, m *v3.MediaType) {
		if m == nil || m.Example == nil || m.Schema == nil {
			return
		}
		var ex any
		if err := m.Example.Decode(&ex); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		b, _ := json.Marshal(ex)
		if ok, verrs := sv.ValidateSchemaString(m.Schema.Schema(), string(b)); !ok {
			for _, e := range verrs {
				t.Errorf("%s: example %.200s does not match its schema: %s", where, b, e.Reason)
			}
		}
	}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			if op.RequestBody != nil {
				check(method+" "+path+" request", op.RequestBody.Content.GetOrZero("application/json"))
			}
			for code, resp := range op.Responses.Codes.FromOldest() {
				if resp.Content != nil {
					check(method+" "+path+" "+code, resp.Content.GetOrZero("application/json"))
				}
			}
		}
	}
	for name, resp := range model.Model.Components.Responses.FromOldest() {
		check("response "+name, resp.Content.GetOrZero("application/json"))
	}
	return doc, &model.Model
}

// TestAdminOpenAPI: GET /api/openapi.json needs no token, is a valid
// OpenAPI 3.1 document of every registered route with bearer auth and the
// error schema, and what the API answers matches it.
func TestAdminOpenAPI(t *testing.T) {
	t.Parallel()
	w := setup(t)
	r := send(t, "GET", w.inst.URL+api.OpenAPIPath, nil, nil).expect(t, http.StatusOK)
	doc, model := validateOpenAPI(t, r.body)
	if doc.GetVersion() != "3.1.0" || model.Servers[0].URL != w.inst.URL {
		t.Fatalf("version %s, servers %+v", doc.GetVersion(), model.Servers)
	}
	documented := map[string]bool{}
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			pattern := strings.ToUpper(method) + " " + path
			documented[pattern] = true
			if op.Summary == "" || op.Summary == pattern {
				t.Errorf("%s has no documentation of its own (add it to adminDocs)", pattern)
			}
			if pattern != "GET "+api.OpenAPIPath && pattern != "GET "+api.DocsPath {
				if op.Responses.Codes.GetOrZero("401") == nil {
					t.Errorf("%s documents no 401", pattern)
				}
				if strings.Contains(path, "{") && op.Responses.Codes.GetOrZero("404") == nil {
					t.Errorf("%s documents no 404", pattern)
				}
			}
		}
	}
	// The docs page's own scripts and styles are not operations.
	var registered []string
	for _, p := range registeredPatterns(t) {
		if p != "GET "+api.DocsPath+"/assets/{file}" {
			registered = append(registered, p)
		}
	}
	for _, p := range registered {
		if !documented[p] {
			t.Errorf("route %s is not in /api/openapi.json", p)
		}
	}
	if len(documented) != len(registered) {
		t.Errorf("documented %d operations, registered %d", len(documented), len(registered))
	}
	bearer := model.Components.SecuritySchemes.GetOrZero("bearerAuth")
	if bearer == nil || bearer.Type != "http" || bearer.Scheme != "bearer" || model.Components.Schemas.GetOrZero("Error") == nil {
		t.Fatal("no bearer scheme or error schema")
	}

	// Real answers match the document.
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	check := func(method, path string, body any, status int) response {
		t.Helper()
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		req, _ := http.NewRequest(method, w.inst.URL+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+w.a.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, got)
		}
		resp.Body = io.NopCloser(bytes.NewReader(got))
		req.Body = io.NopCloser(bytes.NewReader(raw))
		validate := v.ValidateHttpRequestResponse
		if status >= 400 {
			validate = v.ValidateHttpResponse // the request is wrong on purpose
		}
		if ok, verrs := validate(req, resp); !ok {
			for _, e := range verrs {
				t.Errorf("%s %s: %s: %s %v; answer %.300s", method, path, e.Message, e.Reason, e.SchemaValidationErrors, got)
			}
		}
		return response{status: resp.StatusCode, body: got}
	}
	in := decodeAs[store.Integration](t, check("POST", "/api/integrations", map[string]any{"name": "Documented", "agentPrompt": "Hi"}, 201))
	check("GET", "/api/integrations", nil, 200)
	check("GET", integrationPath(in), nil, 200)
	check("PATCH", integrationPath(in), map[string]any{"phoneNumber": "+380441234567"}, 200)
	check("GET", integrationPath(in, "/config"), nil, 200)
	check("POST", integrationPath(in, "/secrets"), map[string]any{"key": "VA_AUTH_TOKEN", "value": "va-secret-value"}, 201)
	h := decodeAs[store.Handler](t, check("POST", "/api/handlers", map[string]any{"integrationId": in.ID, "name": "call-originate",
		"defaultArgs": map[string]any{"priority": 1}}, 201))
	check("GET", "/api/handlers?integrationId="+in.ID.String(), nil, 200)
	check("PATCH", "/api/handlers/"+h.ID.String(), map[string]any{"defaultArgs": map[string]any{"priority": 2}}, 200)
	check("POST", "/api/handlers/"+h.ID.String()+"/invoke", map[string]any{"args": map[string]any{"phone_number": "+380991230000"}}, 200)
	check("POST", integrationPath(in, "/sync-handlers"), map[string]any{"integrationName": in.Slug}, 200)
	check("GET", "/api/calls?integrationId="+in.ID.String(), nil, 200)
	check("GET", integrationPath(in, "/stats"), nil, 200)
	check("GET", integrationPath(in, "/audit-logs"), nil, 200)
	check("GET", "/api/tokens", nil, 200)
	check("GET", "/api/handlers/"+uuid.NewString(), nil, 404)
	check("POST", "/api/handlers", map[string]any{"name": "x"}, 422)
	check("DELETE", "/api/handlers/"+h.ID.String(), nil, 200)
	check("DELETE", integrationPath(in), nil, 200)
}

// TestInvokeHandlerOptions checks seed 002's handler options: bounded when
// a handler is stored and when args carry them, never passed to the
// built-in, and a run that outlives its timeout answers 504.
func TestInvokeHandlerOptions(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "options"})
	base := integrationPath(in, "/handlers")
	for _, tt := range []struct {
		args  map[string]any
		field string
	}{
		{map[string]any{"retries": 21}, "defaultArgs.retries"},
		{map[string]any{"retries": -1}, "defaultArgs.retries"},
		{map[string]any{"retries": 1.5}, "defaultArgs.retries"},
		{map[string]any{"timeout": "5s"}, "defaultArgs.timeout"},
		{map[string]any{"timeout": 0}, "defaultArgs.timeout"},
		{map[string]any{"timeout": 300001}, "defaultArgs.timeout"},
	} {
		expectFieldError(t, w.a.do(t, "POST", base, map[string]any{"name": "call-originate", "defaultArgs": tt.args}),
			http.StatusUnprocessableEntity, tt.field)
	}
	if list := handlersOf(t, w.a, in); len(list) != 0 {
		t.Fatalf("refused handlers were stored: %+v", list)
	}
	h := createHandler(t, w.a, in, "call-originate", map[string]any{"retries": 2})
	expectFieldError(t, w.a.do(t, "POST", "/api/handlers/"+h.ID.String()+"/invoke", map[string]any{"args": map[string]any{"timeout": 0}}),
		http.StatusUnprocessableEntity, "args.timeout")
	// Options in args override the handler's; the rest is the body.
	a := invoke(t, w.a, h.ID, map[string]any{"phone_number": "+380991230001", "retries": 0, "timeout": 10000})
	var res struct {
		CallID uuid.UUID `json:"callId"`
	}
	if err := json.Unmarshal(a.Result, &res); err != nil || res.CallID == uuid.Nil {
		t.Fatalf("invoke answer %s", a.Result)
	}
	// A body the built-in refuses is not repeated and names its field in args.
	expectFieldError(t, w.a.do(t, "POST", "/api/handlers/"+h.ID.String()+"/invoke", map[string]any{"args": map[string]any{"phone_number": ""}}),
		http.StatusUnprocessableEntity, "args.phone_number")
}
