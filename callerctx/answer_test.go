package callerctx_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/elevenlabs"
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

// answerBefore is Answer as it was before its answer was built for its
// encoding (maps, then a pass over them), which Answer is held to.
func answerBefore(now time.Time, agent callerctx.Agent, phone string, caller callerctx.Caller) elevenlabs.ClientData {
	loc, err := config.Location(agent.Config.Timezone)
	if err != nil {
		loc = time.UTC
	}
	local := now.In(loc)
	vars := map[string]any{
		"today_is": local.Format("02.01.2006"),
		"time":     local.Format("15:04:05"),
		"weekday":  [...]string{"Неділя", "Понеділок", "Вівторок", "Середа", "Четвер", "П'ятниця", "Субота"}[local.Weekday()],
	}
	for ours := range agent.Fields {
		if name, ok := crm.VariableName(ours); ok {
			vars[name] = ""
		}
	}
	for k, v := range caller.Vars {
		vars[k] = v
	}
	vars["phone_number"] = phone
	if caller.CallID != "" {
		vars["call_id"] = caller.CallID
		var callVars map[string]any
		dec := json.NewDecoder(bytes.NewReader(caller.CallVars))
		dec.UseNumber()
		_ = dec.Decode(&callVars)
		for k, v := range callVars {
			vars[k] = v
		}
	}
	for k, v := range vars {
		switch {
		case strings.HasPrefix(k, elevenlabs.SystemVariablePrefix):
			delete(vars, k)
		case v == nil:
		default:
			switch v.(type) {
			case string, bool, float64, json.Number, int, int64:
			default:
				text, _ := json.Marshal(v)
				vars[k] = string(text)
			}
		}
	}
	answer := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: vars}
	if agent.Config.Override {
		a := map[string]any{}
		if agent.Prompt != "" {
			a["prompt"] = map[string]any{"prompt": agent.Prompt}
		}
		if agent.Config.FirstMessage != "" {
			a["first_message"] = agent.Config.FirstMessage
		}
		if agent.Config.Language != "" {
			a["language"] = agent.Config.Language
		}
		if len(a) > 0 {
			answer.ConversationConfig = map[string]any{"agent": a}
		}
	}
	return answer
}

// checkAnswer holds Answer to answerBefore (the same variables, of the
// same types: the dial's outbound-call request encodes them as well) and
// its encoding to json.Marshal's, byte for byte.
func checkAnswer(t *testing.T, now time.Time, agent callerctx.Agent, phone string, caller callerctx.Caller) {
	t.Helper()
	got := callerctx.Answer(now, agent, phone, caller)
	want := answerBefore(now, agent, phone, caller)
	wantJSON, wantErr := json.Marshal(want)
	if gotJSON, err := json.Marshal(got); !bytes.Equal(gotJSON, wantJSON) || (err != nil) != (wantErr != nil) {
		t.Fatalf("Answer\n%s (%v)\nbefore\n%s (%v)\ncaller %#v", gotJSON, err, wantJSON, wantErr, caller)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) { // NaN is not DeepEqual to itself, and is refused
		t.Fatalf("Answer %#v\nbefore %#v", got, want)
	}
	encoded, err := got.AppendJSON(nil)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(encoded, wantJSON) {
		t.Fatalf("AppendJSON\n%s (%v)\njson.Marshal\n%s (%v)", encoded, err, wantJSON, wantErr)
	}
}

// answerTimezones are the agents' timezones the answers are built in; the
// last is none (answered in UTC), and slow to find not to be one.
var answerTimezones = []string{"", "Europe/Kyiv", "America/St_Johns", "Asia/Kathmandu", "Not/AZone"}

