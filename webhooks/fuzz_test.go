package webhooks

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callqueue/callqueue/jsonhttp"
)

// The fuzz targets check the decoders against the contract (§4), not
// against their own code: a body they accept satisfies every rule a worker
// relies on, and a body they refuse is refused in the contract's error
// shape as bad input, never as a 500.

// wantPhone is the contract's phone rule, kept apart from phonePattern so
// that a change to the production pattern is caught here.
var wantPhone = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// checkDecodeError fails unless err is a *jsonhttp.Error a client can act on.
func checkDecodeError(t *testing.T, body []byte, err error) {
	t.Helper()
	var e *jsonhttp.Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %T %v is not a *jsonhttp.Error (it would be a 500)", body, err, err)
	}
	if e.Status != http.StatusBadRequest && e.Status != http.StatusUnprocessableEntity {
		t.Fatalf("%q: status %d, want 400 or 422 (%v)", body, e.Status, e)
	}
	if e.Code == "" || e.Message == "" {
		t.Fatalf("%q: error without code or message: %+v", body, e)
	}
}

// checkObject fails unless raw is absent or one JSON object.
func checkObject(t *testing.T, body []byte, what string, raw json.RawMessage) {
	t.Helper()
	if raw == nil {
		return
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		t.Fatalf("%q: accepted %s %q that is not a JSON object (%v)", body, what, raw, err)
	}
}

