package config_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Kyiv even where the host has no zoneinfo

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/ratelimit"
)

// canonical re-encodes a JSON document so that documents equal in meaning
// compare equal as strings.
func canonical(t *testing.T, raw []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const (
	defaultCallHandling = `{"concurrency_limit":3,"min_call_duration_secs":5,"max_attempts":3,` +
		`"retry_delays_secs":[300,900,3600],"max_call_duration_secs":1800,"calling_window":null}`
	defaultVoice     = `{"provider":"va","base_url":"","sip_id":"","assistant_id":""}`
	defaultCRMFields = `{"phone":"Phone","name":"Name","company":"Company","source":"Source","status":"Status"}`
	defaultCRM       = `{"kind":"none"}`
	defaultAgent     = `{"timezone":"Europe/Kyiv","locale":"uk-UA"}`
)

func TestDefaultsMatchContract(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		config.KeyCallHandling: defaultCallHandling,
		config.KeyVoice:        defaultVoice,
		config.KeyCRMFields:    defaultCRMFields,
		config.KeyCRM:          defaultCRM,
		config.KeyAgent:        defaultAgent,
	}
	defaults := config.Defaults()
	if len(defaults) != len(config.KnownKeys) {
		t.Errorf("Defaults() has %d keys, KnownKeys %d", len(defaults), len(config.KnownKeys))
	}
	for _, key := range config.KnownKeys {
		if !config.IsKnown(key) {
			t.Errorf("IsKnown(%q) = false", key)
		}
		w, ok := want[key]
		if !ok {
			t.Errorf("no expected default for known key %q", key)
			continue
		}
		raw, err := json.Marshal(defaults[key])
		if err != nil {
			t.Fatal(err)
		}
		if got := canonical(t, raw); got != canonical(t, []byte(w)) {
			t.Errorf("default %s = %s, want %s", key, got, w)
		}
		// A default is itself a valid value.
		norm, err := config.Normalize(key, raw)
		if err != nil {
			t.Errorf("Normalize(%s, default) = %v", key, err)
		} else if canonical(t, norm) != canonical(t, raw) {
			t.Errorf("Normalize(%s, default) = %s, want %s", key, norm, raw)
		}
	}
	if config.IsKnown("my_custom_key") {
		t.Error(`IsKnown("my_custom_key") = true`)
	}
}

func TestDefaultsAreFreshCopies(t *testing.T) {
	t.Parallel()
	a := config.Defaults()
	a[config.KeyCRMFields].(config.CRMFields)["phone"] = "Changed"
	a[config.KeyCallHandling].(config.CallHandling).RetryDelaysSecs[0] = 1
	b := config.Defaults()
	if got := b[config.KeyCRMFields].(config.CRMFields)["phone"]; got != "Phone" {
		t.Errorf("crm_fields.phone = %q after mutating another copy", got)
	}
	if got := b[config.KeyCallHandling].(config.CallHandling).RetryDelaysSecs[0]; got != 300 {
		t.Errorf("retry_delays_secs[0] = %d after mutating another copy", got)
	}
}

func TestNormalizeValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		raw  string
		want string
	}{
		{"call_handling empty", config.KeyCallHandling, `{}`, defaultCallHandling},
		{
			"call_handling one field", config.KeyCallHandling, `{"concurrency_limit": 10}`,
			`{"concurrency_limit":10,"min_call_duration_secs":5,"max_attempts":3,"retry_delays_secs":[300,900,3600],"max_call_duration_secs":1800,"calling_window":null}`,
		},
		{
			"call_handling null delays keep the default", config.KeyCallHandling, `{"retry_delays_secs": null}`,
			defaultCallHandling,
		},
		{
			"call_handling own delays replace the default", config.KeyCallHandling, `{"retry_delays_secs": [60]}`,
			`{"concurrency_limit":3,"min_call_duration_secs":5,"max_attempts":3,"retry_delays_secs":[60],"max_call_duration_secs":1800,"calling_window":null}`,
		},
		{
			"call_handling bounds", config.KeyCallHandling,
			`{"concurrency_limit":1000,"min_call_duration_secs":0,"max_attempts":20,"retry_delays_secs":[0,2592000],"max_call_duration_secs":86400}`,
			`{"concurrency_limit":1000,"min_call_duration_secs":0,"max_attempts":20,"retry_delays_secs":[0,2592000],"max_call_duration_secs":86400,"calling_window":null}`,
		},
		{
			"call_handling lower bounds", config.KeyCallHandling, `{"concurrency_limit":1,"max_attempts":1}`,
			`{"concurrency_limit":1,"min_call_duration_secs":5,"max_attempts":1,"retry_delays_secs":[300,900,3600],"max_call_duration_secs":1800,"calling_window":null}`,
		},
		{
			"call_handling with the contract's calling window", config.KeyCallHandling,
			`{"calling_window": {"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": [1,2,3,4,5]}}`,
			`{"concurrency_limit":3,"min_call_duration_secs":5,"max_attempts":3,"retry_delays_secs":[300,900,3600],"max_call_duration_secs":1800,` +
				`"calling_window":{"timezone":"Europe/Kyiv","start":"09:00","end":"20:00","days":[1,2,3,4,5]}}`,
		},
		{
			"call_handling window across midnight, weekend", config.KeyCallHandling,
			`{"calling_window": {"timezone": "UTC", "start": "22:00", "end": "06:00", "days": [6,7]}}`,
			`{"concurrency_limit":3,"min_call_duration_secs":5,"max_attempts":3,"retry_delays_secs":[300,900,3600],"max_call_duration_secs":1800,` +
				`"calling_window":{"timezone":"UTC","start":"22:00","end":"06:00","days":[6,7]}}`,
		},
		{
			"call_handling window on every day", config.KeyCallHandling,
			`{"calling_window": {"timezone": "Europe/Kyiv", "start": "00:00", "end": "23:59"}}`,
			`{"concurrency_limit":3,"min_call_duration_secs":5,"max_attempts":3,"retry_delays_secs":[300,900,3600],"max_call_duration_secs":1800,` +
				`"calling_window":{"timezone":"Europe/Kyiv","start":"00:00","end":"23:59","days":null}}`,
		},
		{
			"call_handling explicit null window", config.KeyCallHandling, `{"calling_window": null}`, defaultCallHandling,
		},
		{"voice empty", config.KeyVoice, `{}`, defaultVoice},
		{
			"voice va", config.KeyVoice, `{"base_url": "https://va.example.com/api", "sip_id": "sip-7", "assistant_id": "a1"}`,
			`{"provider":"va","base_url":"https://va.example.com/api","sip_id":"sip-7","assistant_id":"a1"}`,
		},
		{
			"voice va over http", config.KeyVoice, `{"provider": "va", "base_url": "http://10.0.0.5:8000"}`,
			`{"provider":"va","base_url":"http://10.0.0.5:8000","sip_id":"","assistant_id":""}`,
		},
		{
			"voice elevenlabs sip trunk", config.KeyVoice,
			`{"provider": "elevenlabs", "base_url": "https://api.elevenlabs.io", "agent_id": "ag", "agent_phone_number_id": "pn", "via": "sip_trunk"}`,
			`{"provider":"elevenlabs","base_url":"https://api.elevenlabs.io","sip_id":"","assistant_id":"","agent_id":"ag","agent_phone_number_id":"pn","via":"sip_trunk"}`,
		},
		{
			"voice elevenlabs ring timeout", config.KeyVoice, `{"provider": "elevenlabs", "via": "twilio", "ring_timeout_secs": 30}`,
			`{"provider":"elevenlabs","base_url":"","sip_id":"","assistant_id":"","via":"twilio","ring_timeout_secs":30}`,
		},
		{
			"voice elevenlabs twilio", config.KeyVoice, `{"provider": "elevenlabs", "via": "twilio"}`,
			`{"provider":"elevenlabs","base_url":"","sip_id":"","assistant_id":"","via":"twilio"}`,
		},
		{
			"voice simulator defaults", config.KeyVoice, `{"provider": "simulator"}`,
			`{"provider":"simulator","base_url":"","sip_id":"","assistant_id":"","answer":0.6,"short":0.1,"no_answer":0.2,"busy":0.1,` +
				`"talk_secs":[20,120],"ring_secs":[2,8],"speed":10}`,
		},
		{
			"voice simulator seeded, only answers", config.KeyVoice,
			`{"provider": "simulator", "answer": 1, "short": 0, "no_answer": 0, "busy": 0, "talk_secs": [5, 5], "speed": 1000, "seed": 7}`,
			`{"provider":"simulator","base_url":"","sip_id":"","assistant_id":"","answer":1,"short":0,"no_answer":0,"busy":0,` +
				`"talk_secs":[5,5],"ring_secs":[2,8],"speed":1000,"seed":7}`,
		},
		{"crm_fields empty", config.KeyCRMFields, `{}`, defaultCRMFields},
		{
			"crm_fields override and extra", config.KeyCRMFields, `{"phone": "Телефон", "city": "Місто"}`,
			`{"phone":"Телефон","name":"Name","company":"Company","source":"Source","status":"Status","city":"Місто"}`,
		},
		{"crm empty", config.KeyCRM, `{}`, defaultCRM},
		{"crm none", config.KeyCRM, `{"kind": "none"}`, defaultCRM},
		{
			"crm nethunt", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f-1", "base_url": "https://nethunt.com/api/v1/zapier"}`,
			`{"kind":"nethunt","folder_id":"f-1","base_url":"https://nethunt.com/api/v1/zapier"}`,
		},
		{
			"crm nethunt without base_url", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f-1"}`,
			`{"kind":"nethunt","folder_id":"f-1"}`,
		},
		{
			"crm nethunt with status labels and call log", config.KeyCRM,
			`{"kind": "nethunt", "folder_id": "f-1", "status_values": {"completed": "Called", "no_answer": "No answer"}, "call_log": true}`,
			`{"kind":"nethunt","folder_id":"f-1","status_values":{"completed":"Called","no_answer":"No answer"},"call_log":true}`,
		},
		{
			"crm webhook", config.KeyCRM, `{"kind": "webhook", "lookup_url": "https://crm.example/lookup", "update_url": "https://crm.example/update"}`,
			`{"kind":"webhook","lookup_url":"https://crm.example/lookup","update_url":"https://crm.example/update"}`,
		},
		{
			"crm webhook without lookup", config.KeyCRM, `{"kind": "webhook", "update_url": "http://crm.internal:9000/u"}`,
			`{"kind":"webhook","update_url":"http://crm.internal:9000/u"}`,
		},
		{"agent empty", config.KeyAgent, `{}`, defaultAgent},
		{"agent other zone", config.KeyAgent, `{"timezone": "UTC", "locale": "en-US"}`, `{"timezone":"UTC","locale":"en-US"}`},
		{"agent locale only", config.KeyAgent, `{"locale": "ru-RU"}`, `{"timezone":"Europe/Kyiv","locale":"ru-RU"}`},
		{"whitespace around the value", config.KeyAgent, " \n{\"locale\": \"en-GB\"}\n ", `{"timezone":"Europe/Kyiv","locale":"en-GB"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Normalize(tt.key, json.RawMessage(tt.raw))
			if err != nil {
				t.Fatalf("Normalize(%s, %s) = %v", tt.key, tt.raw, err)
			}
			if canonical(t, got) != canonical(t, []byte(tt.want)) {
				t.Errorf("Normalize(%s, %s)\n got %s\nwant %s", tt.key, tt.raw, got, tt.want)
			}
			// Normalizing is idempotent: what is stored reads back the same.
			again, err := config.Normalize(tt.key, got)
			if err != nil {
				t.Fatalf("Normalize of its own output: %v", err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("Normalize is not idempotent:\n first %s\nsecond %s", got, again)
			}
		})
	}
}

func TestNormalizeInvalid(t *testing.T) {
	t.Parallel()
	window := func(fields string) string {
		return `{"calling_window": {` + fields + `}}`
	}
	tests := []struct {
		name  string
		key   string
		raw   string
		field string
	}{
		// call_handling values
		{"concurrency_limit zero", config.KeyCallHandling, `{"concurrency_limit": 0}`, "concurrency_limit"},
		{"concurrency_limit negative", config.KeyCallHandling, `{"concurrency_limit": -1}`, "concurrency_limit"},
		{"concurrency_limit too high", config.KeyCallHandling, `{"concurrency_limit": 1001}`, "concurrency_limit"},
		{"min_call_duration_secs negative", config.KeyCallHandling, `{"min_call_duration_secs": -1}`, "min_call_duration_secs"},
		{"max_attempts zero", config.KeyCallHandling, `{"max_attempts": 0}`, "max_attempts"},
		{"max_attempts too high", config.KeyCallHandling, `{"max_attempts": 21}`, "max_attempts"},
		{"min_call_duration_secs too high", config.KeyCallHandling, `{"min_call_duration_secs": 601}`, "min_call_duration_secs"},
		{"max_call_duration_secs too high", config.KeyCallHandling, `{"max_call_duration_secs": 86401}`, "max_call_duration_secs"},
		{"max_call_duration_secs above int4", config.KeyCallHandling, `{"max_call_duration_secs": 3000000000}`, "max_call_duration_secs"},
		{"retry delay above 30 days", config.KeyCallHandling, `{"retry_delays_secs": [300, 2592001]}`, "retry_delays_secs[1]"},
		{"retry delay overflowing a Duration", config.KeyCallHandling, `{"retry_delays_secs": [9300000000000]}`, "retry_delays_secs[0]"},
		{"too many retry delays", config.KeyCallHandling, `{"retry_delays_secs": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}`, "retry_delays_secs"},
		{"max_call_duration_secs too low", config.KeyCallHandling, `{"max_call_duration_secs": 9}`, "max_call_duration_secs"},
		{"retry_delays_secs empty", config.KeyCallHandling, `{"retry_delays_secs": []}`, "retry_delays_secs"},
		{"retry_delays_secs negative element", config.KeyCallHandling, `{"retry_delays_secs": [300, -1, 900]}`, "retry_delays_secs[1]"},
		{"retry_delays_secs negative first", config.KeyCallHandling, `{"retry_delays_secs": [-5]}`, "retry_delays_secs[0]"},
		{"dial_rate too slow", config.KeyCallHandling, `{"dial_rate": {"per_second": 0.001}}`, "dial_rate.per_second"},
		{"dial_rate too fast", config.KeyCallHandling, `{"dial_rate": {"per_second": 1001}}`, "dial_rate.per_second"},
		{"dial_rate burst too high", config.KeyCallHandling, `{"dial_rate": {"per_second": 1, "burst": 1001}}`, "dial_rate.burst"},
		{"dial_rate burst negative", config.KeyCallHandling, `{"dial_rate": {"per_second": 1, "burst": -1}}`, "dial_rate.burst"},
		{"dial_rate unknown field", config.KeyCallHandling, `{"dial_rate": {"per_second": 1, "cps": 2}}`, "dial_rate.cps"},
		{"contact cap days zero", config.KeyCallHandling, `{"contact_caps": [{"max_dials": 7, "days": 7}, {"max_dials": 1, "days": 0}]}`, "contact_caps[1].days"},
		{"contact cap days above a year", config.KeyCallHandling, `{"contact_caps": [{"max_dials": 7, "days": 366}]}`, "contact_caps[0].days"},
		{"contact cap max_dials zero", config.KeyCallHandling, `{"contact_caps": [{"max_dials": 0, "days": 7}]}`, "contact_caps[0].max_dials"},
		{"too many contact caps", config.KeyCallHandling, `{"contact_caps": [{"max_dials":1,"days":1},{"max_dials":1,"days":1},{"max_dials":1,"days":1},{"max_dials":1,"days":1},{"max_dials":1,"days":1},{"max_dials":1,"days":1}]}`, "contact_caps"},
		{"contact caps scope", config.KeyCallHandling, `{"contact_caps_scope": "tenant"}`, "contact_caps_scope"},
		{"excluded date not a date", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "20:00", "exclude_dates": ["2026-12-25", "2026-02-30"]`), "calling_window.exclude_dates[1]"},
		{"excluded date with a time", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "20:00", "exclude_dates": ["2026-12-25T00:00:00Z"]`), "calling_window.exclude_dates[0]"},
		{"calling_window unknown timezone", config.KeyCallHandling, window(`"timezone": "Mars/Olympus", "start": "09:00", "end": "20:00"`), "calling_window.timezone"},
		{"calling_window no timezone", config.KeyCallHandling, window(`"start": "09:00", "end": "20:00"`), "calling_window.timezone"},
		{"calling_window start without leading zero", config.KeyCallHandling, window(`"timezone": "UTC", "start": "9:00", "end": "20:00"`), "calling_window.start"},
		{"calling_window start 24:00", config.KeyCallHandling, window(`"timezone": "UTC", "start": "24:00", "end": "20:00"`), "calling_window.start"},
		{"calling_window start missing", config.KeyCallHandling, window(`"timezone": "UTC", "end": "20:00"`), "calling_window.start"},
		{"calling_window start with seconds", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00:00", "end": "20:00"`), "calling_window.start"},
		{"calling_window end minutes", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "20:60"`), "calling_window.end"},
		{"calling_window end equals start", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "09:00"`), "calling_window.end"},
		{"calling_window day 8", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "20:00", "days": [1, 8]`), "calling_window.days[1]"},
		{"calling_window day 0", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "20:00", "days": [0]`), "calling_window.days[0]"},

		// voice values
		{"voice unknown provider", config.KeyVoice, `{"provider": "twilio"}`, "provider"},
		{"voice empty provider", config.KeyVoice, `{"provider": ""}`, "provider"},
		{"voice base_url not http", config.KeyVoice, `{"base_url": "ftp://va.example.com"}`, "base_url"},
		{"voice base_url relative", config.KeyVoice, `{"base_url": "va.example.com/api"}`, "base_url"},
		{"voice base_url without host", config.KeyVoice, `{"provider": "elevenlabs", "base_url": "https://"}`, "base_url"},
		{"voice elevenlabs bad via", config.KeyVoice, `{"provider": "elevenlabs", "via": "pstn"}`, "via"},
		{"voice elevenlabs ring timeout negative", config.KeyVoice, `{"provider": "elevenlabs", "ring_timeout_secs": -1}`, "ring_timeout_secs"},
		{"voice elevenlabs ring timeout too long", config.KeyVoice, `{"provider": "elevenlabs", "ring_timeout_secs": 601}`, "ring_timeout_secs"},
		{"voice simulator weight above 1", config.KeyVoice, `{"provider": "simulator", "answer": 1.5}`, "answer"},
		{"voice simulator negative weight", config.KeyVoice, `{"provider": "simulator", "busy": -0.1}`, "busy"},
		{"voice simulator all weights 0", config.KeyVoice, `{"provider": "simulator", "answer": 0, "short": 0, "no_answer": 0, "busy": 0}`, "answer"},
		{"voice simulator weight as string", config.KeyVoice, `{"provider": "simulator", "short": "0.1"}`, "short"},
		{"voice simulator talk_secs one value", config.KeyVoice, `{"provider": "simulator", "talk_secs": [20]}`, "talk_secs"},
		{"voice simulator talk_secs reversed", config.KeyVoice, `{"provider": "simulator", "talk_secs": [120, 20]}`, "talk_secs"},
		{"voice simulator talk_secs above a day", config.KeyVoice, `{"provider": "simulator", "talk_secs": [20, 90000]}`, "talk_secs"},
		{"voice simulator ring_secs negative", config.KeyVoice, `{"provider": "simulator", "ring_secs": [-1, 8]}`, "ring_secs"},
		{"voice simulator speed 0", config.KeyVoice, `{"provider": "simulator", "speed": 0}`, "speed"},
		{"voice simulator speed too high", config.KeyVoice, `{"provider": "simulator", "speed": 1e9}`, "speed"},
		{"voice simulator seed not a number", config.KeyVoice, `{"provider": "simulator", "seed": "x"}`, "seed"},
		{"voice simulator field on va", config.KeyVoice, `{"provider": "va", "speed": 10}`, "speed"},

		// crm_fields values
		{"crm_fields blank", config.KeyCRMFields, `{"phone": "  "}`, "phone"},
		{"crm_fields empty", config.KeyCRMFields, `{"status": ""}`, "status"},
		{"crm_fields blank extra", config.KeyCRMFields, `{"city": ""}`, "city"},

		// crm values
		{"crm unknown kind", config.KeyCRM, `{"kind": "salesforce"}`, "kind"},
		{"crm empty kind", config.KeyCRM, `{"kind": ""}`, "kind"},
		{"crm nethunt without folder", config.KeyCRM, `{"kind": "nethunt"}`, "folder_id"},
		{"crm nethunt blank folder", config.KeyCRM, `{"kind": "nethunt", "folder_id": "  "}`, "folder_id"},
		{"crm nethunt folder with spaces", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f 1"}`, "folder_id"},
		{"crm nethunt folder too long", config.KeyCRM, `{"kind": "nethunt", "folder_id": "` + strings.Repeat("f", 129) + `"}`, "folder_id"},
		{"crm status value of no outcome", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "status_values": {"won": "Won"}}`, "status_values.won"},
		{"crm status value empty", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "status_values": {"busy": " "}}`, "status_values.busy"},
		{"crm status value too long", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "status_values": {"busy": "` + strings.Repeat("я", 256) + `"}}`, "status_values.busy"},
		{"crm status value with a newline", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "status_values": {"busy": "Busy\nline"}}`, "status_values.busy"},
		{"crm status value not a string", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "status_values": {"busy": 1}}`, "status_values"},
		{"crm call_log not a boolean", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "call_log": "yes"}`, "call_log"},
		{"crm nethunt bad base_url", config.KeyCRM, `{"kind": "nethunt", "folder_id": "f", "base_url": "nethunt.com"}`, "base_url"},
		{"crm webhook without update_url", config.KeyCRM, `{"kind": "webhook", "lookup_url": "https://crm.example/l"}`, "update_url"},
		{"crm webhook bad update_url", config.KeyCRM, `{"kind": "webhook", "update_url": "mailto:x@example.com"}`, "update_url"},
		{"crm webhook bad lookup_url", config.KeyCRM, `{"kind": "webhook", "lookup_url": "::", "update_url": "https://crm.example/u"}`, "lookup_url"},

		// agent values
		{"agent unknown timezone", config.KeyAgent, `{"timezone": "Europe/Atlantis"}`, "timezone"},
		{"agent empty timezone", config.KeyAgent, `{"timezone": ""}`, "timezone"},

		// unknown fields
		{"call_handling unknown field", config.KeyCallHandling, `{"concurrency": 3}`, "concurrency"},
		{"call_handling camelCase field", config.KeyCallHandling, `{"maxAttempts": 3}`, "maxAttempts"},
		{"voice unknown field", config.KeyVoice, `{"sipId": "x"}`, "sipId"},
		{"crm unknown field", config.KeyCRM, `{"kind": "none", "token": "x"}`, "token"},
		{"agent unknown field", config.KeyAgent, `{"tz": "UTC"}`, "tz"},
		{"calling_window unknown field", config.KeyCallHandling, window(`"timezone": "UTC", "start": "09:00", "end": "20:00", "tz": "UTC"`), "calling_window.tz"},

		// wrong JSON types
		{"concurrency_limit as string", config.KeyCallHandling, `{"concurrency_limit": "3"}`, "concurrency_limit"},
		{"concurrency_limit fractional", config.KeyCallHandling, `{"concurrency_limit": 2.5}`, "concurrency_limit"},
		{"max_attempts as bool", config.KeyCallHandling, `{"max_attempts": true}`, "max_attempts"},
		{"retry_delays_secs as number", config.KeyCallHandling, `{"retry_delays_secs": 300}`, "retry_delays_secs"},
		{"calling_window as string", config.KeyCallHandling, `{"calling_window": "09:00-20:00"}`, "calling_window"},
		{"calling_window.start as number", config.KeyCallHandling, window(`"start": 9`), "calling_window.start"},
		{"calling_window.days as string", config.KeyCallHandling, window(`"days": "1-5"`), "calling_window.days"},
		{"voice provider as number", config.KeyVoice, `{"provider": 1}`, "provider"},
		{"crm kind as bool", config.KeyCRM, `{"kind": true}`, "kind"},
		{"agent timezone as number", config.KeyAgent, `{"timezone": 3}`, "timezone"},
		{"crm_fields value as number", config.KeyCRMFields, `{"phone": 1}`, "phone"},

		// the value itself has the wrong type: the path is the root
		{"call_handling as array", config.KeyCallHandling, `[]`, ""},
		{"voice as string", config.KeyVoice, `"va"`, ""},
		{"crm_fields as array", config.KeyCRMFields, `["Phone"]`, ""},
		{"crm as number", config.KeyCRM, `1`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Normalize(tt.key, json.RawMessage(tt.raw))
			if err == nil {
				t.Fatalf("Normalize(%s, %s) = %s, want an error on %q", tt.key, tt.raw, got, tt.field)
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Normalize(%s, %s) error %T %v, want *config.FieldError", tt.key, tt.raw, err, err)
			}
			if fe.Field != tt.field {
				t.Errorf("Normalize(%s, %s) Field = %q (%v), want %q", tt.key, tt.raw, fe.Field, err, tt.field)
			}
			if fe.Message == "" {
				t.Error("FieldError has no message")
			}
			if got != nil {
				t.Errorf("Normalize returned a value with its error: %s", got)
			}
		})
	}
}