// TestAnswerEncoding: Answers from generated callers, CRM mappings and
// call variables (names and texts of every kind of character, numbers
// beyond float64, nested values, call variables flat, nested or not an
// object at all, override on and off) are encoded as json.Marshal encodes
// them and hold what they held before.
func TestAnswerEncoding(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		now := time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)).UTC()
		agent := callerctx.Agent{Config: config.Agent{Timezone: answerTimezones[rng.IntN(len(answerTimezones))],
			Override: rng.IntN(2) == 0, FirstMessage: randomText(rng), Language: randomText(rng)}, Prompt: randomText(rng)}
		if rng.IntN(2) == 0 {
			agent.Fields = config.CRMFields{"phone": "Phone", "status": "Status", "name": "Name"}
			for range rng.IntN(6) {
				agent.Fields[randomName(rng)] = "Field"
			}
		}
		caller := callerctx.Caller{}
		if rng.IntN(4) > 0 {
			caller.Vars = map[string]any{}
			for range rng.IntN(12) {
				caller.Vars[randomName(rng)] = randomValue(rng, 2)
			}
		}
		if rng.IntN(4) > 0 {
			caller.CallID = uuid.NewString()
			caller.CallVars = randomCallVars(rng)
		}
		checkAnswer(t, now, agent, randomText(rng), caller)
	}
}

// FuzzAnswerEncoding is TestAnswerEncoding's check on fuzzed call
// variables (any bytes) and a fuzzed name, text, number and float among
// the CRM's variables, in the CRM mapping and in the override.
func FuzzAnswerEncoding(f *testing.F) {
	for _, seed := range []string{`{"lead":"webinar","order_id":12345678901234567}`, `{}`, `null`, ``, `[1]`, `"x"`,
		` { "a" : -0.5e+3 , "b":true,"c":false,"d":null, "a":"again" } trailing`, `{"a":"\u00e9\n","b":"<&>"}`,
		`{"nested":{"b":[1,"x",{"c":null}]},"s":"\u2028"}`, "{\"bad\":\"\xff\"}", `{"n":01}`, `{"n":1.}`, `{"a":1,}`,
		`{"system__call_sid":"CA1","ok":1e400}`, `{"a":tru}`, `{"a":"unterminated}`, "{\"tab\":\"\t\"}"} {
		f.Add([]byte(seed), "client_name", "Олена <b>", "0.1", 1.5, int64(1768999152), true)
	}
	f.Add([]byte(`{"x":"y"}`), "system__time", "\xff\u2029\x01", "", 1e21, int64(-1<<40), false)
	f.Add([]byte(`{"x":"y"}`), "", "", "-", 1e-7, int64(1<<40), true)
	f.Add([]byte(`{"x":"y"}`), "x", "y", "1e5", math.NaN(), int64(0), true)
	f.Fuzz(func(t *testing.T, callVars []byte, name, text, number string, float float64, unix int64, override bool) {
		zones := answerTimezones[:len(answerTimezones)-1]
		agent := callerctx.Agent{Config: config.Agent{Timezone: zones[uint64(unix)%uint64(len(zones))],
			Override: override, FirstMessage: text, Language: name}, Prompt: text,
			Fields: config.CRMFields{"name": "Name", name: "Field", text: "Other"}}
		caller := callerctx.Caller{Vars: map[string]any{name: text, text: json.Number(number), "score": float,
			"nested": map[string]any{name: []any{text, nil, float}}}, CallID: "c-1", CallVars: callVars}
		checkAnswer(t, time.Unix(unix, 0), agent, text, caller)
	})
}

// randomText is text of every kind: letters, Ukrainian, HTML's special
// characters, control characters, U+2028 and U+2029, bytes that are not
// UTF-8, quotes and backslashes.
func randomText(rng *rand.Rand) string {
	pieces := []string{"a", "Z", "0", " ", "Олена", "ї", "<", ">", "&", "\"", "\\", "/", "\x00", "\x1f", "\t", "\n", "\r",
		"\b", "\f", "\x7f", "\u2028", "\u2029", "\xff", "\xe2\x80", "\xed\xa0\x80", "😀", "\ufffd", ":", ",", "{", "}", "system__"}
	var b strings.Builder
	for range rng.IntN(8) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

// randomName is a variable's name: most plain, some of any text.
func randomName(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0:
		return randomText(rng)
	case 1:
		return []string{"client_name", "phone_number", "call_id", "today_is", "system__call_sid", "lead_source"}[rng.IntN(6)]
	}
	return fmt.Sprintf("var_%d", rng.IntN(50))
}

