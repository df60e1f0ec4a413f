package elevenlabs_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/callqueue/callqueue/elevenlabs"
)

// checkAppendJSON holds AppendJSON to json.Marshal: the same bytes, or an
// error where json.Marshal has one; what it appends to is kept.
func checkAppendJSON(t *testing.T, d elevenlabs.ClientData) {
	t.Helper()
	want, wantErr := json.Marshal(d)
	got, err := d.AppendJSON([]byte("prefix"))
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("AppendJSON error %v, json.Marshal's %v (%#v)", err, wantErr, d)
	case err != nil && string(got) != "prefix":
		t.Fatalf("AppendJSON failed leaving %q, want the prefix alone", got)
	case err == nil && !bytes.Equal(got, append([]byte("prefix"), want...)):
		t.Fatalf("AppendJSON\n%s\njson.Marshal\nprefix%s", got, want)
	}
}

// The fuzz target of callerctx holds answers from every input; these are
// the values an answer never has but ClientData may.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	t.Parallel()
	type named string
	deep := any("bottom")
	for range 40 {
		deep = map[string]any{"level": []any{deep}}
	}
	cycle := map[string]any{}
	cycle["self"] = cycle
	values := []any{
		nil, "", "plain", "Олена <b>&</b> \u2028\u2029 \"quoted\" \\ \x00\x1f\x7f \t\n\r\b\f", "\xff\xfe invalid \xe2\x80",
		true, false, 0.0, math.Copysign(0, -1), 1.5, -2.25e-7, 1e-6, 9.99e20, 1e21, 123456789012345678.0, math.MaxFloat64,
		math.SmallestNonzeroFloat64, 1e-9, 3, int64(math.MinInt64), json.Number("12345678901234567890"),
		json.Number(""), json.Number("-0.5e+10"), json.Number("01"), json.Number("1e"), json.Number(" 1"), json.Number("NaN"),
		math.NaN(), math.Inf(1), math.Inf(-1), float32(0.1), uint8(7), named("<named>"), []string{"a", "<b>"},
		map[string]any(nil), []any(nil), []any{}, map[string]any{}, []any{1.0, "x", nil, map[string]any{"b": 1.0, "a": []any{}}},
		map[string]any{"z": 1.0, "a": map[string]any{"\xff": "x", "\xfe": "y", "": nil}}, json.RawMessage(`{ "b" : "<" , "a":1 }`),
		deep, cycle, make(chan int), func() {},
	}
	for _, v := range values {
		checkAppendJSON(t, elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: map[string]any{"v": v, "w": "x"}})
		checkAppendJSON(t, elevenlabs.ClientData{Type: "<t>", DynamicVariables: map[string]any{}, ConversationConfig: map[string]any{"agent": v}})
	}
	checkAppendJSON(t, elevenlabs.ClientData{})
	big := map[string]any{}
	for _, v := range values[:20] {
		big[string(rune(0x400+len(big)))+"k"] = v
		big[string(rune('a'+len(big)))] = v
	}
	checkAppendJSON(t, elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: big, ConversationConfig: big})
}

// TestClientDataFields: AppendJSON writes ClientData's fields by name, so
// a field added must be added there too.
func TestClientDataFields(t *testing.T) {
	t.Parallel()
	var tags []string
	for f := range reflect.TypeFor[elevenlabs.ClientData]().Fields() {
		tags = append(tags, f.Tag.Get("json"))
	}
	if want := []string{"type", "dynamic_variables", "conversation_config_override,omitempty"}; !reflect.DeepEqual(tags, want) {
		t.Errorf("ClientData's fields are %v; AppendJSON writes %v", tags, want)
	}
}

// BenchmarkClientData is the cost of encoding an agent-init answer as it
// leaves agent-init for a warmed call: AppendJSON against json.Marshal.
func BenchmarkClientData(b *testing.B) {
	d := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: map[string]any{
		"today_is": "21.01.2026", "time": "14:39:12", "weekday": "Середа", "client_name": "", "company": "", "lead_source": "",
		"phone_number": "+380970000042", "call_id": "0b7a8d4e-7f1c-4c55-9a49-3f0e2d7c1b6a", "lead": "webinar"}}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.AppendJSON(make([]byte, 0, 512)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