func TestNormalizeInvalidJSON(t *testing.T) {
	t.Parallel()
	values := []string{
		``,
		`   `,
		`{`,
		`{"concurrency_limit": }`,
		`{'kind': 'none'}`,
		`nope`,
		`{} trailing`,
		`{} {}`,
		`{}}`,
	}
	keys := append([]string{"custom_settings"}, config.KnownKeys...)
	for _, key := range keys {
		for _, raw := range values {
			t.Run(key+"/"+raw, func(t *testing.T) {
				t.Parallel()
				got, err := config.Normalize(key, json.RawMessage(raw))
				if err == nil {
					t.Fatalf("Normalize(%s, %q) = %s, want an invalid-JSON error", key, raw, got)
				}
				var fe *config.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("error %T %v, want *config.FieldError", err, err)
				}
				if fe.Field != "" {
					t.Errorf("Field = %q, want the root (\"\") for a value that is not JSON", fe.Field)
				}
			})
		}
	}
}

func TestNormalizeUnknownKey(t *testing.T) {
	t.Parallel()
	// Free-form keys keep exactly what was given, whatever its shape.
	for _, raw := range []string{
		`{"anything": {"nested": [1, 2, {"x": null}]}, "concurrency_limit": -5}`,
		`[1, "two", false]`,
		`"just a string"`,
		`42.5`,
		`true`,
		`null`,
		`{}`,
	} {
		got, err := config.Normalize("my_custom_key", json.RawMessage(raw))
		if err != nil {
			t.Errorf("Normalize(my_custom_key, %s) = %v", raw, err)
			continue
		}
		if string(got) != raw {
			t.Errorf("Normalize(my_custom_key, %s) = %s, want it unchanged", raw, got)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	defaults := config.Decode(nil)
	tests := []struct {
		name   string
		stored map[string]string
		check  func(t *testing.T, c config.Integration)
	}{
		{
			name:   "nothing stored",
			stored: nil,
			check: func(t *testing.T, c config.Integration) {
				want := config.Defaults()
				if !reflect.DeepEqual(c.CallHandling, want[config.KeyCallHandling]) ||
					!reflect.DeepEqual(c.Voice, want[config.KeyVoice]) ||
					!reflect.DeepEqual(c.CRMFields, want[config.KeyCRMFields]) ||
					!reflect.DeepEqual(c.CRM, want[config.KeyCRM]) ||
					!reflect.DeepEqual(c.Agent, want[config.KeyAgent]) {
					t.Errorf("Decode(nil) = %+v, want the defaults", c)
				}
			},
		},
		{
			name: "stored values over defaults",
			stored: map[string]string{
				config.KeyCallHandling: `{"concurrency_limit": 7, "calling_window": {"timezone": "UTC", "start": "08:00", "end": "18:00", "days": [1]}}`,
				config.KeyVoice:        `{"base_url": "https://va.example.com", "sip_id": "s1"}`,
				config.KeyCRMFields:    `{"phone": "Tel"}`,
				config.KeyCRM:          `{"kind": "webhook", "update_url": "https://crm.example/u"}`,
				config.KeyAgent:        `{"locale": "en-US"}`,
			},
			check: func(t *testing.T, c config.Integration) {
				ch := c.CallHandling
				if ch.ConcurrencyLimit != 7 || ch.MaxAttempts != 3 || ch.MinCallDurationSecs != 5 ||
					!reflect.DeepEqual(ch.RetryDelaysSecs, []int{300, 900, 3600}) || ch.MaxCallDurationSecs != 1800 {
					t.Errorf("CallHandling = %+v", ch)
				}
				if w := ch.CallingWindow; w == nil || w.Timezone != "UTC" || w.Start != "08:00" || w.End != "18:00" || !reflect.DeepEqual(w.Days, []int{1}) {
					t.Errorf("CallingWindow = %+v", w)
				}
				if !reflect.DeepEqual(c.Voice, config.Voice{Provider: "va", BaseURL: "https://va.example.com", SipID: "s1"}) {
					t.Errorf("Voice = %+v", c.Voice)
				}
				if !c.Voice.Complete() || c.Voice.SecretKey() != "VA_AUTH_TOKEN" {
					t.Errorf("Voice.Complete() = %v, SecretKey() = %q", c.Voice.Complete(), c.Voice.SecretKey())
				}
				if c.CRMFields["phone"] != "Tel" || c.CRMFields["status"] != "Status" {
					t.Errorf("CRMFields = %v", c.CRMFields)
				}
				if !reflect.DeepEqual(c.CRM, config.CRM{Kind: "webhook", UpdateURL: "https://crm.example/u"}) {
					t.Errorf("CRM = %+v", c.CRM)
				}
				if c.Agent != (config.Agent{Timezone: "Europe/Kyiv", Locale: "en-US"}) {
					t.Errorf("Agent = %+v", c.Agent)
				}
			},
		},
		{
			name: "stored fields unknown to this version are tolerated",
			stored: map[string]string{
				config.KeyCallHandling: `{"max_attempts": 5, "added_later": true}`,
				config.KeyAgent:        `{"timezone": "UTC", "voice_style": "calm"}`,
			},
			check: func(t *testing.T, c config.Integration) {
				if c.CallHandling.MaxAttempts != 5 || c.Agent.Timezone != "UTC" {
					t.Errorf("CallHandling = %+v, Agent = %+v", c.CallHandling, c.Agent)
				}
			},
		},
		{
			name: "garbage stored values fall back to defaults",
			stored: map[string]string{
				config.KeyCallHandling: `not json`,
				config.KeyVoice:        `{"provider": 12}`,
				config.KeyCRMFields:    `["Phone"]`,
				config.KeyCRM:          `{"kind": "nethunt"`,
				config.KeyAgent:        ``,
			},
			check: func(t *testing.T, c config.Integration) {
				if !reflect.DeepEqual(c.CallHandling, defaults.CallHandling) || !reflect.DeepEqual(c.Voice, defaults.Voice) ||
					!reflect.DeepEqual(c.CRMFields, defaults.CRMFields) || !reflect.DeepEqual(c.CRM, defaults.CRM) || c.Agent != defaults.Agent {
					t.Errorf("Decode(garbage) = %+v, want the defaults", c)
				}
			},
		},
		{
			name: "one garbage key does not spoil the others",
			stored: map[string]string{
				config.KeyCallHandling: `{"concurrency_limit": "ten"}`,
				config.KeyAgent:        `{"locale": "en-US"}`,
			},
			check: func(t *testing.T, c config.Integration) {
				if c.CallHandling.ConcurrencyLimit != 3 {
					t.Errorf("ConcurrencyLimit = %d, want the default 3", c.CallHandling.ConcurrencyLimit)
				}
				if c.Agent.Locale != "en-US" {
					t.Errorf("Locale = %q, want en-US", c.Agent.Locale)
				}
			},
		},
		{
			name: "free-form keys are kept",
			stored: map[string]string{
				"my_custom_key":     `{"a": [1, 2]}`,
				config.KeyCRMFields: `{"city": "City"}`,
			},
			check: func(t *testing.T, c config.Integration) {
				eff := c.Effective()
				for _, key := range config.KnownKeys {
					if _, ok := eff[key]; !ok {
						t.Errorf("Effective() lacks known key %q", key)
					}
				}
				if got, ok := eff["my_custom_key"].(json.RawMessage); !ok || string(got) != `{"a": [1, 2]}` {
					t.Errorf(`Effective()["my_custom_key"] = %v`, eff["my_custom_key"])
				}
				if len(eff) != len(config.KnownKeys)+1 {
					t.Errorf("Effective() has %d keys, want %d", len(eff), len(config.KnownKeys)+1)
				}
				if c.CRMFields["city"] != "City" || c.CRMFields["phone"] != "Phone" {
					t.Errorf("CRMFields = %v", c.CRMFields)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stored map[string]json.RawMessage
			if tt.stored != nil {
				stored = map[string]json.RawMessage{}
				for k, v := range tt.stored {
					stored[k] = json.RawMessage(v)
				}
			}
			tt.check(t, config.Decode(stored))
		})
	}
}

func TestDecodeDoesNotShareDefaults(t *testing.T) {
	t.Parallel()
	a := config.Decode(nil)
	a.CRMFields["phone"] = "Mutated"
	a.CallHandling.RetryDelaysSecs[0] = 1
	b := config.Decode(map[string]json.RawMessage{config.KeyCRMFields: json.RawMessage(`{"city": "City"}`)})
	c := config.Decode(nil)
	for _, got := range []config.Integration{b, c} {
		if got.CRMFields["phone"] != "Phone" || got.CallHandling.RetryDelaysSecs[0] != 300 {
			t.Errorf("a later Decode sees an earlier caller's changes: %v %v", got.CRMFields, got.CallHandling.RetryDelaysSecs)
		}
	}
}

func TestVoiceComplete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v      config.Voice
		want   bool
		secret string
	}{
		{config.Voice{Provider: "va"}, false, "VA_AUTH_TOKEN"},
		{config.Voice{Provider: "va", BaseURL: "https://va"}, false, "VA_AUTH_TOKEN"},
		{config.Voice{Provider: "va", BaseURL: "https://va", SipID: "s"}, true, "VA_AUTH_TOKEN"},
		{config.Voice{Provider: "elevenlabs", BaseURL: "https://api.elevenlabs.io", AgentID: "a"}, false, "ELEVENLABS_API_KEY"},
		{config.Voice{Provider: "elevenlabs", BaseURL: "https://api.elevenlabs.io", AgentID: "a", AgentPhoneNumberID: "p"}, true, "ELEVENLABS_API_KEY"},
		{config.Voice{Provider: "other", BaseURL: "https://x", SipID: "s"}, false, "VA_AUTH_TOKEN"},
		{config.Voice{Provider: "simulator"}, false, ""},
		{config.Voice{Provider: "simulator", Simulator: &config.Simulator{Answer: 1, Speed: 1}}, true, ""},
	}
	for _, tt := range tests {
		if got := tt.v.Complete(); got != tt.want {
			t.Errorf("%+v.Complete() = %v, want %v", tt.v, got, tt.want)
		}
		if got := tt.v.SecretKey(); got != tt.secret {
			t.Errorf("%+v.SecretKey() = %q, want %q", tt.v, got, tt.secret)
		}
	}
}

func TestCallingWindowOpen(t *testing.T) {
	t.Parallel()
	utc := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, time.UTC) }
	weekdays := []int{1, 2, 3, 4, 5}
	kyivDay := &config.CallingWindow{Timezone: "Europe/Kyiv", Start: "09:00", End: "20:00", Days: weekdays}
	utcDay := &config.CallingWindow{Timezone: "UTC", Start: "09:00", End: "20:00", Days: weekdays}
	kyivNight := &config.CallingWindow{Timezone: "Europe/Kyiv", Start: "22:00", End: "06:00"}
	utcNight := &config.CallingWindow{Timezone: "UTC", Start: "22:00", End: "06:00"}
	kyivSaturday := &config.CallingWindow{Timezone: "Europe/Kyiv", Start: "00:00", End: "23:59", Days: []int{6}}
	utcSaturday := &config.CallingWindow{Timezone: "UTC", Start: "00:00", End: "23:59", Days: []int{6}}
	sunday := &config.CallingWindow{Timezone: "UTC", Start: "00:00", End: "23:59", Days: []int{7}}
	everyDay := &config.CallingWindow{Timezone: "UTC", Start: "10:00", End: "11:00"}

	tests := []struct {
		name string
		w    *config.CallingWindow
		at   time.Time
		want bool
	}{
		{"nil window is always open", nil, utc(2026, time.January, 25, 3, 0), true},

		// 2026-01-21 is a Wednesday; Kyiv is UTC+2 in winter.
		{"Kyiv opens at 09:00 local", kyivDay, utc(2026, time.January, 21, 7, 0), true},
		{"Kyiv closed at 08:59 local", kyivDay, utc(2026, time.January, 21, 6, 59), false},
		{"Kyiv open at 19:59 local", kyivDay, utc(2026, time.January, 21, 17, 59), true},
		{"Kyiv closes at 20:00 local", kyivDay, utc(2026, time.January, 21, 18, 0), false},
		{"UTC window closed at 07:00 UTC", utcDay, utc(2026, time.January, 21, 7, 0), false},
		{"UTC window open at 19:00 UTC (21:00 in Kyiv)", utcDay, utc(2026, time.January, 21, 19, 0), true},
		{"Kyiv window closed at 19:00 UTC", kyivDay, utc(2026, time.January, 21, 19, 0), false},
		// 2026-07-15 is a Wednesday; Kyiv is UTC+3 in summer.
		{"Kyiv summer opens at 06:00 UTC", kyivDay, utc(2026, time.July, 15, 6, 0), true},
		{"Kyiv summer closed at 05:59 UTC", kyivDay, utc(2026, time.July, 15, 5, 59), false},
		{"Kyiv summer closes at 17:00 UTC", kyivDay, utc(2026, time.July, 15, 17, 0), false},
		{"instant in another zone", kyivDay, time.Date(2026, time.January, 21, 3, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)), true},

		// Days are ISO weekdays in the window's zone.
		{"Saturday is not a weekday", kyivDay, utc(2026, time.January, 24, 10, 0), false},
		{"Sunday is not a weekday", utcDay, utc(2026, time.January, 25, 10, 0), false},
		{"Friday is a weekday", utcDay, utc(2026, time.January, 23, 10, 0), true},
		{"Sunday is ISO day 7", sunday, utc(2026, time.January, 25, 10, 0), true},
		{"Monday is not day 7", sunday, utc(2026, time.January, 26, 10, 0), false},
		{"Friday 22:30 UTC is Saturday in Kyiv", kyivSaturday, utc(2026, time.January, 23, 22, 30), true},
		{"Friday 22:30 UTC is Friday in UTC", utcSaturday, utc(2026, time.January, 23, 22, 30), false},
		{"no days means every day", everyDay, utc(2026, time.January, 25, 10, 30), true},
		{"no days still has hours", everyDay, utc(2026, time.January, 25, 11, 0), false},

		// Across midnight.
		{"night window open before midnight", utcNight, utc(2026, time.January, 21, 23, 0), true},
		{"night window opens at start", utcNight, utc(2026, time.January, 21, 22, 0), true},
		{"night window closed just before start", utcNight, utc(2026, time.January, 21, 21, 59), false},
		{"night window open after midnight", utcNight, utc(2026, time.January, 22, 2, 0), true},
		{"night window open at 05:59", utcNight, utc(2026, time.January, 22, 5, 59), true},
		{"night window closes at end", utcNight, utc(2026, time.January, 22, 6, 0), false},
		{"night window closed at noon", utcNight, utc(2026, time.January, 22, 12, 0), false},
		{"Kyiv night window: 21:00 UTC is 23:00 local", kyivNight, utc(2026, time.January, 21, 21, 0), true},
		{"UTC night window closed at 21:00 UTC", utcNight, utc(2026, time.January, 21, 21, 0), false},
		{"Kyiv night window: 04:00 UTC is 06:00 local", kyivNight, utc(2026, time.January, 22, 4, 0), false},
		{"UTC night window open at 04:00 UTC", utcNight, utc(2026, time.January, 22, 4, 0), true},

		{"unknown timezone is never open", &config.CallingWindow{Timezone: "Mars/Olympus", Start: "00:00", End: "23:59"}, utc(2026, time.January, 21, 12, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.w.Open(tt.at); got != tt.want {
				t.Errorf("%+v.Open(%s) = %v, want %v", tt.w, tt.at.Format(time.RFC3339), got, tt.want)
			}
		})
	}
}