// randomValue is a value as decoded JSON has it (depth levels of nesting
// at most), or a Go number a CRM adapter may give.
func randomValue(rng *rand.Rand, depth int) any {
	switch rng.IntN(12) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return json.Number([]string{"12345678901234567890123", "-0", "1.5e-300", "0.000001", "1E+2", "7"}[rng.IntN(6)])
	case 3:
		return math.Float64frombits(rng.Uint64()) // NaN and infinities among them
	case 4:
		return []float64{0, 1e21, 1e-7, -123.456, 1 << 53, 100}[rng.IntN(6)]
	case 5:
		return rng.Int64() - rng.Int64()
	case 6:
		return rng.IntN(1000)
	case 7, 8:
		if depth > 0 {
			m := map[string]any{}
			for range rng.IntN(4) {
				m[randomName(rng)] = randomValue(rng, depth-1)
			}
			if rng.IntN(2) == 0 {
				return []any{m, randomValue(rng, depth-1)}
			}
			return m
		}
	}
	return randomText(rng)
}

// plainTexts are texts JSON writes as they are, unescaped.
var plainTexts = []string{"", "lead", "webinar", "Олена", "<b>&</b>", "\u2028\u2029", "\x7f", "😀", "a b", "10:00", "system__x"}

// randomCallVars are a call's stored variables: mostly a JSON object,
// half of them flat (plain texts, numbers and literals, as calls carry),
// the others of any values, written with white space, sometimes repeating
// a name; or broken, or not an object.
func randomCallVars(rng *rand.Rand) json.RawMessage {
	switch rng.IntN(10) {
	case 0:
		return json.RawMessage([]string{"", "null", "[]", `"x"`, "{", `{"a":}`, `{"a":1,}`, "{\"a\":\"\x01\"}"}[rng.IntN(8)])
	case 1:
		return json.RawMessage(randomText(rng))
	}
	flat := rng.IntN(2) == 0
	var b bytes.Buffer
	space := func() {
		b.WriteString([]string{"", "", " ", "\n\t", "\r "}[rng.IntN(5)])
	}
	b.WriteString("{")
	for i := range rng.IntN(10) {
		if i > 0 {
			b.WriteString(",")
		}
		space()
		name, _ := json.Marshal(randomName(rng))
		switch {
		case rng.IntN(8) == 0:
			name = []byte(`"repeated"`)
		case flat:
			name = []byte(`"` + plainTexts[rng.IntN(len(plainTexts))] + `"`)
		}
		b.Write(name)
		space()
		b.WriteString(":")
		space()
		var value []byte
		switch n := rng.IntN(6); {
		case n == 0:
			value = []byte([]string{"-0.5e+3", "01", "1.", "1e400", "12345678901234567890", "-", "tru", "true", "false", "null",
				"0", "2E-2", "1e+x"}[rng.IntN(13)])
		case n == 1:
			value = []byte(`"` + randomText(rng) + `"`) // as written by hand: perhaps not JSON
		case flat:
			value = []byte([]string{"true", "false", "null", "0", "-12.5e-3", "12345678901234567890",
				`"` + plainTexts[rng.IntN(len(plainTexts))] + `"`}[rng.IntN(7)])
		default:
			v := randomValue(rng, 2)
			if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				v = 0.5 // JSON has none
			}
			value, _ = json.Marshal(v)
		}
		b.Write(value)
		space()
	}
	b.WriteString("}")
	if rng.IntN(8) == 0 {
		b.WriteString(" trailing")
	}
	return b.Bytes()
}
