package api_test

import (
	"net/http"
	"testing"

	"github.com/callqueue/callqueue/store"
)

// Text Postgres cannot store (U+0000 anywhere, invalid UTF-8 in a query
// or path) is a 422 naming the field, in every body and query parameter of
// the admin API, and changes nothing; in an upload it rejects the row.
func TestAdminTextPostgresCannotStore(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Text"})
	camp := decodeAs[store.Campaign](t, w.a.do(t, "POST", integrationPath(in, "/campaigns"), map[string]any{"name": "Spring"}).
		expect(t, http.StatusCreated))
	for _, c := range []struct {
		method, path string
		body         any
		field        string
	}{
		{"POST", "/api/integrations", `{"name":"A\u0000B"}`, "name"},
		{"POST", "/api/integrations", `{"name":"ok","agentPrompt":"p\u0000"}`, "agentPrompt"},
		{"POST", "/api/integrations", `{"name":"ok","elevenLabsAgentId":"\u0000"}`, "elevenLabsAgentId"},
		{"POST", "/api/integrations", `{"name":"ok","saasAssistantName":"\u0000"}`, "saasAssistantName"},
		{"POST", "/api/integrations", `{"name":"ok","phoneNumber":"\u0000"}`, "phoneNumber"},
		{"POST", "/api/integrations", `{"name":"ok","voiceAssistantSipId":"\u0000"}`, "voiceAssistantSipId"},
		{"PATCH", integrationPath(in), `{"name":"A\u0000B"}`, "name"},
		{"PUT", integrationPath(in), `{"name":"ok","agentPrompt":"\u0000"}`, "agentPrompt"},
		{"PUT", integrationPath(in, "/config/notes"), `{"a":["\u0000"]}`, "a[0]"},
		{"PUT", integrationPath(in, "/config/no%00te"), `{"a":1}`, "key"},
		{"PUT", integrationPath(in, "/config/no%FFte"), `{"a":1}`, "key"},
		{"POST", integrationPath(in, "/secrets"), `{"key":"K\u0000","value":"v"}`, "key"},
		{"POST", "/api/core/secrets", `{"integration":"\u0000","key":"K","value":"v"}`, "integration"},
		{"POST", "/api/handlers", `{"integrationId":"` + in.ID.String() + `","name":"retry","defaultArgs":{"x":"\u0000"}}`,
			"defaultArgs.x"},
		{"PATCH", "/api/campaigns/" + camp.ID.String(), `{"name":"\u0000"}`, "name"},
		{"GET", "/api/integrations?search=%00", nil, "search"},
		{"GET", "/api/integrations?search=%FF", nil, "search"},
		{"GET", "/api/calls?phone=%00", nil, "phone"},
		{"GET", "/api/calls?outcome=x%00", nil, "outcome"},
		{"GET", "/api/core/secrets?integration=%00", nil, "integration"},
		{"GET", "/api/dead-letters?reason=%00", nil, "reason"},
	} {
		e := expectFieldError(t, w.a.do(t, c.method, c.path, c.body), http.StatusUnprocessableEntity, c.field)
		if e.Code != "invalid_value" {
			t.Errorf("%s %s: code %q, want invalid_value", c.method, c.path, e.Code)
		}
	}
	list := decodeAs[[]store.Integration](t, w.a.do(t, "GET", "/api/integrations", nil).expect(t, http.StatusOK))
	if len(list) != 1 || list[0].Name != "Text" {
		t.Fatalf("refused requests changed the integrations: %+v", list)
	}

	path := "/api/campaigns/" + camp.ID.String() + "/recipients"
	got := decodeAs[upload](t, w.a.do(t, "POST", path, `[{"phoneNumber":"+380991234567","dynamicVariables":{"name":"I\u0000ra"}},`+
		`{"phoneNumber":"+380991234568"}]`).expect(t, http.StatusOK))
	if got.Added != 1 || len(got.Rejected) != 1 || got.Rejected[0].Row != 1 || got.Rejected[0].Field != "dynamicVariables.name" {
		t.Fatalf("JSON upload with a NUL: %+v", got)
	}
	got = decodeAs[upload](t, w.a.csv(t, "POST", path, "phone_number,company\n+380671234567,Ac\x00me\n+380671234568,Acme\n+380671234569,caf\xe9\n").
		expect(t, http.StatusOK))
	if got.Added != 1 || len(got.Rejected) != 2 || got.Rejected[0].Row != 1 || got.Rejected[0].Field != "company" ||
		got.Rejected[1].Row != 3 || got.Rejected[1].Field != "company" {
		t.Fatalf("CSV upload with a NUL: %+v", got)
	}
	expectFieldError(t, w.a.csv(t, "POST", path, "phone_number,com\x00pany\n+380671234560,Acme\n"), http.StatusUnprocessableEntity, "company")
}