func TestParseSecretKey(t *testing.T) {
	t.Parallel()
	// 0xfb 0xff 0xbf encodes to "+/+/" in standard base64 and "-_-_" in the
	// URL alphabet, so the two encodings differ.
	key := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32]
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key encodes as %q: want '+' or '/' and padding", std)
	}
	valid := map[string]string{
		"hex":                 hex.EncodeToString(key),
		"hex upper case":      strings.ToUpper(hex.EncodeToString(key)),
		"base64 std":          std,
		"base64 std unpadded": base64.RawStdEncoding.EncodeToString(key),
		"base64 url":          base64.URLEncoding.EncodeToString(key),
		"base64 url unpadded": base64.RawURLEncoding.EncodeToString(key),
		"surrounding space":   " \t" + std + "\n",
	}
	for name, raw := range valid {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := config.ParseSecretKey(raw)
			if err != nil {
				t.Fatalf("ParseSecretKey(%q) = %v", raw, err)
			}
			if !bytes.Equal(got, key) {
				t.Errorf("ParseSecretKey(%q) = %x, want %x", raw, got, key)
			}
		})
	}

	short, long := key[:31], append(bytes.Clone(key), 0x01)
	invalid := map[string]string{
		"empty":              "",
		"hex 31 bytes":       hex.EncodeToString(short),
		"hex 33 bytes":       hex.EncodeToString(long),
		"hex 16 bytes":       hex.EncodeToString(key[:16]),
		"hex odd length":     hex.EncodeToString(key)[:63],
		"base64 31 bytes":    base64.StdEncoding.EncodeToString(short),
		"base64 33 bytes":    base64.StdEncoding.EncodeToString(long),
		"base64 url 31":      base64.RawURLEncoding.EncodeToString(short),
		"base64 64 bytes":    base64.StdEncoding.EncodeToString(append(bytes.Clone(key), key...)),
		"32 plain chars":     "abcdefghijklmnopqrstuvwxyz012345",
		"not an encoding":    "this is not a key at all!",
		"mixed alphabets":    std[:10] + "-_" + std[12:],
		"hex with a non-hex": "zz" + hex.EncodeToString(key)[2:],
	}
	for name, raw := range invalid {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got, err := config.ParseSecretKey(raw); err == nil {
				t.Errorf("ParseSecretKey(%q) = %x, want an error", raw, got)
			}
		})
	}
}

func TestSyncPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sync    string
		want    time.Duration
		wantErr bool
	}{
		{"always", 0, false},
		{"ALWAYS", 0, false},
		{"Always", 0, false},
		{"1s", time.Second, false},
		{"100ms", 100 * time.Millisecond, false},
		{"2m", 2 * time.Minute, false},
		{"", 0, true},
		{"0s", 0, true},
		{"0", 0, true},
		{"-1s", 0, true},
		{"sometimes", 0, true},
		{"10", 0, true},
	}
	for _, tt := range tests {
		got, err := config.Service{NATSSync: tt.sync}.SyncPolicy()
		if tt.wantErr {
			if err == nil {
				t.Errorf("SyncPolicy(%q) = %v, want an error", tt.sync, got)
			} else if !strings.Contains(err.Error(), "CALLQUEUE_NATS_SYNC") {
				t.Errorf("SyncPolicy(%q) error %q does not name CALLQUEUE_NATS_SYNC", tt.sync, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("SyncPolicy(%q) = %v, %v; want %v", tt.sync, got, err, tt.want)
		}
	}
}

// serviceEnv lists every variable FromEnv reads.
var serviceEnv = []string{
	"DATABASE_URL", "NATS_URL", "CALLQUEUE_NATS_LISTEN", "CALLQUEUE_NATS_SYNC", "CALLQUEUE_NATS_REPLICAS",
	"CALLQUEUE_DATA_DIR", "CALLQUEUE_HTTP_ADDR", "CALLQUEUE_SECRET_KEY", "CALLQUEUE_LOG_LEVEL",
	"CALLQUEUE_LOG_FORMAT", "CALLQUEUE_TIMEZONE", "CALLQUEUE_TRUSTED_PROXIES",
	"CALLQUEUE_RATE_WEBHOOK_PER_S", "CALLQUEUE_RATE_WEBHOOK_BURST", "CALLQUEUE_RATE_WEBHOOK_IP_PER_S", "CALLQUEUE_RATE_WEBHOOK_IP_BURST",
	"CALLQUEUE_RATE_API_PER_S", "CALLQUEUE_RATE_API_BURST", "CALLQUEUE_RATE_API_TOKEN_PER_S", "CALLQUEUE_RATE_API_TOKEN_BURST",
	"CALLQUEUE_NATS_CREDS", "CALLQUEUE_NATS_NKEY", "CALLQUEUE_NATS_TOKEN", "CALLQUEUE_NATS_TLS_CA", "CALLQUEUE_NATS_TLS_CERT", "CALLQUEUE_NATS_TLS_KEY",
	"CALLQUEUE_METRICS_PER_INTEGRATION", "CALLQUEUE_METRICS_TOP_INTEGRATIONS", "CALLQUEUE_CALLER_CACHE_ENTRIES",
}

// setEnv clears every service variable, then sets the given ones, for the
// duration of the test. Tests that call it must not be parallel.
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, name := range serviceEnv {
		t.Setenv(name, "")
	}
	for name, v := range env {
		t.Setenv(name, v)
	}
}

