package callerctx_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/config"
)

// TestAnswer: the answer ElevenLabs gets carries every variable the CRM
// mapping defines ("" when unknown), the date in the agent's timezone, the
// call's own variables over the CRM's, scalars only, no system__ names,
// and the override only when the integration turned it on.
func TestAnswer(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 21, 12, 39, 12, 0, time.UTC) // a Wednesday; 14:39 in Kyiv
	fields := config.CRMFields{"phone": "Phone", "status": "Status", "name": "Name", "company": "Company", "source": "Source", "city": "City"}
	agent := callerctx.Agent{Config: config.Agent{Timezone: "Europe/Kyiv"}, Prompt: "Be brief.", Fields: fields}
	tests := []struct {
		name   string
		caller callerctx.Caller
		want   map[string]any
	}{
		{"nothing known", callerctx.Caller{},
			map[string]any{"client_name": "", "company": "", "lead_source": "", "city": ""}},
		{"CRM record", callerctx.Caller{Vars: map[string]any{"client_name": "Олена", "city": "Львів", "visits": 3.0}},
			map[string]any{"client_name": "Олена", "company": "", "lead_source": "", "city": "Львів", "visits": 3.0}},
		{"call variables win", callerctx.Caller{Vars: map[string]any{"client_name": "Олена"}, CallID: "c-1",
			CallVars: json.RawMessage(`{"client_name":"Іван","campaign":"winter"}`)},
			map[string]any{"client_name": "Іван", "campaign": "winter", "call_id": "c-1", "company": ""}},
		{"system names dropped", callerctx.Caller{Vars: map[string]any{"system__time": "x"}, CallID: "c-2",
			CallVars: json.RawMessage(`{"system__call_sid":"CA1","ok":true}`)},
			map[string]any{"ok": true, "system__time": nil, "system__call_sid": nil}},
		{"large numbers exact", callerctx.Caller{CallID: "c-3", CallVars: json.RawMessage(`{"order_id":12345678901234567}`)},
			map[string]any{"order_id": json.Number("12345678901234567")}},
		{"nested values as JSON text", callerctx.Caller{Vars: map[string]any{"tags": []any{"vip"}, "crm": map[string]any{"id": 7.0}}},
			map[string]any{"tags": `["vip"]`, "crm": `{"id":7}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := callerctx.Answer(now, agent, "+380501234567", tc.caller)
			v := a.DynamicVariables
			if a.Type != "conversation_initiation_client_data" || v["today_is"] != "21.01.2026" || v["time"] != "14:39:12" ||
				v["weekday"] != "Середа" || v["phone_number"] != "+380501234567" {
				t.Errorf("answer %+v", a)
			}
			for k, want := range tc.want {
				got, ok := v[k]
				if want == nil {
					if ok {
						t.Errorf("%s = %v sent, want it left out", k, got)
					}
					continue
				}
				if !ok || got != want {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
				}
			}
			for _, k := range []string{"phone", "status", "Phone", "Name"} {
				if _, ok := v[k]; ok {
					t.Errorf("%s sent: not an agent variable", k)
				}
			}
			if a.ConversationConfig != nil {
				t.Errorf("override sent while off: %v", a.ConversationConfig)
			}
		})
	}
	on := agent
	on.Config.Override, on.Config.FirstMessage, on.Config.Language = true, "Добрий день!", "uk"
	a := callerctx.Answer(now, on, "+380501234567", callerctx.Caller{})
	got, _ := json.Marshal(a.ConversationConfig)
	if want := `{"agent":{"first_message":"Добрий день!","language":"uk","prompt":{"prompt":"Be brief."}}}`; string(got) != want {
		t.Errorf("override %s, want %s", got, want)
	}
	on.Prompt, on.Config.FirstMessage, on.Config.Language = "", "", ""
	if a := callerctx.Answer(now, on, "", callerctx.Caller{}); a.ConversationConfig != nil {
		t.Errorf("empty override sent: %v", a.ConversationConfig)
	}
}