func FuzzDecodeOriginate(f *testing.F) {
	for _, s := range []string{
		// valid
		`{"phone_number":"+380991111111"}`,
		`{"phone_number":"+38 (099) 482-95-73","record_id":"rec-1","priority":5}`,
		`{"phone_number":"380991111111","record_id":12345,"dynamic_variables":{"client_name":"Іван"},"priority":-100}`,
		`{"phone_number":"12345","record_id":null,"dynamic_variables":null,"priority":100}`,
		`  {"phone_number":"+12345678901234567890"}  `,
		`{"phone_number":"+380991111111","record_id":1e3}`,
		// invalid
		``, `null`, `[]`, `"x"`, `{`, `{}`, `{"phone_number":null}`, `{"phone_number":"   "}`,
		`{"phone_number":380991111111}`, `{"phone_number":"abc"}`, `{"phone_number":"+1234"}`,
		`{"phone_number":"+123456789012345678901"}`, `{"phone_number":"++380991111111"}`,
		`{"phone_number":"+380991111111","priority":101}`, `{"phone_number":"+380991111111","priority":"high"}`,
		`{"phone_number":"+380991111111","priority":1.5}`, `{"phone_number":"+380991111111","priority":1e100}`,
		`{"phone_number":"+380991111111","dynamic_variables":"x"}`, `{"phone_number":"+380991111111","dynamic_variables":[1]}`,
		`{"phone_number":"+380991111111","record_id":{}}`, `{"phone_number":"+380991111111","record_id":true}`,
		`{"phone_number":"+380991111111","record_id":"` + strings.Repeat("r", 201) + `"}`,
		`{"phone_number":"+380991111111","unknown":1}`, `{"phone_number":"+380991111111"} {}`,
		`{"phone_number":"+380991111111"}}`, `{"phone_number":"+380991111111"}]`,
		`{"phone_number":"+380991111111","phone_number":"x"}`, "{\"phone_number\":\"+380991111111\u0000\"}",
		`{"phone_number":"٣٨٠٩٩١١١١١١١"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeOriginate(body)
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("%q: accepted a body that is not valid JSON", body)
		}
		if !wantPhone.MatchString(req.PhoneNumber) {
			t.Fatalf("%q: accepted phone %q", body, req.PhoneNumber)
		}
		if req.Priority < -100 || req.Priority > 100 {
			t.Fatalf("%q: accepted priority %d", body, req.Priority)
		}
		if len(req.RecordID) > 200 || req.RecordID != strings.TrimSpace(req.RecordID) {
			t.Fatalf("%q: accepted record_id %q", body, req.RecordID)
		}
		checkObject(t, body, "dynamic_variables", req.DynamicVariables)
	})
}

func FuzzDecodeCallEvent(f *testing.F) {
	for _, s := range []string{
		// valid
		`{"eventType":"call_start","callId":"0190f3c2-7c1e-7b7a-8f00-000000000001"}`,
		`{"eventType":"call_end","callId":"va-123","conversation_id":"conv-1","duration":45}`,
		`{"eventType":"media_start","callId":12345,"metadata":{"sip":"x"},"extra":[1,2]}`,
		`{"eventType":"media_end","callId":"x","duration":"12.5","metadata":null}`,
		`{"eventType":"call_end","callId":"x","duration":0}`, `{"eventType":"call_end","callId":"x","duration":86400}`,
		`{"eventType":"call_end","callId":"x.2","reason":"no_answer"}`, `{"eventType":"call_end","callId":"x","reason":"voicemail","duration":3}`,
		`{"eventType":"call_end","callId":"x","reason":"hung_up"}`, `{"eventType":"call_end","callId":"x","reason":[]}`,
		// invalid
		``, `null`, `[]`, `{`, `{}`, `{"callId":"x"}`, `{"eventType":"","callId":"x"}`, `{"eventType":5,"callId":"x"}`,
		`{"eventType":"call_ringing","callId":"x"}`, `{"eventType":"CALL_START","callId":"x"}`,
		`{"eventType":"call_start"}`, `{"eventType":"call_start","callId":""}`, `{"eventType":"call_start","callId":"  "}`,
		`{"eventType":"call_start","callId":true}`, `{"eventType":"call_start","callId":{}}`,
		`{"eventType":"call_start","callId":"` + strings.Repeat("c", 201) + `"}`,
		`{"eventType":"call_end","callId":"x","duration":-1}`, `{"eventType":"call_end","callId":"x","duration":86401}`,
		`{"eventType":"call_end","callId":"x","duration":"abc"}`, `{"eventType":"call_end","callId":"x","duration":"NaN"}`,
		`{"eventType":"call_end","callId":"x","duration":"Inf"}`, `{"eventType":"call_end","callId":"x","duration":"-0"}`,
		`{"eventType":"call_end","callId":"x","duration":true}`, `{"eventType":"call_end","callId":"x","duration":1e400}`,
		`{"eventType":"call_end","callId":"x","metadata":"x"}`, `{"eventType":"call_end","callId":"x","metadata":[]}`,
		`{"eventType":"call_end","callId":"x","conversation_id":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeCallEvent(body)
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		switch req.EventType {
		case "call_start", "call_end", "media_start", "media_end":
		default:
			t.Fatalf("%q: accepted eventType %q", body, req.EventType)
		}
		if req.CallID == "" || len(req.CallID) > 200 {
			t.Fatalf("%q: accepted callId %q", body, req.CallID)
		}
		if len(req.ConversationID) > 200 {
			t.Fatalf("%q: accepted conversation_id of %d bytes", body, len(req.ConversationID))
		}
		switch req.Reason {
		case "", "completed", "no_answer", "busy", "voicemail", "failed":
		default:
			t.Fatalf("%q: accepted reason %q", body, req.Reason)
		}
		if d := req.DurationSecs; d != nil && (math.IsNaN(*d) || *d < 0 || *d > 86400) {
			t.Fatalf("%q: accepted duration %v", body, *d)
		}
		checkObject(t, body, "metadata", req.Metadata)
		// What the decoder accepts, the webhook publishes as JSON.
		if _, err := json.Marshal(req); err != nil {
			t.Fatalf("%q: accepted event cannot be published: %v", body, err)
		}
	})
}

func FuzzDecodeAgentInit(f *testing.F) {
	for _, s := range []string{
		// valid
		``, `  `, `{}`, `{"phone_number":"+380991111111"}`,
		`{"caller_id":"+380991111111","agent_id":"agent_1","called_number":"+380440000000","call_sid":"CA123"}`,
		`{"phone_number":"+38 (099) 482-95-73","extra":{"a":1}}`, `{"caller_id":"  ","called_number":"-"}`,
		`null`,
		// invalid
		`{`, `[]`, `"x"`, `{"phone_number":5}`, `{"caller_id":{}}`, `{"called_number":["+380"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeAgentInit(body)
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		for _, p := range req.Phones() {
			if p == "" || strings.ContainsAny(p, " -().") || p != strings.TrimSpace(p) {
				t.Fatalf("%q: phone %q was not normalised", body, p)
			}
			if !utf8.ValidString(p) && utf8.ValidString(string(body)) {
				t.Fatalf("%q: normalising produced invalid UTF-8 %q", body, p)
			}
		}
	})
}