func TestFromEnvDefaults(t *testing.T) {
	setEnv(t, nil)
	s := config.FromEnv()
	want := config.Service{
		NATSSync: config.NATSSyncDefault, NATSReplicas: 1, StreamMaxBytes: config.StreamMaxMBDefault << 20, DataDir: "./data", HTTPAddr: ":8080",
		LogLevel: "info", LogFormat: "json", Timezone: "Europe/Kyiv", RateLimits: ratelimit.RulesDefault(),
		Metrics: metrics.Options{PerIntegration: metrics.PerIntegrationTop, TopIntegrations: metrics.TopIntegrationsDefault},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("FromEnv() = %+v, want %+v", s, want)
	}
	if config.NATSSyncDefault != "always" {
		t.Errorf("NATSSyncDefault = %q, want always", config.NATSSyncDefault)
	}
}

func TestFromEnvReadsEverything(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	setEnv(t, map[string]string{
		"DATABASE_URL":                       "postgres://u@db/callqueue",
		"NATS_URL":                           "nats://n1:4222,nats://n2:4222",
		"CALLQUEUE_NATS_LISTEN":              "127.0.0.1:4222",
		"CALLQUEUE_NATS_SYNC":                "1s",
		"CALLQUEUE_NATS_REPLICAS":            "3",
		"CALLQUEUE_DATA_DIR":                 "/var/lib/callqueue",
		"CALLQUEUE_HTTP_ADDR":                "127.0.0.1:9090",
		"CALLQUEUE_SECRET_KEY":               hex.EncodeToString(key),
		"CALLQUEUE_LOG_LEVEL":                "debug",
		"CALLQUEUE_LOG_FORMAT":               "console",
		"CALLQUEUE_TIMEZONE":                 "UTC",
		"CALLQUEUE_TRUSTED_PROXIES":          "10.0.0.0/8, fd00::/8",
		"CALLQUEUE_RATE_WEBHOOK_PER_S":       "50",
		"CALLQUEUE_RATE_WEBHOOK_IP_PER_S":    "0.5",
		"CALLQUEUE_RATE_WEBHOOK_IP_BURST":    "7",
		"CALLQUEUE_RATE_API_PER_S":           "0",
		"CALLQUEUE_RATE_API_TOKEN_BURST":     "9",
		"CALLQUEUE_NATS_CREDS":               "/etc/callqueue/nats.creds",
		"CALLQUEUE_NATS_TOKEN":               "embedded-token",
		"CALLQUEUE_NATS_TLS_CA":              "/etc/callqueue/ca.pem",
		"CALLQUEUE_NATS_TLS_CERT":            "/etc/callqueue/client.pem",
		"CALLQUEUE_NATS_TLS_KEY":             "/etc/callqueue/client-key.pem",
		"CALLQUEUE_METRICS_PER_INTEGRATION":  "none",
		"CALLQUEUE_METRICS_TOP_INTEGRATIONS": "20",
		"CALLQUEUE_CALLER_CACHE_ENTRIES":     "5000",
	})
	s := config.FromEnv()
	want := config.Service{
		DatabaseURL: "postgres://u@db/callqueue", NATSURL: "nats://n1:4222,nats://n2:4222", NATSListen: "127.0.0.1:4222",
		NATSSync: "1s", NATSReplicas: 3, StreamMaxBytes: config.StreamMaxMBDefault << 20, DataDir: "/var/lib/callqueue", HTTPAddr: "127.0.0.1:9090", SecretKey: key,
		LogLevel: "debug", LogFormat: "console", Timezone: "UTC", TrustedProxies: "10.0.0.0/8, fd00::/8",
		Metrics: metrics.Options{PerIntegration: metrics.PerIntegrationNone, TopIntegrations: 20}, CallerCacheEntries: 5000,
		NATSAuth: queue.Auth{Creds: "/etc/callqueue/nats.creds", Token: "embedded-token", TLSCA: "/etc/callqueue/ca.pem",
			TLSCert: "/etc/callqueue/client.pem", TLSKey: "/etc/callqueue/client-key.pem"},
		RateLimits: ratelimit.Rules{
			WebhookIntegration: ratelimit.Rule{PerSecond: 50, Burst: 100}, // two seconds' worth
			WebhookIP:          ratelimit.Rule{PerSecond: 0.5, Burst: 7},
			APIIP:              ratelimit.Rule{PerSecond: 0, Burst: 1}, // off
			APIToken:           ratelimit.Rule{PerSecond: ratelimit.APITokenDefault.PerSecond, Burst: 9},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("FromEnv() = %+v, want %+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestServiceValidate(t *testing.T) {
	goodKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	base := map[string]string{"DATABASE_URL": "postgres://localhost/callqueue", "CALLQUEUE_SECRET_KEY": goodKey}
	with := func(overrides map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range overrides {
			env[k] = v
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		missing string // the ErrMissing variable, if any
		mention string // a substring the error must contain; "" means no error
	}{
		{"all required set", base, "", ""},
		{"nothing set", nil, "DATABASE_URL", "DATABASE_URL"},
		{"missing DATABASE_URL", with(map[string]string{"DATABASE_URL": ""}), "DATABASE_URL", "DATABASE_URL"},
		{"missing secret key", with(map[string]string{"CALLQUEUE_SECRET_KEY": ""}), "CALLQUEUE_SECRET_KEY", "CALLQUEUE_SECRET_KEY"},
		{"short secret key", with(map[string]string{"CALLQUEUE_SECRET_KEY": hex.EncodeToString(make([]byte, 16))}), "", "CALLQUEUE_SECRET_KEY"},
		{"garbage secret key", with(map[string]string{"CALLQUEUE_SECRET_KEY": "hunter2"}), "", "CALLQUEUE_SECRET_KEY"},
		{"bad timezone", with(map[string]string{"CALLQUEUE_TIMEZONE": "Europe/Atlantis"}), "", "CALLQUEUE_TIMEZONE"},
		{"bad sync", with(map[string]string{"CALLQUEUE_NATS_SYNC": "sometimes"}), "", "CALLQUEUE_NATS_SYNC"},
		{"zero sync interval", with(map[string]string{"CALLQUEUE_NATS_SYNC": "0s"}), "", "CALLQUEUE_NATS_SYNC"},
		{"sync interval", with(map[string]string{"CALLQUEUE_NATS_SYNC": "2m"}), "", ""},
		{"zero replicas", with(map[string]string{"CALLQUEUE_NATS_REPLICAS": "0"}), "", "CALLQUEUE_NATS_REPLICAS"},
		{"six replicas", with(map[string]string{"CALLQUEUE_NATS_REPLICAS": "6"}), "", "CALLQUEUE_NATS_REPLICAS"},
		{"replicas not a number", with(map[string]string{"CALLQUEUE_NATS_REPLICAS": "three"}), "", "CALLQUEUE_NATS_REPLICAS"},
		{"five replicas", with(map[string]string{"CALLQUEUE_NATS_REPLICAS": "5"}), "", ""},
		{"creds and nkey", with(map[string]string{"CALLQUEUE_NATS_CREDS": "a.creds", "CALLQUEUE_NATS_NKEY": "a.nk"}), "", "CALLQUEUE_NATS_NKEY"},
		{"client cert without key", with(map[string]string{"CALLQUEUE_NATS_TLS_CERT": "c.pem"}), "", "CALLQUEUE_NATS_TLS_KEY"},
		{"negative rate", with(map[string]string{"CALLQUEUE_RATE_API_PER_S": "-1"}), "", "CALLQUEUE_RATE_API_PER_S"},
		{"rate not a number", with(map[string]string{"CALLQUEUE_RATE_WEBHOOK_PER_S": "lots"}), "", "CALLQUEUE_RATE_WEBHOOK_PER_S"},
		{"zero burst", with(map[string]string{"CALLQUEUE_RATE_WEBHOOK_IP_BURST": "0"}), "", "CALLQUEUE_RATE_WEBHOOK_IP_BURST"},
		{"rate limits off", with(map[string]string{"CALLQUEUE_RATE_WEBHOOK_PER_S": "0", "CALLQUEUE_RATE_API_PER_S": "0"}), "", ""},
		{"trusted proxy by name", with(map[string]string{"CALLQUEUE_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}), "", "CALLQUEUE_TRUSTED_PROXIES"},
		{"stream budget too small", with(map[string]string{"CALLQUEUE_STREAM_MAX_MB": "8"}), "", "CALLQUEUE_STREAM_MAX_MB"},
		{"stream budget not a number", with(map[string]string{"CALLQUEUE_STREAM_MAX_MB": "lots"}), "", "CALLQUEUE_STREAM_MAX_MB"},
		{"stream budget", with(map[string]string{"CALLQUEUE_STREAM_MAX_MB": "256"}), "", ""},
		{"metrics per integration", with(map[string]string{"CALLQUEUE_METRICS_PER_INTEGRATION": "all"}), "", ""},
		{"metrics per integration unknown", with(map[string]string{"CALLQUEUE_METRICS_PER_INTEGRATION": "some"}), "", "CALLQUEUE_METRICS_PER_INTEGRATION"},
		{"top integrations", with(map[string]string{"CALLQUEUE_METRICS_TOP_INTEGRATIONS": "500"}), "", ""},
		{"zero top integrations", with(map[string]string{"CALLQUEUE_METRICS_TOP_INTEGRATIONS": "0"}), "", "CALLQUEUE_METRICS_TOP_INTEGRATIONS"},
		{"top integrations not a number", with(map[string]string{"CALLQUEUE_METRICS_TOP_INTEGRATIONS": "1e3"}), "", "CALLQUEUE_METRICS_TOP_INTEGRATIONS"},
		{"too many top integrations", with(map[string]string{"CALLQUEUE_METRICS_TOP_INTEGRATIONS": "10001"}), "", "CALLQUEUE_METRICS_TOP_INTEGRATIONS"},
		{"no caller cache", with(map[string]string{"CALLQUEUE_CALLER_CACHE_ENTRIES": "0"}), "", ""},
		{"caller cache entries", with(map[string]string{"CALLQUEUE_CALLER_CACHE_ENTRIES": "250000"}), "", ""},
		{"negative caller cache", with(map[string]string{"CALLQUEUE_CALLER_CACHE_ENTRIES": "-1"}), "", "CALLQUEUE_CALLER_CACHE_ENTRIES"},
		{"caller cache not a number", with(map[string]string{"CALLQUEUE_CALLER_CACHE_ENTRIES": "100k"}), "", "CALLQUEUE_CALLER_CACHE_ENTRIES"},
		{"caller cache too large", with(map[string]string{"CALLQUEUE_CALLER_CACHE_ENTRIES": "10000001"}), "", "CALLQUEUE_CALLER_CACHE_ENTRIES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			err := config.FromEnv().Validate()
			if tt.mention == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.mention)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("Validate() = %q, want it to name %s", err, tt.mention)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Validate() = %q, want one line", err)
			}
			var missing *config.ErrMissing
			switch {
			case tt.missing != "" && !errors.As(err, &missing):
				t.Errorf("Validate() = %T %v, want *config.ErrMissing", err, err)
			case tt.missing != "" && missing.Name != tt.missing:
				t.Errorf("ErrMissing.Name = %q, want %q", missing.Name, tt.missing)
			case tt.missing == "" && errors.As(err, &missing):
				t.Errorf("Validate() = ErrMissing(%s), want a bad-value error", missing.Name)
			}
		})
	}
}

func TestRequireDatabase(t *testing.T) {
	t.Parallel()
	err := config.Service{}.RequireDatabase()
	var missing *config.ErrMissing
	if !errors.As(err, &missing) || missing.Name != "DATABASE_URL" || err.Error() != "DATABASE_URL is not set" {
		t.Errorf("RequireDatabase() = %v, want DATABASE_URL is not set", err)
	}
	if err := (config.Service{DatabaseURL: "postgres://x"}).RequireDatabase(); err != nil {
		t.Errorf("RequireDatabase() = %v, want nil", err)
	}
}

// Values stored before the bounds existed (or written straight into the
// database) are clamped when read: a delay that would overflow a
// time.Duration must not schedule a retry in the past.
func TestDecodeClampsStoredValuesOutsideBounds(t *testing.T) {
	t.Parallel()
	c := config.Decode(map[string]json.RawMessage{config.KeyCallHandling: json.RawMessage(
		`{"concurrency_limit": 100000, "max_attempts": 0, "retry_delays_secs": [9300000000000, -5],
		  "max_call_duration_secs": 3000000000, "min_call_duration_secs": -1}`)})
	ch := c.CallHandling
	if ch.ConcurrencyLimit != config.ConcurrencyLimitMax || ch.MaxAttempts != 1 || ch.MinCallDurationSecs != 0 ||
		ch.MaxCallDurationSecs != config.MaxCallDurationMaxSecs {
		t.Errorf("Decode kept out-of-bounds values: %+v", ch)
	}
	if got := ch.RetryDelay(1); got != config.RetryDelayMaxSecs*time.Second {
		t.Errorf("RetryDelay(1) = %v, want the 30-day cap", got)
	}
	if got := ch.RetryDelay(2); got != 0 {
		t.Errorf("RetryDelay(2) = %v, want 0 for a negative stored delay", got)
	}
	raw := config.CallHandling{RetryDelaysSecs: []int{9300000000000}}
	if got := raw.RetryDelay(1); got <= 0 || got > config.RetryDelayMaxSecs*time.Second {
		t.Errorf("RetryDelay of an unclamped value = %v, want within (0, 30 days]", got)
	}
}

func TestCheckURLs(t *testing.T) {
	t.Parallel()
	refuseLoopback := func(raw string) error {
		if strings.Contains(raw, "127.0.0.1") {
			return errors.New("must not point at a loopback address")
		}
		return nil
	}
	tests := []struct {
		key, value, field string
	}{
		{config.KeyCRM, `{"kind": "webhook", "lookup_url": "https://crm.example/l?token=abc", "update_url": "https://crm.example/u"}`, "lookup_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://user:pass@crm.example/u"}`, "update_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u?api_key=1"}`, "update_url"},
		{config.KeyVoice, `{"base_url": "http://127.0.0.1:9000"}`, "base_url"},
		{"analysis", `{"base_url": "https://llm.example/v1?access_token=x"}`, "base_url"},
		{"predial", `{"url": "http://127.0.0.1/check"}`, "url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u#access_token=abc"}`, "update_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u?pwd=abc"}`, "update_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u?Client_Key=abc"}`, "update_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u?PASSWORD=abc"}`, "update_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u?apikey=abc"}`, "update_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://u:p%zz@crm.example/u"}`, "update_url"},
		{config.KeyVoice, `{"base_url": "https://va.example/?auth=abc"}`, "base_url"},
		{config.KeyVoice, `{"base_url": "https://user@va.example/"}`, "base_url"},
		{config.KeyCRM, `{"kind": "webhook", "update_url": "https://crm.example/u?phone=1&folder=2#section"}`, ""},
		{"free_form", `{"url": "http://127.0.0.1/?token=1"}`, ""},
	}
	for _, tt := range tests {
		err := config.CheckURLs(tt.key, json.RawMessage(tt.value), refuseLoopback)
		var fe *config.FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("CheckURLs(%s, %s) = %v, want nil", tt.key, tt.value, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("CheckURLs(%s, %s) = %v, want an error on %q", tt.key, tt.value, err, tt.field)
		}
	}
}
