package elevenlabs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/elevenlabs"
)

const testSecret = "wsec_0123456789abcdef"

var (
	testNow  = time.Date(2026, 1, 21, 12, 39, 12, 0, time.UTC)
	testBody = []byte(`{"type":"post_call_transcription","event_timestamp":1768999152,"data":{"conversation_id":"conv-1"}}`)
)

// v0 is the hex signature part of a header made by Sign.
func v0(secret string, t time.Time, body []byte) string {
	h := elevenlabs.Sign(secret, t, body)
	return h[strings.Index(h, "v0=")+len("v0="):]
}

// TestSign checks the wire format against a value computed outside Go:
// printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
func TestSign(t *testing.T) {
	t.Parallel()
	const want = "t=1700000000,v0=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
	if got := elevenlabs.Sign("secret", time.Unix(1700000000, 0), []byte("{}")); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	// The timestamp is whole seconds, whatever the time's zone or fraction.
	at := time.Unix(1700000000, 999_999_999).In(time.FixedZone("Kyiv", 2*3600))
	if got := elevenlabs.Sign("secret", at, []byte("{}")); got != want {
		t.Fatalf("Sign at %v = %q, want %q", at, got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	ts := fmt.Sprint(testNow.Unix())
	good := v0(testSecret, testNow, testBody)
	cases := []struct {
		name   string
		header string
		body   []byte
		want   error
	}{
		{"valid", elevenlabs.Sign(testSecret, testNow, testBody), testBody, nil},
		{"29 minutes old", elevenlabs.Sign(testSecret, testNow.Add(-29*time.Minute), testBody), testBody, nil},
		{"exactly 30 minutes old", elevenlabs.Sign(testSecret, testNow.Add(-30*time.Minute), testBody), testBody, nil},
		{"4 minutes ahead", elevenlabs.Sign(testSecret, testNow.Add(4*time.Minute), testBody), testBody, nil},
		{"spaces around parts", "t=" + ts + " , v0=" + good, testBody, nil},
		{"v0 before t", "v0=" + good + ",t=" + ts, testBody, nil},
		{"unknown scheme ignored", "t=" + ts + ",v0=" + good + ",v1=abc", testBody, nil},
		{"several v0, last valid", "t=" + ts + ",v0=" + strings.Repeat("0", 64) + ",v0=" + good, testBody, nil},
		{"several v0, first valid", "t=" + ts + ",v0=" + good + ",v0=deadbeef", testBody, nil},
		{"empty body", elevenlabs.Sign(testSecret, testNow, nil), nil, nil},

		{"wrong secret", elevenlabs.Sign(testSecret+"x", testNow, testBody), testBody, elevenlabs.ErrSignatureMismatch},
		{"empty secret", elevenlabs.Sign("", testNow, testBody), testBody, elevenlabs.ErrSignatureMismatch},
		{"other body", elevenlabs.Sign(testSecret, testNow, testBody), append([]byte(nil), append(testBody, ' ')...), elevenlabs.ErrSignatureMismatch},
		{"signature of another time", "t=" + ts + ",v0=" + v0(testSecret, testNow.Add(-time.Second), testBody), testBody, elevenlabs.ErrSignatureMismatch},
		{"upper-case hex", "t=" + ts + ",v0=" + strings.ToUpper(good), testBody, elevenlabs.ErrSignatureMismatch},
		{"truncated signature", "t=" + ts + ",v0=" + good[:63], testBody, elevenlabs.ErrSignatureMismatch},
		{"empty v0", "t=" + ts + ",v0=", testBody, elevenlabs.ErrSignatureMismatch},
		{"several v0, none valid", "t=" + ts + ",v0=aa,v0=bb", testBody, elevenlabs.ErrSignatureMismatch},
		{"t with a plus sign", "t=+" + ts + ",v0=" + good, testBody, elevenlabs.ErrSignatureMismatch},

		{"30 minutes and a second old", elevenlabs.Sign(testSecret, testNow.Add(-30*time.Minute-time.Second), testBody), testBody, elevenlabs.ErrSignatureStale},
		{"a day old", elevenlabs.Sign(testSecret, testNow.Add(-24*time.Hour), testBody), testBody, elevenlabs.ErrSignatureStale},
		{"5 minutes and a second ahead", elevenlabs.Sign(testSecret, testNow.Add(5*time.Minute+time.Second), testBody), testBody, elevenlabs.ErrSignatureStale},
		{"year 2100", elevenlabs.Sign(testSecret, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), testBody), testBody, elevenlabs.ErrSignatureStale},
		{"t = 0", "t=0,v0=" + v0(testSecret, time.Unix(0, 0), testBody), testBody, elevenlabs.ErrSignatureStale},
		{"t negative", "t=-1,v0=" + good, testBody, elevenlabs.ErrSignatureStale},
		{"t max int64", "t=9223372036854775807,v0=" + good, testBody, elevenlabs.ErrSignatureStale},
		{"t min int64", "t=-9223372036854775808,v0=" + good, testBody, elevenlabs.ErrSignatureStale},
		{"stale and wrong", "t=1,v0=00", testBody, elevenlabs.ErrSignatureStale},

		{"missing", "", testBody, elevenlabs.ErrSignatureMissing},
		{"blank", "  \t ", testBody, elevenlabs.ErrSignatureMissing},

		{"garbage", "garbage", testBody, elevenlabs.ErrSignatureMalformed},
		{"bare hex", good, testBody, elevenlabs.ErrSignatureMalformed},
		{"only t", "t=" + ts, testBody, elevenlabs.ErrSignatureMalformed},
		{"only v0", "v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"empty t", "t=,v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"t not a number", "t=yesterday,v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"t fractional", "t=" + ts + ".5,v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"t in hex", "t=0x10,v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"t overflowing int64", "t=99999999999999999999,v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"semicolons", "t=" + ts + ";v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"part without =", "t=" + ts + ",v0=" + good + ",extra", testBody, elevenlabs.ErrSignatureMalformed},
		{"empty part", "t=" + ts + ",,v0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"trailing comma", "t=" + ts + ",v0=" + good + ",", testBody, elevenlabs.ErrSignatureMalformed},
		{"only commas", ",,,", testBody, elevenlabs.ErrSignatureMalformed},
		{"only =", "=", testBody, elevenlabs.ErrSignatureMalformed},
		{"upper-case keys", "T=" + ts + ",V0=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"Stripe scheme", "t=" + ts + ",v1=" + good, testBody, elevenlabs.ErrSignatureMalformed},
		{"space for =", "t " + ts + ",v0 " + good, testBody, elevenlabs.ErrSignatureMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := elevenlabs.Verify(testSecret, tc.header, tc.body, testNow)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

// signatureErrors are the only errors Verify returns.
var signatureErrors = []error{elevenlabs.ErrSignatureMissing, elevenlabs.ErrSignatureMalformed,
	elevenlabs.ErrSignatureStale, elevenlabs.ErrSignatureMismatch}

func FuzzVerify(f *testing.F) {
	ts := fmt.Sprint(testNow.Unix())
	for _, h := range []string{
		elevenlabs.Sign(testSecret, testNow, testBody), "", "garbage", "t=" + ts, "v0=abc", "t=,v0=", ",,,", "=",
		"t=" + ts + ",v0=aa,v0=bb", "t=9223372036854775807,v0=00", "t=-9223372036854775808,v0=00", "t=1e9,v0=00",
	} {
		f.Add(testSecret, h, testBody, testNow.Unix())
	}
	f.Add("", "t=0,v0=", []byte{}, int64(0))
	f.Add("s", "t=1,v0=1,t=2", []byte("\x00\xff"), int64(-1))
	f.Fuzz(func(t *testing.T, secret, header string, body []byte, unix int64) {
		// Keep times within years 0..9999, where t.Unix() round-trips.
		unix %= 250_000_000_000
		now := time.Unix(unix, 0)

		// Any header: no panic, and only the documented errors.
		if err := elevenlabs.Verify(secret, header, body, now); err != nil {
			known := false
			for _, e := range signatureErrors {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Fatalf("Verify(%q) = %v, not one of the signature errors", header, err)
			}
		}

		// What Sign makes, Verify accepts, now and for the whole tolerance.
		signed := elevenlabs.Sign(secret, now, body)
		for _, later := range []time.Duration{0, time.Second, elevenlabs.SignatureTolerance} {
			if err := elevenlabs.Verify(secret, signed, body, now.Add(later)); err != nil {
				t.Fatalf("Verify(Sign(%q, %v, %q)) %v later = %v", secret, now, body, later, err)
			}
		}
		// and refuses it for another secret, another body or too late.
		if err := elevenlabs.Verify(secret+"x", signed, body, now); !errors.Is(err, elevenlabs.ErrSignatureMismatch) {
			t.Fatalf("another secret: %v, want a mismatch", err)
		}
		if err := elevenlabs.Verify(secret, signed, append(append([]byte(nil), body...), 'x'), now); !errors.Is(err, elevenlabs.ErrSignatureMismatch) {
			t.Fatalf("another body: %v, want a mismatch", err)
		}
		if err := elevenlabs.Verify(secret, signed, body, now.Add(elevenlabs.SignatureTolerance+time.Second)); !errors.Is(err, elevenlabs.ErrSignatureStale) {
			t.Fatalf("too late: %v, want stale", err)
		}
	})
}

func TestParseWebhook(t *testing.T) {
	t.Parallel()
	const unhandled = "(unhandled)"
	cases := []struct {
		name     string
		body     string
		wantType string // "" when an error is expected
		data     string // a member of data that must be kept
	}{
		{"transcription", `{"type":"post_call_transcription","event_timestamp":1705845552,"data":{"agent_id":"a","conversation_id":"c1","status":"done",` +
			`"transcript":[{"role":"agent","message":"Привіт"}],"analysis":{"call_successful":"success"}}}`, elevenlabs.TypeTranscription, "transcript"},
		{"audio", `{"type":"post_call_audio","event_timestamp":1705845552,"data":{"agent_id":"a","conversation_id":"c1","full_audio":"UklGRg=="}}`,
			elevenlabs.TypeAudio, "full_audio"},
		{"initiation failure", `{"type":"call_initiation_failure","event_timestamp":1705845552,"data":{"agent_id":"a","conversation_id":"c1","failure_reason":"busy"}}`,
			elevenlabs.TypeInitiationFailure, "failure_reason"},
		{"unknown top-level fields", `{"type":"post_call_transcription","webhook_version":2,"extra":{"x":[1]},"data":{"conversation_id":"c1"}}`,
			elevenlabs.TypeTranscription, "conversation_id"},
		{"unknown data fields kept", `{"type":"post_call_transcription","data":{"conversation_id":"c1","has_audio":true,"new_field":{"a":1}}}`,
			elevenlabs.TypeTranscription, "new_field"},
		{"empty data", `{"type":"call_initiation_failure","data":{}}`, elevenlabs.TypeInitiationFailure, ""},
		{"no event_timestamp", `{"type":"post_call_audio","data":{"full_audio":""}}`, elevenlabs.TypeAudio, "full_audio"},
		{"whitespace", " \n{ \"type\" : \"post_call_transcription\" , \"data\" : { \"conversation_id\" : \"c1\" } }\n ", elevenlabs.TypeTranscription, "conversation_id"},

		{"event_timestamp a string", `{"type":"post_call_transcription","event_timestamp":"now","data":{"conversation_id":"c1"}}`,
			elevenlabs.TypeTranscription, "conversation_id"},
		{"event_timestamp a fraction", `{"type":"post_call_transcription","event_timestamp":1705845552.25,"data":{"conversation_id":"c1"}}`,
			elevenlabs.TypeTranscription, "conversation_id"},

		{"unknown type", `{"type":"post_call_video","data":{}}`, unhandled, ""},
		{"type in other case", `{"type":"POST_CALL_TRANSCRIPTION","data":{}}`, unhandled, ""},
		{"empty type", `{"type":"","data":{}}`, unhandled, ""},
		{"missing type", `{"data":{}}`, unhandled, ""},
		{"type not a string", `{"type":1,"data":{}}`, unhandled, ""},
		{"missing data", `{"type":"post_call_transcription"}`, "", ""},
		{"null data", `{"type":"post_call_transcription","data":null}`, "", ""},
		{"array data", `{"type":"post_call_transcription","data":[{}]}`, "", ""},
		{"string data", `{"type":"post_call_transcription","data":"{}"}`, "", ""},
		{"number data", `{"type":"post_call_transcription","data":1}`, "", ""},
		{"empty body", ``, "", ""},
		{"null", `null`, "", ""},
		{"array", `[{"type":"post_call_transcription","data":{}}]`, "", ""},
		{"malformed", `{"type":"post_call_transcription","data":{`, "", ""},
		{"trailing data", `{"type":"post_call_transcription","data":{}} {}`, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wh, err := elevenlabs.ParseWebhook([]byte(tc.body))
			if tc.wantType == unhandled {
				if !errors.Is(err, elevenlabs.ErrUnhandledType) {
					t.Fatalf("ParseWebhook(%s) = %+v, %v, want ErrUnhandledType", tc.body, wh, err)
				}
				return
			}
			if tc.wantType == "" {
				if err == nil || errors.Is(err, elevenlabs.ErrUnhandledType) {
					t.Fatalf("ParseWebhook(%s) = %+v, %v, want an error other than ErrUnhandledType", tc.body, wh, err)
				}
				return
			}
			if err != nil || wh.Type != tc.wantType {
				t.Fatalf("ParseWebhook(%s) = %+v, %v, want type %s", tc.body, wh, err, tc.wantType)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(wh.Data, &data); err != nil {
				t.Fatalf("data %q is not an object: %v", wh.Data, err)
			}
			if _, ok := data[tc.data]; tc.data != "" && !ok {
				t.Fatalf("data lost %q: %s", tc.data, wh.Data)
			}
		})
	}
}

// TestFailureMetadata: the call_initiation_failure samples written from
// ElevenLabs' documentation, with Twilio's and the SIP trunk's reports,
// name the call by the id the outbound-call answer gave; Twilio's also
// names the number dialled, the SIP trunk's does not.
func TestFailureMetadata(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ file, reason, kind, callID, to string }{
		{"call_initiation_failure_twilio.json", "busy", "twilio", "CA0123456789abcdef0123456789abcdef", "+380501234567"},
		{"call_initiation_failure_sip.json", "no-answer", "sip", "SCL_kX2p9QvR7tYw", ""},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		wh, err := elevenlabs.ParseWebhook(body)
		if err != nil || wh.Type != elevenlabs.TypeInitiationFailure {
			t.Fatalf("%s: %+v, %v", tc.file, wh, err)
		}
		var d elevenlabs.FailureData
		if err := json.Unmarshal(wh.Data, &d); err != nil {
			t.Fatal(err)
		}
		var m elevenlabs.FailureMetadata
		if err := json.Unmarshal(d.Metadata, &m); err != nil {
			t.Fatal(err)
		}
		if d.FailureReason != tc.reason || m.Type != tc.kind || m.ProviderCallID() != tc.callID || m.DialledNumber() != tc.to {
			t.Errorf("%s: reason %q, metadata type %q, provider call id %q, number dialled %q", tc.file, d.FailureReason, m.Type,
				m.ProviderCallID(), m.DialledNumber())
		}
	}
	if id := (elevenlabs.FailureMetadata{Type: "twilio", Body: map[string]any{"CallSid": 7}}).ProviderCallID(); id != "" {
		t.Errorf("a CallSid that is not a string gave %q", id)
	}
}

// TestTranscriptionData: the data parts callqueue reads decode from a
// realistic body, around fields it does not know.
func TestTranscriptionData(t *testing.T) {
	t.Parallel()
	wh, err := elevenlabs.ParseWebhook([]byte(`{"type":"post_call_transcription","event_timestamp":1705845552,"data":{
		"agent_id":"agent_abc123","conversation_id":"conv-1","status":"done","user_id":null,
		"transcript":[{"role":"agent","message":"Привіт","time_in_call_secs":0,"tool_calls":[]}],
		"metadata":{"start_time_unix_secs":1705845500,"call_duration_secs":45,"cost":296,"termination_reason":"user_ended_call"},
		"analysis":{"evaluation_criteria_results":{},"data_collection_results":{},"call_successful":"success","transcript_summary":"Клієнт підтвердив участь"},
		"conversation_initiation_client_data":{"conversation_config_override":{},"dynamic_variables":{"phone_number":"+380991111111"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var d elevenlabs.TranscriptionData
	if err := json.Unmarshal(wh.Data, &d); err != nil {
		t.Fatal(err)
	}
	var a elevenlabs.Analysis
	var m elevenlabs.Metadata
	if err := json.Unmarshal(d.Analysis, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(d.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	if d.ConversationID != "conv-1" || d.AgentID != "agent_abc123" || d.ClientData.DynamicVariables["phone_number"] != "+380991111111" ||
		a.CallSuccessful != "success" || a.TranscriptSummary != "Клієнт підтвердив участь" ||
		m.CallDurationSecs != 45 || m.TerminationReason != "user_ended_call" {
		t.Fatalf("decoded %+v %+v %+v", d, a, m)
	}
}

func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{
		`{"type":"post_call_transcription","event_timestamp":1705845552,"data":{"conversation_id":"c1"}}`,
		`{"type":"post_call_audio","data":{"full_audio":"UklGRg=="}}`,
		`{"type":"call_initiation_failure","data":{}}`,
		`{"type":"post_call_video","data":{}}`, `{"data":{}}`, `{"type":"post_call_transcription"}`,
		`{"type":"post_call_transcription","data":null}`, `{"type":"post_call_transcription","data":[]}`,
		``, `null`, `[]`, `{`, `{"type":"post_call_transcription","data":{}} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		wh, err := elevenlabs.ParseWebhook(body)
		if err != nil {
			return
		}
		switch wh.Type {
		case elevenlabs.TypeTranscription, elevenlabs.TypeAudio, elevenlabs.TypeInitiationFailure:
		default:
			t.Fatalf("%q: accepted type %q", body, wh.Type)
		}
		var data map[string]json.RawMessage
		if err := json.Unmarshal(wh.Data, &data); err != nil || data == nil {
			t.Fatalf("%q: accepted data %q that is not an object: %v", body, wh.Data, err)
		}
		if !json.Valid(body) {
			t.Fatalf("%q: accepted a body that is not JSON", body)
		}
	})
}
